/**
 * The platform's own signing root: the key the gateway's image signs its pre-installed apps
 * with, which store publishers never hold. A real device's image carries only the root
 * certificate (the key stays with the vendor's build system); the demo, having no vendor,
 * makes a root and a signer on first start, in their own directory beside (never inside)
 * the embedded store's, so the store's CA can never sign a platform package.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { writeFileDurable } from '../durable/index.js';

export interface PlatformRoot {
  dir: string;
  rootCertFile: string;
  /** The signer image packages are signed with (code-signing, issued by the root). */
  signerCertFile: string;
  signerKeyFile: string;
}

export async function ensurePlatformRoot(dir: string): Promise<PlatformRoot> {
  const root: PlatformRoot = {
    dir,
    rootCertFile: path.join(dir, 'platform-root.pem'),
    signerCertFile: path.join(dir, 'platform-signer.cert.pem'),
    signerKeyFile: path.join(dir, 'platform-signer.key.pem'),
  };
  if (await fs.access(root.rootCertFile).then(() => true, () => false)) return root;
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const rootKeys = generateKeyPair();
  const rootCertPem = createCertificate({
    subject: { commonName: 'isogate platform root', organizationName: 'isogate demo' },
    publicKeyPem: rootKeys.publicKeyPem, signingKeyPem: rootKeys.keyPem, usage: 'ca',
  });
  const signerKeys = generateKeyPair();
  const signerCertPem = createCertificate({
    subject: { commonName: 'isogate platform', organizationName: 'isogate demo' },
    publicKeyPem: signerKeys.publicKeyPem, issuer: { certPem: rootCertPem, keyPem: rootKeys.keyPem }, usage: 'code-signing',
  });
  await writeFileDurable(root.signerCertFile, signerCertPem);
  await writeFileDurable(root.signerKeyFile, signerKeys.keyPem, { mode: 0o600 });
  // The root's key is not kept: the signer above is all the demo signs with. Written last,
  // its presence means the set is complete.
  await writeFileDurable(root.rootCertFile, rootCertPem);
  return root;
}
