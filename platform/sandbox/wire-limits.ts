/**
 * The data plane's numbers that both sides of the boundary use: the host checks them
 * (protocol.ts) and the guest SDK batches and refuses by them (guest/sdk.ts). A module of its
 * own, importing nothing, so the guest's bundle takes the numbers without the host's codecs.
 */

/** Most messages in one emit batch; the guest SDK sends at most 512. */
export const MAX_EMIT_BATCH = 4096;
/** What the guest SDK puts in one batch: at most this many messages or about this many bytes. */
export const EMIT_BATCH_MESSAGES = 512;
export const EMIT_BATCH_BYTES = 1024 * 1024;
/** Past this many messages or bytes waiting in the guest (not sent or not answered), emit refuses. */
export const EMIT_WAITING_MESSAGES = 8192;
export const EMIT_WAITING_BYTES = 16 * 1024 * 1024;
/**
 * Most UTF-16 units of text that cross the boundary as one string, where the messages allow: the
 * guest SDK starts another run on the same endpoint past it, and the router hands a destination
 * its runs' texts as separate strings past it instead of joining them. A longer string is a
 * large object in V8 (over 128 KiB) and a buffer over glibc's mmap threshold in isolated-vm's
 * copy, both in fresh pages at every crossing: 64 KB json messages in 1 MiB strings took about
 * 780 page faults per MiB routed (three fresh copies of every byte), most of their CPU.
 */
export const TEXT_PIECE_UNITS = 60 * 1024;
