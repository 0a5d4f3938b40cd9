/**
 * UTF-8 to a string, for `response.text()` inside an isolate, which has no TextDecoder. As the
 * WHATWG Encoding Standard decodes: each maximal ill-formed subpart (a stray continuation byte,
 * a truncated sequence, an overlong form, a surrogate or a code point past U+10FFFF) becomes one
 * U+FFFD, and decoding goes on with the byte that did not fit.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  let out = '';
  let chunk: number[] = [];
  const push = (unit: number): void => {
    chunk.push(unit);
    // String.fromCharCode takes its units as arguments: flush before the argument list gets long.
    if (chunk.length >= 4096) {
      out += String.fromCharCode(...chunk);
      chunk = [];
    }
  };
  for (let i = 0; i < bytes.length; ) {
    const first = bytes[i]!;
    if (first < 0x80) {
      push(first);
      i += 1;
      continue;
    }
    let needed: number;
    let lower = 0x80;
    let upper = 0xbf;
    let point: number;
    if (first >= 0xc2 && first <= 0xdf) {
      needed = 1;
      point = first & 0x1f;
    } else if (first >= 0xe0 && first <= 0xef) {
      needed = 2;
      point = first & 0x0f;
      if (first === 0xe0) lower = 0xa0;
      if (first === 0xed) upper = 0x9f;
    } else if (first >= 0xf0 && first <= 0xf4) {
      needed = 3;
      point = first & 0x07;
      if (first === 0xf0) lower = 0x90;
      if (first === 0xf4) upper = 0x8f;
    } else {
      push(0xfffd);
      i += 1;
      continue;
    }
    let j = i + 1;
    let seen = 0;
    while (seen < needed && j < bytes.length) {
      const next = bytes[j]!;
      if (next < lower || next > upper) break;
      point = (point << 6) | (next & 0x3f);
      lower = 0x80;
      upper = 0xbf;
      seen += 1;
      j += 1;
    }
    if (seen < needed) {
      // The lead byte and the continuation bytes that fitted are one ill-formed subpart.
      push(0xfffd);
      i = j;
      continue;
    }
    if (point >= 0x10000) {
      point -= 0x10000;
      push(0xd800 + (point >> 10));
      push(0xdc00 + (point & 0x3ff));
    } else push(point);
    i = j;
  }
  return out + String.fromCharCode(...chunk);
}
