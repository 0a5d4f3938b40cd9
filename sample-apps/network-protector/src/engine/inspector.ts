/**
 * One connection's inspection: its bytes go through the same protocol parser the offline replay
 * uses, every transaction a chunk created or changed is matched against the rules, and the
 * verdict says how far the stream may be forwarded. Only whole PDUs are released: the bytes of a
 * message still incomplete are held until it is, so no byte passes before the rules saw the
 * message it belongs to.
 *
 * Matching as Suricata 7 does per transaction: a rule alerts at most once per transaction and
 * direction (a Modbus transaction is inspected both ways, so a rule without a direction can alert
 * twice on it; an MQTT one only in the direction Suricata files it under), and is inspected again
 * each time the transaction changes until it does (an event or a response added later can make
 * it match). The first matching drop rule (in Suricata's action order: pass, then
 * drop/reject, then alert, each in list order) gives the drop verdict; a matching pass rule
 * silences the rules after it for that chunk. Once the parser gives up on a stream (malformed MQTT,
 * a Modbus flood), Suricata inspects nothing more of it and lets it pass; so does this, the
 * anomaly event that ended it being what an anomaly rule drops.
 */
import { ModbusFlow } from '../protocols/modbus.js';
import { MqttFlow } from '../protocols/mqtt.js';
import type { Direction, ModbusTransaction, MqttTransaction } from '../protocols/types.js';
import { type CompiledRule, type CompiledRules, type Endpoint, headerMatches, toAddress } from './compile.js';
import { eventsMatch, inRange, modbusCouldMatch, modbusMatches, mqttMatches, payloadMatches, stickyBuffersMatch } from './match.js';
import { PacketPrefilter } from './prefilter.js';
import type { TrafficAlert, TrafficConnection, TrafficDirection, TrafficVerdict } from './types.js';

export type Transaction = ModbusTransaction | MqttTransaction;

export interface InspectMatch {
  readonly rule: CompiledRule;
  readonly direction: TrafficDirection;
  /** The transaction a transaction rule matched; none for a packet rule. */
  readonly tx?: Transaction;
}

export interface InspectResult {
  /** Transactions this chunk created or changed, in order. */
  readonly updated: readonly Transaction[];
  readonly matches: readonly InspectMatch[];
  /** Cumulative bytes of this direction that may be forwarded. */
  readonly release: number;
  /** The parser gave up on the stream (Suricata's app-layer error). */
  readonly stopped: boolean;
  /** The first matching drop rule, this chunk or an earlier one. */
  readonly drop?: CompiledRule;
}

/** The traffic contract's bound on the alerts of one verdict (the gateway's TRAFFIC_ALERT_LIMITS). */
export const ALERTS_PER_VERDICT = 64;

/** Detection keys a transaction keeps in a list before a Set (DetectedRules). */
const DETECTED_LIST = 8;

const SIDE: Readonly<Record<TrafficDirection, Direction>> = { to_server: 'toserver', to_client: 'toclient' };
const TO_SERVER: readonly TrafficDirection[] = ['to_server'];
const TO_CLIENT: readonly TrafficDirection[] = ['to_client'];
const BOTH: readonly TrafficDirection[] = ['to_server', 'to_client'];

/**
 * Transaction rules in list order, and the same list without the rules a transaction's state
 * refuses (by stateOf), each worked out the first time a transaction in that state meets it.
 * `byMessage[state]` narrows a state's list further for one Modbus message content
 * (ModbusMessage.matchKey): the rules settled by the message (CompiledRule.settledByMessage) that
 * it does not match are left out, and those kept are known to match it. Polling sends the same
 * requests over and over; each then costs the rules that match it, not every rule it could match.
 */
interface CandidateList {
  readonly all: readonly CompiledRule[];
  readonly byState: (readonly CompiledRule[] | undefined)[];
  readonly byMessage: (Map<number, readonly CompiledRule[]> | undefined)[];
}

/** A message kind's candidate lists, to_server's and to_client's. */
type ByDirection = readonly [CandidateList, CandidateList];

/** What a verdict's inspection returns for `matches`: it collects alerts instead. */
const NO_MATCHES: readonly InspectMatch[] = Object.freeze([]);

const candidateList = (all: readonly CompiledRule[]): CandidateList => ({
  all,
  byState: new Array(8).fill(undefined),
  byMessage: new Array(8).fill(undefined),
});

/**
 * Rules one inspector's narrowed lists hold, all together: a poll cycles through a few dozen
 * requests, and a client sending ever new ones must not grow the memory (a count of lists alone
 * let each copy a list of thousands of rules). About 512 KiB of references per connection.
 */
const MESSAGE_LIST_RULES = 65_536;

/** The three facts a rule's cheap refusals look at, as an index into CandidateList.byState. */
const stateOf = (hasEvents: boolean, complete: boolean, settled: boolean): number => (hasEvents ? 1 : 0) | (complete ? 2 : 0) | (settled ? 4 : 0);

function variantOf(list: CandidateList, state: number): readonly CompiledRule[] {
  const hasEvents = (state & 1) !== 0;
  const complete = (state & 2) !== 0;
  const settled = (state & 4) !== 0;
  const kept = list.all.filter((rule) => !((rule.needsEvents && !hasEvents) || (rule.needsComplete && !complete) || (settled && rule.settledByMessage)));
  list.byState[state] = kept;
  return kept;
}

export class StreamInspector {
  readonly #protocol: 'modbus' | 'mqtt';
  readonly #modbus: ModbusFlow | undefined;
  readonly #mqtt: MqttFlow | undefined;
  /** Per direction, the rules whose header, protocol and flow fit this connection. */
  readonly #candidates: Record<TrafficDirection, { tx: CompiledRule[]; packet: CompiledRule[] }>;
  /** Per direction, the packet rules' fast patterns: a chunk is scanned once, not once per rule. */
  readonly #prefilters: Record<TrafficDirection, PacketPrefilter>;
  /** Bytes fed to_server and to_client: two fields, not a record read by a string per chunk. */
  #fedToServer = 0;
  #fedToClient = 0;
  /** The Modbus transaction rules by message kind (#modbusCandidates), both directions' lists from one lookup, each with its variants by transaction state. */
  readonly #byKind = new Map<number, ByDirection>();
  /** Per direction, every transaction rule of the connection (an MQTT one, or a Modbus transaction without a message) with its variants by state. */
  readonly #txLists: Record<TrafficDirection, CandidateList>;
  #drop: CompiledRule | undefined;
  /**
   * Whether a rule matched the transaction being inspected, by the rule's index: worked out once
   * per change of a transaction (the match does not depend on the direction it is inspected in),
   * valid while `#workedOut[index]` holds the change's `#change`.
   */
  readonly #workedOut: Uint32Array;
  readonly #matched: Uint8Array;
  #change = 0;
  #messageListRules = 0;

  constructor(rules: CompiledRules, connection: TrafficConnection) {
    this.#protocol = connection.protocol;
    if (connection.protocol === 'modbus') this.#modbus = new ModbusFlow();
    else this.#mqtt = new MqttFlow();
    const clientAddress = toAddress(connection.srcIp);
    const serverAddress = toAddress(connection.destIp);
    const client: Endpoint | undefined = clientAddress && { address: clientAddress, port: connection.srcPort };
    const server: Endpoint | undefined = serverAddress && { address: serverAddress, port: connection.destPort };
    this.#candidates = { to_server: { tx: [], packet: [] }, to_client: { tx: [], packet: [] } };
    for (const direction of ['to_server', 'to_client'] as const) {
      const [src, dst] = direction === 'to_server' ? [client, server] : [server, client];
      for (const rule of rules.rules) {
        if (rule.never || !rule.directions.includes(direction)) continue;
        if (rule.app && rule.app !== connection.protocol) continue;
        // An address that is not an IP address (never from the gate) matches no rule.
        if (!src || !dst || !headerMatches(rule.rule, src, dst)) continue;
        this.#candidates[direction][rule.kind].push(rule);
      }
    }
    this.#txLists = { to_server: candidateList(this.#candidates.to_server.tx), to_client: candidateList(this.#candidates.to_client.tx) };
    const size = rules.rules.reduce((max, rule) => Math.max(max, rule.index + 1), 0);
    this.#workedOut = new Uint32Array(size);
    this.#matched = new Uint8Array(size);
    this.#prefilters = {
      to_server: new PacketPrefilter(this.#candidates.to_server.packet),
      to_client: new PacketPrefilter(this.#candidates.to_client.packet),
    };
  }

  /** The contract's call: the release offset, or the drop verdict with the rule that gave it. */
  data(direction: TrafficDirection, bytes: Uint8Array, _timestampMs: number): TrafficVerdict {
    if (this.#drop) return { drop: this.#drop.alert };
    // The SDK takes at most ALERTS_PER_VERDICT alerts with one verdict (more is a forged answer,
    // which fails the app): a chunk of many transactions keeps the first ones. The gateway's
    // firewall log records a few dozen a second at most anyway. Collected as they match, with
    // no match record each: a verdict needs the alerts only.
    const alerts: TrafficAlert[] = [];
    const result = this.#inspect(direction, bytes, alerts);
    if (result.drop) return alerts.length > 0 ? { drop: result.drop.alert, alerts } : { drop: result.drop.alert };
    return alerts.length > 0 ? { release: result.release, alerts } : { release: result.release };
  }

  /** data() with what the replay needs too: the transactions and the rules each matched. */
  feed(direction: TrafficDirection, bytes: Uint8Array, _timestampMs: number): InspectResult {
    return this.#inspect(direction, bytes, undefined);
  }

  /** The matches go to `matches` of the result, or, given `alerts`, only their alerts there (at most ALERTS_PER_VERDICT). */
  #inspect(direction: TrafficDirection, bytes: Uint8Array, alerts: TrafficAlert[] | undefined): InspectResult {
    const side = SIDE[direction];
    if (direction === 'to_server') this.#fedToServer += bytes.length;
    else this.#fedToClient += bytes.length;
    const fed = direction === 'to_server' ? this.#fedToServer : this.#fedToClient;
    let updated: readonly Transaction[];
    let stopped: boolean;
    let held: number;
    let version = 0;
    if (this.#modbus) {
      const r = this.#modbus.feed(side, bytes);
      updated = r.updated;
      stopped = r.stopped;
      held = this.#modbus.buffered(side);
    } else {
      const flow = this.#mqtt!;
      const r = flow.feed(side, bytes);
      updated = r.updated;
      stopped = r.stopped;
      held = flow.buffered(side);
      version = flow.protocolVersion;
    }
    const release = fed - held;
    const matches: InspectMatch[] | undefined = alerts ? undefined : [];
    if (this.#drop) return { updated, matches: matches ?? NO_MATCHES, release, stopped, drop: this.#drop };
    // Rules are in action order, so a pass rule comes before every rule it silences.
    let passed = false;
    for (const tx of updated) {
      if (passed) break;
      // Suricata files an MQTT transaction under one direction and inspects it only there; a
      // Modbus one is inspected in both (a change by either side is seen by the next packet each way).
      const directions = this.#mqtt ? ((tx as MqttTransaction).direction === 'toserver' ? TO_SERVER : TO_CLIENT) : BOTH;
      const complete = this.#mqtt ? (tx as MqttTransaction).complete : true;
      const hasEvents = tx.events.length > 0;
      let sids = tx.detected;
      // A Modbus transaction whose inspected message was already matched against every rule it
      // settles, both ways, gives those rules the same answer again: a response added to a request.
      const message = this.#modbus ? ((tx as ModbusTransaction).request ?? (tx as ModbusTransaction).response) : undefined;
      const settled = message !== undefined && (tx as ModbusTransaction).settledFor === message;
      const change = this.#nextChange();
      const state = stateOf(hasEvents, complete, settled);
      const byKind = this.#modbus ? this.#modbusCandidates(tx as ModbusTransaction) : undefined;
      for (const inspected of directions) {
        if (passed) break;
        const bit = inspected === 'to_server' ? 0 : 1;
        // Only the rules the transaction's state leaves (events, completeness, a settled message):
        // most rules of a list never get past those refusals, and a frame should not pay for them.
        const list = byKind ? byKind[bit]! : this.#txLists[inspected];
        const rules = list.byState[state] ?? variantOf(list, state);
        // Settled rules are left in only by a message that matches them, both ways alike (stateOf's settled bit is clear).
        const narrowed =
          message !== undefined && message.matchKey >= 0 && !settled
            ? this.#forMessage(list, state, rules, tx as ModbusTransaction, message.matchKey)
            : undefined;
        for (const rule of narrowed ?? rules) {
          // Suricata keeps a transaction's detection state per direction: once per direction.
          const key = rule.detectKey + bit;
          if (sids !== undefined && (Array.isArray(sids) ? sids.includes(key) : sids.has(key))) continue;
          if (!(narrowed !== undefined && rule.settledByMessage) && !this.#txMatchesOnce(rule, tx, version, bytes, change)) continue;
          if (sids === undefined) {
            sids = [key];
            tx.detected = sids;
          } else if (!Array.isArray(sids)) sids.add(key);
          else if (sids.length < DETECTED_LIST) sids.push(key);
          else {
            sids = new Set(sids).add(key);
            tx.detected = sids;
          }
          if (alerts) {
            if (alerts.length < ALERTS_PER_VERDICT) alerts.push(rule.alert);
          } else matches!.push({ rule, direction: inspected, tx });
          if (rule.alert.action === 'pass') {
            passed = true;
            break;
          }
          if (rule.alert.action === 'drop' && !this.#drop) this.#drop = rule;
        }
      }
      // Only a whole inspection settles: a pass rule stopped it short of the rules after it.
      if (message !== undefined && !passed) (tx as ModbusTransaction).settledFor = message;
    }
    if (!passed && bytes.length > 0) {
      for (const rule of this.#prefilters[direction].candidates(bytes)) {
        if (!payloadMatches(rule.rule.buffers, bytes)) continue;
        if (alerts) {
          if (alerts.length < ALERTS_PER_VERDICT) alerts.push(rule.alert);
        } else matches!.push({ rule, direction });
        if (rule.alert.action === 'pass') break;
        if (rule.alert.action === 'drop' && !this.#drop) this.#drop = rule;
      }
    }
    // One shape whether or not a rule dropped (a spread of an empty object costs a copy per chunk).
    return { updated, matches: matches ?? NO_MATCHES, release, stopped, drop: this.#drop };
  }

  /** The transaction rules that could match a Modbus message of this kind, both ways, worked out once per kind. */
  #modbusCandidates(tx: ModbusTransaction): ByDirection {
    const msg = tx.request ?? tx.response;
    if (!msg) return [this.#txLists.to_server, this.#txLists.to_client];
    // The unit too: a list of per-unit rules (one PLC each) otherwise costs every request all of them.
    const key = msg.functionRaw | (msg.accessType << 8) | (msg.category << 16) | (msg.unitId << 20);
    let lists = this.#byKind.get(key);
    if (!lists) {
      const could = (rule: CompiledRule): boolean =>
        rule.rule.modbus.every(
          (c) => (!c.unit || inRange(c.unit, msg.unitId)) && modbusCouldMatch(c, msg.functionRaw, msg.accessType, msg.category, msg.functionCode),
        );
      lists = [candidateList(this.#candidates.to_server.tx.filter(could)), candidateList(this.#candidates.to_client.tx.filter(could))];
      // Bounded: 256 function bytes (the access type and category follow from it) by the units a plant uses.
      if (this.#byKind.size < 4096) this.#byKind.set(key, lists);
    }
    return lists;
  }

  /** `rules` (a state's list) narrowed for the message with `key`, or undefined once the inspector keeps its most. */
  #forMessage(list: CandidateList, state: number, rules: readonly CompiledRule[], tx: ModbusTransaction, key: number): readonly CompiledRule[] | undefined {
    let lists = list.byMessage[state];
    const known = lists?.get(key);
    if (known !== undefined) return known;
    if (this.#messageListRules >= MESSAGE_LIST_RULES) return undefined;
    const kept = rules.filter((rule) => !rule.settledByMessage || rule.rule.modbus.every((c) => modbusMatches(c, tx)));
    // Nothing left out: the state's own list, which costs nothing more to keep.
    const narrowed = kept.length === rules.length ? rules : kept;
    if (!lists) {
      lists = new Map();
      list.byMessage[state] = lists;
    }
    lists.set(key, narrowed);
    this.#messageListRules += narrowed === rules ? 1 : narrowed.length + 1;
    return narrowed;
  }

  #nextChange(): number {
    if (this.#change === 0xffffffff) {
      this.#workedOut.fill(0);
      this.#change = 0;
    }
    this.#change += 1;
    return this.#change;
  }

  /** #txMatches once per change of a transaction, however many directions inspect it. */
  #txMatchesOnce(rule: CompiledRule, tx: Transaction, version: number, chunk: Uint8Array, change: number): boolean {
    const index = rule.index;
    if (this.#workedOut[index] === change) return this.#matched[index] === 1;
    const matched = this.#txMatches(rule, tx, version, chunk);
    this.#workedOut[index] = change;
    this.#matched[index] = matched ? 1 : 0;
    return matched;
  }

  #txMatches(rule: CompiledRule, tx: Transaction, version: number, chunk: Uint8Array): boolean {
    const r = rule.rule;
    if (rule.needsEvents && !eventsMatch(r, tx.events)) return false;
    if (this.#protocol === 'modbus') {
      const mtx = tx as ModbusTransaction;
      for (const c of r.modbus) if (!modbusMatches(c, mtx)) return false;
    } else {
      const qtx = tx as MqttTransaction;
      if (!mqttMatches(r.mqtt, qtx, version)) return false;
      if (!stickyBuffersMatch(r.buffers, qtx)) return false;
    }
    // Content outside a sticky buffer is Suricata's stream inspection: the chunk that made this change.
    return payloadMatches(r.buffers, chunk);
  }
}
