/**
 * Where each MQTT control packet of one direction starts and how long it says it is, read from
 * its fixed header (type byte, then the remaining length as a varint of at most 4 bytes) as the
 * bytes arrive, before anything is forwarded. Network Protector truncates a message longer than
 * its inspection bound (Suricata's max-msg-length, 1 MiB) and lets its bytes pass uninspected;
 * the gateway fails closed instead unless the admin chose otherwise (NETWORK.IDS_PROXY
 * .oversizedMqtt): the gate sees the length here, on the host, where no app can hide it.
 *
 * Only framing is read: what a packet holds is the inspector's. A remaining length past 4 bytes
 * cannot be framed; from there the stream is the inspector's alone (its parser calls it
 * malformed, Suricata's `mqtt.malformed_traffic` event, and inspects nothing more of it).
 */

/** Network Protector's inspection bound: Suricata 7's `app-layer.protocols.mqtt.max-msg-length`. */
export const MQTT_INSPECTION_BOUND_BYTES = 1024 * 1024;

export type FrameOutcome = { oversized: false } | { oversized: true; remainingLength: number };

export class MqttFrameBound {
  /** Bytes of the current packet's body still to skip. */
  #skip = 0;
  /** Inside a fixed header: the type byte was read, the varint has `#lengthBytes` bytes so far. */
  #inHeader = false;
  #lengthBytes = 0;
  #length = 0;
  #unframed = false;

  constructor(readonly boundBytes: number) {}

  /** Whether a packet whose header completes in this chunk is longer than the bound. */
  feed(chunk: Uint8Array): FrameOutcome {
    let pos = 0;
    while (pos < chunk.length && !this.#unframed) {
      if (this.#skip > 0) {
        const step = Math.min(this.#skip, chunk.length - pos);
        this.#skip -= step;
        pos += step;
        continue;
      }
      const byte = chunk[pos]!;
      pos += 1;
      if (!this.#inHeader) {
        this.#inHeader = true;
        this.#lengthBytes = 0;
        this.#length = 0;
        continue;
      }
      this.#length += (byte & 0x7f) * 128 ** this.#lengthBytes;
      this.#lengthBytes += 1;
      if (byte & 0x80) {
        if (this.#lengthBytes === 4) this.#unframed = true;
        continue;
      }
      this.#inHeader = false;
      if (this.#length > this.boundBytes) return { oversized: true, remainingLength: this.#length };
      this.#skip = this.#length;
    }
    return { oversized: false };
  }
}
