/**
 * The one way the terminator opens a connection, for all three egress kinds: the target's
 * addresses resolved and checked here, TCP to one of them (pinned: nothing resolves the name
 * again behind the check), the peer's address checked once connected, and only then TLS, with
 * the server name and the certificate check still the declared host's, and the address judged
 * once more when the handshake is done. Anything that goes wrong before TLS is up is one code
 * and one sentence, E_EGRESS_UNREACHABLE, so an app cannot tell a closed port from one that
 * resets or one that never answers, nor a name that does not resolve from one the address
 * policy refuses; the cause (with any refused address) goes to the app's log, for the admin.
 */
import type { LookupAddress } from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import { fail, type IsogateError, isIsogateError } from '../../sdk/errors.js';
import type { EgressTarget } from '../../sdk/manifest.js';
import { type AddressPolicy, canonicalHost, readHost, refusedAddress } from './address-policy.js';

const causes = new WeakMap<Error, string>();

export function describeTarget(target: EgressTarget): string {
  return `${target.name} (${target.host}:${target.port})`;
}

/**
 * The sentence every unreachable target gets; `cause` is kept apart for the log. An address the
 * policy refuses is one of these causes: told apart, a declared name that resolves to a plant
 * address (E_EGRESS_ADDRESS) and one that does not resolve would let an app map the plant's
 * internal DNS through its targets, and the address itself would tell it the plant's IPs.
 */
export function unreachable(target: EgressTarget, cause: string): IsogateError {
  const error = fail(
    'E_EGRESS_UNREACHABLE',
    `${describeTarget(target)} cannot be reached: it has no address the gateway's egress policy allows, or the connection was refused, reset or not answered in time`,
  );
  causes.set(error, cause);
  return error;
}

/** A policy refusal as the app sees it: unreachable; the address and the range go to the log. */
function hidden(target: EgressTarget, refusal: IsogateError): IsogateError {
  return unreachable(target, `${refusal.code}: ${refusal.message}`);
}

/**
 * Refuses a target whose host is no host (a character outside printable ASCII, a spelling the URL
 * host parser refuses) as unreachable, before anything is built from it (a pool's origin).
 */
export function checkTargetHost(target: EgressTarget): void {
  try {
    readHost(target.host, `Egress to ${describeTarget(target)}`);
  } catch (error) {
    throw isIsogateError(error) ? hidden(target, error) : error;
  }
}

/** What really happened to an E_EGRESS_UNREACHABLE, for the admin's log; never shown to the app. */
export function causeOf(error: unknown): string | undefined {
  return error instanceof Error ? causes.get(error) : undefined;
}

const CERTIFICATE_REASONS: Record<string, (target: EgressTarget) => string> = {
  CERT_HAS_EXPIRED: () => 'the server certificate has expired',
  CERT_NOT_YET_VALID: () => 'the server certificate is not yet valid',
  ERR_TLS_CERT_ALTNAME_INVALID: (target) => `the server certificate is not for ${target.host}`,
  DEPTH_ZERO_SELF_SIGNED_CERT: () => 'the server certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: () => 'the server certificate chains to an untrusted root',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: () => "the server certificate does not chain to the app's CA certificate",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: () => "the server certificate does not chain to the app's CA certificate",
};
/** OpenSSL's words for a peer that does not speak TLS at all: a port like any other, for the app. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_RECORD_LAYER_FAILURE']);
const TIMEOUTS = new Set(['ETIMEDOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * A failure in the words an admin can act on. `connected`: TLS to the verified server was up,
 * so a timeout is the server's answer not coming (E_EGRESS_TIMEOUT), not an unreachable port.
 */
export function egressError(target: EgressTarget, error: unknown, connected: boolean, presentsClientCertificate = true): Error {
  if (isIsogateError(error)) return error;
  const { code = '', message = String(error) } = (error ?? {}) as NodeJS.ErrnoException;
  const reason = CERTIFICATE_REASONS[code];
  if (reason) return fail('E_EGRESS_TLS', `TLS to ${describeTarget(target)} refused: ${reason(target)}`, { tlsCode: code });
  if (connected && code === 'UND_ERR_SOCKET' && !presentsClientCertificate) {
    return fail(
      'E_EGRESS_TLS',
      `${describeTarget(target)} closed the connection without answering (a server that requires a client certificate does this, and the app has none)`,
      { tlsCode: code },
    );
  }
  if (!NOT_TLS.has(code) && (code.startsWith('ERR_SSL') || /alert|certificate/i.test(message))) {
    return fail('E_EGRESS_TLS', `TLS to ${describeTarget(target)} failed: ${message} (the server may require a client certificate the app does not have)`, {
      tlsCode: code,
    });
  }
  if (connected && TIMEOUTS.has(code)) return fail('E_EGRESS_TIMEOUT', `${describeTarget(target)} did not answer in time`);
  return unreachable(target, code || message);
}

export interface OpenOptions {
  target: EgressTarget;
  /** Asked at each step, so it is the policy in force (a PolicyInForce), not a copy taken at the start. */
  policy: Pick<AddressPolicy, 'refusal' | 'addresses'>;
  /** TLS settings: trust, client certificate, versions; host, port and server name are set here. */
  tls: tls.ConnectionOptions;
  /** For DNS, TCP and the TLS handshake together. */
  timeoutMs: number;
  /** A session to resume and the place to keep the next one (a pool's new connections). */
  sessions?: { session?: Buffer };
  /** Aborting gives the connection up at once, whatever stage it is at, and frees its socket. */
  signal?: AbortSignal;
}

/** A TLS connection to a checked address of `target`, once its handshake is done. */
export async function openTls(options: OpenOptions): Promise<tls.TLSSocket> {
  const { target, policy } = options;
  const describe = `Egress to ${describeTarget(target)}`;
  let tcp: net.Socket | undefined;
  let secure: tls.TLSSocket | undefined;
  let timer: NodeJS.Timeout | undefined;
  let abandoned = false;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(unreachable(target, `no connection within ${options.timeoutMs} ms`)), options.timeoutMs);
    onAbort = () => reject(unreachable(target, 'abandoned'));
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  const connecting = (async () => {
    let addresses: LookupAddress[];
    try {
      addresses = await policy.addresses(target.host, describe);
    } catch (error) {
      throw isIsogateError(error) ? hidden(target, error) : unreachable(target, (error as NodeJS.ErrnoException).code ?? String(error));
    }
    if (abandoned) throw unreachable(target, 'abandoned');
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const [first] = addresses;
      // One address: connect to it. Several: Node tries them in turn, from this list only.
      tcp =
        addresses.length === 1
          ? net.connect({ host: first!.address, port: target.port })
          : net.connect({
              host: target.host,
              port: target.port,
              autoSelectFamily: true,
              lookup: (_host, lookupOptions, callback) => {
                if (lookupOptions.all) (callback as (error: null, all: LookupAddress[]) => void)(null, addresses);
                else callback(null, first!.address, first!.family);
              },
            });
      const socket = tcp;
      socket.setNoDelay(true);
      // Kept for the socket's life: the caller listens on the TLS socket, not on this one.
      socket.on('error', (error) => reject(egressError(target, error, false)));
      socket.once('connect', () => {
        // The address really connected to decides, whatever led there.
        const remote = socket.remoteAddress;
        if (!remote) {
          socket.destroy();
          reject(unreachable(target, 'closed as it connected'));
          return;
        }
        const reason = policy.refusal(remote);
        if (reason) {
          socket.destroy();
          reject(hidden(target, refusedAddress(describe, target.host, remote, reason)));
          return;
        }
        const canonical = canonicalHost(target.host);
        const name = canonical && 'name' in canonical ? target.host : undefined;
        const identity = name ?? (canonical && 'address' in canonical ? canonical.address : target.host);
        secure = tls.connect({
          ...options.tls,
          socket,
          servername: name,
          checkServerIdentity: (_host, certificate) => tls.checkServerIdentity(identity, certificate),
          ...(options.sessions?.session ? { session: options.sessions.session } : {}),
        });
        if (options.sessions) {
          const sessions = options.sessions;
          secure.on('session', (session: Buffer) => {
            sessions.session = session;
          });
        }
        secure.once('secureConnect', () => {
          // The admin may have removed the range while the handshake ran: the connection is
          // judged again by the policy in force as it is handed over, so none outlives a change.
          const late = policy.refusal(remote);
          if (late) {
            secure!.destroy();
            reject(hidden(target, refusedAddress(describe, target.host, remote, late)));
            return;
          }
          resolve(secure!);
        });
        secure.on('error', (error) => reject(egressError(target, error, false)));
      });
    });
  })();
  connecting.catch(() => undefined);
  try {
    return await Promise.race([connecting, deadline]);
  } catch (error) {
    abandoned = true;
    secure?.destroy();
    tcp?.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener('abort', onAbort);
  }
}
