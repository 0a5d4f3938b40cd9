/**
 * The platform's own signing root: the key the gateway's image signs its pre-installed apps
 * with, which store publishers never hold. A real device's image carries only the root
 * certificate (the key stays with the vendor's build system); the demo, having no vendor,
 * makes a root and a signer on first start, in their own directory beside (never inside)
 * the embedded store's, so the store's CA can never sign a platform package.
 */
import path from 'node:path';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { DataDir, writeFileDurable } from '../durable/index.js';

export interface PlatformRoot {
  dir: string;
  rootCertFile: string;
  /** The signer image packages are signed with (code-signing, issued by the root). */
  signerCertFile: string;
  signerKeyFile: string;
  /** The root certificate itself, read without following a link (a planted root would make its holder's packages the platform's). */
  rootCertPem: string;
}

/** `dir` lies in the data directory: it and every file in it are checked from there down, never followed if a link. */
export async function ensurePlatformRoot(dir: string): Promise<PlatformRoot> {
  const data = DataDir.of(dir);
  const files = {
    dir,
    rootCertFile: path.join(dir, 'platform-root.pem'),
    signerCertFile: path.join(dir, 'platform-signer.cert.pem'),
    signerKeyFile: path.join(dir, 'platform-signer.key.pem'),
  };
  const existing = await data.readFile('platform-root.pem');
  if (existing) return { ...files, rootCertPem: existing.toString('utf8') };
  await data.mkdir('', 0o700);
  const rootKeys = generateKeyPair();
  const rootCertPem = createCertificate({
    subject: { commonName: 'isogate platform root', organizationName: 'isogate demo' },
    publicKeyPem: rootKeys.publicKeyPem,
    signingKeyPem: rootKeys.keyPem,
    usage: 'ca',
  });
  const signerKeys = generateKeyPair();
  const signerCertPem = createCertificate({
    subject: { commonName: 'isogate platform', organizationName: 'isogate demo' },
    publicKeyPem: signerKeys.publicKeyPem,
    issuer: { certPem: rootCertPem, keyPem: rootKeys.keyPem },
    usage: 'code-signing',
  });
  await writeFileDurable(files.signerCertFile, signerCertPem, { root: data });
  await writeFileDurable(files.signerKeyFile, signerKeys.keyPem, { mode: 0o600, root: data });
  // The root's key is not kept: the signer above is all the demo signs with. Written last,
  // its presence means the set is complete.
  await writeFileDurable(files.rootCertFile, rootCertPem, { root: data });
  return { ...files, rootCertPem };
}
