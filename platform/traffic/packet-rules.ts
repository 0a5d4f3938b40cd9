/**
 * Rules that Suricata inspects packet by packet, for the offline replay: a header and nothing but
 * meta options (msg, sid, rev, classtype, priority) and `flow`. Neither a transaction nor a
 * stream chunk is what they see, and checked against Suricata 7.0.10 they fire as follows:
 *  - `tcp` without `flow` is an IP-only rule: once per direction of a flow, on its first packet
 *    (the SYN, the SYN-ACK) if the header fits that packet;
 *  - `tcp` with `flow`: on every packet the flow options allow, the handshake's and pure ACKs
 *    included (`established` from the packet after the handshake's last, `not_established` up to
 *    it; `only_stream` and `only_frag` never);
 *  - `modbus` and `mqtt`: the same, from the packet whose processing detected the protocol on.
 * In the order Suricata takes actions, within one packet: a `pass` that matches silences the
 * packet (the transaction alerts it raised too) and the rest of the flow; a `drop` alerts beside
 * the packet's other alerts and ends the flow's inspection after the packet.
 *
 * Not made: the pseudo packets Suricata may inspect a flow on once more at the end of a capture.
 * The traffic gate sees byte streams, not packets, and keeps inspecting such a rule per frame.
 */
import { type CompiledRule, type Endpoint, headerMatches, toAddress } from '../../sample-apps/network-protector/src/engine/compile.js';
import type { Rule } from '../../sample-apps/network-protector/src/rules/types.js';
import type { FlowEndpoints, Side } from './reassembly.js';

/** A header with nothing to inspect but the packet itself and the flow's state. */
export function isHeaderOnly(rule: Rule): boolean {
  const m = rule.mqtt;
  return (
    rule.buffers.length === 0 &&
    rule.modbus.length === 0 &&
    rule.events.length === 0 &&
    rule.impliedDirection === undefined &&
    Object.values(m).every((value) => value === undefined)
  );
}

interface FlowState {
  readonly seen: Set<Side>;
  /** The client's and the server's endpoint as headers match them (undefined: not an address a header can name). */
  readonly ends: readonly [Endpoint, Endpoint] | undefined;
  synAck: boolean;
  established: boolean;
  ended: boolean;
}

export interface PacketVerdict {
  /** The rules that alert on this packet, in Suricata's order. */
  readonly alerts: CompiledRule[];
  /** A pass matched: nothing of this packet alerts, its transaction alerts included. */
  readonly passed: boolean;
  /** Nothing of the flow is inspected after this packet (a pass or a drop matched). */
  readonly ended: boolean;
}

const NOTHING: PacketVerdict = { alerts: [], passed: false, ended: false };

export class PacketRules {
  readonly #rules: readonly CompiledRule[];
  readonly #flows = new Map<number, FlowState>();

  /** `rules` in their compiled order (pass, then drop, then alert). */
  constructor(rules: readonly CompiledRule[]) {
    this.#rules = rules;
  }

  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /**
   * One packet of `flow`, from `side`; `protocol` is the flow's application protocol if detected
   * by now (this packet's data included). `flags` are the packet's TCP flags.
   */
  packet(flow: FlowEndpoints, side: Side, flags: { syn: boolean; ack: boolean }, protocol: 'modbus' | 'mqtt' | undefined): PacketVerdict {
    const state = this.#state(flow);
    if (state.ended || !state.ends) return NOTHING;
    const first = !state.seen.has(side);
    state.seen.add(side);
    const established = state.established;
    // The handshake's last packet is itself not established; the ones after it are.
    if (flags.syn && flags.ack) state.synAck = true;
    else if (state.synAck && side === 'toserver' && flags.ack && !flags.syn) state.established = true;
    const direction = side === 'toserver' ? 'to_server' : 'to_client';
    const [client, server] = state.ends;
    const [src, dst] = side === 'toserver' ? [client, server] : [server, client];
    const alerts: CompiledRule[] = [];
    let ended = false;
    for (const compiled of this.#rules) {
      const rule = compiled.rule;
      const flowOption = rule.flow;
      if (rule.header.protocol !== 'tcp' && rule.header.protocol !== protocol) continue;
      if (rule.header.protocol === 'tcp' && !flowOption && !first) continue;
      if (flowOption?.direction && flowOption.direction !== direction) continue;
      if (flowOption?.state === 'established' && !established) continue;
      if (flowOption?.state === 'not_established' && established) continue;
      if (flowOption?.stream === 'only_stream' || flowOption?.frag === 'only_frag') continue;
      if (!headerMatches(rule, src, dst)) continue;
      if (compiled.alert.action === 'pass') {
        state.ended = true;
        return { alerts: [], passed: true, ended: true };
      }
      alerts.push(compiled);
      if (compiled.alert.action === 'drop') ended = true;
    }
    if (ended) state.ended = true;
    return { alerts, passed: false, ended };
  }

  /** No packet of the flow will come again (the reassembler forgot it). */
  forget(flow: FlowEndpoints): void {
    this.#flows.delete(flow.id);
  }

  /** The flow's inspection ended elsewhere (a transaction rule's drop): nothing more matches here either. */
  end(flow: FlowEndpoints): void {
    this.#state(flow).ended = true;
  }

  #state(flow: FlowEndpoints): FlowState {
    let state = this.#flows.get(flow.id);
    if (!state) {
      const client = endpoint(flow.client);
      const server = endpoint(flow.server);
      state = { seen: new Set(), ends: client && server ? [client, server] : undefined, synAck: false, established: false, ended: false };
      this.#flows.set(flow.id, state);
    }
    return state;
  }
}

function endpoint(end: { readonly ip: string; readonly port: number }): Endpoint | undefined {
  const address = toAddress(end.ip);
  return address && { address, port: end.port };
}
