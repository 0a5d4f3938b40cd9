/**
 * Links planted in the data directory by someone else: a root gateway must refuse them with
 * E_UNSAFE_PATH and leave what they point at, outside the data directory, exactly as it was.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sinon from 'sinon';
import { serveControlSocket } from '../../platform/api/control-socket.js';
import { FileAuditLog, MemoryAuditLog } from '../../platform/audit/index.js';
import { ensureDemoCredentials } from '../../platform/bootstrap/demo-credentials.js';
import { ensurePlatformRoot } from '../../platform/bootstrap/platform-root.js';
import { ConfigStore, defaultDocument } from '../../platform/config/index.js';
import { FileDeviceKeyProvider, memoryDeviceKeys } from '../../platform/device/index.js';
import { DataDir, eraseTree, writeFileDurable } from '../../platform/durable/index.js';
import { CertificateStore } from '../../platform/egress/index.js';
import { sealRecord, verifyInstalledFiles } from '../../platform/integrity/index.js';
import { AppLogs } from '../../platform/logs/index.js';
import { Orchestrator, type PackageVerifier } from '../../platform/orchestrator/index.js';
import { StorageService } from '../../platform/storage/index.js';
import { createTestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { MemoryStoreClient } from '../orchestrator/memory-store.js';

const UNSAFE = { code: 'E_UNSAFE_PATH' };
const id = 'dev.isogate.victim';

describe('links planted in the data directory are refused, never followed', () => {
  let data: string;
  let outside: string;
  let outsideFile: string;
  const content = 'root:x:0:0:precious outside content\n';
  const keys = memoryDeviceKeys();

  beforeEach(async () => {
    data = await makeTempDir('isogate-data-');
    outside = await makeTempDir('isogate-outside-');
    outsideFile = path.join(outside, 'precious');
    await fs.writeFile(outsideFile, content);
  });
  afterEach(async () => {
    sinon.restore();
    await removeDir(data);
    await removeDir(outside);
  });

  /** The outside directory, byte for byte, as it was made. */
  async function assertOutsideUnchanged(extra: Record<string, string> = {}): Promise<void> {
    const expected = new Map(Object.entries({ precious: content, ...extra }).map(([name, text]) => [name, Buffer.from(text).toString('base64')]));
    assert.deepEqual(await snapshotTree(outside), expected);
  }

  describe('the safe-path module', () => {
    it('refuses a link as the last component, an intermediate directory, or on the way of mkdir', async () => {
      const dir = new DataDir(data);
      await fs.mkdir(path.join(data, 'a'));
      await fs.symlink(outsideFile, path.join(data, 'a', 'file'));
      await fs.symlink(outside, path.join(data, 'linked'));
      for (const mode of ['r', 'a', 'w', 'r+', 'rw+'] as const) {
        await assert.rejects(dir.open('a/file', mode), { ...UNSAFE, message: new RegExp(`${path.join(data, 'a', 'file')} is a symbolic link`) }, mode);
        await assert.rejects(dir.open('linked/precious', mode), { ...UNSAFE, message: new RegExp(`${path.join(data, 'linked')} is a symbolic link`) }, mode);
      }
      await assert.rejects(dir.mkdir('linked/sub'), UNSAFE);
      await assert.rejects(dir.readdir('linked'), UNSAFE);
      await assert.rejects(dir.rename('a/file', 'moved'), UNSAFE);
      await assert.rejects(writeFileDurable(path.join(data, 'linked', 'precious'), 'x', { root: dir }), UNSAFE);
      await assert.rejects(writeFileDurable(path.join(data, 'a', 'file'), 'x', { root: dir }), UNSAFE);
      await assertOutsideUnchanged();
      assert.equal((await fs.lstat(path.join(data, 'a', 'file'))).isSymbolicLink(), true);
    });

    it('catches a parent swapped for a link between the check and the open, before truncating', async () => {
      const dir = new DataDir(data);
      await fs.mkdir(path.join(data, 'logs'));
      await fs.writeFile(path.join(data, 'logs', 'precious'), 'our own file');
      const realOpen = fs.open.bind(fs);
      sinon.stub(fs, 'open').callsFake((async (file: string, ...rest: unknown[]) => {
        if (String(file) === path.join(data, 'logs', 'precious')) {
          // The attacker's move, exactly between lstat and open.
          await fs.rename(path.join(data, 'logs'), path.join(data, 'logs.real'));
          await fs.symlink(outside, path.join(data, 'logs'));
        }
        return (realOpen as (...args: unknown[]) => Promise<unknown>)(file, ...rest);
      }) as typeof fs.open);
      await assert.rejects(dir.open('logs/precious', 'w'), { ...UNSAFE, message: /was replaced while it was being opened/ });
      await assertOutsideUnchanged();
    });

    it('refuses to write through a hard link, and to erase a tree with a link anywhere in it, changing nothing', async () => {
      const dir = new DataDir(data);
      await fs.mkdir(path.join(data, 'tree', 'deep'), { recursive: true });
      await fs.writeFile(path.join(data, 'tree', 'mine'), 'mine');
      await fs.symlink(outside, path.join(data, 'tree', 'deep', 'escape'));
      const before = await snapshotTree(data);
      await assert.rejects(eraseTree(path.join(data, 'tree'), dir), { ...UNSAFE, message: /escape is a symbolic link/ });
      assert.deepEqual(await snapshotTree(data), before);
      await fs.link(outsideFile, path.join(data, 'hard'));
      await assert.rejects(dir.open('hard', 'a'), { ...UNSAFE, message: /has 2 hard links/ });
      await assert.rejects(eraseTree(path.join(data, 'hard'), dir), UNSAFE);
      await assertOutsideUnchanged();
    });
  });

  describe('orchestrator: staging, apps and trash', () => {
    const verifier: PackageVerifier = { verify: () => Promise.reject(new Error('not used')), close: async () => undefined };
    const open = async (): Promise<Orchestrator> =>
      Orchestrator.open({
        dataDir: data,
        store: new MemoryStoreClient(),
        config: await ConfigStore.open(path.join(data, 'config.json'), 'test'),
        audit: new MemoryAuditLog(),
        keys,
        verifier,
        trustRootsPem: ['unused'],
      });

    it('refuses a leftover in staging that links to a directory outside, erasing nothing there', async () => {
      await fs.mkdir(path.join(data, 'staging'), { recursive: true });
      await fs.symlink(outside, path.join(data, 'staging', '0123456789abcdef'));
      await assert.rejects(open(), { ...UNSAFE, message: new RegExp(path.join(data, 'staging', '0123456789abcdef')) });
      await assertOutsideUnchanged();
    });

    it('refuses a link to a file inside a staged leftover, and staging itself as a link', async () => {
      await fs.mkdir(path.join(data, 'staging', 'work', 'package'), { recursive: true });
      await fs.symlink(outsideFile, path.join(data, 'staging', 'work', 'package.igp'));
      await assert.rejects(open(), UNSAFE);
      await assertOutsideUnchanged();
      await fs.rm(path.join(data, 'staging'), { recursive: true });
      await fs.symlink(outside, path.join(data, 'staging'));
      await assert.rejects(open(), { ...UNSAFE, message: new RegExp(`${path.join(data, 'staging')} is a symbolic link`) });
      await assertOutsideUnchanged();
    });

    it('refuses an app directory that is a link instead of moving it to trash', async () => {
      await fs.mkdir(path.join(data, 'apps'), { recursive: true });
      await fs.symlink(outside, path.join(data, 'apps', id));
      await assert.rejects(open(), UNSAFE);
      await assertOutsideUnchanged();
      assert.equal((await fs.lstat(path.join(data, 'apps', id))).isSymbolicLink(), true);
    });
  });

  describe('storage', () => {
    it('refuses a storage log that links outside: nothing truncated, appended or erased', async () => {
      const service = new StorageService({ root: path.join(data, 'storage'), keys });
      await fs.mkdir(path.join(data, 'storage', id), { recursive: true });
      await fs.symlink(outsideFile, path.join(data, 'storage', id, 'data.log'));
      await assert.rejects(service.open(id, 1024), { ...UNSAFE, message: /data\.log is a symbolic link/ });
      await assert.rejects(service.wipe(id), UNSAFE);
      await assertOutsideUnchanged();
      await service.closeAll();
    });

    it('refuses an app storage directory that links to a directory outside', async () => {
      await fs.writeFile(path.join(outside, 'data.log'), '');
      const service = new StorageService({ root: path.join(data, 'storage'), keys });
      await fs.mkdir(path.join(data, 'storage'));
      await fs.symlink(outside, path.join(data, 'storage', id));
      await assert.rejects(service.open(id, 1024), UNSAFE);
      await assert.rejects(service.wipe(id), UNSAFE);
      await assertOutsideUnchanged({ 'data.log': '' });
      await service.closeAll();
    });

    it('refuses a planted compaction file and keeps the write', async () => {
      const errors: Error[] = [];
      const service = new StorageService({ root: path.join(data, 'storage'), keys, onError: (_, error) => errors.push(error) });
      const storage = await service.open(id, 1024 * 1024);
      await fs.symlink(outsideFile, path.join(data, 'storage', id, 'data.log.compact'));
      for (let i = 0; i < 100; i += 1) await storage.put('k', 'v'.repeat(1000) + i);
      assert.equal(errors[0] && (errors[0] as { code?: string }).code, 'E_UNSAFE_PATH');
      assert.equal(await storage.get('k'), 'v'.repeat(1000) + 99);
      await service.closeAll();
      await assertOutsideUnchanged();
    });
  });

  describe('app logs', () => {
    it('refuses an app log that links outside: nothing appended', async () => {
      const errors: string[] = [];
      const logs = new AppLogs({ root: path.join(data, 'logs'), onError: (_, error) => errors.push((error as { code?: string }).code ?? '') });
      await fs.mkdir(path.join(data, 'logs', id), { recursive: true });
      await fs.symlink(outsideFile, path.join(data, 'logs', id, 'app.log'));
      logs.writer(id).write(1, 'appended through the link');
      await assert.rejects(logs.flush(id), { ...UNSAFE, message: /app\.log is a symbolic link/ });
      assert.deepEqual(errors, ['E_UNSAFE_PATH']);
      assert.equal(logs.writer(id).dropped(), 1);
      await assert.rejects(logs.archiveInfo(id), UNSAFE);
      await assert.rejects(logs.remove(id), UNSAFE);
      await assertOutsideUnchanged();
    });

    it('refuses a link among the rotated files instead of moving or removing it, and never archives through one', async () => {
      const logs = new AppLogs({ root: path.join(data, 'logs'), maxFileBytes: 1024, onError: () => undefined });
      await fs.mkdir(path.join(data, 'logs', id), { recursive: true });
      await fs.symlink(outsideFile, path.join(data, 'logs', id, 'app.4.log'));
      for (let i = 0; i < 40; i += 1) logs.writer(id).write(3, `line ${i} ${'x'.repeat(100)}`);
      await assert.rejects(logs.flush(id), { ...UNSAFE, message: /app\.4\.log is a symbolic link/ });
      await assert.rejects(logs.archive(id), UNSAFE);
      await assertOutsideUnchanged();
      assert.equal((await fs.lstat(path.join(data, 'logs', id, 'app.4.log'))).isSymbolicLink(), true);
    });

    it('refuses an app log directory that links to a directory outside', async () => {
      const logs = new AppLogs({ root: path.join(data, 'logs'), onError: () => undefined });
      await fs.mkdir(path.join(data, 'logs'));
      await fs.symlink(outside, path.join(data, 'logs', id));
      logs.writer(id).write(1, 'into the linked directory');
      await assert.rejects(logs.flush(id), { ...UNSAFE, message: new RegExp(`${path.join(data, 'logs', id)} is a symbolic link`) });
      await assertOutsideUnchanged();
    });
  });

  describe('certificates', () => {
    it('refuses a certificate file that links outside: not erased, not read, not replaced', async function () {
      this.timeout(60_000);
      const pki = await createTestPki();
      const audit = new MemoryAuditLog();
      const certificates = new CertificateStore({ root: path.join(data, 'certs'), keys, audit });
      await fs.mkdir(path.join(data, 'certs', id), { recursive: true });
      await fs.symlink(outsideFile, path.join(data, 'certs', id, 'ca.enc'));
      await assert.rejects(certificates.delete(id, 'ca'), { ...UNSAFE, message: /ca\.enc is a symbolic link/ });
      await assert.rejects(certificates.list(id), UNSAFE);
      await assert.rejects(certificates.credentials(id), UNSAFE);
      await assert.rejects(certificates.setCa(id, 'ca.pem', Buffer.from(pki.root.certPem)), UNSAFE);
      await assert.rejects(certificates.remove(id), UNSAFE);
      await assertOutsideUnchanged();
      assert.equal((await fs.lstat(path.join(data, 'certs', id, 'ca.enc'))).isSymbolicLink(), true);
    });

    it('refuses a certificate directory that links to a directory outside', async function () {
      this.timeout(60_000);
      const pki = await createTestPki();
      const certificates = new CertificateStore({ root: path.join(data, 'certs'), keys, audit: new MemoryAuditLog() });
      await fs.mkdir(path.join(data, 'certs'));
      await fs.symlink(outside, path.join(data, 'certs', id));
      await assert.rejects(certificates.setCa(id, 'ca.pem', Buffer.from(pki.root.certPem)), UNSAFE);
      await assert.rejects(certificates.remove(id), UNSAFE);
      await assertOutsideUnchanged();
    });
  });
  describe('audit logs', () => {
    it('refuses an audit log that links outside: nothing appended, nothing truncated', async () => {
      const torn = 'an outside line without its newline';
      await fs.writeFile(path.join(outside, 'torn'), torn);
      await fs.mkdir(path.join(data, 'audit'));
      await fs.symlink(outsideFile, path.join(data, 'audit', 'system.jsonl'));
      await assert.rejects(FileAuditLog.open(path.join(data, 'audit')), { ...UNSAFE, message: /system\.jsonl is a symbolic link/ });
      await fs.rm(path.join(data, 'audit', 'system.jsonl'));
      // A torn last line is cut off on open: never through a link.
      await fs.symlink(path.join(outside, 'torn'), path.join(data, 'audit', 'firewall.jsonl'));
      await assert.rejects(FileAuditLog.open(path.join(data, 'audit')), { ...UNSAFE, message: /firewall\.jsonl is a symbolic link/ });
      await assertOutsideUnchanged({ torn });
    });

    it('refuses an audit log hard-linked to a file outside, and an audit directory that links outside', async () => {
      await fs.mkdir(path.join(data, 'audit'));
      await fs.link(outsideFile, path.join(data, 'audit', 'system.jsonl'));
      await assert.rejects(FileAuditLog.open(path.join(data, 'audit')), { ...UNSAFE, message: /has 2 hard links/ });
      await fs.rm(path.join(data, 'audit'), { recursive: true });
      await fs.symlink(outside, path.join(data, 'audit'));
      await assert.rejects(FileAuditLog.open(path.join(data, 'audit')), { ...UNSAFE, message: new RegExp(`${path.join(data, 'audit')} is a symbolic link`) });
      await assertOutsideUnchanged();
    });

    it('refuses to append through a link planted after the log was opened', async () => {
      const audit = await FileAuditLog.open(path.join(data, 'audit'));
      await fs.rm(path.join(data, 'audit', 'system.jsonl'));
      await fs.symlink(outsideFile, path.join(data, 'audit', 'system.jsonl'));
      await assert.rejects(audit.record('auditStart'), UNSAFE);
      await assertOutsideUnchanged();
    });
  });

  describe('device key', () => {
    const keyText = `${Buffer.alloc(32, 9).toString('base64')}\n`;

    it('refuses a device key that links to a key outside: it is never used', async () => {
      await fs.writeFile(path.join(outside, 'device.key'), keyText, { mode: 0o600 });
      await fs.mkdir(path.join(data, 'device'), { mode: 0o700 });
      await fs.symlink(path.join(outside, 'device.key'), path.join(data, 'device', 'device.key'));
      await assert.rejects(new FileDeviceKeyProvider(path.join(data, 'device')).open(), { ...UNSAFE, message: /device\.key is a symbolic link/ });
      await assertOutsideUnchanged({ 'device.key': keyText });
    });

    it('refuses a device key directory that links to a directory outside, and creates no key there', async () => {
      await fs.chmod(outside, 0o700);
      await fs.symlink(outside, path.join(data, 'device'));
      await assert.rejects(new FileDeviceKeyProvider(path.join(data, 'device')).open(), {
        ...UNSAFE,
        message: new RegExp(`${path.join(data, 'device')} is a symbolic link`),
      });
      await fs.writeFile(path.join(outside, 'device.key'), keyText, { mode: 0o600 });
      await assert.rejects(new FileDeviceKeyProvider(path.join(data, 'device')).open(), UNSAFE);
      await assertOutsideUnchanged({ 'device.key': keyText });
    });
  });

  describe('configuration document', () => {
    it('refuses a config.json that links to a document outside: it is not run on', async () => {
      const planted = `${JSON.stringify(defaultDocument('planted'), null, 2)}\n`;
      await fs.writeFile(path.join(outside, 'config.json'), planted);
      await fs.symlink(path.join(outside, 'config.json'), path.join(data, 'config.json'));
      await assert.rejects(ConfigStore.open(path.join(data, 'config.json'), 'test'), { ...UNSAFE, message: /config\.json is a symbolic link/ });
      await assertOutsideUnchanged({ 'config.json': planted });
    });
  });

  describe('installed files at launch', () => {
    const files = { 'manifest.json': '{}\n', 'app/main.js': 'log("mine");\n' };
    const record = () =>
      sealRecord(
        {
          package_id: id,
          version: '1.0.0',
          installedAt: new Date(0).toISOString(),
          packageSha256: '0'.repeat(64),
          signer: null,
          digests: Object.fromEntries(Object.entries(files).map(([name, text]) => [name, createHash('sha256').update(text).digest('hex')])),
        },
        keys,
      );
    const packageDir = () => new DataDir(data).sub(`apps/${id}/package`);

    async function writePackage(root: string): Promise<void> {
      for (const [name, text] of Object.entries(files)) {
        await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
        await fs.writeFile(path.join(root, name), text);
      }
    }

    it('refuses a package directory that links to files outside, even ones that match the record', async () => {
      await writePackage(path.join(outside, 'package'));
      await fs.mkdir(path.join(data, 'apps', id), { recursive: true });
      await fs.symlink(path.join(outside, 'package'), path.join(data, 'apps', id, 'package'));
      await assert.rejects(verifyInstalledFiles(packageDir(), record(), keys), { ...UNSAFE, message: /package is a symbolic link/ });
      await assertOutsideUnchanged({ 'package/manifest.json': files['manifest.json'], 'package/app/main.js': files['app/main.js'] });
    });

    it('refuses a file swapped for a link between the listing and the read, never reading through it', async () => {
      await writePackage(path.join(data, 'apps', id, 'package'));
      await fs.writeFile(path.join(outside, 'main.js'), files['app/main.js']);
      const realReaddir = fs.readdir.bind(fs);
      const appDir = path.join(data, 'apps', id, 'package', 'app');
      sinon.stub(fs, 'readdir').callsFake((async (dir: string, ...rest: unknown[]) => {
        const listed = await (realReaddir as (...args: unknown[]) => Promise<unknown>)(dir, ...rest);
        if (String(dir) === appDir) {
          await fs.rm(path.join(appDir, 'main.js'));
          await fs.symlink(path.join(outside, 'main.js'), path.join(appDir, 'main.js'));
        }
        return listed;
      }) as typeof fs.readdir);
      await assert.rejects(verifyInstalledFiles(packageDir(), record(), keys), { ...UNSAFE, message: /main\.js is a symbolic link/ });
      await assertOutsideUnchanged({ 'main.js': files['app/main.js'] });
    });
  });

  describe('bootstrap', () => {
    it('refuses a demo directory that links outside: no key is written there', async function () {
      this.timeout(60_000);
      await fs.symlink(outside, path.join(data, 'demo'));
      await assert.rejects(ensureDemoCredentials(path.join(data, 'demo')), { ...UNSAFE, message: new RegExp(`${path.join(data, 'demo')} is a symbolic link`) });
      await assertOutsideUnchanged();
    });

    it('refuses a demo credential that links outside instead of taking the set as complete', async () => {
      await fs.mkdir(path.join(data, 'demo'));
      await fs.symlink(outsideFile, path.join(data, 'demo', 'first-login.txt'));
      await assert.rejects(ensureDemoCredentials(path.join(data, 'demo')), { ...UNSAFE, message: /first-login\.txt is a symbolic link/ });
      await assertOutsideUnchanged();
    });

    it("refuses a platform root that links to a root outside: its holder's packages would be the platform's", async function () {
      this.timeout(60_000);
      const pki = await createTestPki();
      await fs.writeFile(path.join(outside, 'platform-root.pem'), pki.root.certPem);
      await fs.mkdir(path.join(data, 'platform-ca'));
      await fs.symlink(path.join(outside, 'platform-root.pem'), path.join(data, 'platform-ca', 'platform-root.pem'));
      await assert.rejects(ensurePlatformRoot(path.join(data, 'platform-ca')), { ...UNSAFE, message: /platform-root\.pem is a symbolic link/ });
      await fs.rm(path.join(data, 'platform-ca'), { recursive: true });
      await fs.symlink(outside, path.join(data, 'platform-ca'));
      await assert.rejects(ensurePlatformRoot(path.join(data, 'platform-ca')), {
        ...UNSAFE,
        message: new RegExp(`${path.join(data, 'platform-ca')} is a symbolic link`),
      });
      await assertOutsideUnchanged({ 'platform-root.pem': pki.root.certPem });
    });
  });

  describe('control socket', () => {
    it("refuses a link or a file at the socket's path instead of removing it", async () => {
      const socketPath = path.join(data, 'control.sock');
      await fs.symlink(outsideFile, socketPath);
      await assert.rejects(
        serveControlSocket(socketPath, async () => null),
        { ...UNSAFE, message: /control\.sock is a symbolic link/ },
      );
      assert.equal((await fs.lstat(socketPath)).isSymbolicLink(), true);
      await fs.rm(socketPath);
      await fs.writeFile(socketPath, 'not a socket');
      await assert.rejects(
        serveControlSocket(socketPath, async () => null),
        { ...UNSAFE, message: /control\.sock is not a socket/ },
      );
      assert.equal(await fs.readFile(socketPath, 'utf8'), 'not a socket');
      await assertOutsideUnchanged();
    });
  });
});
