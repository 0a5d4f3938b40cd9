import type { Direction } from '../../../sample-apps/network-protector/src/protocols/types.js';

/**
 * A stream split as TCP may deliver it: the first byte seeds the piece lengths and which
 * direction each piece goes, so the fuzzer explores segmentations as well as bytes.
 */
export function* segments(data: Uint8Array): Generator<{ direction: Direction; bytes: Uint8Array }> {
  if (data.length === 0) return;
  let state = data[0]! | 1;
  let offset = 1;
  while (offset < data.length) {
    state = (state * 1103515245 + 12345) >>> 0;
    const length = 1 + ((state >>> 8) % 64);
    yield { direction: (state >>> 20) % 3 === 0 ? 'toclient' : 'toserver', bytes: data.subarray(offset, offset + length) };
    offset += length;
  }
}
