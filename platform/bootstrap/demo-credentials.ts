/**
 * Demo credentials written on first start, in the manner of the manual's distribution kit
 * (CaCert.crt, TlsClientAdmin.p12): a root CA for the admin interface, an admin client
 * certificate with its key (also as a PKCS#12 file), and first-login credentials. Nothing here
 * is committed: every key is generated on the machine, and the manual's rule applies — use
 * them for the first connection only, then replace them.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import forge from 'node-forge';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { DataDir, writeFileDurable } from '../durable/index.js';

/** The manual's default password of TlsClientAdmin.p12; ARCHITECTURE.md fixes it for the demo. */
export const DEMO_P12_PASSWORD = 'adminadmin';

export interface DemoCredentials {
  dir: string;
  rootCertFile: string;
  adminP12File: string;
  adminCertFile: string;
  adminKeyFile: string;
  firstLoginFile: string;
  p12Password: string;
}

/**
 * `dir` lies in the data directory: it and every file in it are checked from there down and
 * never followed if a link, so a planted one cannot have the demo's keys written elsewhere.
 */
export async function ensureDemoCredentials(dir: string): Promise<DemoCredentials> {
  const data = DataDir.of(dir);
  const credentials: DemoCredentials = {
    dir,
    rootCertFile: path.join(dir, 'root.pem'),
    adminP12File: path.join(dir, 'admin.p12'),
    adminCertFile: path.join(dir, 'admin.cert.pem'),
    adminKeyFile: path.join(dir, 'admin.key.pem'),
    firstLoginFile: path.join(dir, 'first-login.txt'),
    p12Password: DEMO_P12_PASSWORD,
  };
  if (await data.statFile('first-login.txt')) return credentials;
  await data.mkdir('', 0o700);

  const rootKeys = generateKeyPair();
  const rootCertPem = createCertificate({
    subject: { commonName: 'isogate demo root CA', organizationName: 'isogate demo' },
    publicKeyPem: rootKeys.publicKeyPem,
    signingKeyPem: rootKeys.keyPem,
    usage: 'ca',
  });
  const adminKeys = generateKeyPair();
  const adminCertPem = createCertificate({
    subject: { commonName: 'admin', organizationName: 'isogate demo' },
    publicKeyPem: adminKeys.publicKeyPem,
    issuer: { certPem: rootCertPem, keyPem: rootKeys.keyPem },
    usage: 'client',
  });
  // 3DES keeps the file importable by every browser and by openssl 3 without legacy flags.
  const p12 = forge.pkcs12.toPkcs12Asn1(
    forge.pki.privateKeyFromPem(adminKeys.keyPem),
    [forge.pki.certificateFromPem(adminCertPem), forge.pki.certificateFromPem(rootCertPem)],
    DEMO_P12_PASSWORD,
    { algorithm: '3des', friendlyName: 'isogate admin' },
  );
  const password = randomBytes(12).toString('base64url');

  await writeFileDurable(credentials.rootCertFile, rootCertPem, { root: data });
  await writeFileDurable(path.join(dir, 'root.key.pem'), rootKeys.keyPem, { mode: 0o600, root: data });
  await writeFileDurable(credentials.adminCertFile, adminCertPem, { root: data });
  await writeFileDurable(credentials.adminKeyFile, adminKeys.keyPem, { mode: 0o600, root: data });
  await writeFileDurable(credentials.adminP12File, Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary'), { mode: 0o600, root: data });
  // Written last: its presence means the set is complete.
  await writeFileDurable(
    credentials.firstLoginFile,
    [
      'isogate first-login credentials (change them at first login)',
      'user: admin',
      `password: ${password}`,
      `client certificate: ${credentials.adminP12File} (password "${DEMO_P12_PASSWORD}")`,
      '',
    ].join('\n'),
    { mode: 0o600, root: data },
  );
  return credentials;
}
