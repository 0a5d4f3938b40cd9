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
