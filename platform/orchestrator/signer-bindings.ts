/**
 * Which signer a package id belongs to. The first verified signer to install an id is bound to
 * it; the binding outlives uninstalls (a routine uninstall + install must not hand an id, and
 * the routes kept for it, to another publisher of the same store root) until the admin
 * forgets it (`isogate apps forget ID`). The file is MAC'd with a device-derived key like the
 * integrity records, so it cannot be edited to rebind an id.
 *
 * Renewal (README "Publisher certificate rotation"): a signer continues a binding when its
 * subject DN is exactly the bound subject AND it was issued by the same CA, that is the
 * issuing CA certificate on the validated path has the bound issuer DN and the bound issuer
 * public key. The signer's own key, serial and validity may all change. Anything else (a new
 * subject, another intermediate, a re-keyed intermediate) is another signer.
 */

import { createHash, X509Certificate } from 'node:crypto';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { parseCertificates, spkiSha256 } from '../../sdk/pki.js';
import type { DeviceKeys } from '../device/index.js';
import { DataDir, Mutex, readJsonIfExists, writeJsonDurable } from '../durable/index.js';
import { canonicalJson, type IntegrityRecord } from '../integrity/index.js';

export const SIGNER_BINDINGS_FILE = 'signer-bindings.json';

/** What identifies a signer, as recorded. Null fields were not known when the binding was made. */
export interface SignerIdentity {
  subject: string;
  /** SHA-256 of the signer certificate's public key (DER SPKI), hex. */
  spkiSha256: string | null;
  fingerprint256: string | null;
  /** The issuing CA: its subject DN and its public key. */
  issuer: string;
  issuerSpkiSha256: string | null;
}

export interface SignerBinding extends SignerIdentity {
  package_id: string;
  boundAt: string;
  /** When a renewed certificate last continued the binding. */
  renewedAt?: string;
}

interface BindingsFile {
  version: 1;
  bindings: Record<string, SignerBinding>;
  mac: string;
}

export type BindingCheck = { kind: 'new' } | { kind: 'same' | 'renewed'; binding: SignerBinding };

// The integrity key, under a subject no package id can have (ids start with a letter).
const MAC_PURPOSE = 'integrity';
const MAC_SUBJECT = '#signer-bindings';

/** A one-line description of a signer for messages and audit details. */
export function describeSigner(signer: SignerIdentity): string {
  return `${signer.subject} (issued by ${signer.issuer}${signer.spkiSha256 ? `, key ${signer.spkiSha256.slice(0, 16)}...` : ''})`;
}

export class SignerBindings {
  readonly #file: string;
  readonly #keys: DeviceKeys;
  readonly #bindings: Map<string, SignerBinding>;
  readonly #mutex = new Mutex();

  private constructor(file: string, keys: DeviceKeys, bindings: Map<string, SignerBinding>) {
    this.#file = file;
    this.#keys = keys;
    this.#bindings = bindings;
  }

  /** Reads DATA/signer-bindings.json; a file that fails its MAC stops the gateway rather than dropping every binding. */
  static async open(dataDir: string, keys: DeviceKeys): Promise<SignerBindings> {
    const file = path.join(dataDir, SIGNER_BINDINGS_FILE);
    const stored = await readJsonIfExists<BindingsFile>(file).catch(() => null);
    if (stored === undefined) return new SignerBindings(file, keys, new Map());
    const authentic =
      stored !== null &&
      typeof stored === 'object' &&
      stored.version === 1 &&
      typeof stored.mac === 'string' &&
      stored.bindings !== null &&
      typeof stored.bindings === 'object' &&
      keys.verifyMac(MAC_PURPOSE, MAC_SUBJECT, canonicalJson({ version: stored.version, bindings: stored.bindings }), stored.mac);
    if (!authentic) {
      throw fail(
        'E_INTEGRITY',
        `${file} is unreadable or fails its authentication, so which publisher owns which app id is unknown. ` +
          'Restore it from a backup, or remove it: the installed apps are then bound again to the signers in their install records, and the bindings of uninstalled apps are lost.',
      );
    }
    return new SignerBindings(file, keys, new Map(Object.entries(stored.bindings)));
  }

  get(packageId: string): SignerBinding | undefined {
    return this.#bindings.get(packageId);
  }

  list(): SignerBinding[] {
    return [...this.#bindings.values()].sort((a, b) => a.package_id.localeCompare(b.package_id));
  }

  /** Whether `signer` may install `packageId`: throws E_SIGNER_MISMATCH when another signer holds the id. */
  check(packageId: string, signer: SignerIdentity | null): BindingCheck {
    const binding = this.#bindings.get(packageId);
    if (!binding) return { kind: 'new' };
    if (!signer) {
      throw fail(
        'E_SIGNER_MISMATCH',
        `${packageId} belongs to the signer ${describeSigner(binding)}; an unsigned package cannot install it. ` +
          `If the id has really changed hands, run "isogate apps forget ${packageId}" first.`,
        { packageId, bound: binding, offered: null },
      );
    }
    const sameIssuer = signer.issuer === binding.issuer && (binding.issuerSpkiSha256 === null || signer.issuerSpkiSha256 === binding.issuerSpkiSha256);
    if (signer.subject !== binding.subject || !sameIssuer) {
      throw fail(
        'E_SIGNER_MISMATCH',
        `${packageId} belongs to the signer ${describeSigner(binding)}; this package is signed by ${describeSigner(signer)}. ` +
          `Nothing was installed. If the id has really changed hands, run "isogate apps forget ${packageId}" first.`,
        { packageId, bound: binding, offered: signer },
      );
    }
    const same = binding.spkiSha256 !== null && signer.spkiSha256 === binding.spkiSha256 && signer.fingerprint256 === binding.fingerprint256;
    return { kind: same ? 'same' : 'renewed', binding };
  }

  /** Binds (or, for a renewed certificate, re-records) `packageId` to `signer`. */
  async bind(packageId: string, signer: SignerIdentity, at: Date): Promise<SignerBinding> {
    return this.#mutex.run(async () => {
      const previous = this.#bindings.get(packageId);
      const binding: SignerBinding = {
        package_id: packageId,
        ...signer,
        // The binding is to the subject and issuing CA; a renewal keeps the issuer key first recorded when there was one.
        issuerSpkiSha256: previous?.issuerSpkiSha256 ?? signer.issuerSpkiSha256,
        boundAt: previous?.boundAt ?? at.toISOString(),
        ...(previous ? { renewedAt: at.toISOString() } : {}),
      };
      await this.#write(new Map(this.#bindings).set(packageId, binding));
      return binding;
    });
  }

  /** `audit` writes the record before the file (fail closed): a forgetting the trail cannot hold is refused, the binding kept. */
  async forget(packageId: string, audit?: (binding: SignerBinding) => Promise<unknown>): Promise<SignerBinding> {
    return this.#mutex.run(async () => {
      const binding = this.#bindings.get(packageId);
      if (!binding) throw fail('E_NOT_FOUND', `No signer is bound to ${packageId}`, { packageId });
      const next = new Map(this.#bindings);
      next.delete(packageId);
      await audit?.(binding);
      await this.#write(next);
      return binding;
    });
  }

  /**
   * Binds every installed app that has no binding yet to the signer its install record names:
   * how a data directory written before bindings existed (0.1.0) keeps its protection, and
   * how an install interrupted between its commit and its binding is finished.
   */
  async seed(installed: { packageId: string; dir: string; record: IntegrityRecord }[], trustRootsPem: string[], at: Date): Promise<string[]> {
    const seeded: string[] = [];
    for (const app of installed) {
      if (this.#bindings.has(app.packageId) || !app.record.signer) continue;
      await this.bind(app.packageId, await identityFromRecord(app, trustRootsPem), at);
      seeded.push(app.packageId);
    }
    return seeded;
  }

  async #write(next: Map<string, SignerBinding>): Promise<void> {
    const bindings = Object.fromEntries([...next.entries()].sort(([a], [b]) => a.localeCompare(b)));
    const body = { version: 1 as const, bindings };
    await writeJsonDurable(this.#file, { ...body, mac: this.#keys.mac(MAC_PURPOSE, MAC_SUBJECT, canonicalJson(body)) }, { mode: 0o600 });
    this.#bindings.clear();
    for (const [id, binding] of next) this.#bindings.set(id, binding);
  }
}

/**
 * The signer of an installed app from its record and, where the record's digest vouches for
 * it, the installed META-INF/CHAIN.pem: 0.1.0 records hold the subject, issuer and certificate
 * fingerprint but not the keys.
 */
async function identityFromRecord(app: { dir: string; record: IntegrityRecord }, trustRootsPem: string[]): Promise<SignerIdentity> {
  const signer = app.record.signer!;
  const identity: SignerIdentity = {
    subject: signer.subject,
    issuer: signer.issuer,
    fingerprint256: signer.fingerprint256,
    spkiSha256: signer.spkiSha256 ?? null,
    issuerSpkiSha256: signer.issuerSpkiSha256 ?? null,
  };
  if (identity.spkiSha256 && identity.issuerSpkiSha256) return identity;
  // Through DataDir like every read in the data directory: a planted link is refused, not followed.
  const bytes = await DataDir.of(app.dir).readFile('META-INF/CHAIN.pem');
  if (!bytes || createHash('sha256').update(bytes).digest('hex') !== app.record.digests['META-INF/CHAIN.pem']) return identity;
  let chain: X509Certificate[];
  try {
    chain = parseCertificates(bytes.toString('utf8')).map((pem) => new X509Certificate(pem));
  } catch {
    return identity;
  }
  const leaf = chain[0]!;
  if (leaf.fingerprint256 !== signer.fingerprint256) return identity;
  const candidates = [...chain.slice(1), ...trustRootsPem.map((pem) => new X509Certificate(pem))];
  const issuer = candidates.find((cert) => leaf.issuer === cert.subject && leaf.verify(cert.publicKey));
  return { ...identity, spkiSha256: spkiSha256(leaf), issuerSpkiSha256: issuer ? spkiSha256(issuer) : null };
}
