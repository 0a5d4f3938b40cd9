/**
 * Modbus/TCP as Suricata 7 sees it: a line-by-line port of the `sawp-modbus` 0.12 message parser
 * Suricata uses and of its `rust/src/modbus/modbus.rs` state (transactions, events, flood).
 * Where those are odd, this is odd the same way, so that rules behave as they do in Suricata:
 *  - a length field outside 2..254 yields a message with function 0 and skips `length` bytes, or
 *    everything buffered when fewer are there (so what follows depends on segmentation, as there);
 *  - a request pairs with the first unanswered request of the same transaction id, unit, function
 *    and access type; a response with none is an `unsolicited_response` transaction;
 *  - past 500 unanswered transactions the next one is `flooded`, and the one after stops the parser
 *    for the flow (Suricata's app-layer error).
 */
import { Reader, Short, StreamBuffer } from './bytes.js';
import {
  ModbusAccess as A,
  ModbusCategory as C,
  type Direction,
  ModbusErrorFlag as E,
  type FeedResult,
  type ModbusData,
  type ModbusEventName,
  type ModbusMessage,
  type ModbusTransaction,
  type ModbusWrite,
} from './types.js';

export const MODBUS_REQUEST_FLOOD = 500;
const ERROR_MASK = 0x80;
const MAX_QUANTITY_BIT_ACCESS = 2000;
const MAX_QUANTITY_WORD_ACCESS = 125;
const MIN_LENGTH = 2;
/** The longest MBAP length a message's matchKey holds: 6 bytes, 3 bits of length and 1 of direction are 52 bits, exact in a double. */
export const MODBUS_KEYED_LENGTH = 6;
const MAX_LENGTH = 254;
/** MBAP header (7 bytes) less the unit id counted in `length`, plus the largest length. */
export const MODBUS_MAX_FRAME = 6 + MAX_LENGTH;

const FUNCTION_NAMES: Record<number, string> = {
  1: 'RdCoils',
  2: 'RdDiscreteInputs',
  3: 'RdHoldRegs',
  4: 'RdInputRegs',
  5: 'WrSingleCoil',
  6: 'WrSingleReg',
  7: 'RdExcStatus',
  8: 'Diagnostic',
  9: 'Program484',
  10: 'Poll484',
  11: 'GetCommEventCtr',
  12: 'GetCommEventLog',
  13: 'ProgramController',
  14: 'PollController',
  15: 'WrMultCoils',
  16: 'WrMultRegs',
  17: 'ReportServerID',
  18: 'Program884',
  19: 'ResetCommLink',
  20: 'RdFileRec',
  21: 'WrFileRec',
  22: 'MaskWrReg',
  23: 'RdWrMultRegs',
  24: 'RdFIFOQueue',
  43: 'MEI',
};

const DIAGNOSTIC_NAMES: Record<number, string> = {
  0: 'RetQueryData',
  1: 'RestartCommOpt',
  2: 'RetDiagReg',
  3: 'ChangeInputDelimiter',
  4: 'ForceListenOnlyMode',
  10: 'ClearCtrDiagReg',
  11: 'RetBusMsgCount',
  12: 'RetBusCommErrCount',
  13: 'RetBusExcErrCount',
  14: 'RetServerMsgCount',
  15: 'RetServerNoRespCount',
  16: 'RetServerNAKCount',
  17: 'RetServerBusyCount',
  18: 'RetBusCharOverrunCount',
  19: 'RetOverrunErrCount',
  20: 'ClearOverrunCounterFlag',
  21: 'GetClearPlusStats',
};

const MEI_NAMES: Record<number, string> = { 0: 'Unknown', 13: 'CANOpenGenRefReqResp', 14: 'RdDevId' };

const EXCEPTION_NAMES: Record<number, string> = {
  1: 'IllegalFunction',
  2: 'IllegalDataAddr',
  3: 'IllegalDataValue',
  4: 'ServerDeviceFail',
  5: 'Ack',
  6: 'ServerDeviceBusy',
  7: 'NegAck',
  8: 'MemParityErr',
  10: 'GatewayPathUnavailable',
  11: 'GatewayTargetFailToResp',
};

export function modbusFunctionName(code: number): string {
  return FUNCTION_NAMES[code] ?? 'Unknown';
}

function accessOf(name: string): number {
  switch (name) {
    case 'RdCoils':
      return A.COILS | A.READ;
    case 'RdDiscreteInputs':
      return A.DISCRETES | A.READ;
    case 'RdHoldRegs':
      return A.HOLDING | A.READ;
    case 'RdInputRegs':
      return A.INPUT | A.READ;
    case 'WrSingleCoil':
      return A.COILS | A.SINGLE | A.WRITE;
    case 'WrSingleReg':
      return A.HOLDING | A.SINGLE | A.WRITE;
    case 'WrMultCoils':
      return A.COILS | A.MULTIPLE | A.WRITE;
    case 'WrMultRegs':
      return A.HOLDING | A.MULTIPLE | A.WRITE;
    case 'MaskWrReg':
      return A.HOLDING | A.WRITE;
    case 'RdWrMultRegs':
      return A.HOLDING | A.READ | A.MULTIPLE | A.WRITE;
    default:
      return 0;
  }
}

/** sawp's `CodeCategory::from_raw` for function codes it has no name for. */
function categoryOfRaw(id: number): number {
  if (id === 0) return 0;
  if (id < 9) return C.PUBLIC_UNASSIGNED;
  if (id < 15) return C.RESERVED;
  if (id < 41) return C.PUBLIC_UNASSIGNED;
  if (id < 43) return C.RESERVED;
  if (id < 65) return C.PUBLIC_UNASSIGNED;
  if (id < 73) return C.USER_DEFINED;
  if (id < 90) return C.PUBLIC_UNASSIGNED;
  if (id < 92) return C.RESERVED;
  if (id < 100) return C.PUBLIC_UNASSIGNED;
  if (id < 111) return C.USER_DEFINED;
  if (id < 125) return C.PUBLIC_UNASSIGNED;
  if (id < 128) return C.RESERVED;
  return 0;
}

function categoryOf(msg: ModbusMessage): number {
  switch (msg.functionCode) {
    case 'Diagnostic':
      if (msg.data.kind !== 'diagnostic') return 0;
      return msg.data.code === 'Reserved' ? C.RESERVED : C.PUBLIC_ASSIGNED;
    case 'MEI':
      if (msg.data.kind !== 'mei') return 0;
      return msg.data.code === 'Unknown' ? C.RESERVED : C.PUBLIC_ASSIGNED;
    case 'Unknown':
      // sawp passes the raw byte, exception bit and all: an exception for an unknown code has no category.
      return categoryOfRaw(msg.functionRaw);
    default:
      return C.PUBLIC_ASSIGNED;
  }
}

type Mutable = { -readonly [K in keyof ModbusMessage]: ModbusMessage[K] };

const dataLength = (m: Mutable): number => m.length - 2;
const has = (bits: number, flag: number): boolean => (bits & flag) === flag;
const any = (bits: number, flag: number): boolean => (bits & flag) !== 0;

function parseException(m: Mutable, r: Reader): void {
  const raw = r.u8();
  const code = EXCEPTION_NAMES[raw] ?? 'Unknown';
  const f = m.functionRaw;
  const illegalRange = (f > 6 && f < 15) || (f > 16 && f < 20);
  if (code === 'IllegalDataValue' && m.functionCode !== 'Diagnostic' && illegalRange) m.errorFlags |= E.EXC_CODE;
  else if (code === 'IllegalDataAddr' && illegalRange) m.errorFlags |= E.EXC_CODE;
  else if (code === 'MemParityErr' && m.functionCode !== 'RdFileRec' && m.functionCode !== 'WrFileRec') m.errorFlags |= E.EXC_CODE;
  else if (code === 'Unknown') m.errorFlags |= E.EXC_CODE;
  m.data = { kind: 'exception', raw, code };
}

function parseDiagnostic(m: Mutable, r: Reader): void {
  if (dataLength(m) < 2) {
    m.errorFlags |= E.DATA_LENGTH;
    return;
  }
  const raw = r.u16();
  const data = r.take(dataLength(m) - 2);
  m.data = { kind: 'diagnostic', raw, code: DIAGNOSTIC_NAMES[raw] ?? 'Reserved', data };
}

function parseMei(m: Mutable, r: Reader): void {
  if (dataLength(m) < 1) {
    m.errorFlags |= E.DATA_LENGTH;
    return;
  }
  const raw = r.u8();
  const data = r.take(dataLength(m) - 1);
  m.data = { kind: 'mei', raw, code: MEI_NAMES[raw] ?? 'Unknown', data };
}

function parseBytes(m: Mutable, r: Reader): void {
  m.data = { kind: 'bytes', data: r.take(dataLength(m)) };
}

function parseReadRequest(m: Mutable, r: Reader): void {
  const address = r.u16();
  const quantity = r.u16();
  if (quantity === 0) m.errorFlags |= E.DATA_VALUE;
  if (m.functionCode !== 'RdWrMultRegs' && dataLength(m) > 4) m.errorFlags |= E.DATA_LENGTH;
  if (any(m.accessType, A.BIT_ACCESS_MASK)) {
    if (quantity > MAX_QUANTITY_BIT_ACCESS) m.errorFlags |= E.DATA_VALUE;
  } else if (quantity > MAX_QUANTITY_WORD_ACCESS) m.errorFlags |= E.DATA_VALUE;
  m.data = { kind: 'read', read: { kind: 'request', address, quantity } };
}

function parseReadResponse(m: Mutable, r: Reader): void {
  if (dataLength(m) < 1) {
    m.errorFlags |= E.DATA_LENGTH;
    return;
  }
  const count = r.u8();
  if (count < 1 || count > 250) m.errorFlags |= E.DATA_VALUE;
  if (dataLength(m) - 1 !== count) m.errorFlags |= E.DATA_VALUE;
  m.data = { kind: 'read', read: { kind: 'response', data: r.take(dataLength(m) - 1) } };
}

function parseWriteRequest(m: Mutable, r: Reader): void {
  const address = r.u16();
  if (has(m.accessType, A.SINGLE)) {
    const data = r.u16();
    if (has(m.accessType, A.COILS) && data !== 0x0000 && data !== 0xff00) m.errorFlags |= E.DATA_VALUE;
    m.data = { kind: 'write', write: { kind: 'other', address, data } };
  } else if (has(m.accessType, A.MULTIPLE)) {
    const quantity = r.u16();
    const count = r.u8();
    const offset = m.functionCode === 'RdWrMultRegs' ? 11 : 7;
    // u16 arithmetic as in sawp; unreachable below `offset` because the reads above need those bytes.
    const rest = (m.length - offset) & 0xffff;
    if (quantity === 0 || rest !== count) m.errorFlags |= E.DATA_LENGTH;
    if (any(m.accessType, A.BIT_ACCESS_MASK)) {
      if (quantity > MAX_QUANTITY_BIT_ACCESS || count !== Math.floor(quantity / 8) + (quantity % 8 !== 0 ? 1 : 0)) m.errorFlags |= E.DATA_VALUE;
    } else if (quantity > MAX_QUANTITY_WORD_ACCESS || count !== 2 * quantity) m.errorFlags |= E.DATA_VALUE;
    const data = r.take(rest);
    const write: ModbusWrite = { kind: 'multiple', address, quantity, data };
    m.data = m.data.kind === 'read' ? { kind: 'readwrite', read: m.data.read, write } : { kind: 'write', write };
  } else {
    const andMask = r.u16();
    const orMask = r.u16();
    m.data = { kind: 'write', write: { kind: 'mask', address, andMask, orMask } };
  }
}

function parseWriteResponse(m: Mutable, r: Reader): void {
  const address = r.u16();
  if (has(m.accessType, A.SINGLE)) {
    const data = r.u16();
    m.data = { kind: 'write', write: { kind: 'other', address, data } };
  } else if (has(m.accessType, A.MULTIPLE)) {
    const quantity = r.u16();
    if (quantity === 0) m.errorFlags |= E.DATA_VALUE;
    // sawp swaps the two limits here (bit access checked against 125, word access against 2000); so does Suricata.
    if (any(m.accessType, A.BIT_ACCESS_MASK)) {
      if (quantity > MAX_QUANTITY_WORD_ACCESS) m.errorFlags |= E.DATA_VALUE;
    } else if (quantity > MAX_QUANTITY_BIT_ACCESS) m.errorFlags |= E.DATA_VALUE;
    m.data = { kind: 'write', write: { kind: 'other', address, data: quantity } };
  } else {
    const andMask = r.u16();
    const orMask = r.u16();
    m.data = { kind: 'write', write: { kind: 'mask', address, andMask, orMask } };
  }
}

function parseRequest(m: Mutable, r: Reader): void {
  switch (m.functionCode) {
    case 'Diagnostic': {
      if (dataLength(m) !== 4) m.errorFlags |= E.DATA_LENGTH;
      parseDiagnostic(m, r);
      if (m.data.kind === 'diagnostic' && m.data.data.length === 2) {
        const d = m.data.data;
        switch (m.data.code) {
          case 'RetQueryData':
          case 'ForceListenOnlyMode':
          case 'Reserved':
            break;
          case 'RestartCommOpt':
            if (d[1] !== 0 || (d[0] !== 0 && d[0] !== 0xff)) m.errorFlags |= E.DATA_VALUE;
            break;
          case 'ChangeInputDelimiter':
            if (d[1] !== 0) m.errorFlags |= E.DATA_VALUE;
            break;
          default:
            if (d[0] !== 0 || d[1] !== 0) m.errorFlags |= E.DATA_VALUE;
        }
      }
      return;
    }
    case 'MEI':
      parseMei(m, r);
      return;
    case 'RdFileRec':
    case 'WrFileRec':
      if (dataLength(m) === 0) m.errorFlags |= E.DATA_LENGTH;
      break;
    case 'RdExcStatus':
    case 'GetCommEventCtr':
    case 'GetCommEventLog':
    case 'ReportServerID':
      if (dataLength(m) > 0) m.errorFlags |= E.DATA_LENGTH;
      break;
    case 'RdFIFOQueue':
      if (dataLength(m) !== 2) m.errorFlags |= E.DATA_LENGTH;
      break;
    default:
      if (m.functionRaw === 0 || m.functionRaw >= ERROR_MASK) m.errorFlags |= E.FUNC_CODE;
      if (any(m.accessType, A.READ)) {
        parseReadRequest(m, r);
        if (any(m.accessType, A.WRITE)) parseWriteRequest(m, r);
        return;
      }
      if (any(m.accessType, A.WRITE)) {
        parseWriteRequest(m, r);
        return;
      }
  }
  parseBytes(m, r);
}

function parseResponse(m: Mutable, r: Reader): void {
  if (m.functionRaw >= ERROR_MASK) {
    parseException(m, r);
    return;
  }
  switch (m.functionCode) {
    case 'Diagnostic':
      parseDiagnostic(m, r);
      return;
    case 'MEI':
      parseMei(m, r);
      return;
    case 'RdExcStatus':
      if (dataLength(m) !== 1) m.errorFlags |= E.DATA_LENGTH;
      break;
    case 'GetCommEventCtr':
      if (dataLength(m) !== 4) m.errorFlags |= E.DATA_LENGTH;
      break;
    default:
      if (any(m.accessType, A.READ)) {
        parseReadResponse(m, r);
        return;
      }
      if (any(m.accessType, A.WRITE)) {
        parseWriteResponse(m, r);
        return;
      }
  }
  parseBytes(m, r);
}

function parseUnknown(m: Mutable, r: Reader): void {
  if (m.functionRaw >= ERROR_MASK) {
    parseException(m, r);
    return;
  }
  if (m.functionCode === 'Diagnostic') {
    parseDiagnostic(m, r);
    return;
  }
  if (m.functionCode === 'MEI') {
    parseMei(m, r);
    return;
  }
  parseBytes(m, r);
}

export type ModbusParse = { readonly message: ModbusMessage; readonly consumed: number } | { readonly needed: number };

/**
 * One MBAP frame from the front of `input`. `needed` is the total length to wait for when the frame
 * is not all there yet. `direction` undefined is sawp's `Direction::Unknown` (protocol detection).
 */
export function parseModbusFrame(input: Uint8Array, direction: Direction | undefined): ModbusParse {
  return parseModbusFrameAt(input, 0, direction);
}

/** parseModbusFrame of the bytes from `at` on: a stream's frames parsed in place, without a view each. */
function parseModbusFrameAt(input: Uint8Array, at: number, direction: Direction | undefined): ModbusParse {
  const available = input.length - at;
  if (available < 6) return { needed: 6 };
  const transactionId = (input[at]! << 8) | input[at + 1]!;
  const protocolId = (input[at + 2]! << 8) | input[at + 3]!;
  const length = (input[at + 4]! << 8) | input[at + 5]!;
  const m: Mutable = {
    direction: direction ?? 'toserver',
    transactionId,
    protocolId,
    length,
    unitId: 0,
    functionRaw: 0,
    functionCode: 'Unknown',
    exception: false,
    accessType: 0,
    category: 0,
    errorFlags: protocolId !== 0 ? E.PROTO_ID : 0,
    data: { kind: 'empty' },
    matchKey: -1,
  };
  if (length < MIN_LENGTH || length > MAX_LENGTH) {
    m.errorFlags |= E.DATA_LENGTH;
    const rest = available - 6;
    return { message: m, consumed: rest > length ? 6 + length : available };
  }
  if (available < 6 + length) return { needed: 6 + length };
  const r = new Reader(input, at + 6 + length);
  r.pos = at + 6;
  m.unitId = r.u8();
  m.functionRaw = r.u8();
  m.exception = m.functionRaw >= ERROR_MASK;
  m.functionCode = modbusFunctionName(m.functionRaw >= ERROR_MASK ? m.functionRaw ^ ERROR_MASK : m.functionRaw);
  m.accessType = accessOf(m.functionCode);
  try {
    if (direction === 'toserver') parseRequest(m, r);
    else if (direction === 'toclient') parseResponse(m, r);
    else parseUnknown(m, r);
    if (r.left > 0) m.errorFlags |= E.DATA_LENGTH;
  } catch (error) {
    if (!(error instanceof Short)) throw error;
    m.errorFlags |= E.DATA_LENGTH;
    if (m.data.kind === 'empty') m.data = { kind: 'bytes', data: input.slice(at + 8, at + 6 + length) };
  }
  m.category = categoryOf(m);
  if (direction !== undefined && protocolId === 0 && length <= MODBUS_KEYED_LENGTH) m.matchKey = matchKeyOf(input, at + 6, length, direction);
  return { message: m, consumed: 6 + length };
}

/** ModbusMessage.matchKey: every field below 2^52, so the number is exact. */
function matchKeyOf(input: Uint8Array, from: number, length: number, direction: Direction): number {
  let bytes = 0;
  for (let i = 0; i < length; i++) bytes = bytes * 256 + input[from + i]!;
  return (bytes * 8 + length) * 2 + (direction === 'toserver' ? 0 : 1);
}

/** Suricata's probing parser (`probe_strict`): 'yes', 'no', or 'more' bytes needed. */
export function probeModbus(input: Uint8Array): 'yes' | 'no' | 'more' {
  const parsed = parseModbusFrame(input, undefined);
  if ('needed' in parsed) return 'more';
  return parsed.message.errorFlags === 0 && parsed.message.functionCode !== 'Unknown' ? 'yes' : 'no';
}

const bitBytes = (count: number): number => Math.floor(count / 8) + (count % 8 !== 0 ? 1 : 0);

/** sawp's `Message::matches`: may set DATA_VALUE on `self` when the echoed values differ. */
function matches(self: ModbusMessage, other: ModbusMessage): boolean {
  if (
    self.transactionId !== other.transactionId ||
    self.unitId !== other.unitId ||
    self.functionCode !== other.functionCode ||
    self.accessType !== other.accessType
  )
    return false;
  if (self.category !== C.PUBLIC_ASSIGNED) return true;
  if (other.data.kind === 'exception') return true;
  const a = self.data;
  const b = other.data;
  if (a.kind === 'exception') return true;
  if (a.kind === 'bytes' && b.kind === 'bytes') return true;
  if (a.kind === 'bytes') return any(self.errorFlags, E.DATA_LENGTH);
  if (b.kind === 'bytes') return any(other.errorFlags, E.DATA_LENGTH);
  const mismatch = (): true => {
    self.errorFlags |= E.DATA_VALUE;
    return true;
  };
  const reqQuantity = (d: ModbusData): { q: number; rw: boolean } | undefined => {
    if (d.kind === 'read' && d.read.kind === 'request') return { q: d.read.quantity, rw: false };
    if (d.kind === 'readwrite' && d.read.kind === 'request') return { q: d.read.quantity, rw: true };
    return undefined;
  };
  if (a.kind === 'read' && a.read.kind === 'response') {
    const q = reqQuantity(b);
    if (q) {
      // Suricata compares word reads with the bit-read formula too (only read-write uses 2 x quantity).
      const expected = q.rw ? 2 * q.q : bitBytes(q.q);
      return a.read.data.length !== expected ? mismatch() : true;
    }
  }
  const q = reqQuantity(a);
  if (q && b.kind === 'read' && b.read.kind === 'response') {
    const expected = q.rw ? 2 * q.q : bitBytes(q.q);
    return b.read.data.length !== expected ? mismatch() : true;
  }
  if (a.kind === 'write' && a.write.kind === 'other' && b.kind === 'write') {
    const w = b.write;
    if (w.kind === 'other') return a.write.address !== w.address || a.write.data !== w.data ? mismatch() : true;
    if (w.kind === 'multiple') return a.write.address !== w.address || a.write.data !== w.quantity ? mismatch() : true;
    return false;
  }
  if (a.kind === 'write' && a.write.kind === 'multiple' && b.kind === 'write' && b.write.kind === 'other') {
    return a.write.address !== b.write.address || a.write.quantity !== b.write.data ? mismatch() : true;
  }
  if (a.kind === 'write' && a.write.kind === 'mask' && b.kind === 'write' && b.write.kind === 'mask') {
    const x = a.write;
    const y = b.write;
    return x.address !== y.address || x.andMask !== y.andMask || x.orMask !== y.orMask ? mismatch() : true;
  }
  if (a.kind === 'diagnostic' && b.kind === 'diagnostic') return a.raw === b.raw;
  if (a.kind === 'mei' && b.kind === 'mei') return a.raw === b.raw;
  return false;
}

function eventsFromFlags(flags: number): ModbusEventName[] {
  const out: ModbusEventName[] = [];
  if (any(flags, E.FUNC_CODE)) out.push('invalid_function_code');
  if (any(flags, E.DATA_VALUE)) out.push('invalid_value');
  if (any(flags, E.DATA_LENGTH)) out.push('invalid_length');
  if (any(flags, E.EXC_CODE)) out.push('invalid_exception_code');
  if (any(flags, E.PROTO_ID)) out.push('invalid_protocol_id');
  return out;
}

function responseEvents(msg: ModbusMessage): ModbusEventName[] {
  if (any(msg.accessType, A.READ | A.WRITE) && any(msg.errorFlags, E.DATA_LENGTH | E.DATA_VALUE)) return ['value_mismatch'];
  return eventsFromFlags(msg.errorFlags);
}

function addEvents(tx: ModbusTransaction, events: ModbusEventName[]): void {
  for (const e of events) if (!tx.events.includes(e)) tx.events.push(e);
}

/** The `modbus: access ... address`/`value` helpers of Suricata's detect code, on sawp's 1-based addresses. */
export function modbusAddressRange(msg: ModbusMessage): { first: number; last: number } | undefined {
  const d = msg.data;
  if (d.kind === 'write' && (d.write.kind === 'other' || d.write.kind === 'mask')) return { first: d.write.address + 1, last: d.write.address + 1 };
  let address: number;
  let quantity: number;
  if (d.kind === 'read' && d.read.kind === 'request') ({ address, quantity } = d.read);
  else if (d.kind === 'write' && d.write.kind === 'multiple') ({ address, quantity } = d.write);
  else if (d.kind === 'readwrite' && d.write.kind === 'multiple') ({ address, quantity } = d.write);
  else return undefined;
  return quantity > 0 && quantity <= 0xffff - address ? { first: address + 1, last: address + quantity } : undefined;
}

/** sawp's `get_write_value_at_address`, odd offsets included (Suricata's `modbus: ... value` uses it). */
export function modbusWriteValueAt(msg: ModbusMessage, address: number): number | undefined {
  const range = modbusAddressRange(msg);
  if (range && (address < range.first || address > range.last)) return undefined;
  const d = msg.data;
  if (has(msg.accessType, A.SINGLE)) {
    if (d.kind !== 'write' || d.write.kind !== 'other') return undefined;
    return has(msg.accessType, A.COILS) ? (d.write.data !== 0 ? 1 : 0) : d.write.data;
  }
  if (!has(msg.accessType, A.MULTIPLE)) return undefined;
  const w = d.kind === 'write' || d.kind === 'readwrite' ? d.write : undefined;
  if (w?.kind !== 'multiple') return undefined;
  if (w.address === 0xffff || w.address >= address) return undefined;
  let offset = (address - (w.address + 1)) * 2;
  if (has(msg.accessType, A.COILS)) offset >>= 3;
  const hi = w.data[offset];
  const lo = w.data[offset + 1];
  if (hi === undefined || lo === undefined) return undefined;
  let value = (hi << 8) | lo;
  if (has(msg.accessType, A.COILS)) value = (value >> ((address - (w.address + 1)) & 7)) & 1;
  return value;
}

export interface ModbusFlowOptions {
  /** Unanswered transactions that make a flood (Suricata: 500; 0 disables). */
  readonly requestFlood?: number;
}

/**
 * One TCP connection's Modbus state. `feed` takes the bytes of one direction in stream order, in
 * any segmentation; transactions complete (answered) are released after each call, as Suricata's
 * per-packet cleanup does, so memory holds only unanswered ones (at most the flood limit).
 */
export class ModbusFlow {
  readonly #flood: number;
  readonly #buffers: Record<Direction, StreamBuffer> = { toserver: new StreamBuffer(), toclient: new StreamBuffer() };
  readonly #needed: Record<Direction, number> = { toserver: 0, toclient: 0 };
  #live: ModbusTransaction[] = [];
  #txCount = 0;
  #givenUp = false;
  #stopped = false;

  constructor(options: ModbusFlowOptions = {}) {
    this.#flood = options.requestFlood ?? MODBUS_REQUEST_FLOOD;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Bytes of a direction held for a message not complete yet: all before them are parsed. */
  buffered(direction: Direction): number {
    return this.#buffers[direction].length;
  }

  /** Transactions still waiting for their other half. */
  get outstanding(): number {
    return this.#live.length;
  }

  feed(direction: Direction, chunk: Uint8Array): FeedResult<ModbusTransaction> {
    const updated: ModbusTransaction[] = [];
    if (this.#stopped || chunk.length === 0) return { updated, stopped: this.#stopped };
    const buffer = this.#buffers[direction];
    buffer.append(chunk);
    if (buffer.length >= this.#needed[direction]) {
      this.#needed[direction] = 0;
      this.#parse(direction, buffer, updated);
    }
    // Suricata frees a transaction once both sides are done; a Modbus one is done when answered.
    this.#release();
    return { updated, stopped: this.#stopped };
  }

  #parse(direction: Direction, buffer: StreamBuffer, updated: ModbusTransaction[]): void {
    let offset = 0;
    const bytes = buffer.view();
    while (offset < bytes.length) {
      const parsed = parseModbusFrameAt(bytes, offset, direction);
      if ('needed' in parsed) {
        this.#needed[direction] = parsed.needed;
        break;
      }
      offset += parsed.consumed;
      const tx = direction === 'toserver' ? this.#onRequest(parsed.message) : this.#onResponse(parsed.message);
      if (!tx) {
        this.#stop();
        return;
      }
      if (!updated.includes(tx)) updated.push(tx);
    }
    buffer.consume(offset);
  }

  #onRequest(msg: ModbusMessage): ModbusTransaction | undefined {
    for (const tx of this.#live) {
      if (tx.response && !tx.request && matches(msg, tx.response)) {
        addEvents(tx, eventsFromFlags(msg.errorFlags));
        tx.request = msg;
        return tx;
      }
    }
    const tx = this.#newTx();
    if (!tx) return undefined;
    addEvents(tx, eventsFromFlags(msg.errorFlags));
    tx.request = msg;
    this.#live.push(tx);
    return tx;
  }

  #onResponse(msg: ModbusMessage): ModbusTransaction | undefined {
    for (const tx of this.#live) {
      if (tx.request && !tx.response && matches(msg, tx.request)) {
        addEvents(tx, responseEvents(msg));
        tx.response = msg;
        return tx;
      }
    }
    const tx = this.#newTx();
    if (!tx) return undefined;
    addEvents(tx, responseEvents(msg));
    tx.response = msg;
    addEvents(tx, ['unsolicited_response']);
    this.#live.push(tx);
    return tx;
  }

  #newTx(): ModbusTransaction | undefined {
    if (this.#givenUp) return undefined;
    this.#txCount++;
    const tx: ModbusTransaction = { txId: this.#txCount - 1, events: [] };
    if (this.#flood !== 0 && this.#live.length >= this.#flood) {
      tx.events.push('flooded');
      this.#givenUp = true;
    }
    return tx;
  }

  #release(): void {
    if (!this.#live.some((tx) => tx.response)) return;
    this.#live = this.#live.filter((tx) => !tx.response);
    if (this.#givenUp && this.#flood !== 0 && this.#live.length < this.#flood) this.#givenUp = false;
  }

  #stop(): void {
    this.#stopped = true;
    this.#live = [];
    this.#buffers.toserver.clear();
    this.#buffers.toclient.clear();
  }
}
