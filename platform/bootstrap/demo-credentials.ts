/**
 * Demo credentials written on first start, in the manner of the manual's distribution kit
 * (CaCert.crt, TlsClientAdmin.p12): a root CA for the web interface, the admin's and the
 * user's client certificates with their keys (also as PKCS#12 files), the web interface's
 * server certificate, and the manual's first-login credentials. Nothing here
 * is committed: every key is generated on the machine, and the manual's rule applies — use
 * them for the first connection only, then replace them.
 */
import path from 'node:path';
import forge from 'node-forge';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { DataDir, writeFileDurable } from '../durable/index.js';

/** The manual's default password of TlsClientAdmin.p12; ARCHITECTURE.md fixes it for the demo. */
export const DEMO_P12_PASSWORD = 'adminadmin';
/** The user's PKCS#12 file takes the user's first-login password, as the admin's takes the admin's. */
export const DEMO_USER_P12_PASSWORD = 'useruser';

/**
 * The manual's first-login credentials ("Connecting to the web interface": admin / adminadmin;
 * "Creating a user account": the default user password useruser). Public by design: the API
 * refuses everything but a change of them until they are changed (E_PASSWORD_CHANGE).
 */
export const FIRST_LOGIN = { admin: { name: 'admin', password: 'adminadmin' }, user: { name: 'user', password: 'useruser' } } as const;

export interface DemoCredentials {
  dir: string;
  rootCertFile: string;
  adminP12File: string;
  adminCertFile: string;
  adminKeyFile: string;
  userP12File: string;
  userCertFile: string;
  userKeyFile: string;
  /** The web interface's TLS certificate (127.0.0.1, ::1, localhost), signed by the same root. */
  serverCertFile: string;
  serverKeyFile: string;
  firstLoginFile: string;
  p12Password: string;
  userP12Password: string;
}

function p12(keyPem: string, certPem: string, rootCertPem: string, password: string, friendlyName: string): Buffer {
  // 3DES keeps the file importable by every browser and by openssl 3 without legacy flags.
  const asn1 = forge.pkcs12.toPkcs12Asn1(
    forge.pki.privateKeyFromPem(keyPem),
    [forge.pki.certificateFromPem(certPem), forge.pki.certificateFromPem(rootCertPem)],
    password,
    { algorithm: '3des', friendlyName },
  );
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
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
    userP12File: path.join(dir, 'user.p12'),
    userCertFile: path.join(dir, 'user.cert.pem'),
    userKeyFile: path.join(dir, 'user.key.pem'),
    serverCertFile: path.join(dir, 'server.cert.pem'),
    serverKeyFile: path.join(dir, 'server.key.pem'),
    firstLoginFile: path.join(dir, 'first-login.txt'),
    p12Password: DEMO_P12_PASSWORD,
    userP12Password: DEMO_USER_P12_PASSWORD,
  };
  // A set from before the web interface (no server or user certificate) is made again whole.
  if ((await data.statFile('first-login.txt')) && (await data.statFile('server.key.pem')) && (await data.statFile('user.p12'))) return credentials;
  await data.mkdir('', 0o700);

  const rootKeys = generateKeyPair();
  const rootCertPem = createCertificate({
    subject: { commonName: 'isogate demo root CA', organizationName: 'isogate demo' },
    publicKeyPem: rootKeys.publicKeyPem,
    signingKeyPem: rootKeys.keyPem,
    usage: 'ca',
  });
  const issue = (commonName: string, usage: 'client' | 'server', altNames?: string[]): { keyPem: string; certPem: string } => {
    const keys = generateKeyPair();
    const certPem = createCertificate({
      subject: { commonName, organizationName: 'isogate demo' },
      publicKeyPem: keys.publicKeyPem,
      issuer: { certPem: rootCertPem, keyPem: rootKeys.keyPem },
      usage,
      ...(altNames ? { altNames } : {}),
    });
    return { keyPem: keys.keyPem, certPem };
  };
  const admin = issue('admin', 'client');
  const user = issue('user', 'client');
  const server = issue('localhost', 'server', ['localhost', '127.0.0.1', '::1']);

  await writeFileDurable(credentials.rootCertFile, rootCertPem, { root: data });
  await writeFileDurable(path.join(dir, 'root.key.pem'), rootKeys.keyPem, { mode: 0o600, root: data });
  await writeFileDurable(credentials.adminCertFile, admin.certPem, { root: data });
  await writeFileDurable(credentials.adminKeyFile, admin.keyPem, { mode: 0o600, root: data });
  await writeFileDurable(credentials.adminP12File, p12(admin.keyPem, admin.certPem, rootCertPem, DEMO_P12_PASSWORD, 'isogate admin'), {
    mode: 0o600,
    root: data,
  });
  await writeFileDurable(credentials.userCertFile, user.certPem, { root: data });
  await writeFileDurable(credentials.userKeyFile, user.keyPem, { mode: 0o600, root: data });
  await writeFileDurable(credentials.userP12File, p12(user.keyPem, user.certPem, rootCertPem, DEMO_USER_P12_PASSWORD, 'isogate user'), {
    mode: 0o600,
    root: data,
  });
  await writeFileDurable(credentials.serverCertFile, server.certPem, { root: data });
  await writeFileDurable(credentials.serverKeyFile, server.keyPem, { mode: 0o600, root: data });
  // Written last: its presence means the set is complete.
  await writeFileDurable(
    credentials.firstLoginFile,
    [
      "isogate first-login credentials of the web interface (the manual's; you must change them at first login)",
      `admin: ${FIRST_LOGIN.admin.name} / ${FIRST_LOGIN.admin.password}, client certificate ${credentials.adminP12File} (password "${DEMO_P12_PASSWORD}")`,
      `user: ${FIRST_LOGIN.user.name} / ${FIRST_LOGIN.user.password}, client certificate ${credentials.userP12File} (password "${DEMO_USER_P12_PASSWORD}")`,
      '',
    ].join('\n'),
    { mode: 0o600, root: data },
  );
  return credentials;
}
