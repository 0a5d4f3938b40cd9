/**
 * Keys and X.509 certificates. Node's crypto generates keys; pkijs validates certificate
 * paths (with Node's WebCrypto underneath) and sdk/certificate-policy.ts adds the project's
 * rules; node-forge is used only to *create* RSA certificates and CSRs, which Node cannot do.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import * as pkijs from 'pkijs';
import { type CertificatePurpose, checkCertificatePolicy, type PathCertificate } from './certificate-policy.js';
import { fail } from './errors.js';

export interface DistinguishedName {
  commonName: string;
  organizationName?: string;
  countryName?: string;
}

export function generateKeyPair(bits = 2048): { keyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { keyPem: privateKey, publicKeyPem: publicKey };
}

export type CertificateUsage = 'ca' | 'code-signing' | 'server' | 'client';

export interface CertificateSpec {
  subject: DistinguishedName;
  /** The key being certified. */
  publicKeyPem: string;
  /** Absent: self-signed with `signingKeyPem`. */
  issuer?: { certPem: string; keyPem: string };
  signingKeyPem?: string;
  usage: CertificateUsage;
  /** DNS names or IP addresses (server and client certificates). */
  altNames?: string[];
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
  /** Hex; a random positive serial by default. */
  serialNumber?: string;
}

function attributes(name: DistinguishedName): forge.pki.CertificateField[] {
  const fields: forge.pki.CertificateField[] = [{ name: 'commonName', value: name.commonName }];
  if (name.organizationName) fields.push({ name: 'organizationName', value: name.organizationName });
  if (name.countryName) fields.push({ name: 'countryName', value: name.countryName });
  return fields;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

function extensionsFor(usage: CertificateUsage, altNames: string[]): object[] {
  const subjectAltName = altNames.length
    ? [{ name: 'subjectAltName', altNames: altNames.map((name) => (IPV4.test(name) || name.includes(':') ? { type: 7, ip: name } : { type: 2, value: name })) }]
    : [];
  switch (usage) {
    case 'ca':
      return [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        { name: 'subjectKeyIdentifier' },
      ];
    case 'code-signing':
      return [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', codeSigning: true },
        { name: 'subjectKeyIdentifier' },
      ];
    case 'server':
      return [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectKeyIdentifier' },
        ...subjectAltName,
      ];
    case 'client':
      return [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
        { name: 'subjectKeyIdentifier' },
        ...subjectAltName,
      ];
  }
}

/**
 * 16 random bytes, positive as RFC 5280 requires. The first byte is never 0 either: forge writes
 * the hex as it is, and a leading zero byte before one below 0x80 is DER that is not minimal,
 * which OpenSSL refuses ("illegal padding"): one certificate in 128 was unreadable.
 */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

export function createCertificate(spec: CertificateSpec): string {
  const signingKeyPem = spec.issuer?.keyPem ?? spec.signingKeyPem;
  if (!signingKeyPem) throw fail('E_OPTION', 'A self-signed certificate needs signingKeyPem');
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(spec.publicKeyPem);
  cert.serialNumber = spec.serialNumber ?? randomSerial();
  const days = spec.days ?? (spec.usage === 'ca' ? 3650 : 825);
  const notBefore = spec.notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = spec.notAfter ?? new Date(notBefore.getTime() + days * 86_400_000);
  cert.setSubject(attributes(spec.subject));
  if (spec.issuer) {
    cert.setIssuer(forge.pki.certificateFromPem(spec.issuer.certPem).subject.attributes);
  } else {
    cert.setIssuer(attributes(spec.subject));
  }
  const extensions = extensionsFor(spec.usage, spec.altNames ?? []);
  if (spec.issuer) {
    const issuerCert = forge.pki.certificateFromPem(spec.issuer.certPem);
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes() });
  }
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(signingKeyPem) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

export function createCsr(keyPem: string, subject: DistinguishedName): string {
  const csr = forge.pki.createCertificationRequest();
  const privateKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  csr.publicKey = forge.pki.setRsaPublicKey(privateKey.n, privateKey.e);
  csr.setSubject(attributes(subject));
  csr.sign(privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

export interface CertificateDetails {
  subject: string;
  issuer: string;
  serialNumber: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
  /** SHA-256 of the certified public key (DER SubjectPublicKeyInfo), hex. */
  spkiSha256: string;
  isCa: boolean;
  /** Extended key usages by name: codeSigning, serverAuth, clientAuth, ... */
  extKeyUsage: string[];
  altNames: string[];
}

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
};

function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

function x509(pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw fail('E_CERTIFICATE', `Not a readable X.509 certificate: ${(error as Error).message}`);
  }
}

export function certificateDetails(pem: string): CertificateDetails {
  const cert = x509(pem);
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    serialNumber: cert.serialNumber,
    validFrom: new Date(cert.validFrom).toISOString(),
    validTo: new Date(cert.validTo).toISOString(),
    fingerprint256: cert.fingerprint256,
    spkiSha256: spkiSha256(cert),
    isCa: cert.ca,
    extKeyUsage: (cert.keyUsage ?? []).map((oid) => EKU_NAMES[oid] ?? oid),
    altNames: (cert.subjectAltName ?? '')
      .split(', ')
      .filter(Boolean)
      .map((entry) => entry.replace(/^(DNS|IP Address):/, '')),
  };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits PEM text (one or many certificates) or DER bytes into PEM strings. */
export function parseCertificates(input: string | Uint8Array): string[] {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const pems = text.match(PEM_CERT);
  if (pems) {
    for (const pem of pems) x509(pem);
    return pems.map((pem) => `${pem}\n`);
  }
  if (typeof input === 'string') throw fail('E_CERT_FILE', 'The file holds no PEM certificate');
  try {
    return [new X509Certificate(Buffer.from(input)).toString()];
  } catch {
    throw fail('E_CERT_FILE', 'The file is neither a PEM nor a DER certificate');
  }
}

const MAX_CHAIN = 5;

/** The engine pkijs verifies signatures with: Node's own WebCrypto, in whichever thread runs this. */
let cryptoEngine: pkijs.CryptoEngine | undefined;
function engine(): pkijs.CryptoEngine {
  cryptoEngine ??= new pkijs.CryptoEngine({
    name: 'node-webcrypto',
    crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'],
  });
  return cryptoEngine;
}

function parsePkijs(cert: X509Certificate): pkijs.Certificate {
  try {
    return pkijs.Certificate.fromBER(new Uint8Array(cert.raw));
  } catch (error) {
    throw fail('E_CERTIFICATE', `Not a readable X.509 certificate: ${(error as Error).message}`);
  }
}

/** SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex: the key's identity, whatever certifies it. */
export function spkiSha256(cert: X509Certificate | string): string {
  const node = typeof cert === 'string' ? x509(cert) : cert;
  return createHash('sha256')
    .update(node.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export interface VerifiedCertificate extends CertificateDetails {
  /** The CA certificate that issued the leaf, as the validated path has it. */
  issuingCa: { subject: string; spkiSha256: string };
}

/**
 * Why pkijs found no acceptable path, as precisely as can be said: a validity window, else the
 * project's rule the chain as presented breaks (pkijs refuses some of those itself, with a
 * vaguer message), else no path to a trusted root. The refusal is decided already; this only
 * words it.
 */
function pathFailure(chain: PathCertificate[], roots: PathCertificate[], usage: CertificatePurpose, time: number, message: string): never {
  for (const [index, { node: cert }] of chain.entries()) {
    const role = index === 0 ? 'signer certificate' : `intermediate certificate ${index}`;
    if (time < new Date(cert.validFrom).getTime())
      throw fail('E_CERTIFICATE', `The ${role} (${oneLine(cert.subject)}) is not valid before ${cert.validFrom}`, { reason: 'not-yet-valid' });
    if (time > new Date(cert.validTo).getTime())
      throw fail('E_CERTIFICATE', `The ${role} (${oneLine(cert.subject)}) expired on ${cert.validTo}`, { reason: 'expired' });
  }
  // Names and signatures only: Node's checkIssued also applies keyUsage, a rule worded below.
  const issuedBy = (cert: X509Certificate, issuer: X509Certificate): boolean => cert.issuer === issuer.subject && cert.verify(issuer.publicKey);
  const links = chain.every((cert, index) => index === 0 || issuedBy(chain[index - 1]!.node, cert.node));
  const top = chain[chain.length - 1]!.node;
  const anchor = roots.find((root) => root.node.fingerprint256 === top.fingerprint256 || issuedBy(top, root.node));
  if (anchor && (time < new Date(anchor.node.validFrom).getTime() || time > new Date(anchor.node.validTo).getTime())) {
    throw fail('E_CERTIFICATE', `The trusted root certificate (${oneLine(anchor.node.subject)}) is outside its validity period`, { reason: 'root-expired' });
  }
  if (links && anchor) checkCertificatePolicy(anchor.node.fingerprint256 === top.fingerprint256 ? chain : [...chain, anchor], usage);
  throw fail('E_CERTIFICATE', `The certificate chain of ${oneLine(chain[0]!.node.subject)} does not lead to a trusted root: ${message}`, {
    reason: 'untrusted-root',
  });
}

/**
 * Verifies chain[0] (the leaf) through the certificates after it to one of `trustRootsPem` at
 * `now`. pkijs' chain validation engine builds the path and checks signatures, names and
 * validity windows; the project's rules (sdk/certificate-policy.ts) then apply to the path it
 * built. Returns the leaf's details and its issuing CA, or throws E_CERTIFICATE whose
 * details.reason says why.
 */
export async function verifyCertificateChain(
  chainPem: string[],
  trustRootsPem: string[],
  usage: CertificatePurpose,
  now: Date = new Date(),
): Promise<VerifiedCertificate> {
  if (chainPem.length === 0) throw fail('E_CERTIFICATE', 'There is no signer certificate');
  if (chainPem.length > MAX_CHAIN) throw fail('E_CERTIFICATE', `The certificate chain is longer than ${MAX_CHAIN}`);
  const chain = chainPem.map(x509);
  const roots = trustRootsPem.map(x509);
  const presented = chain.map((node) => ({ parsed: parsePkijs(node), node }));
  const anchors = roots.map((node) => ({ parsed: parsePkijs(node), node }));
  const byParsed = new Map<pkijs.Certificate, X509Certificate>([...presented, ...anchors].map((cert) => [cert.parsed, cert.node]));
  const validator = new pkijs.CertificateChainValidationEngine({
    trustedCerts: anchors.map((cert) => cert.parsed),
    // pkijs takes the last certificate of `certs` as the end entity.
    certs: presented.map((cert) => cert.parsed).reverse(),
    checkDate: now,
  });
  let result: pkijs.CertificateChainValidationEngineVerifyResult;
  try {
    result = await validator.verify({}, engine());
  } catch (error) {
    // pkijs throws either an Error or its own { resultMessage } result.
    const reason = error as { resultMessage?: string; message?: string };
    return pathFailure(presented, anchors, usage, now.getTime(), reason.resultMessage ?? reason.message ?? String(error));
  }
  if (!result.result || !result.certificatePath || result.certificatePath.length < 2) {
    return pathFailure(presented, anchors, usage, now.getTime(), result.resultMessage || 'no valid path');
  }
  const path: PathCertificate[] = result.certificatePath.map((parsed) => ({ parsed, node: byParsed.get(parsed)! }));
  if (path.some((cert) => !cert.node) || path[0]!.node.fingerprint256 !== chain[0]!.fingerprint256) {
    throw fail('E_CERTIFICATE', `The certificate chain of ${oneLine(chain[0]!.subject)} did not validate as a path from the signer certificate`, {
      reason: 'broken-chain',
    });
  }
  checkCertificatePolicy(path, usage);
  const issuer = path[1]!.node;
  return { ...certificateDetails(chainPem[0]!), issuingCa: { subject: oneLine(issuer.subject), spkiSha256: spkiSha256(issuer) } };
}

/** True when `keyPem` is the private key of `certPem`. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  try {
    const fromKey = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    const fromCert = x509(certPem).publicKey.export({ type: 'spki', format: 'der' });
    return Buffer.compare(fromKey, fromCert) === 0;
  } catch {
    return false;
  }
}
