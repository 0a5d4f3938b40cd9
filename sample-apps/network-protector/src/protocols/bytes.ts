/** A bounds-checked reader over a byte slice, and the buffer a stream parser keeps between segments. */

/** Thrown by `Reader` when the slice ends early; the parsers catch it, nothing outside sees it. */
export class Short {
  constructor(readonly needed: number) {}
}

export class Reader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly end = bytes.length,
  ) {}

  get left(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos + 1 > this.end) throw new Short(1);
    return this.bytes[this.pos++]!;
  }

  u16(): number {
    if (this.pos + 2 > this.end) throw new Short(this.pos + 2 - this.end);
    const value = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += 2;
    return value;
  }

  u32(): number {
    if (this.pos + 4 > this.end) throw new Short(this.pos + 4 - this.end);
    const b = this.bytes;
    const value = b[this.pos]! * 0x1000000 + ((b[this.pos + 1]! << 16) | (b[this.pos + 2]! << 8) | b[this.pos + 3]!);
    this.pos += 4;
    return value;
  }

  take(n: number): Uint8Array {
    if (this.pos + n > this.end) throw new Short(this.pos + n - this.end);
    const out = this.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/**
 * The unconsumed bytes of one direction. It grows only up to what the parser asked for (Suricata's
 * "incomplete: consumed, needed"), so its size is bounded by the largest message a parser waits for.
 */
export class StreamBuffer {
  #bytes = new Uint8Array(0);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  append(chunk: Uint8Array): void {
    if (this.#length + chunk.length > this.#bytes.length) {
      const grown = new Uint8Array(Math.max(this.#length + chunk.length, this.#bytes.length * 2, 64));
      grown.set(this.#bytes.subarray(0, this.#length));
      this.#bytes = grown;
    }
    this.#bytes.set(chunk, this.#length);
    this.#length += chunk.length;
  }

  view(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  consume(n: number): void {
    if (n >= this.#length) {
      this.#length = 0;
      if (this.#bytes.length > 4096) this.#bytes = new Uint8Array(0);
      return;
    }
    this.#bytes.copyWithin(0, n, this.#length);
    this.#length -= n;
  }

  clear(): void {
    this.#length = 0;
    this.#bytes = new Uint8Array(0);
  }
}

/**
 * Suricata's `String::from_utf8_lossy`: each maximal invalid subpart becomes U+FFFD (the same rule
 * as WHATWG's decoder). Written out because an isolate has no TextDecoder.
 */
export function lossyUtf8(b: Uint8Array): string {
  let out = '';
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    let need = 0;
    let cp = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      cp = c & 0x0f;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      cp = c & 0x07;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else {
      out += '\ufffd';
      i++;
      continue;
    }
    let j = i + 1;
    let ok = true;
    for (let k = 0; k < need; k++, j++) {
      const d = b[j];
      if (d === undefined || d < lo || d > hi) {
        ok = false;
        break;
      }
      lo = 0x80;
      hi = 0xbf;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (!ok) {
      out += '\ufffd';
      i = j;
      continue;
    }
    out += String.fromCodePoint(cp);
    i = j;
  }
  return out;
}
