/**
 * I/O errors injected through the file-system interface (DataDir: every data-directory write
 * goes through it): ENOSPC and EIO on write, fsync and rename, for the faults a tmpfs cannot
 * make and on machines where none can be mounted. The same promises as disk-full.test.ts: a
 * write that is not durable is refused with its code (E_STORAGE_FULL, E_IO), nothing
 * acknowledged is lost, an operation whose audit record cannot be written is not made, and
 * each subsystem works again once the fault is gone.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FileAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { AppLogs } from '../../platform/logs/index.js';
import { StorageService } from '../../platform/storage/index.js';
import { pairDestination, pairRouter, pairSource } from '../fixtures/route-pair.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { FaultyDisk } from './disk.js';

const coded = (code: string) => (error: { code?: string }) => {
  assert.equal(error.code, code);
  return true;
};

describe('reliability: injected I/O errors', () => {
  let dir: string;
  let disk: FaultyDisk;
  beforeEach(async () => {
    dir = await makeTempDir('isogate-io-');
    disk = new FaultyDisk();
  });
  afterEach(async () => {
    disk.restore();
    await removeDir(dir);
  });

  describe('storage', () => {
    const keys = memoryDeviceKeys();
    const service = () => new StorageService({ root: path.join(dir, 'storage'), keys });

    for (const [operation, code, expected, partial] of [
      ['sync', 'EIO', 'E_IO', false],
      ['write', 'ENOSPC', 'E_STORAGE_FULL', true],
      ['write', 'EIO', 'E_IO', true],
    ] as const) {
      it(`refuses a put whose ${operation} fails with ${code} (${expected}), keeps what was acknowledged, and never brings the refused value back`, async () => {
        let storage = await service().open('dev.t.s', 1024 * 1024);
        await storage.put('kept', 'one');
        await storage.put('replaced', 'old');
        disk.inject({ operation, code, path: /data\.log$/, partial });
        await assert.rejects(storage.put('replaced', 'refused'), coded(expected));
        await assert.rejects(storage.put('new', 'refused'), coded(expected));
        assert.equal(await storage.get('replaced'), 'old');
        assert.deepEqual(await storage.list(''), ['kept', 'replaced']);
        disk.clear();
        await storage.put('after', 'two');
        await storage.close();
        storage = await service().open('dev.t.s', 1024 * 1024);
        assert.deepEqual(await storage.list(''), ['after', 'kept', 'replaced']);
        assert.equal(await storage.get('replaced'), 'old');
        assert.equal(await storage.get('after'), 'two');
        await storage.close();
      });
    }

    it('refuses an erased value whose delete cannot be synced, and keeps it', async () => {
      const storage = await service().open('dev.t.s', 1024 * 1024);
      await storage.put('k', 'v');
      disk.inject({ operation: 'sync', code: 'EIO', path: /data\.log$/ });
      await assert.rejects(storage.delete('k'), coded('E_IO'));
      assert.equal(await storage.get('k'), 'v');
      await storage.close();
      disk.clear();
      const again = await service().open('dev.t.s', 1024 * 1024);
      assert.equal(await again.get('k'), 'v');
      await again.close();
    });
  });

  describe('audit: fail closed', () => {
    const source = pairSource;
    const destination = pairDestination;

    for (const [operation, code, expected] of [
      ['write', 'EIO', 'E_IO'],
      ['sync', 'EIO', 'E_IO'],
      ['write', 'ENOSPC', 'E_STORAGE_FULL'],
    ] as const) {
      it(`does not add, change or remove a route whose audit record fails to ${operation} (${code}): refused with ${expected}, config.json unchanged`, async () => {
        const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
        const audit = await FileAuditLog.open(path.join(dir, 'audit'));
        const router = pairRouter(config, audit);
        const kept = await router.add(source, destination);
        const before = await snapshotTree(dir);
        disk.inject({ operation, code, path: /\/audit\//, partial: operation === 'write' });
        await assert.rejects(router.add(source, { ...destination, endpoint: 'other' }, { overflow: 'drop-oldest' }), coded(expected));
        await assert.rejects(router.update(kept.id, { active: false }), coded(expected));
        await assert.rejects(router.remove(kept.id), coded(expected));
        assert.deepEqual(await snapshotTree(dir), before, 'config.json and the trail unchanged, no torn line');
        assert.deepEqual(
          router.list().map((route) => [route.id, route.active]),
          [[kept.id, true]],
        );
        assert.ok(disk.failures >= 3);

        disk.clear();
        await router.update(kept.id, { active: false });
        const reopened = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
        assert.equal(
          reopened.read((doc) => doc.APPLICATIONS.APPS_ROUTING.routes[0]?.active),
          false,
        );
        const trail = await FileAuditLog.open(path.join(dir, 'audit'));
        assert.deepEqual(
          trail
            .list()
            .filter((record) => record.event === 'routesChanged')
            .map((record) => record.details?.action),
          ['update', 'add'],
          'the refused changes left no record; the one made after recovery did',
        );
      });
    }

    it('refuses an audit record whose fsync fails, and cuts the file back to what it was', async () => {
      const audit = await FileAuditLog.open(path.join(dir, 'audit'));
      const before = await snapshotTree(dir);
      disk.inject({ operation: 'sync', code: 'EIO', path: /system\.jsonl$/ });
      await assert.rejects(audit.record('deviceReboot'), coded('E_IO'));
      assert.deepEqual(await snapshotTree(dir), before);
      disk.clear();
      await audit.record('deviceReboot');
      const reopened = await FileAuditLog.open(path.join(dir, 'audit'));
      assert.deepEqual(
        reopened
          .list({ log: 'system' })
          .map((record) => record.event)
          .reverse(),
        ['auditStart', 'deviceReboot', 'auditStart'],
      );
    });
  });

  describe('configuration', () => {
    for (const [operation, code, expected] of [
      ['rename', 'EIO', 'E_IO'],
      ['write', 'ENOSPC', 'E_STORAGE_FULL'],
      ['sync', 'EIO', 'E_IO'],
    ] as const) {
      it(`refuses a change whose ${operation} fails with ${code} (${expected}): the document, on disk and in memory, is as it was, no temporary left`, async () => {
        const file = path.join(dir, 'config.json');
        const config = await ConfigStore.open(file, 'test');
        const text = await fs.readFile(file, 'utf8');
        const changes: unknown[] = [];
        config.on('change', (change) => changes.push(change));
        disk.inject({ operation, code, path: /config\.json/, partial: operation === 'write' });
        await assert.rejects(
          config.update((doc) => {
            doc.MODE_SWITCH.is_developer_mode = true;
          }),
          coded(expected),
        );
        assert.equal(await fs.readFile(file, 'utf8'), text);
        assert.equal(
          config.read((doc) => doc.MODE_SWITCH.is_developer_mode),
          false,
        );
        assert.deepEqual(changes, []);
        assert.deepEqual(await fs.readdir(dir), ['config.json']);
        disk.clear();
        await config.update((doc) => {
          doc.MODE_SWITCH.is_developer_mode = true;
        });
        assert.equal(
          (await ConfigStore.open(file, 'test')).read((doc) => doc.MODE_SWITCH.is_developer_mode),
          true,
        );
      });
    }
  });

  describe('logs', () => {
    it('drops the lines an I/O error kept from the disk (E_IO, reported), writes no partial line, and announces the count when writing works again', async () => {
      const errors: { code?: string }[] = [];
      const logs = new AppLogs({ root: path.join(dir, 'logs'), onError: (_id, error) => errors.push(error as { code?: string }) });
      const writer = logs.writer('dev.t.log');
      writer.write(3, 'before');
      await logs.flush('dev.t.log');
      disk.inject({ operation: 'write', code: 'EIO', path: /app\.log$/, partial: true });
      writer.write(3, 'lost 1');
      writer.write(3, 'lost 2');
      await assert.rejects(logs.flush('dev.t.log'), coded('E_IO'));
      assert.deepEqual(
        errors.map((error) => error.code),
        ['E_IO'],
      );
      assert.equal(writer.dropped(), 2);
      disk.clear();
      writer.write(3, 'after');
      await logs.flush('dev.t.log');
      const lines = (await fs.readFile(path.join(dir, 'logs', 'dev.t.log', 'app.log'), 'utf8')).split('\n');
      assert.deepEqual(
        lines.map((line) => line.replace(/^\S+ /, '')),
        ['INFO     [app] before', 'WARNING  [platform] 2 log records dropped: the log could not be written (E_IO)', 'INFO     [app] after', ''],
      );
    });
  });
});
