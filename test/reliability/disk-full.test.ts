/**
 * A full disk, for real: each subsystem that writes the data directory on a 4 MiB tmpfs that is
 * filled to its last page, then freed. What must hold (issue 17, part 3): a write that cannot be
 * made durable is refused with E_STORAGE_FULL, nothing acknowledged is lost (checked by opening
 * everything again from the disk), an operation whose audit record cannot be written is not
 * made, and every subsystem works again once the space returns, without a restart.
 *
 * Where no tmpfs can be mounted the suite is skipped with the reason; io-errors.test.ts covers
 * the same promises through injected errors on every machine.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AUDIT_EVENTS, FileAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { AppLogs } from '../../platform/logs/index.js';
import { StorageService } from '../../platform/storage/index.js';
import { pairDestination, pairRouter, pairSource } from '../fixtures/route-pair.js';
import { snapshotTree } from '../fixtures/temp.js';
import { mountSmallDisk, type SmallDisk } from './disk.js';

const DISK_BYTES = 4 * 1024 * 1024;
/** Larger than a page, so it cannot fit in what is left of a file's last page on a full disk. */
const BIG = 'v'.repeat(64 * 1024);

describe('reliability: a full disk (tmpfs)', () => {
  let disk: SmallDisk | undefined;

  before(async function () {
    const mounted = await mountSmallDisk(DISK_BYTES);
    if ('reason' in mounted) {
      console.log(`      skipped: ${mounted.reason}; the injected-error suite (io-errors.test.ts) still runs`);
      this.skip();
    }
    disk = mounted as SmallDisk;
  });
  after(async () => {
    await disk?.unmount();
  });
  afterEach(async () => {
    await disk?.free();
  });

  const at = (...parts: string[]): string => path.join(disk!.dir, ...parts);

  it('refuses a storage put it cannot make durable (E_STORAGE_FULL), keeps every acknowledged value, and takes puts again once space returns', async () => {
    const keys = memoryDeviceKeys();
    const open = () => new StorageService({ root: at('storage'), keys });
    let service = open();
    let storage = await service.open('dev.t.store', 1024 * 1024);
    const acknowledged = new Map<string, string>();
    for (let i = 0; i < 20; i += 1) {
      await storage.put(`k${i}`, `value ${i}`);
      acknowledged.set(`k${i}`, `value ${i}`);
    }
    await disk!.fill();
    await assert.rejects(storage.put('big', BIG), (error: { code?: string }) => error.code === 'E_STORAGE_FULL');
    await assert.rejects(storage.put('k3', BIG), (error: { code?: string }) => error.code === 'E_STORAGE_FULL');
    // The refused puts changed nothing the app can see.
    assert.equal(await storage.get('big'), undefined);
    assert.equal(await storage.get('k3'), 'value 3');
    // Nothing acknowledged is lost: read back from the disk by a fresh service.
    await service.closeAll();
    service = open();
    storage = await service.open('dev.t.store', 1024 * 1024);
    for (const [key, value] of acknowledged) assert.equal(await storage.get(key), value, key);
    assert.equal(await storage.get('big'), undefined, 'a refused put does not come back after a reopen');

    await disk!.free();
    await storage.put('big', BIG);
    await storage.put('k3', 'after');
    await service.closeAll();
    storage = await open().open('dev.t.store', 1024 * 1024);
    assert.equal(await storage.get('big'), BIG);
    assert.equal(await storage.get('k3'), 'after');
    assert.equal(await storage.get('k19'), 'value 19');
    await storage.close();
  });

  it('refuses an audit record it cannot write (E_STORAGE_FULL) without a torn line, and records again once space returns', async () => {
    let audit = await FileAuditLog.open(at('audit'));
    await audit.record('deviceReboot', {}, { note: 'before' });
    const before = await fs.readFile(at('audit', 'system.jsonl'));
    await disk!.fill();
    await assert.rejects(audit.record('deviceReboot', {}, { note: BIG }), (error: { code?: string }) => error.code === 'E_STORAGE_FULL');
    // The line the disk took part of was cut back: the file is what it was.
    assert.deepEqual(await fs.readFile(at('audit', 'system.jsonl')), before);
    await disk!.free();
    await audit.record('deviceReboot', {}, { note: 'after' });
    audit = await FileAuditLog.open(at('audit'));
    const notes = audit.list({ log: 'system' }).map((record) => record.details?.note);
    assert.ok(notes.includes('before') && notes.includes('after'), JSON.stringify(notes));
    assert.ok(!notes.includes(BIG), 'the refused record is not in the trail');
  });

  it('refuses a route change it cannot write or audit (E_STORAGE_FULL), leaving config.json and the audit trail as they were, then takes it once space returns', async () => {
    const config = await ConfigStore.open(at('config.json'), 'test');
    const audit = await FileAuditLog.open(at('audit-routes'));
    const router = pairRouter(config, audit);
    const source = pairSource;
    const destination = pairDestination;
    // Fill, with the trail's last page full too: a record of any size then needs a new page.
    const trail = at('audit-routes', `${AUDIT_EVENTS.routesChanged.log}.jsonl`);
    const empty = (await fs.stat(trail).catch(() => ({ size: 0 }))).size;
    await audit.record('routesChanged', {}, { pad: '' });
    const size = (await fs.stat(trail)).size;
    const overhead = size - empty;
    await audit.record('routesChanged', {}, { pad: 'p'.repeat((((4096 - (size % 4096) - overhead) % 4096) + 4096) % 4096) });
    assert.equal((await fs.stat(trail)).size % 4096, 0, 'the padding fills the page exactly');
    const routesBefore = router.list().length;
    const files = await snapshotTree(at('audit-routes'));
    const document = await fs.readFile(at('config.json'), 'utf8');
    await disk!.fill();
    await assert.rejects(router.add(source, destination), (error: { code?: string }) => error.code === 'E_STORAGE_FULL');
    assert.equal(router.list().length, routesBefore);
    assert.equal(await fs.readFile(at('config.json'), 'utf8'), document);
    assert.deepEqual(await snapshotTree(at('audit-routes')), files);
    assert.deepEqual(
      (await fs.readdir(disk!.dir)).filter((name) => name.endsWith('.tmp')),
      [],
      'no temporary left behind',
    );

    await disk!.free();
    const added = await router.add(source, destination);
    const reopened = await ConfigStore.open(at('config.json'), 'test');
    assert.ok(reopened.read((doc) => doc.APPLICATIONS.APPS_ROUTING.routes.some((route) => route.id === added.id)));
    assert.ok(audit.list().some((record) => record.event === 'routesChanged' && (record.details?.route as { id?: string })?.id === added.id));
  });

  it('drops log lines the disk cannot take (E_STORAGE_FULL) without a torn line, and says how many once space returns', async () => {
    const errors: { code?: string }[] = [];
    const logs = new AppLogs({ root: at('logs'), onError: (_id, error) => errors.push(error as { code?: string }) });
    const writer = logs.writer('dev.t.log');
    writer.write(3, 'before');
    await logs.flush('dev.t.log');
    await disk!.fill();
    for (let i = 0; i < 4; i += 1) writer.write(3, `lost ${i} ${'x'.repeat(6000)}`);
    await assert.rejects(logs.flush('dev.t.log'), (error: { code?: string }) => error.code === 'E_STORAGE_FULL');
    assert.equal(errors.at(-1)?.code, 'E_STORAGE_FULL');
    await disk!.free();
    writer.write(3, 'after');
    await logs.flush('dev.t.log');
    const lines = (await fs.readFile(at('logs', 'dev.t.log', 'app.log'), 'utf8')).split('\n').filter(Boolean);
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\S+Z (INFO|WARNING) +\[(app|platform)\] /, 'every line whole');
    assert.match(lines[0]!, /\[app\] before$/);
    assert.match(lines.at(-2)!, /\[platform\] \d+ log records dropped: the log could not be written \(E_STORAGE_FULL\)$/);
    assert.match(lines.at(-1)!, /\[app\] after$/);
  });
});
