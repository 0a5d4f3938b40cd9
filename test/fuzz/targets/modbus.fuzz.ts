/**
 * The Modbus/TCP parser (sample-apps/network-protector/src/protocols/modbus.ts): one frame, the
 * probe, and a flow fed both directions in the segmentation the first byte picks, with each
 * transaction rendered as an eve record. It must never throw: bad bytes end the flow (stopped).
 */

import { modbusEve } from '../../../sample-apps/network-protector/src/protocols/eve.js';
import { MODBUS_MAX_FRAME, ModbusFlow, parseModbusFrame, probeModbus } from '../../../sample-apps/network-protector/src/protocols/modbus.js';
import { broken } from '../refusal.js';
import { segments } from './segments.js';

export function fuzz(data: Buffer): void {
  probeModbus(data);
  parseModbusFrame(data, 'toserver');
  parseModbusFrame(data, 'toclient');
  const flow = new ModbusFlow({ requestFlood: 16 });
  for (const { direction, bytes } of segments(data)) {
    const { updated } = flow.feed(direction, bytes);
    for (const tx of updated) JSON.stringify(modbusEve(tx));
    if (flow.outstanding > 16 + 1) broken(`${flow.outstanding} unanswered transactions held past the flood bound`);
    if (flow.buffered(direction) > MODBUS_MAX_FRAME) broken(`${flow.buffered(direction)} bytes buffered, more than one frame`);
  }
}
