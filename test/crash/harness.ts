/**
 * The crash harness (issue 17): a gateway in a child process is killed with SIGKILL at a seeded
 * random instant while the harness installs, updates and uninstalls apps, saves configurations,
 * adds and removes routes and changes start rules, and while an Autostart app writes storage
 * (values of several sizes, one key overwritten often enough to compact its log) and logs every
 * acknowledged write, its log files rotating every 16 KiB (several times a second). After each
 * kill, the storage is opened as the gateway would, then a gateway starts again and the
 * invariants are checked:
 *
 * - no half-installed app: `apps/`, the app list and the configuration agree; staging, trash,
 *   updates and uninstall records are empty; nothing is quarantined;
 * - no torn storage value, and every write the app was told had succeeded is there (or a later one);
 * - the configuration is valid (the gateway started without repairing it) and every saved
 *   configuration, install, uninstall and route the gateway acknowledged is as acknowledged (or
 *   as a later request that may have landed before the kill);
 * - the integrity check is clean (no integrity violation audited at the start);
 * - every Autostart app runs again;
 * - the log files are the manual's (app.log, app.1.log .. app.4.log, none past its size), and
 *   the writes they record are in order across them: a rotation cut by a kill loses no file's place.
 *
 * `npm run test:crash` (CRASH_KILLS, default 25; CRASH_SEED to replay; CRASH_BUDGET_S stops early
 * with what was done, default none). The seed is printed first and again on failure: the same
 * seed gives the same operations and kill instants (the gateway's own timing still varies).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { callControl } from '../../platform/api/control-socket.js';
import { FileDeviceKeyProvider } from '../../platform/device/index.js';
import { StorageService } from '../../platform/storage/index.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { seededRandom } from '../fixtures/random.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const CHILD = fileURLToPath(new URL('../fixtures/gateway-child.ts', import.meta.url));
const WRITER = 'com.crash.writer';
const PLANT = 'com.crash.plant';
const SPARE = 'com.crash.spare';
const SLOTS = 40;
/** The gateway's log files of this run rotate at this size (the manual's 10 MB would take minutes), so kills land in rotations. */
const LOG_FILE_BYTES = 16 * 1024;
const LOG_FILES = 5;

// The value of write n: its number, then a filler whose length follows from n, so a torn or
// mixed value cannot pass for a whole one.
const valueSize = (n: number): number => 16 + ((n * 7919) % 6000);
const WRITER_SOURCE = `
import { log, storage, emit } from 'isogate:sdk';
let n = Date.now() * 1000;
const size = (n) => 16 + ((n * 7919) % 6000);
const next = async () => {
  const slot = n % ${SLOTS};
  await storage.put('slot' + slot, n + ':' + 'x'.repeat(size(n)));
  log.info('acknowledged ' + n);
  emit('out', { n }).catch(() => undefined);
  n += 1;
  setTimeout(next, 1);
};
next();
`;
// A mark in storage at every start: an app installed across a kill must keep it (issue 17: an
// uninstall cut after the storage wipe left the app installed, with its storage gone).
const SINK_SOURCE = "import { on, storage } from 'isogate:sdk';\nawait storage.put('mark', 'kept');\non('in', () => undefined);\n";

const endpoint = (name: string, direction: 'source' | 'destination'): EndpointDeclaration => ({ name, direction, dataType: 'reading', format: 'json' });

interface AppRow {
  package_id: string;
  status: string;
  launch_rule: string;
  version: string;
}

/** What the gateway acknowledged, and what it was asked after that and may have done before the kill. */
interface Expectations {
  installed: Map<string, 'yes' | 'no' | 'either'>;
  config: Map<string, Set<string>>;
  routes: Map<string, 'yes' | 'no' | 'either'>;
}

async function main(): Promise<void> {
  const seed = process.env.CRASH_SEED ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
  const kills = Number(process.env.CRASH_KILLS ?? 25);
  const budgetMs = process.env.CRASH_BUDGET_S ? Number(process.env.CRASH_BUDGET_S) * 1000 : Number.POSITIVE_INFINITY;
  if (!Number.isInteger(seed) || !Number.isInteger(kills) || kills < 1 || Number.isNaN(budgetMs))
    throw new Error('CRASH_SEED, CRASH_KILLS and CRASH_BUDGET_S are integers');
  process.stdout.write(`crash harness: seed ${seed}, ${kills} kills (replay: CRASH_SEED=${seed} CRASH_KILLS=${kills} npm run test:crash)\n`);
  const rand = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const started = Date.now();

  const dir = await makeTempDir('isogate-crash-');
  const serving = await serveStore({ dir: path.join(dir, 'store') });
  let child: ChildProcess | undefined;
  let kill = 0;
  // The operations of the round under check, printed with a failure: the seed replays them, the timing may not.
  let round: string[] = [];
  let failed = false;
  try {
    const acme = path.join(dir, 'acme');
    await serving.store.issuePublisher('Crash Ltd', acme);
    const signer = {
      keyPem: await fs.readFile(path.join(acme, 'publisher.key.pem'), 'utf8'),
      certPem: await fs.readFile(path.join(acme, 'publisher.cert.pem'), 'utf8'),
    };
    const publish = async (manifest: AppManifest, source: string): Promise<void> => {
      const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from(source)]]));
      await serving.store.publish(await signPackage(unsigned, signer));
    };
    await publish(
      sampleManifest({
        package_id: WRITER,
        name: 'Writer',
        publisher: 'Crash Ltd',
        endpoints: [endpoint('out', 'source')],
        resources: { memoryMb: 32, cpuMsPerEvent: 200, storageMb: 2 },
      }),
      WRITER_SOURCE,
    );
    // The store lists the newest version of an app only: an update publishes the next one first.
    let plantMajor = 1;
    const publishPlant = (major: number): Promise<void> =>
      publish(
        sampleManifest({
          package_id: PLANT,
          name: 'Plant',
          publisher: 'Crash Ltd',
          version: `${major}.0.0`,
          endpoints: [endpoint('in', 'destination')],
          configuration: { schema: { type: 'object', properties: { site: { type: 'string' } } }, defaults: { site: 'nowhere' } },
        }),
        SINK_SOURCE,
      );
    await publishPlant(plantMajor);
    await publish(sampleManifest({ package_id: SPARE, name: 'Spare', publisher: 'Crash Ltd', endpoints: [endpoint('in', 'destination')] }), SINK_SOURCE);
    const trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);
    const dataDir = path.join(dir, 'data');

    const startChild = async (): Promise<{ socket: string; process: ChildProcess }> => {
      const spawned = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', CHILD], {
        env: {
          ...process.env,
          ISOGATE_TEST_GATEWAY: JSON.stringify({ dataDir, storeUrl: serving.url, trustRootFile: trust, updateWatchMs: 200, appLogFileBytes: LOG_FILE_BYTES }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      spawned.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const socket = await new Promise<string>((resolve, reject) => {
        let out = '';
        spawned.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const line = out.split('\n').find((candidate) => candidate.startsWith('{'));
          if (line && out.includes('\n')) resolve((JSON.parse(line) as { controlSocket: string }).controlSocket);
        });
        spawned.once('exit', (code, signal) => reject(new Error(`the gateway did not start (${code ?? signal}): ${stderr}${out}`)));
      });
      return { socket, process: spawned };
    };
    const call = (socket: string, op: string, params: Record<string, unknown> = {}): Promise<any> => callControl(socket, op, params);

    // The first start: the writer installed and on Autostart.
    let gateway = await startChild();
    child = gateway.process;
    await call(gateway.socket, 'apps.install', { id: WRITER });
    await call(gateway.socket, 'apps.rule', { id: WRITER, rule: 'auto' });
    await call(gateway.socket, 'apps.start', { id: WRITER });
    const expected: Expectations = { installed: new Map([[WRITER, 'yes']]), config: new Map(), routes: new Map() };
    let auditLines = 0;
    let rotations = 0;
    let marked = new Set<string>();

    for (kill = 1; kill <= kills && Date.now() - started < budgetMs; kill += 1) {
      // Operations, one after another, until the kill at a seeded instant.
      const killAfterMs = 100 + Math.floor(rand() * 3400);
      const socket = gateway.socket;
      const victim = gateway.process;
      const dead = new Promise<void>((resolve) => victim.once('exit', () => resolve()));
      const timer = setTimeout(() => victim.kill('SIGKILL'), killAfterMs);
      let alive = true;
      void dead.then(() => {
        alive = false;
      });
      const apps = (): Promise<AppRow[]> => call(socket, 'apps.list');
      const done: string[] = [];
      round = done;
      const installAsked = new Set<string>();
      const refusals = new Map<string, number>();
      let answered = 0;
      while (alive) {
        const id = pick([PLANT, SPARE]);
        const choice = pick(['install', 'uninstall', 'update', 'config', 'route-add', 'route-remove', 'rule', 'start'] as const);
        done.push(`${choice} ${id.split('.').at(-1)}`);
        try {
          const rows = await apps();
          const row = rows.find((candidate) => candidate.package_id === id);
          if (choice === 'install' && !row) {
            installAsked.add(id);
            expected.installed.set(id, 'either');
            await call(socket, 'apps.install', { id });
            expected.installed.set(id, 'yes');
          } else if (choice === 'uninstall' && row) {
            expected.installed.set(id, 'either');
            await call(socket, 'apps.uninstall', { id });
            expected.installed.set(id, 'no');
            expected.config.delete(id);
          } else if (choice === 'update' && row && id === PLANT) {
            plantMajor += 1;
            await publishPlant(plantMajor);
            await call(socket, 'apps.update', { id, version: `${plantMajor}.0.0` });
          } else if (choice === 'config' && row && id === PLANT) {
            const value = JSON.stringify({ site: `site-${Math.floor(rand() * 1e6)}` });
            // A kill may cut the request before it lands: what the app has now stays possible. With
            // nothing acknowledged since its install that is what the gateway holds (the defaults),
            // which the harness once left out and took the defaults for a lost configuration (seed 1775760123).
            const possible = expected.config.get(id) ?? new Set([JSON.stringify(await call(socket, 'apps.config.get', { id }))]);
            possible.add(value);
            expected.config.set(id, possible);
            await call(socket, 'apps.config.set', { id, value: JSON.parse(value) });
            expected.config.set(id, new Set([value]));
          } else if (choice === 'route-add' && row) {
            const route = await call(socket, 'routes.add', { source: `${WRITER}:out`, destination: `${id}:in` });
            expected.routes.set(route.id, 'yes');
          } else if (choice === 'route-remove') {
            const routes = (await call(socket, 'routes.list')) as { id: string }[];
            if (routes.length > 0) {
              const route = pick(routes);
              expected.routes.set(route.id, 'either');
              await call(socket, 'routes.remove', { id: route.id });
              expected.routes.set(route.id, 'no');
            }
          } else if (choice === 'start' && row) {
            await call(socket, 'apps.start', { id });
          } else if (choice === 'rule' && row) {
            await call(socket, 'apps.rule', { id, rule: pick(['auto', 'manual']) });
          }
          answered += 1;
        } catch (error) {
          if (!alive || victim.killed || (error as { code?: string }).code === 'E_UNAVAILABLE') break;
          // A refusal the gateway answered (a busy app, an update that rolled back): not a crash finding.
          const code = (error as { code?: string }).code;
          if (!code || code === 'E_INTERNAL') throw error;
          refusals.set(code, (refusals.get(code) ?? 0) + 1);
        }
      }
      clearTimeout(timer);
      await dead;

      // The writer's storage, opened as the gateway opens it after a crash.
      const keys = await new FileDeviceKeyProvider(path.join(dataDir, 'device')).open();
      const storage = new StorageService({ root: path.join(dataDir, 'storage'), keys });
      const store = await storage.open(WRITER, 2 * 1024 * 1024);
      const logs = await readLogs(path.join(dataDir, 'logs', WRITER));
      const logText = logs.text;
      if (logs.rotated) rotations += 1;
      const acknowledged = new Map<number, number>();
      // Whole lines only: a line a kill cut short could end in a shorter number.
      for (const match of logText.matchAll(/acknowledged (\d+)\n/g)) {
        const n = Number(match[1]);
        const slot = n % SLOTS;
        acknowledged.set(slot, Math.max(acknowledged.get(slot) ?? 0, n));
      }
      for (let slot = 0; slot < SLOTS; slot += 1) {
        const value = await store.get(`slot${slot}`);
        const newest = acknowledged.get(slot);
        if (value === undefined) {
          assert.equal(newest, undefined, `slot${slot}: the acknowledged write ${newest} is missing`);
          continue;
        }
        assert.equal(typeof value, 'string');
        const [head, filler] = (value as string).split(':');
        const n = Number(head);
        assert.ok(Number.isInteger(n) && n % SLOTS === slot, `slot${slot} holds a value of another slot: ${head}`);
        assert.equal(filler, 'x'.repeat(valueSize(n)), `slot${slot}: value ${n} is torn`);
        if (newest !== undefined) assert.ok(n >= newest, `slot${slot}: ${n} is older than the acknowledged ${newest}`);
      }
      const markedNow = new Set<string>();
      const uninstallRecorded = new Set<string>();
      for (const id of [PLANT, SPARE]) {
        // Opened only where it exists: opening would make a log for an app that has none.
        if (!(await fs.stat(path.join(dataDir, 'storage', id, 'data.log')).catch(() => undefined))) continue;
        // An uninstall past its commit point (its record written) erases the storage, overwriting
        // it before the unlink: a kill there leaves a log that fails its authentication, which the
        // next start finishes erasing. The start below checks that the app is gone.
        if (await fs.stat(path.join(dataDir, 'uninstalls', `${id}.json`)).catch(() => undefined)) {
          uninstallRecorded.add(id);
          continue;
        }
        if ((await (await storage.open(id, 1024 * 1024)).get('mark')) === 'kept') markedNow.add(id);
      }
      await storage.closeAll();

      // A gateway again, and the invariants.
      gateway = await startChild();
      child = gateway.process;
      const audit = (await fs.readFile(path.join(dataDir, 'audit', 'system.jsonl'), 'utf8')).trim().split('\n');
      const since = audit.slice(auditLines).map((line) => JSON.parse(line) as { event: string; text: string });
      auditLines = audit.length;
      const violations = since.filter((record) => record.event === 'integrityViolation');
      assert.deepEqual(violations, [], 'the start found no integrity violation and repaired no configuration');
      for (const folder of ['staging', 'trash', 'updates', 'uninstalls']) {
        assert.deepEqual(await fs.readdir(path.join(dataDir, folder)).catch(() => []), [], `${folder}/ is empty after the start`);
      }
      const rows = (await call(gateway.socket, 'apps.list')) as AppRow[];
      const onDisk = (await fs.readdir(path.join(dataDir, 'apps'))).sort();
      assert.deepEqual(rows.map((row) => row.package_id).sort(), onDisk, 'the app list is what apps/ holds');
      for (const id of uninstallRecorded) assert.ok(!onDisk.includes(id), `${id}'s uninstall was recorded before the kill, so the start finished it`);
      assert.ok(!rows.some((row) => row.status === 'quarantined'), 'nothing is quarantined');
      const config = JSON.parse(await fs.readFile(path.join(dataDir, 'config.json'), 'utf8'));
      const entries = config.APPLICATIONS.APPS_CONTROL.applications.map((entry: { package_id: string }) => entry.package_id).sort();
      assert.deepEqual(entries, onDisk, 'every installed app has its configuration entry, and no other has one');
      for (const id of marked) {
        if (onDisk.includes(id) && !installAsked.has(id)) assert.ok(markedNow.has(id), `${id} is installed across the kill, but its storage is gone`);
      }
      marked = new Set([...markedNow].filter((id) => onDisk.includes(id)));
      for (const [id, state] of expected.installed) {
        const present = onDisk.includes(id);
        if (state !== 'either') assert.equal(present, state === 'yes', `${id} should ${state === 'yes' ? '' : 'not '}be installed`);
        expected.installed.set(id, present ? 'yes' : 'no');
        if (!present) {
          assert.equal(id in config, false, `the configuration of the uninstalled ${id} is gone`);
          expected.config.delete(id);
        }
      }
      for (const [id, possible] of expected.config) {
        const value = JSON.stringify(await call(gateway.socket, 'apps.config.get', { id }));
        assert.ok(possible.has(value), `${id}'s configuration ${value} is none of the acknowledged or requested ${[...possible].join(', ')}`);
        expected.config.set(id, new Set([value]));
      }
      const routeIds = new Set(((await call(gateway.socket, 'routes.list')) as { id: string }[]).map((route) => route.id));
      for (const [id, state] of expected.routes) {
        if (state !== 'either') assert.equal(routeIds.has(id), state === 'yes', `route ${id} should ${state === 'yes' ? '' : 'not '}be there`);
        if (routeIds.has(id)) expected.routes.set(id, 'yes');
        else expected.routes.delete(id);
      }
      const autostart = rows.filter((row) => row.launch_rule === 'auto').map((row) => row.package_id);
      assert.ok(autostart.includes(WRITER));
      const deadline = Date.now() + 30_000;
      for (;;) {
        const now = (await call(gateway.socket, 'apps.list')) as AppRow[];
        const waiting = autostart.filter((id) => now.find((row) => row.package_id === id)?.status !== 'running');
        if (waiting.length === 0) break;
        assert.ok(Date.now() < deadline, `Autostart apps not running again: ${waiting.join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      process.stdout.write(
        `kill ${kill}/${kills} after ${killAfterMs} ms, during "${done.at(-1) ?? 'nothing'}" (${done.length} operations asked, ${answered} answered${refusals.size ? `, refused: ${[...refusals].map(([code, count]) => `${code} x${count}`).join(', ')}` : ''}): invariants hold (${rows.length} apps, ${routeIds.size} routes, ${logs.files} log files)\n`,
      );
    }
    // A run whose kills never met a rotated log did not try log rotation at all.
    if (kill - 1 >= 5) assert.ok(rotations > 0, 'the log files rotated within the run');
    process.stdout.write(
      `crash harness: ${kill - 1} kills, every invariant held, the writer's log rotated before ${rotations} of them (seed ${seed}, ${Math.round((Date.now() - started) / 1000)} s)\n`,
    );
  } catch (error) {
    failed = true;
    process.stderr.write(`crash harness FAILED at kill ${kill} (replay: CRASH_SEED=${seed} CRASH_KILLS=${kills} npm run test:crash)\n`);
    process.stderr.write(`the round's operations, the last one cut by the kill: ${round.join(', ')}\n`);
    throw error;
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await serving.close();
    // CRASH_KEEP=1 keeps a failed run's data directory, to read what the kill left.
    if (failed && process.env.CRASH_KEEP === '1') process.stderr.write(`the data directory is kept: ${path.join(dir, 'data')}\n`);
    else await removeDir(dir);
  }
}

/**
 * The writer's log files, oldest first, checked: only the manual's names, at most its five
 * files, none past its size, and the acknowledged writes in the order they were made across
 * all of them (a rotation cut by a kill may leave a gap, never a file out of its place).
 */
async function readLogs(logDir: string): Promise<{ text: string; files: number; rotated: boolean }> {
  const names = await fs.readdir(logDir).catch(() => [] as string[]);
  const unexpected = names.filter((name) => !/^app(\.[1-9]\d*)?\.log$/.test(name));
  assert.deepEqual(unexpected, [], `the log folder holds only app.log and app.N.log: ${unexpected.join(', ')}`);
  assert.ok(names.length <= LOG_FILES, `at most ${LOG_FILES} log files, not ${names.length}: ${names.join(', ')}`);
  const index = (name: string): number => (name === 'app.log' ? 0 : Number(name.split('.')[1]));
  const ordered = names.sort((a, b) => index(b) - index(a));
  let text = '';
  for (const name of ordered) {
    assert.ok(index(name) < LOG_FILES, `${name}: no log file past app.${LOG_FILES - 1}.log`);
    const content = await fs.readFile(path.join(logDir, name), 'utf8');
    assert.ok(Buffer.byteLength(content) <= LOG_FILE_BYTES, `${name} holds ${Buffer.byteLength(content)} bytes, past its ${LOG_FILE_BYTES}`);
    text += content;
  }
  let previous = -1;
  for (const match of text.matchAll(/acknowledged (\d+)\n/g)) {
    const n = Number(match[1]);
    assert.ok(n > previous, `the log files hold acknowledged write ${n} after ${previous}: a rotation put a file out of its place`);
    previous = n;
  }
  return { text, files: names.length, rotated: names.some((name) => name !== 'app.log') };
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
