/**
 * An app's certificates may be EC (P-256), today's usual kind: found walking the README tour
 * with openssl's certificates (issue 13, finding 10). node-forge, which described them, reads
 * RSA keys only: set-ca answered E_INTERNAL, set-client stored the pair and then failed, and
 * every later `certs list` of the app failed too.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { CertificateStore } from '../../platform/egress/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';

const APP = 'dev.example.uplink';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

describe('app certificates with EC keys', () => {
  let dir: string;
  let store: CertificateStore;
  let audit: MemoryAuditLog;
  before(async () => {
    dir = await makeTempDir('isogate-ec-');
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      path.join(dir, 'ca.key'),
      '-out',
      path.join(dir, 'ca.pem'),
      '-subj',
      '/CN=Plant cloud CA/O=Plant',
      '-days',
      '365',
    ]);
    openssl(['req', ...ec, '-keyout', path.join(dir, 'client.key'), '-out', path.join(dir, 'client.csr'), '-subj', '/CN=gateway uplink']);
    await fs.writeFile(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
    openssl([
      'x509',
      '-req',
      '-in',
      path.join(dir, 'client.csr'),
      '-CA',
      path.join(dir, 'ca.pem'),
      '-CAkey',
      path.join(dir, 'ca.key'),
      '-CAcreateserial',
      '-out',
      path.join(dir, 'client.pem'),
      '-days',
      '365',
      '-extfile',
      path.join(dir, 'client.ext'),
    ]);
    openssl(['req', '-x509', ...ec, '-keyout', path.join(dir, 'other.key'), '-out', path.join(dir, 'other.pem'), '-subj', '/CN=Other', '-days', '365']);
    audit = new MemoryAuditLog();
    store = new CertificateStore({ root: path.join(dir, 'certs'), keys: memoryDeviceKeys(), audit });
  });
  after(async () => removeDir(dir));

  const read = (name: string): Promise<Buffer> => fs.readFile(path.join(dir, name));

  it('uploads an EC CA and an EC client pair, shows their subjects and lists them', async () => {
    const ca = await store.setCa(APP, 'ca.pem', await read('ca.pem'));
    assert.deepEqual([ca.subject, ca.issuer], ['CN=Plant cloud CA, O=Plant', 'CN=Plant cloud CA, O=Plant']);
    assert.ok(ca.daysLeft >= 364);
    const client = await store.setClient(APP, 'client.pem', await read('client.pem'), 'client.key', await read('client.key'));
    assert.deepEqual([client.subject, client.issuer, client.keyFileName], ['CN=gateway uplink', 'CN=Plant cloud CA, O=Plant', 'client.key']);
    assert.deepEqual(
      (await store.list(APP)).map((info) => [info.kind, info.subject]),
      [
        ['ca', 'CN=Plant cloud CA, O=Plant'],
        ['client', 'CN=gateway uplink'],
      ],
    );
  });

  it('still refuses a key of another certificate with E_CERT_KEY_MISMATCH, storing nothing', async () => {
    const before = await snapshotTree(path.join(dir, 'certs'));
    await assert.rejects(store.setClient(APP, 'client.pem', await read('client.pem'), 'other.key', await read('other.key')), (error: unknown) =>
      isIsogateError(error, 'E_CERT_KEY_MISMATCH'),
    );
    assert.deepEqual(await snapshotTree(path.join(dir, 'certs')), before);
  });
});
