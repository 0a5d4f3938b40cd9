import { strict as assert } from 'node:assert';
import { ModbusFlow, modbusAddressRange, modbusWriteValueAt, parseModbusFrame, probeModbus } from '../../sample-apps/network-protector/src/protocols/modbus.js';
import {
  ModbusAccess as A,
  ModbusCategory as C,
  type Direction,
  ModbusErrorFlag as E,
  type ModbusMessage,
  type ModbusTransaction,
} from '../../sample-apps/network-protector/src/protocols/types.js';
import { mbap } from '../fixtures/frames.js';

function parse(direction: Direction, pdu: number[], unit = 1): ModbusMessage {
  const parsed = parseModbusFrame(mbap(1, unit, pdu), direction);
  assert.ok('message' in parsed);
  return parsed.message;
}

/** A transaction reduced to what a rule sees, for comparing runs. */
const view = (txs: ModbusTransaction[]) =>
  txs.map((t) => ({
    id: t.txId,
    req: t.request && [t.request.functionRaw, t.request.errorFlags, t.request.data],
    resp: t.response && [t.response.functionRaw, t.response.errorFlags],
    events: t.events,
  }));

function run(chunks: { direction: Direction; bytes: Uint8Array }[]): ModbusTransaction[] {
  const flow = new ModbusFlow();
  const all: ModbusTransaction[] = [];
  for (const c of chunks) for (const tx of flow.feed(c.direction, c.bytes).updated) if (!all.includes(tx)) all.push(tx);
  return all;
}

describe('Modbus/TCP parser', () => {
  it('reads each function code with its access type, category and fields', () => {
    const cases: [number[], string, number, Partial<Record<string, unknown>>][] = [
      [[1, 0, 1, 0, 10], 'RdCoils', A.READ | A.COILS, { address: 1, quantity: 10 }],
      [[2, 0, 2, 0, 8], 'RdDiscreteInputs', A.READ | A.DISCRETES, { address: 2, quantity: 8 }],
      [[3, 0, 3, 0, 2], 'RdHoldRegs', A.READ | A.HOLDING, { address: 3, quantity: 2 }],
      [[4, 0, 4, 0, 1], 'RdInputRegs', A.READ | A.INPUT, { address: 4, quantity: 1 }],
      [[5, 0, 5, 0xff, 0], 'WrSingleCoil', A.WRITE | A.SINGLE | A.COILS, { address: 5, data: 0xff00 }],
      [[6, 0, 6, 0, 9], 'WrSingleReg', A.WRITE | A.SINGLE | A.HOLDING, { address: 6, data: 9 }],
      [[15, 0, 7, 0, 10, 2, 0xcd, 1], 'WrMultCoils', A.WRITE | A.MULTIPLE | A.COILS, { address: 7, quantity: 10 }],
      [[16, 0, 8, 0, 1, 2, 0, 10], 'WrMultRegs', A.WRITE | A.MULTIPLE | A.HOLDING, { address: 8, quantity: 1 }],
      [[22, 0, 9, 0, 0xf2, 0, 0x25], 'MaskWrReg', A.WRITE | A.HOLDING, { address: 9, andMask: 0xf2, orMask: 0x25 }],
      [[23, 0, 3, 0, 2, 0, 14, 0, 1, 2, 0, 0xff], 'RdWrMultRegs', A.READ | A.WRITE | A.MULTIPLE | A.HOLDING, { address: 14, quantity: 1 }],
      [[7], 'RdExcStatus', 0, {}],
      [[8, 0, 4, 0, 0], 'Diagnostic', 0, { raw: 4, code: 'ForceListenOnlyMode' }],
      [[11], 'GetCommEventCtr', 0, {}],
      [[12], 'GetCommEventLog', 0, {}],
      [[17], 'ReportServerID', 0, {}],
      [[20, 7, 6, 0, 4, 0, 1, 0, 2], 'RdFileRec', 0, {}],
      [[21, 7, 6, 0, 4, 0, 1, 0, 0], 'WrFileRec', 0, {}],
      [[24, 0, 4], 'RdFIFOQueue', 0, {}],
      [[43, 14, 1, 0], 'MEI', 0, { raw: 14, code: 'RdDevId' }],
    ];
    for (const [pdu, name, access, fields] of cases) {
      const m = parse('toserver', pdu);
      assert.equal(m.functionCode, name, `function ${pdu[0]}`);
      assert.equal(m.accessType, access, name);
      assert.equal(m.category, C.PUBLIC_ASSIGNED, name);
      assert.equal(m.errorFlags, 0, `${name} flags ${m.errorFlags}`);
      const d = m.data as any;
      const flat = { ...d, ...(d.read ?? {}), ...(d.write ?? {}) };
      if (d.kind === 'readwrite') Object.assign(flat, d.write);
      for (const [k, v] of Object.entries(fields)) assert.equal(flat[k], v, `${name}.${k}`);
    }
  });

  it('categorises user-defined, reserved and unassigned codes and flags function 0', () => {
    assert.equal(parse('toserver', [65, 1]).category, C.USER_DEFINED);
    assert.equal(parse('toserver', [100]).category, C.USER_DEFINED);
    assert.equal(parse('toserver', [9]).category, C.PUBLIC_ASSIGNED); // Program484 has a name in sawp
    assert.equal(parse('toserver', [41]).category, C.RESERVED);
    assert.equal(parse('toserver', [125]).category, C.RESERVED);
    assert.equal(parse('toserver', [50]).category, C.PUBLIC_UNASSIGNED);
    assert.equal(parse('toserver', [8, 0, 0x30, 0, 0]).category, C.RESERVED);
    assert.equal(parse('toserver', [43, 0x20]).category, C.RESERVED);
    assert.ok(parse('toserver', [0]).errorFlags & E.FUNC_CODE);
  });

  it('reads exception responses and flags codes that cannot answer that function', () => {
    const ok = parse('toclient', [0x83, 2]);
    assert.equal(ok.exception, true);
    assert.deepEqual(ok.data, { kind: 'exception', raw: 2, code: 'IllegalDataAddr' });
    assert.equal(ok.errorFlags, 0);
    // sawp tests the raw byte, exception bit included, against 7..14 and 17..19: never true, so
    // "illegal data value for a function without data" is not flagged, in Suricata either.
    assert.equal(parse('toclient', [0x87, 3]).errorFlags, 0);
    assert.ok(parse('toclient', [0x83, 0x0c]).errorFlags & E.EXC_CODE);
    assert.ok(parse('toclient', [0x83, 8]).errorFlags & E.EXC_CODE);
    assert.equal(parse('toclient', [0x94, 8]).errorFlags, 0);
  });

  it('flags values and lengths that lie, and never reads past the frame', () => {
    assert.ok(parse('toserver', [3, 0, 0, 0, 0]).errorFlags & E.DATA_VALUE);
    assert.ok(parse('toserver', [3, 0, 0, 0, 126]).errorFlags & E.DATA_VALUE);
    assert.ok(parse('toserver', [1, 0, 0, 0x07, 0xd1]).errorFlags & E.DATA_VALUE);
    assert.ok(parse('toserver', [5, 0, 0, 0x12, 0x34]).errorFlags & E.DATA_VALUE);
    assert.equal(parse('toserver', [16, 0, 1, 0, 2, 3, 0, 10, 1]).errorFlags, E.DATA_VALUE);
    assert.ok(parse('toserver', [16, 0, 1, 0, 2, 4, 0, 10, 1]).errorFlags & E.DATA_LENGTH);
    assert.ok(parse('toserver', [3, 0, 0, 0, 1, 9]).errorFlags & E.DATA_LENGTH);
    const short = parse('toserver', [3, 0]);
    assert.ok(short.errorFlags & E.DATA_LENGTH);
    assert.equal(short.data.kind, 'bytes');
    const header = Buffer.from([0, 1, 0, 0, 1, 44, 1, 3]);
    const parsed = parseModbusFrame(header, 'toserver');
    assert.ok('message' in parsed && parsed.message.errorFlags & E.DATA_LENGTH && parsed.message.functionRaw === 0);
    assert.ok('message' in parsed && parsed.consumed === header.length, 'a length over 254 swallows what is buffered, as sawp does');
    assert.ok(Object.hasOwn(parseModbusFrame(Buffer.from([0, 1, 0, 0, 0, 1, 1]), 'toserver'), 'message'));
    assert.deepEqual(parseModbusFrame(Buffer.from([0, 1, 0, 0, 0, 10, 1, 3]), 'toserver'), { needed: 16 });
    assert.ok(parse('toserver', [3, 0, 0, 0, 1]).errorFlags === 0);
    assert.ok(Object.hasOwn(parseModbusFrame(mbap(1, 1, [3, 0, 0, 0, 1], 7), 'toserver'), 'message'));
    const proto = parseModbusFrame(mbap(1, 1, [3, 0, 0, 0, 1], 7), 'toserver');
    assert.ok('message' in proto && proto.message.errorFlags & E.PROTO_ID);
  });

  it('probes as Suricata does: a clean known function only', () => {
    assert.equal(probeModbus(mbap(1, 1, [3, 0, 0, 0, 1])), 'yes');
    assert.equal(probeModbus(mbap(1, 1, [3, 0, 0, 0, 1]).subarray(0, 9)), 'more');
    assert.equal(probeModbus(mbap(1, 1, [3, 0, 0, 0, 1], 1)), 'no');
    assert.equal(probeModbus(mbap(1, 1, [65])), 'no');
    assert.equal(probeModbus(Buffer.from('GET / HTTP/1.1\r\n')), 'no');
  });

  it('pairs responses by transaction id and unit, and files the rest as unsolicited', () => {
    const txs = run([
      { direction: 'toserver', bytes: Buffer.concat([mbap(1, 1, [3, 0, 0, 0, 1]), mbap(2, 1, [6, 0, 1, 0, 5]), mbap(3, 2, [1, 0, 0, 0, 8])]) },
      { direction: 'toclient', bytes: Buffer.concat([mbap(2, 1, [6, 0, 1, 0, 5]), mbap(1, 1, [3, 2, 0, 9]), mbap(3, 9, [1, 1, 0])]) },
    ]);
    assert.equal(txs.length, 4);
    assert.equal(txs[0]!.response?.transactionId, 1);
    assert.equal(txs[1]!.response?.functionRaw, 6);
    assert.deepEqual(txs[1]!.events, []);
    assert.equal(txs[2]!.response, undefined);
    assert.deepEqual(txs[3]!.events, ['unsolicited_response']);
    // A single write echoed with another value is a mismatch.
    const [w] = run([
      { direction: 'toserver', bytes: mbap(1, 1, [6, 0, 1, 0, 5]) },
      { direction: 'toclient', bytes: mbap(1, 1, [6, 0, 1, 0, 6]) },
    ]);
    assert.deepEqual(w!.events, ['value_mismatch']);
  });

  it('gives the same transactions for a stream split at every offset and in 1-byte segments', () => {
    const requests = Buffer.concat([
      mbap(1, 1, [3, 0, 0, 0, 2]),
      mbap(2, 1, [16, 0, 1, 0, 2, 4, 0, 10, 1, 2]),
      mbap(3, 1, [8, 0, 0, 1, 2]),
      mbap(4, 1, [43, 14, 1, 0]),
    ]);
    const responses = Buffer.concat([mbap(1, 1, [3, 4, 0, 1, 0, 2]), mbap(2, 1, [16, 0, 1, 0, 2]), mbap(3, 1, [0x88, 1]), mbap(4, 1, [43, 14, 1, 1, 0, 0, 0])]);
    const whole = view(
      run([
        { direction: 'toserver', bytes: requests },
        { direction: 'toclient', bytes: responses },
      ]),
    );
    assert.equal(whole.length, 4);
    for (let i = 1; i < requests.length; i++) {
      const split = view(
        run([
          { direction: 'toserver', bytes: requests.subarray(0, i) },
          { direction: 'toserver', bytes: requests.subarray(i) },
          { direction: 'toclient', bytes: responses.subarray(0, Math.min(i, responses.length - 1)) },
          { direction: 'toclient', bytes: responses.subarray(Math.min(i, responses.length - 1)) },
        ]),
      );
      assert.deepEqual(split, whole, `split at ${i}`);
    }
    const bytes = [...requests].map((b) => ({ direction: 'toserver' as const, bytes: Uint8Array.of(b) }));
    const back = [...responses].map((b) => ({ direction: 'toclient' as const, bytes: Uint8Array.of(b) }));
    assert.deepEqual(view(run([...bytes, ...back])), whole);
  });

  it('keeps at most one frame per direction while waiting for the rest of it', () => {
    const flow = new ModbusFlow();
    const frame = mbap(1, 1, [16, 0, 1, 0, 123, 246, ...new Array(246).fill(7)]);
    assert.equal(frame.length, 259);
    for (let i = 0; i < frame.length - 1; i++) assert.deepEqual(flow.feed('toserver', frame.subarray(i, i + 1)).updated, []);
    const done = flow.feed('toserver', frame.subarray(frame.length - 1));
    assert.equal(done.updated.length, 1);
    assert.deepEqual(done.updated[0]!.events, []);
  });

  it('flags a flood of unanswered requests once, then stops parsing the flow', () => {
    const flow = new ModbusFlow();
    const events: string[][] = [];
    for (let i = 0; i < 500; i++) events.push(...flow.feed('toserver', mbap(i, 1, [3, 0, 0, 0, 1])).updated.map((t) => t.events));
    assert.equal(flow.outstanding, 500);
    assert.ok(events.every((e) => e.length === 0));
    const flooded = flow.feed('toserver', mbap(500, 1, [3, 0, 0, 0, 1]));
    assert.deepEqual(flooded.updated[0]!.events, ['flooded']);
    assert.equal(flooded.stopped, false);
    const after = flow.feed('toserver', mbap(501, 1, [3, 0, 0, 0, 1]));
    assert.equal(after.stopped, true);
    assert.equal(flow.outstanding, 0, 'a stopped flow releases its transactions');
    assert.deepEqual(flow.feed('toclient', mbap(1, 1, [3, 2, 0, 1])).updated, []);
  });

  it('does not flood when requests are answered', () => {
    const flow = new ModbusFlow();
    for (let i = 0; i < 2000; i++) {
      flow.feed('toserver', mbap(i & 0xffff, 1, [3, 0, 0, 0, 1]));
      const r = flow.feed('toclient', mbap(i & 0xffff, 1, [3, 2, 0, 1]));
      assert.ok(!r.updated[0]!.events.includes('flooded'));
    }
    assert.equal(flow.outstanding, 0);
  });

  it('survives random bytes in both directions without throwing or growing', () => {
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let run = 0; run < 200; run++) {
      const flow = new ModbusFlow();
      for (let chunk = 0; chunk < 20; chunk++) {
        const bytes = Uint8Array.from({ length: next() % 64 }, () => (next() % 5 === 0 ? 0 : next() & 0xff));
        flow.feed(next() & 1 ? 'toserver' : 'toclient', bytes);
        assert.ok(flow.outstanding <= 501);
      }
    }
  });

  it("exposes addresses and written values the way Suricata's modbus keyword reads them", () => {
    const single = parse('toserver', [6, 0, 9, 0, 42]);
    assert.deepEqual(modbusAddressRange(single), { first: 10, last: 10 });
    assert.equal(modbusWriteValueAt(single, 10), 42);
    assert.equal(modbusWriteValueAt(single, 11), undefined);
    const coil = parse('toserver', [5, 0, 9, 0xff, 0]);
    assert.equal(modbusWriteValueAt(coil, 10), 1);
    const multi = parse('toserver', [16, 0, 1, 0, 2, 4, 0, 10, 1, 2]);
    assert.deepEqual(modbusAddressRange(multi), { first: 2, last: 3 });
    assert.equal(modbusWriteValueAt(multi, 2), 10);
    assert.equal(modbusWriteValueAt(multi, 3), 0x0102);
    assert.equal(modbusWriteValueAt(multi, 4), undefined);
    assert.equal(modbusAddressRange(parse('toserver', [3, 0xff, 0xff, 0, 2])), undefined);
  });
});
