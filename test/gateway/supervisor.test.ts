/**
 * The supervisor (issue 17): restarts after a crash with a doubling backoff, tells the restarted
 * gateway why (which audits it as the manual's restart event), starts it with
 * ISOGATE_EMERGENCY_REASON after N crashes within the window and keeps that for every later
 * restart, does not restart a gateway that never became ready, and passes a stop on. The
 * gateway ends itself when the supervisor dies (no orphan holding the lock). The systemd side:
 * READY=1, WATCHDOG=1 and STOPPING=1 reach a notify socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { type CrashReport, Supervisor, type SupervisorOptions } from '../../platform/supervisor/index.js';
import { supervisorSettings } from '../../platform/supervisor/main.js';
import { SystemdNotifier } from '../../platform/supervisor/notify.js';
import { isIsogateError } from '../../sdk/errors.js';
import { spawnGateway } from '../fixtures/gateway-process.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';

// A stand-in gateway: reports the environment it was given, says it is ready, then crashes
// (SIGKILL) unless it was started in emergency mode, where it waits for SIGTERM and exits 0.
const FAKE_GATEWAY = `
const fs = require('node:fs');
fs.appendFileSync(process.env.FAKE_OUT, JSON.stringify({ restart: process.env.ISOGATE_RESTART_REASON ?? null, emergency: process.env.ISOGATE_EMERGENCY_REASON ?? null, supervised: process.env.ISOGATE_SUPERVISED, arenas: process.env.MALLOC_ARENA_MAX ?? null }) + '\\n');
process.on('SIGTERM', () => process.exit(0));
process.send({ type: 'ready' });
if (!process.env.ISOGATE_EMERGENCY_REASON) process.kill(process.pid, 'SIGKILL');
setInterval(() => undefined, 1000);
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the supervisor', function () {
  this.timeout(180_000);
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  const fake = (options: Partial<SupervisorOptions> = {}): { supervisor: Supervisor; out: string } => {
    const out = path.join(dir, 'starts.jsonl');
    const supervisor = new Supervisor({
      command: process.execPath,
      args: ['-e', FAKE_GATEWAY],
      // Without the allocator setting of the shell that runs the tests: the supervisor adds it.
      env: { ...process.env, MALLOC_ARENA_MAX: undefined, FAKE_OUT: out },
      crashLimit: 3,
      crashWindowMs: 60_000,
      backoffMs: 10,
      maxBackoffMs: 30,
      log: () => undefined,
      ...options,
    });
    return { supervisor, out };
  };
  const starts = async (out: string) =>
    (await fs.readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { restart: string | null; emergency: string | null; supervised: string; arenas: string | null });

  it('restarts after each crash with a doubling, capped backoff, says why, and starts in emergency mode after N crashes in the window', async () => {
    const { supervisor, out } = fake();
    const crashes: CrashReport[] = [];
    supervisor.on('crashed', (report) => crashes.push(report));
    const code = supervisor.run();
    supervisor.on('ready', () => {
      if (crashes.length === 3) supervisor.stop('SIGTERM');
    });
    assert.equal(await code, 0);
    assert.deepEqual(
      crashes.map((crash) => [crash.how, crash.crashesInWindow, crash.delayMs]),
      [
        ['signal SIGKILL', 1, 10],
        ['signal SIGKILL', 2, 20],
        ['signal SIGKILL', 3, 30],
      ],
    );
    const seen = await starts(out);
    assert.equal(seen.length, 4);
    assert.deepEqual(
      seen.map((start) => start.supervised),
      ['1', '1', '1', '1'],
    );
    // glibc reads it only at a process's start, so every gateway the supervisor starts is given it.
    assert.deepEqual(
      seen.map((start) => start.arenas),
      ['2', '2', '2', '2'],
    );
    assert.equal(seen[0]!.restart, null);
    assert.match(seen[1]!.restart!, /signal SIGKILL.*restart 1 by the supervisor/);
    assert.deepEqual(
      seen.map((start) => start.emergency !== null),
      [false, false, false, true],
    );
    assert.match(seen[3]!.emergency!, /crashed 3 times within 60 s \(the last: signal SIGKILL\)/);
  });

  it("keeps an admin's own MALLOC_ARENA_MAX for the gateway", async () => {
    const { supervisor, out } = fake({ crashLimit: 1, env: { ...process.env, MALLOC_ARENA_MAX: '4', FAKE_OUT: path.join(dir, 'starts.jsonl') } });
    supervisor.on('ready', () => supervisor.stop('SIGTERM'));
    await supervisor.run();
    assert.equal((await starts(out))[0]!.arenas, '4');
  });

  it('keeps the emergency reason for every later restart', async () => {
    const { supervisor, out } = fake({ crashLimit: 1 });
    let readies = 0;
    supervisor.on('ready', (child) => {
      readies += 1;
      // In emergency mode the stand-in stays up: crash it twice more by hand.
      if (readies === 2 || readies === 3) child.kill('SIGKILL');
      if (readies === 4) supervisor.stop('SIGTERM');
    });
    assert.equal(await supervisor.run(), 0);
    const seen = await starts(out);
    assert.deepEqual(
      seen.map((start) => start.emergency !== null),
      [false, true, true, true],
    );
  });

  it('does not restart a gateway that never became ready, and ends with its exit code', async () => {
    const out = path.join(dir, 'starts.jsonl');
    const neverReady = new Supervisor({
      command: process.execPath,
      args: ['-e', "require('node:fs').appendFileSync(process.env.FAKE_OUT, '{}\\n'); process.exit(3);"],
      env: { ...process.env, FAKE_OUT: out },
      log: () => undefined,
    });
    assert.equal(await neverReady.run(), 3);
    assert.equal((await fs.readFile(out, 'utf8')).trim().split('\n').length, 1);
  });

  it('checks each option at construction (E_OPTION) and each setting from flags or environment (E_USAGE)', () => {
    for (const options of [
      { command: '' },
      { crashLimit: 0 },
      { crashWindowMs: 10 },
      { backoffMs: -1 },
      { backoffMs: 100, maxBackoffMs: 50 },
      { crashLimit: 1.5 },
    ]) {
      assert.throws(
        () => new Supervisor({ command: process.execPath, args: [], ...options }),
        (error: unknown) => isIsogateError(error, 'E_OPTION'),
        JSON.stringify(options),
      );
    }
    assert.deepEqual(supervisorSettings(['start', '--crash-limit', '7', '--crash-window=30'], {}), { crashLimit: 7, crashWindowMs: 30_000 });
    assert.deepEqual(supervisorSettings(['start'], { ISOGATE_CRASH_LIMIT: '2', ISOGATE_RESTART_BACKOFF_MS: '5' }), {
      crashLimit: 2,
      backoffMs: 5,
      maxBackoffMs: 30_000,
    });
    for (const [argv, env] of [
      [['--crash-limit', 'many'], {}],
      [['--crash-limit', '0'], {}],
      [['--crash-window', '-5'], {}],
      [[], { ISOGATE_CRASH_WINDOW: '1e3' }],
      [[], { ISOGATE_RESTART_BACKOFF_MS: '9999999' }],
    ] as const) {
      assert.throws(
        () => supervisorSettings(argv, env),
        (error: unknown) => isIsogateError(error, 'E_USAGE'),
        JSON.stringify([argv, env]),
      );
    }
  });

  it('reads the notify socket and the watchdog from the environment, refusing what systemd never sets (E_OPTION)', () => {
    assert.equal(SystemdNotifier.fromEnv({ env: {} }), undefined, 'not under systemd: nothing to notify');
    assert.ok(SystemdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '/run/systemd/notify' } }));
    assert.ok(SystemdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '@abstract', WATCHDOG_USEC: '30000000' } }));
    for (const env of [
      { NOTIFY_SOCKET: 'relative/notify' },
      { NOTIFY_SOCKET: '/run/notify', WATCHDOG_USEC: '0' },
      { NOTIFY_SOCKET: '/run/notify', WATCHDOG_USEC: 'soon' },
      { NOTIFY_SOCKET: '/run/notify', WATCHDOG_USEC: '1.5' },
    ]) {
      assert.throws(
        () => SystemdNotifier.fromEnv({ env }),
        (error: unknown) => isIsogateError(error, 'E_OPTION'),
        JSON.stringify(env),
      );
    }
  });

  describe('isogate start, end to end', () => {
    it('restarts a killed gateway, which audits the restart; a SIGTERM to the supervisor stops both, exit 0', async () => {
      const dataDir = path.join(dir, 'data');
      const run = spawnGateway(['start', '--data', dataDir, '--json'], { env: { ISOGATE_RESTART_BACKOFF_MS: '50' } });
      const first = await run.line((line) => typeof line.pid === 'number');
      process.kill(first.pid as number, 'SIGKILL');
      const second = await run.line((line) => typeof line.pid === 'number' && line.pid !== first.pid);
      const audit = (await fs.readFile(path.join(dataDir, 'audit', 'system.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      const restart = audit.find((record) => record.name === 'KscController: Rebooting the device');
      assert.ok(restart, 'the restarted gateway audits the restart');
      assert.match(restart.details.description, /signal SIGKILL/);
      run.child.kill('SIGTERM');
      assert.deepEqual(await run.exited, { code: 0, signal: null }, run.stderr());
      assert.equal(alive(second.pid as number), false);
      await removeDir(`${dataDir}-store`);
    });

    it('the gateway stops in order when its supervisor dies, and lets go of the data directory', async () => {
      const dataDir = path.join(dir, 'data');
      const run = spawnGateway(['start', '--data', dataDir, '--json']);
      const info = await run.line((line) => typeof line.pid === 'number');
      run.child.kill('SIGKILL');
      await waitForAsync(async () => !alive(info.pid as number), 60_000);
      const audit = (await fs.readFile(path.join(dataDir, 'audit', 'system.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      assert.equal(audit.at(-1).name, 'KscController: Shutting down the device');
      // The lock is free: another gateway may start on the directory.
      const next = spawnGateway(['start', '--no-supervisor', '--data', dataDir, '--json']);
      await next.line((line) => typeof line.pid === 'number');
      next.child.kill('SIGTERM');
      assert.equal((await next.exited).code, 0);
      await removeDir(`${dataDir}-store`);
    });

    it('under systemd: READY=1, then WATCHDOG=1, then STOPPING=1 reach the notify socket', async () => {
      const socketPath = path.join(dir, 'notify.sock');
      // A stand-in for systemd's notify socket: prints every datagram it receives, one a line.
      const listener = spawn(
        '/usr/bin/python3',
        [
          '-u',
          '-c',
          'import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound", flush=True)\nwhile True:\n    print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
          socketPath,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const received: string[] = [];
      readline.createInterface({ input: listener.stdout! }).on('line', (line) => received.push(line));
      try {
        await waitForAsync(async () => received.includes('bound'), 30_000, 20);
        const dataDir = path.join(dir, 'data');
        const run = spawnGateway(['start', '--no-supervisor', '--data', dataDir, '--json'], { env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '400000' } });
        await run.line((line) => typeof line.pid === 'number');
        await waitForAsync(async () => received.filter((line) => line === 'WATCHDOG=1').length >= 2, 60_000, 50);
        run.child.kill('SIGTERM');
        assert.equal((await run.exited).code, 0, run.stderr());
        await waitForAsync(async () => received.includes('STOPPING=1'), 30_000, 20);
        const messages = received.filter((line) => line !== 'bound');
        assert.equal(messages[0], 'READY=1');
        assert.ok(messages.indexOf('STOPPING=1') > messages.indexOf('WATCHDOG=1'));
        await removeDir(`${dataDir}-store`);
      } finally {
        listener.kill('SIGKILL');
      }
    });
  });
});
