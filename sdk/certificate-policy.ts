/**
 * The project's own certificate rules, on top of what pkijs' chain validation engine checks
 * (path building, signatures, validity windows). pkijs does not enforce pathLenConstraint,
 * reads keyUsage only on issuers and leaves the leaf's purpose to the caller, so every rule
 * the gateway relies on is stated here, in one place, each with its own reason code. The set
 * is chosen so that whatever passes also passes `openssl verify -x509_strict`; the rules that
 * go further than openssl's `-purpose any` are the leaf's purpose (LEAF_PURPOSE_RULES).
 */
import type { X509Certificate } from 'node:crypto';
import type * as pkijs from 'pkijs';
import { fail } from './errors.js';

export const CERTIFICATE_RULES = {
  'issuer-is-ca': 'every issuing certificate carries basicConstraints with cA set',
  'ca-constraints-critical': "a CA certificate's basicConstraints extension is marked critical",
  'path-length': 'no CA issues more CA certificates below it than its pathLenConstraint allows',
  'issuer-key-usage': 'every CA certificate has a keyUsage extension with keyCertSign',
  'key-identifiers': 'every issued certificate names its issuer key (authorityKeyIdentifier), every CA has a subjectKeyIdentifier, neither is critical',
  'critical-extensions': 'no certificate has a critical extension the gateway does not process',
  'key-strength': 'RSA keys have at least 2048 bits; EC keys are on P-256, P-384 or P-521',
  'leaf-not-ca': 'the signing certificate is not a CA (no cA, no keyCertSign, no pathLenConstraint)',
  'leaf-key-usage': 'the signing certificate has a keyUsage extension with digitalSignature, for every key type',
  'leaf-extended-key-usage': 'the signing certificate has the extended key usage of its purpose (codeSigning for packages)',
} as const;

export type CertificateRule = keyof typeof CERTIFICATE_RULES;

/** Rules that openssl's `verify -purpose any` does not apply: the leaf's purpose. */
export const LEAF_PURPOSE_RULES: ReadonlySet<CertificateRule> = new Set(['leaf-not-ca', 'leaf-key-usage', 'leaf-extended-key-usage']);

export type CertificatePurpose = 'code-signing' | 'server' | 'client';

const PURPOSE_EKU: Record<CertificatePurpose, { oid: string; name: string }> = {
  'code-signing': { oid: '1.3.6.1.5.5.7.3.3', name: 'codeSigning' },
  server: { oid: '1.3.6.1.5.5.7.3.1', name: 'serverAuth' },
  client: { oid: '1.3.6.1.5.5.7.3.2', name: 'clientAuth' },
};

const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  policyMappings: '2.5.29.33',
  authorityKeyIdentifier: '2.5.29.35',
  policyConstraints: '2.5.29.36',
  extKeyUsage: '2.5.29.37',
  inhibitAnyPolicy: '2.5.29.54',
} as const;

/** Critical extensions something checks: pkijs (names, policies) or this module. */
const PROCESSED_CRITICAL = new Set<string>([
  OID.keyUsage,
  OID.basicConstraints,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
  OID.certificatePolicies,
  OID.policyMappings,
  OID.policyConstraints,
  OID.inhibitAnyPolicy,
]);

const EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1', 'P-256', 'P-384', 'P-521']);
const MIN_RSA_BITS = 2048;

/** keyUsage bits, RFC 5280 4.2.1.3 (bit 0 is the high bit of the first byte). */
const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

/** One certificate of a validated path: pkijs' parse beside Node's (keys, names). */
export interface PathCertificate {
  parsed: pkijs.Certificate;
  node: X509Certificate;
}

interface Extensions {
  byOid: Map<string, pkijs.Extension>;
  isCa: boolean;
  pathLength: number | undefined;
  keyUsage: Set<KeyUsageName> | undefined;
  extKeyUsage: string[] | undefined;
}

function extensionsOf(cert: pkijs.Certificate): Extensions {
  const byOid = new Map((cert.extensions ?? []).map((extension) => [extension.extnID, extension]));
  const constraints = byOid.get(OID.basicConstraints)?.parsedValue as pkijs.BasicConstraints | undefined;
  const rawPathLength = constraints?.pathLenConstraint;
  const pathLength = rawPathLength === undefined ? undefined : typeof rawPathLength === 'number' ? rawPathLength : rawPathLength.valueBlock.valueDec;
  // pkijs parses keyUsage as an asn1js BIT STRING.
  const usageBits = byOid.get(OID.keyUsage)?.parsedValue as { valueBlock: { valueHexView: Uint8Array } } | undefined;
  let keyUsage: Set<KeyUsageName> | undefined;
  if (usageBits) {
    const view = usageBits.valueBlock.valueHexView;
    keyUsage = new Set(KEY_USAGE_BITS.filter((_, bit) => ((view[bit >> 3] ?? 0) & (0x80 >> (bit & 7))) !== 0));
  }
  const eku = byOid.get(OID.extKeyUsage)?.parsedValue as pkijs.ExtKeyUsage | undefined;
  return { byOid, isCa: constraints?.cA === true, pathLength, keyUsage, extKeyUsage: eku?.keyPurposes };
}

function refuse(rule: CertificateRule, message: string): never {
  throw fail('E_CERTIFICATE', `${message} (rule ${rule}: ${CERTIFICATE_RULES[rule]})`, { reason: rule });
}

function name(cert: PathCertificate): string {
  return cert.node.subject.split('\n').filter(Boolean).join(', ');
}

function selfIssued(cert: PathCertificate): boolean {
  return cert.parsed.subject.isEqual(cert.parsed.issuer);
}

function checkKey(cert: PathCertificate, role: string): void {
  const key = cert.node.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS) refuse('key-strength', `The ${role} (${name(cert)}) has a ${details.modulusLength ?? 0}-bit RSA key`);
    return;
  }
  if (key.asymmetricKeyType === 'ec') {
    if (!EC_CURVES.has(details.namedCurve ?? ''))
      refuse('key-strength', `The ${role} (${name(cert)}) has an EC key on the unsupported curve ${details.namedCurve ?? 'with explicit parameters'}`);
    return;
  }
  refuse('key-strength', `The ${role} (${name(cert)}) has a ${key.asymmetricKeyType ?? 'unknown'} key; RSA and EC keys are supported`);
}

function checkIdentifiers(cert: PathCertificate, extensions: Extensions, role: string, isAnchor: boolean): void {
  const akid = extensions.byOid.get(OID.authorityKeyIdentifier);
  const skid = extensions.byOid.get(OID.subjectKeyIdentifier);
  if (akid?.critical || skid?.critical) refuse('key-identifiers', `The ${role} (${name(cert)}) marks a key identifier critical`);
  // A self-signed trust anchor names no other key; every issued certificate must.
  if (!akid && !(isAnchor && selfIssued(cert))) refuse('key-identifiers', `The ${role} (${name(cert)}) has no authorityKeyIdentifier`);
  if (extensions.isCa && !skid) refuse('key-identifiers', `The ${role} (${name(cert)}) is a CA without a subjectKeyIdentifier`);
}

/**
 * Applies every rule to a path pkijs built and validated: `path[0]` is the leaf, the last
 * certificate the trust anchor. Throws E_CERTIFICATE whose details.reason names the rule.
 */
export function checkCertificatePolicy(path: readonly PathCertificate[], purpose: CertificatePurpose): void {
  const eku = PURPOSE_EKU[purpose];
  path.forEach((cert, index) => {
    const role = index === 0 ? 'signer certificate' : index === path.length - 1 ? 'root certificate' : `intermediate certificate ${index}`;
    const extensions = extensionsOf(cert.parsed);
    for (const extension of extensions.byOid.values()) {
      if (extension.critical && !PROCESSED_CRITICAL.has(extension.extnID)) {
        refuse('critical-extensions', `The ${role} (${name(cert)}) has the critical extension ${extension.extnID}, which the gateway does not process`);
      }
    }
    checkKey(cert, role);
    checkIdentifiers(cert, extensions, role, index === path.length - 1);
    if (index === 0) {
      const caLike = extensions.isCa || extensions.pathLength !== undefined || extensions.keyUsage?.has('keyCertSign') === true;
      // A TLS server may present a CA certificate as its own (some appliances do); a signer or a client may not.
      if (caLike && !(purpose === 'server' && extensions.isCa)) refuse('leaf-not-ca', `The signer certificate (${name(cert)}) is a CA certificate`);
      if (!extensions.keyUsage) refuse('leaf-key-usage', `The signer certificate (${name(cert)}) has no keyUsage extension`);
      if (!extensions.keyUsage.has('digitalSignature')) {
        refuse(
          'leaf-key-usage',
          `The signer certificate (${name(cert)}) does not allow digital signatures (its keyUsage is ${[...extensions.keyUsage].join(', ') || 'empty'})`,
        );
      }
      if (!extensions.extKeyUsage?.includes(eku.oid))
        refuse('leaf-extended-key-usage', `The certificate of ${name(cert)} lacks the ${eku.name} extended key usage`);
      return;
    }
    if (!extensions.isCa) refuse('issuer-is-ca', `The ${role} (${name(cert)}) issues a certificate but is not a CA certificate`);
    if (!extensions.byOid.get(OID.basicConstraints)!.critical)
      refuse('ca-constraints-critical', `The ${role} (${name(cert)}) does not mark its basicConstraints critical`);
    if (!extensions.keyUsage?.has('keyCertSign')) refuse('issuer-key-usage', `The ${role} (${name(cert)}) is a CA without the keyCertSign key usage`);
    if (extensions.pathLength !== undefined) {
      // RFC 5280 6.1.4 (l), (m): self-issued intermediates do not count.
      const belowIt = path.slice(1, index).filter((below) => !selfIssued(below)).length;
      if (belowIt > extensions.pathLength) {
        refuse('path-length', `The ${role} (${name(cert)}) allows ${extensions.pathLength} CA certificate(s) below it, the chain has ${belowIt}`);
      }
    }
  });
}
