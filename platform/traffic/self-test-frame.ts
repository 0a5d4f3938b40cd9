/**
 * The self-test's frame (the manual's "Self-testing" of Network Protector): a crafted Modbus/TCP
 * request the gate pushes through the real inspection path, on a connection of its own that no
 * socket carries, and the one verdict a sound inspector gives it. The contract is the SDK's
 * (sdk/app/isogate-sdk.d.ts, `traffic`): on a connection of the service SELF_TEST_SERVICE, a
 * Modbus Diagnostics "Return Query Data" request carrying SELF_TEST_PAYLOAD is dropped under
 * the reserved sid. Network Protector does it with a built-in rule matched by its own parser and
 * rule engine, so the test exercises them, not a shortcut.
 *
 * The connection's name cannot be a protected service's (their names are [A-Za-z0-9_-]) and its
 * addresses are TEST-NET-1 (RFC 5737), which no plant network carries: the probe neither
 * denylists anything real nor shows in the firewall log as an attack.
 */
import type { TrafficConnection, TrafficVerdict } from '../sandbox/bridge.js';

export const SELF_TEST_SERVICE = 'isogate:self-test';
/** The reserved sid (no rule of a list may use it): the gateway's own verdicts and this one. */
export const RESERVED_SID = 90000001;
export const SELF_TEST_PAYLOAD = 'isogate self-test frame';

export function selfTestConnection(id: number): TrafficConnection {
  return Object.freeze({
    id,
    service: SELF_TEST_SERVICE,
    protocol: 'modbus',
    srcIp: '192.0.2.1',
    srcPort: 49152,
    destIp: '192.0.2.2',
    destPort: 502,
  });
}

/** MBAP header, unit 247, function 8 (Diagnostics), subfunction 0 (Return Query Data), the payload as its data. */
export function selfTestFrame(): Buffer {
  const data = Buffer.from(SELF_TEST_PAYLOAD, 'ascii');
  const frame = Buffer.alloc(10 + data.length);
  frame.writeUInt16BE(0x5e1f, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(4 + data.length, 4);
  frame[6] = 247;
  frame[7] = 8;
  frame.writeUInt16BE(0, 8);
  data.copy(frame, 10);
  return frame;
}

/** Why the verdict is not the one a sound inspector gives the frame, or undefined when it is. */
export function wrongSelfTestVerdict(verdict: TrafficVerdict): string | undefined {
  if (!('drop' in verdict)) return `it released ${verdict.release} bytes of the self-test frame instead of dropping it`;
  if (verdict.drop.sid !== RESERVED_SID || verdict.drop.action !== 'drop') {
    return `it dropped the self-test frame under sid ${verdict.drop.sid} (${verdict.drop.action}), not the reserved sid ${RESERVED_SID}`;
  }
  return undefined;
}
