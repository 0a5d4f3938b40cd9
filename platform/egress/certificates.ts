/**
 * Each app's TLS credentials: the CA certificate its servers chain to and its client
 * certificate with key. Kept encrypted at rest (AES-256-GCM under a key derived for the app),
 * parsed with node:crypto's X509 for what the admin sees. Decrypted credentials are kept until they
 * change, and every change bumps their version, so it applies to the app's next connection
 * without a restart.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, randomBytes } from 'node:crypto';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { certificateDetails, keyMatchesCertificate, parseCertificates } from '../../sdk/pki.js';
import type { Audit } from '../audit/index.js';
import type { DeviceKeys } from '../device/index.js';
import { DataDir, eraseFile, eraseTree, writeFileDurable } from '../durable/index.js';

export type CertificateKind = 'ca' | 'client';

export interface CertificateInfo {
  kind: CertificateKind;
  fileName: string;
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
  /** Days until it expires; negative once expired. */
  daysLeft: number;
  /** Expired, or expiring within 30 days. */
  warning?: string;
  keyFileName?: string;
}

export interface TlsCredentials {
  ca?: string[];
  cert?: string;
  key?: string;
  /** Changes whenever the credentials do, so connections made with older ones are retired. */
  version: string;
}

interface StoredCredential {
  fileName: string;
  pem: string[];
  keyFileName?: string;
  keyPem?: string;
}

const MAX_FILE_BYTES = 256 * 1024;
const WARN_DAYS = 30;

function describe(kind: CertificateKind, stored: StoredCredential, now = Date.now()): CertificateInfo {
  // node:crypto's X509, not node-forge, which reads RSA keys only: an EC certificate (today's
  // usual kind) failed here with E_INTERNAL after it was stored.
  let cert: ReturnType<typeof certificateDetails>;
  try {
    cert = certificateDetails(stored.pem[0]!);
  } catch (error) {
    throw fail('E_CERT_FILE', `${stored.fileName} is not a readable X.509 certificate: ${(error as Error).message}`);
  }
  const daysLeft = Math.floor((new Date(cert.validTo).getTime() - now) / 86_400_000);
  const warning = daysLeft < 0 ? 'expired' : daysLeft <= WARN_DAYS ? `expires in ${daysLeft} days` : undefined;
  return {
    kind,
    fileName: stored.fileName,
    subject: cert.subject,
    issuer: cert.issuer,
    validFrom: cert.validFrom,
    validTo: cert.validTo,
    daysLeft,
    ...(warning ? { warning } : {}),
    ...(stored.keyFileName ? { keyFileName: stored.keyFileName } : {}),
  };
}

export class CertificateStore {
  readonly #versions = new Map<string, number>();
  /** Decrypted credentials per app, dropped whenever they change: read on every connection. */
  readonly #cache = new Map<string, Promise<TlsCredentials>>();

  /** Every file access goes through it: a link planted among the certificates is refused, not followed. */
  readonly #root: DataDir;

  constructor(private readonly options: { root: string; keys: DeviceKeys; audit: Audit }) {
    this.#root = DataDir.of(options.root);
  }

  #file(packageId: string, kind: CertificateKind): string {
    return this.#root.path(path.join(packageId, `${kind}.enc`));
  }

  #aad(packageId: string, kind: CertificateKind): Buffer {
    return Buffer.from(`isogate-certs-v1\u0000${packageId}\u0000${kind}`);
  }

  async #read(packageId: string, kind: CertificateKind): Promise<StoredCredential | undefined> {
    const sealed = await this.#root.readFile(this.#root.relative(this.#file(packageId, kind)));
    if (!sealed) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.options.keys.derive('certificates', packageId), sealed.subarray(0, 12));
      decipher.setAAD(this.#aad(packageId, kind));
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return JSON.parse(Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]).toString('utf8')) as StoredCredential;
    } catch {
      throw fail('E_STORAGE_CORRUPT', `The ${kind} certificate of ${packageId} fails authentication`);
    }
  }

  async #write(packageId: string, kind: CertificateKind, value: StoredCredential): Promise<void> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.options.keys.derive('certificates', packageId), iv);
    cipher.setAAD(this.#aad(packageId, kind));
    const body = Buffer.concat([cipher.update(JSON.stringify(value)), cipher.final()]);
    await this.#root.mkdir(packageId, 0o700);
    await writeFileDurable(this.#file(packageId, kind), Buffer.concat([iv, body, cipher.getAuthTag()]), { mode: 0o600, root: this.#root });
    this.#bump(packageId);
  }

  #bump(packageId: string): void {
    this.#cache.delete(packageId);
    this.#versions.set(packageId, (this.#versions.get(packageId) ?? 0) + 1);
  }

  async list(packageId: string): Promise<CertificateInfo[]> {
    const out: CertificateInfo[] = [];
    for (const kind of ['ca', 'client'] as const) {
      const stored = await this.#read(packageId, kind);
      if (stored) out.push(describe(kind, stored));
    }
    return out;
  }

  async setCa(packageId: string, fileName: string, content: Uint8Array): Promise<CertificateInfo> {
    if (content.byteLength > MAX_FILE_BYTES) throw fail('E_CERT_FILE', `A certificate file is at most ${MAX_FILE_BYTES} bytes`);
    const pem = parseCertificates(content);
    const stored = { fileName, pem };
    // Described before it is written: a certificate node-forge cannot read is refused unstored.
    const info = describe('ca', stored);
    // Audited before it is written (fail closed): a certificate the trail cannot hold is not stored.
    await this.options.audit.record('uploadAppCertificate', {}, { packageId, kind: 'ca', fileName });
    await this.#write(packageId, 'ca', stored);
    return info;
  }

  /** Only together and only if they match: a half-replaced pair would fail every handshake. */
  async setClient(packageId: string, certFileName: string, cert: Uint8Array, keyFileName: string, key: Uint8Array): Promise<CertificateInfo> {
    if (cert.byteLength > MAX_FILE_BYTES || key.byteLength > MAX_FILE_BYTES)
      throw fail('E_CERT_FILE', `A certificate or key file is at most ${MAX_FILE_BYTES} bytes`);
    const pem = parseCertificates(cert);
    let keyPem: string;
    try {
      const text = Buffer.from(key).toString('utf8');
      keyPem = createPrivateKey(text.includes('-----BEGIN') ? text : { key: Buffer.from(key), format: 'der', type: 'pkcs8' })
        .export({ type: 'pkcs8', format: 'pem' })
        .toString();
    } catch {
      throw fail('E_CERT_FILE', `${keyFileName} is not a readable, unencrypted private key (PEM or PKCS#8 DER)`);
    }
    if (!keyMatchesCertificate(keyPem, pem[0]!)) throw fail('E_CERT_KEY_MISMATCH', `The key ${keyFileName} does not belong to the certificate ${certFileName}`);
    const stored = { fileName: certFileName, pem, keyFileName, keyPem };
    const info = describe('client', stored); // before it is written, as for a CA
    await this.options.audit.record('uploadAppCertificate', {}, { packageId, kind: 'client', fileName: certFileName });
    await this.#write(packageId, 'client', stored);
    return info;
  }

  async delete(packageId: string, kind: CertificateKind): Promise<void> {
    const file = this.#file(packageId, kind);
    if (!(await this.#root.statFile(this.#root.relative(file)))) throw fail('E_NOT_FOUND', `${packageId} has no ${kind} certificate`);
    await this.options.audit.record('deleteAppCertificate', {}, { packageId, kind });
    await eraseFile(file, this.#root);
    this.#bump(packageId);
  }

  async remove(packageId: string): Promise<void> {
    await eraseTree(this.#root.path(packageId), this.#root);
    this.#versions.delete(packageId);
    this.#cache.delete(packageId);
  }

  /** What a new connection of this app presents and trusts. */
  credentials(packageId: string): Promise<TlsCredentials> {
    let cached = this.#cache.get(packageId);
    if (!cached) {
      cached = this.#load(packageId);
      cached.catch(() => this.#cache.delete(packageId));
      this.#cache.set(packageId, cached);
    }
    return cached;
  }

  async #load(packageId: string): Promise<TlsCredentials> {
    const ca = await this.#read(packageId, 'ca');
    const client = await this.#read(packageId, 'client');
    return {
      ...(ca ? { ca: ca.pem } : {}),
      ...(client ? { cert: client.pem.join(''), key: client.keyPem } : {}),
      version: `${this.#versions.get(packageId) ?? 0}`,
    };
  }
}
