/**
 * Fail closed (issue 17, part 3): an admin operation whose audit record cannot be written is
 * refused with the audit's code (E_IO, E_STORAGE_FULL) and changes nothing. The fault is
 * injected through DataDir (disk.ts) on the audit directory only, at the moment that matters:
 * where an operation writes earlier records (an install's download events, an update's start),
 * the fault comes after them, so only the record at the commit point can stop it.
 *
 * Safety comes first the other way round: a block of traffic and an emergency transition happen
 * even when their records cannot be written.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AccountStore } from '../../platform/accounts/accounts.js';
import { Authenticator, type Session } from '../../platform/accounts/authenticator.js';
import { FileAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { CertificateStore } from '../../platform/egress/certificates.js';
import type { Gateway } from '../../platform/main.js';
import { EmergencyMode } from '../../platform/modes/index.js';
import { IpLists } from '../../platform/traffic/gate-lists.js';
import { buildPackage } from '../../sdk/package/index.js';
import { sampleManifest } from '../fixtures/packages.js';
import { createTestPki } from '../fixtures/pki.js';
import { useStoreGateway } from '../fixtures/store-gateway.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { FaultyDisk } from './disk.js';

const AUDIT = /\/audit\//;
const FAULTS = [
  ['write', 'ENOSPC', 'E_STORAGE_FULL'],
  ['sync', 'EIO', 'E_IO'],
] as const;

const coded = (code: string) => (error: { code?: string }) => {
  assert.equal(error.code, code, String(error));
  return true;
};

describe('reliability: fail closed when the audit record cannot be written', function () {
  this.timeout(120_000);
  let disk: FaultyDisk;
  beforeEach(() => {
    disk = new FaultyDisk();
  });
  afterEach(() => disk.restore());

  describe('installs, updates and uninstalls (a gateway against the mock store)', () => {
    const env = useStoreGateway();
    const ID = 'com.acme.failclosed';
    const PUSHED = 'com.acme.pushed';
    const manifest = (version: string) => sampleManifest({ package_id: ID, name: 'Fail Closed', publisher: 'Acme Corp', version });
    let gateway: Gateway;

    before(async () => {
      const signer = await env.issuePublisher('Acme Corp', 'acme');
      await env.publish(manifest('1.0.0'), signer);
      await env.publish(manifest('1.1.0'), signer);
      gateway = await env.start();
    });

    const configText = () => fs.readFile(path.join(env.data, 'config.json'), 'utf8');
    const appsDir = () => fs.readdir(path.join(env.data, 'apps')).then((names) => names.sort());
    const events = () => gateway.services.audit.list().map((record) => record.event);

    for (const [operation, code, expected] of FAULTS) {
      it(`an install whose installSucceeded record fails to ${operation} (${code}) is rolled back: ${expected}, no app, no entry`, async () => {
        const config = await configText();
        const apps = await appsDir();
        const before = events().length;
        await assert.rejects(
          gateway.services.orchestrator.install(ID, {
            version: '1.0.0',
            // After the download and the verification were audited: only the commit's record is left.
            onProgress: (progress) => {
              if (progress.phase === 'install') disk.inject({ operation, code, path: AUDIT, partial: operation === 'write' });
            },
          }),
          coded(expected),
        );
        disk.clear();
        assert.equal(gateway.services.orchestrator.get(ID), undefined);
        assert.equal(await configText(), config);
        assert.deepEqual(await appsDir(), apps);
        assert.deepEqual(await fs.readdir(path.join(env.data, 'staging')), []);
        assert.ok(
          !events()
            .slice(0, events().length - before)
            .includes('installSucceeded'),
          'no success in the trail',
        );
      });
    }

    it('a push (no record before its commit) whose record cannot be written installs nothing (E_STORAGE_FULL)', async () => {
      const file = path.join(env.dir, 'pushed.igp');
      await fs.writeFile(
        file,
        await buildPackage(sampleManifest({ package_id: PUSHED, name: 'Pushed', version: '1.0.0' }), new Map([['app/main.js', Buffer.from('1;\n')]])),
      );
      const config = await configText();
      disk.inject({ operation: 'write', code: 'ENOSPC', path: AUDIT, partial: true });
      await assert.rejects(gateway.services.orchestrator.push(file, 'dev-1'), coded('E_STORAGE_FULL'));
      disk.clear();
      assert.equal(gateway.services.orchestrator.get(PUSHED), undefined);
      assert.equal(await configText(), config);
      assert.ok(!(await appsDir()).includes(PUSHED));
    });

    it('a pushed update whose first record cannot be written (written while the package is verified) changes nothing (E_STORAGE_FULL)', async () => {
      const pushed = (version: string, code: string) =>
        buildPackage(sampleManifest({ package_id: PUSHED, name: 'Pushed', version }), new Map([['app/main.js', Buffer.from(code)]]));
      const file = path.join(env.dir, 'pushed-update.igp');
      await fs.writeFile(file, await pushed('1.0.0', '1;\n'));
      await gateway.services.orchestrator.push(file, 'dev-1');
      await fs.writeFile(file, await pushed('1.0.1', '2;\n'));
      const config = await configText();
      const files = await snapshotTree(path.join(env.data, 'apps', PUSHED));
      const before = events().length;
      disk.inject({ operation: 'write', code: 'ENOSPC', path: AUDIT, partial: true });
      await assert.rejects(gateway.services.orchestrator.push(file, 'dev-1'), coded('E_STORAGE_FULL'));
      disk.clear();
      assert.equal(gateway.services.orchestrator.get(PUSHED)?.version, '1.0.0');
      assert.equal(await configText(), config);
      assert.deepEqual(await snapshotTree(path.join(env.data, 'apps', PUSHED)), files);
      assert.deepEqual(await fs.readdir(path.join(env.data, 'staging')), []);
      assert.deepEqual(events().slice(before), [], 'nothing after the refused start in the trail');
      await gateway.services.orchestrator.uninstall(PUSHED);
    });

    it('installs once the trail takes records again; an update whose success cannot be recorded is rolled back (E_IO), 1.0.0 kept', async () => {
      await gateway.services.orchestrator.install(ID, { version: '1.0.0' });
      const config = await configText();
      await assert.rejects(
        gateway.services.orchestrator.update(ID, {
          version: '1.1.0',
          // updateStarted is written; the fault comes with the swap.
          onProgress: (progress) => {
            if (progress.phase === 'install') disk.inject({ operation: 'sync', code: 'EIO', path: AUDIT });
          },
        }),
        coded('E_IO'),
      );
      disk.clear();
      assert.equal(gateway.services.orchestrator.get(ID)?.version, '1.0.0');
      assert.equal(await configText(), config);
      assert.deepEqual(await fs.readdir(path.join(env.data, 'updates')), []);
      await gateway.services.orchestrator.verifyIntegrity(ID);
    });

    it('an uninstall whose first record cannot be written removes nothing (E_STORAGE_FULL): app, entry and files stay', async () => {
      const config = await configText();
      const files = await snapshotTree(path.join(env.data, 'apps', ID));
      disk.inject({ operation: 'write', code: 'ENOSPC', path: AUDIT, partial: true });
      await assert.rejects(gateway.services.orchestrator.uninstall(ID), coded('E_STORAGE_FULL'));
      disk.clear();
      assert.equal(gateway.services.orchestrator.get(ID)?.version, '1.0.0');
      assert.equal(await configText(), config);
      assert.deepEqual(await snapshotTree(path.join(env.data, 'apps', ID)), files);
      assert.deepEqual(await fs.readdir(path.join(env.data, 'uninstalls')), []);
      await gateway.services.orchestrator.uninstall(ID);
      assert.equal(gateway.services.orchestrator.get(ID), undefined);
    });

    it("forgetting an uninstalled app's signer whose record cannot be written keeps the binding (E_IO)", async () => {
      const bound = gateway.services.orchestrator.signerBinding(ID);
      assert.ok(bound);
      disk.inject({ operation: 'sync', code: 'EIO', path: AUDIT });
      await assert.rejects(gateway.services.orchestrator.forgetSigner(ID), coded('E_IO'));
      disk.clear();
      assert.deepEqual(gateway.services.orchestrator.signerBinding(ID), bound);
      await gateway.close();
      gateway = await env.start();
      assert.deepEqual(gateway.services.orchestrator.signerBinding(ID), bound, 'and on disk');
    });
  });

  describe('accounts, certificates and the IP lists', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await makeTempDir('isogate-fail-closed-');
    });
    afterEach(() => removeDir(dir));

    for (const [operation, code, expected] of FAULTS) {
      it(`a credentials change or a certificate binding whose record fails to ${operation} (${code}) is refused (${expected}): accounts.json unchanged`, async () => {
        const audit = await FileAuditLog.open(path.join(dir, 'audit'));
        const initial = { name: 'admin', password: 'Initial-Passw0rd!', certificateSha256: 'a'.repeat(64), certificateValidTo: null };
        const accounts = await AccountStore.open(path.join(dir, 'accounts'), {
          admin: initial,
          user: { ...initial, name: 'user', certificateSha256: 'b'.repeat(64) },
        });
        const authenticator = new Authenticator({ accounts, audit, settings: () => ({}) as never });
        const session = { role: 'admin' } as Session;
        const file = path.join(dir, 'accounts', 'accounts.json');
        const stored = await fs.readFile(file, 'utf8');
        disk.inject({ operation, code, path: AUDIT, partial: operation === 'write' });
        await assert.rejects(
          authenticator.changeCredentials(session, 'admin', { oldPassword: initial.password, newPassword: 'N3w-Passw0rd-long!', name: 'root' }),
          coded(expected),
        );
        await assert.rejects(authenticator.bindCertificate(session, 'user', 'c'.repeat(64), '2030-01-01T00:00:00.000Z'), coded(expected));
        assert.equal(await fs.readFile(file, 'utf8'), stored);
        assert.equal(accounts.get('admin').name, 'admin');
        assert.equal(accounts.get('user').certificateSha256, 'b'.repeat(64));
        disk.clear();
        await authenticator.changeCredentials(session, 'admin', { oldPassword: initial.password, newPassword: 'N3w-Passw0rd-long!', name: 'root' });
        assert.equal(accounts.get('admin').name, 'root');
        assert.deepEqual(
          audit
            .list()
            .map((record) => record.event)
            .slice(0, 2),
          ['adminNameChanged', 'adminInitialPasswordChanged'],
        );
      });
    }

    it('a certificate upload or deletion whose record cannot be written is refused (E_STORAGE_FULL): the store unchanged', async () => {
      const audit = await FileAuditLog.open(path.join(dir, 'audit'));
      const certificates = new CertificateStore({ root: path.join(dir, 'certs'), keys: memoryDeviceKeys(), audit });
      const pki = await createTestPki();
      const ID = 'com.acme.certs';
      await certificates.setCa(ID, 'ca.pem', Buffer.from(pki.root.certPem));
      const before = await snapshotTree(path.join(dir, 'certs'));
      disk.inject({ operation: 'write', code: 'ENOSPC', path: AUDIT, partial: true });
      await assert.rejects(certificates.setCa(ID, 'other.pem', Buffer.from(pki.root.certPem)), coded('E_STORAGE_FULL'));
      await assert.rejects(certificates.delete(ID, 'ca'), coded('E_STORAGE_FULL'));
      assert.deepEqual(await snapshotTree(path.join(dir, 'certs')), before);
      assert.deepEqual(
        (await certificates.list(ID)).map((info) => info.fileName),
        ['ca.pem'],
      );
      disk.clear();
      await certificates.delete(ID, 'ca');
      assert.deepEqual(await certificates.list(ID), []);
      assert.deepEqual(
        audit
          .list()
          .map((record) => record.event)
          .slice(0, 2),
        ['deleteAppCertificate', 'uploadAppCertificate'],
      );
    });

    it('allowlist and denylist edits whose record cannot be written are refused (E_IO), config.json unchanged; a drop verdict still blocks', async () => {
      const audit = await FileAuditLog.open(path.join(dir, 'audit'));
      const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
      const lists = new IpLists(config, audit);
      await lists.allow('10.0.0.1');
      await lists.deny('10.0.0.2', 'scan');
      const text = await fs.readFile(path.join(dir, 'config.json'), 'utf8');
      disk.inject({ operation: 'sync', code: 'EIO', path: AUDIT });
      await assert.rejects(lists.allow('10.0.0.3'), coded('E_IO'));
      await assert.rejects(lists.disallow('10.0.0.1'), coded('E_IO'));
      await assert.rejects(lists.undeny('10.0.0.2'), coded('E_IO'));
      assert.equal(await fs.readFile(path.join(dir, 'config.json'), 'utf8'), text);
      assert.deepEqual(
        lists.allowlist().map((entry) => entry.ipAddrSource),
        ['10.0.0.1'],
      );

      // Safety first: the block is made even though its record is refused.
      await assert.rejects(lists.deny('10.0.0.4', 'exploit'), coded('E_IO'));
      assert.equal(lists.verdictAtAccept('10.0.0.4'), 'denied');
      disk.clear();
      const reopened = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
      assert.deepEqual(
        new IpLists(reopened, audit).denylist().map((entry) => entry.ipAddrSource),
        ['10.0.0.2', '10.0.0.4'],
      );
      await lists.undeny('10.0.0.2');
      assert.deepEqual(
        audit
          .list({ log: 'firewall' })
          .filter((record) => record.event === 'firewallRulesChanged')
          .map((record) => record.details),
        [
          { action: 'undeny', list: 'denylist', address: '10.0.0.2' },
          { action: 'allow', list: 'allowlist', address: '10.0.0.1' },
        ],
      );
    });

    it('emergency support mode is entered (persisted, in force) even when none of its records can be written', async () => {
      const audit = await FileAuditLog.open(path.join(dir, 'audit'));
      const modes = await EmergencyMode.open(dir, audit);
      const trail = await snapshotTree(path.join(dir, 'audit'));
      disk.inject({ operation: 'write', code: 'ENOSPC', path: AUDIT, partial: true });
      const stderr = process.stderr.write;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      try {
        await modes.enter('a test crash loop', 'start');
      } finally {
        process.stderr.write = stderr;
      }
      assert.ok(disk.failures >= 2, 'its records were refused');
      assert.equal(modes.active, true);
      assert.throws(() => modes.assertNotActive('Starting an app'), coded('E_EMERGENCY'));
      assert.deepEqual(await snapshotTree(path.join(dir, 'audit')), trail, 'no torn line');
      disk.clear();
      assert.equal((await EmergencyMode.open(dir, audit)).active, true, 'persisted');
    });
  });
});
