import { strict as assert } from 'node:assert';
import { eveBytes, modbusEve } from '../../sample-apps/network-protector/src/protocols/eve.js';
import { ModbusFlow } from '../../sample-apps/network-protector/src/protocols/modbus.js';
import { mbap } from '../fixtures/frames.js';

describe('eve.json objects of the protocol parsers', () => {
  it("writes bytes as Suricata's JsonBuilder does", () => {
    assert.equal(eveBytes(Buffer.from('héllo')), 'héllo');
    assert.equal(eveBytes(Uint8Array.of(0xff, 3, 0x41)), '\\xff\u0003A');
    assert.equal(eveBytes(Uint8Array.of(0xe2, 0x82)), '\\xe2\\x82');
  });

  it('names access types, categories and error flags as sawp-flags prints them, composites included', () => {
    const flow = new ModbusFlow();
    flow.feed('toserver', mbap(7, 3, [5, 0, 4, 0x12, 0x34]));
    const [tx] = flow.feed('toclient', mbap(7, 3, [0x85, 0x0c])).updated;
    assert.deepEqual(modbusEve(tx!), {
      id: 1,
      request: {
        transaction_id: 7,
        protocol_id: 0,
        unit_id: 3,
        function_raw: 5,
        function_code: 'WrSingleCoil',
        access_type: 'WRITE | COILS | SINGLE | WRITE_SINGLE',
        category: 'PUBLIC_ASSIGNED',
        error_flags: 'DATA_VALUE',
        write: { address: 4, data: 0x1234 },
      },
      response: {
        transaction_id: 7,
        protocol_id: 0,
        unit_id: 3,
        function_raw: 0x85,
        function_code: 'WrSingleCoil',
        access_type: 'WRITE | COILS | SINGLE | WRITE_SINGLE',
        category: 'PUBLIC_ASSIGNED',
        error_flags: 'EXC_CODE',
        exception: { raw: 0x0c, code: 'Unknown' },
      },
    });
  });
});
