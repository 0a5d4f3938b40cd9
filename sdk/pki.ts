/**
 * Keys and X.509 certificates. Node's crypto generates keys and verifies chains natively
 * (fast, constant-time, no hand-written crypto); node-forge is used only to *create*
 * certificates and CSRs, which Node cannot do, and to read the keyUsage bits Node does not
 * expose.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
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

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive, as RFC 5280 requires
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
    isCa: cert.ca,
    extKeyUsage: (cert.keyUsage ?? []).map((oid) => EKU_NAMES[oid] ?? oid),
    altNames: (cert.subjectAltName ?? '').split(', ').filter(Boolean).map((entry) => entry.replace(/^(DNS|IP Address):/, '')),
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

/** keyUsage bits Node does not expose; undefined when the extension is absent. */
function keyUsageOf(pem: string): { digitalSignature: boolean; keyCertSign: boolean } | undefined {
  try {
    const extension = forge.pki.certificateFromPem(pem).getExtension('keyUsage') as { digitalSignature?: boolean; keyCertSign?: boolean } | null;
    return extension ? { digitalSignature: extension.digitalSignature === true, keyCertSign: extension.keyCertSign === true } : undefined;
  } catch {
    // forge reads RSA certificates only; for other keys the extension check is skipped here
    // and the extended key usage (which Node reads) still decides.
    return undefined;
  }
}

const MAX_CHAIN = 5;
const USAGE_EKU = { 'code-signing': 'codeSigning', server: 'serverAuth', client: 'clientAuth' } as const;

/**
 * Verifies chain[0] (the leaf) up through chain[1..] to one of `trustRootsPem` at `now`:
 * signatures, validity windows, issuers being CAs, and the leaf's usage. Returns the leaf's
 * details or throws E_CERTIFICATE with the reason.
 */
export function verifyCertificateChain(chainPem: string[], trustRootsPem: string[], usage: 'code-signing' | 'server' | 'client', now: Date = new Date()): CertificateDetails {
  if (chainPem.length === 0) throw fail('E_CERTIFICATE', 'There is no signer certificate');
  if (chainPem.length > MAX_CHAIN) throw fail('E_CERTIFICATE', `The certificate chain is longer than ${MAX_CHAIN}`);
  const chain = chainPem.map(x509);
  const roots = trustRootsPem.map(x509);
  const time = now.getTime();
  for (const [index, cert] of chain.entries()) {
    const role = index === 0 ? 'signer certificate' : `intermediate certificate ${index}`;
    if (time < new Date(cert.validFrom).getTime()) throw fail('E_CERTIFICATE', `The ${role} (${oneLine(cert.subject)}) is not valid before ${cert.validFrom}`, { reason: 'not-yet-valid' });
    if (time > new Date(cert.validTo).getTime()) throw fail('E_CERTIFICATE', `The ${role} (${oneLine(cert.subject)}) expired on ${cert.validTo}`, { reason: 'expired' });
    if (index > 0 && !cert.ca) throw fail('E_CERTIFICATE', `The ${role} (${oneLine(cert.subject)}) is not a CA certificate`, { reason: 'issuer-not-ca' });
    const next = chain[index + 1];
    if (next && !(cert.checkIssued(next) && cert.verify(next.publicKey))) {
      throw fail('E_CERTIFICATE', `The ${role} is not signed by the next certificate in the chain`, { reason: 'broken-chain' });
    }
  }
  const top = chain[chain.length - 1]!;
  const anchor = roots.find((root) => top.fingerprint256 === root.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey)));
  if (!anchor) throw fail('E_CERTIFICATE', `The certificate chain of ${oneLine(chain[0]!.subject)} does not lead to a trusted root`, { reason: 'untrusted-root' });
  if (time > new Date(anchor.validTo).getTime() || time < new Date(anchor.validFrom).getTime()) {
    throw fail('E_CERTIFICATE', 'The trusted root certificate is outside its validity period', { reason: 'root-expired' });
  }
  const leaf = chain[0]!;
  const details = certificateDetails(chainPem[0]!);
  if (leaf.ca && usage !== 'server') throw fail('E_CERTIFICATE', 'A CA certificate cannot sign packages or act as a client', { reason: 'leaf-is-ca' });
  if (!details.extKeyUsage.includes(USAGE_EKU[usage])) {
    throw fail('E_CERTIFICATE', `The certificate of ${details.subject} lacks the ${USAGE_EKU[usage]} extended key usage`, { reason: 'wrong-usage' });
  }
  const keyUsage = keyUsageOf(chainPem[0]!);
  if (keyUsage && !keyUsage.digitalSignature) {
    throw fail('E_CERTIFICATE', `The certificate of ${details.subject} does not allow digital signatures`, { reason: 'wrong-usage' });
  }
  return details;
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
