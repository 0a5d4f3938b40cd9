/**
 * `apps.logs.lines` over a real control socket: lines written after the follow started, across
 * a rotation, with a tail and a level; the follower ends when its client goes; a client that
 * never reads leaves at most the bound in the gateway.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ControlServer, callControl, serveControlSocket } from '../../platform/api/control-socket.js';
import { invokeOperation } from '../../platform/api/operations.js';
import type { GatewayServices } from '../../platform/api/services.js';
import { AppLogs, type LogFollower } from '../../platform/logs/index.js';
import { fail } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const id = 'dev.isogate.follow';
const message = (line: string): string => line.replace(/^\S+ +\S+ +\[\w+\] /, '');
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/isogate.mjs');

interface Watched {
  follower: LogFollower;
  closed: boolean;
}

describe('following an app log through the control socket', () => {
  let dir: string;
  let server: ControlServer | undefined;
  let logs: AppLogs;
  let followers: Watched[];
  let maxBacklog: number;
  let running: Promise<unknown>[];

  async function serve(options: { maxFileBytes?: number; maxFollowerBytes?: number } = {}): Promise<string> {
    logs = new AppLogs({ root: path.join(dir, 'logs'), ...options });
    const services = {
      followLog: async (packageId: string, followOptions: object) => {
        if (packageId !== id) throw fail('E_NOT_INSTALLED', `${packageId} is not installed`);
        const follower = await logs.follow(packageId, followOptions);
        const watched: Watched = { follower, closed: false };
        followers.push(watched);
        const close = follower.close.bind(follower);
        follower.close = async () => {
          watched.closed = true;
          await close();
        };
        return follower;
      },
    } as unknown as GatewayServices;
    server = await serveControlSocket(path.join(dir, 'control.sock'), (op, params, context) => {
      const run = invokeOperation(services, op, params, {
        ...context,
        // What the gateway holds for this client beyond the follower: the socket's unsent bytes.
        backlog: () => {
          const bytes = context.backlog();
          maxBacklog = Math.max(maxBacklog, bytes);
          return bytes;
        },
      });
      running.push(run.catch(() => undefined));
      return run;
    });
    return server.path;
  }

  /** A client that sends one request and collects the lines of the progress updates. */
  function client(socketPath: string, params: Record<string, unknown>, read = true): { socket: net.Socket; lines: string[]; result: () => unknown } {
    const socket = net.connect(socketPath);
    const lines: string[] = [];
    let result: unknown;
    let buffered = '';
    socket.setEncoding('utf8');
    if (read) {
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
          const answer = JSON.parse(buffered.slice(0, newline)) as { progress?: { lines: string[] }; result?: unknown; error?: unknown };
          buffered = buffered.slice(newline + 1);
          if (answer.progress) lines.push(...answer.progress.lines);
          else result = answer.result ?? answer.error;
        }
      });
    } else {
      socket.pause();
    }
    socket.on('error', () => undefined);
    socket.write(`${JSON.stringify({ id: 1, op: 'apps.logs.lines', params: { id, ...params } })}\n`);
    return { socket, lines, result: () => result };
  }

  beforeEach(async () => {
    dir = await makeTempDir('isogate-follow-');
    followers = [];
    running = [];
    maxBacklog = 0;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await Promise.all(running);
    await logs?.close().catch(() => undefined);
    await removeDir(dir);
  });

  it('prints the last lines at the level asked, then new lines as they are written, across a rotation; ends when the client goes', async () => {
    const socketPath = await serve({ maxFileBytes: 600 });
    const writer = logs.writer(id);
    for (let i = 0; i < 20; i += 1) writer.write(i % 2 === 0 ? 1 : 3, `old ${i}`);
    await logs.flush(id);
    const follow = client(socketPath, { follow: true, tail: 3, level: 2 });
    await waitFor(() => follow.lines.length === 3);
    assert.deepEqual(follow.lines.map(message), ['old 14', 'old 16', 'old 18']);
    const filesBefore = (await logs.files(id)).length;
    for (let i = 0; i < 20; i += 1) writer.write(i % 2 === 0 ? 2 : 4, `new ${i}`);
    await waitFor(() => follow.lines.length === 13);
    assert.deepEqual(
      follow.lines.slice(3).map(message),
      Array.from({ length: 10 }, (_, n) => `new ${n * 2}`),
    );
    assert.ok((await logs.files(id)).length > filesBefore, 'the new lines rotated the log');
    assert.equal(followers.length, 1);
    assert.equal(followers[0]!.closed, false);
    follow.socket.destroy();
    await waitFor(() => followers[0]!.closed);
    await Promise.all(running);
  });

  it('without follow, sends the last lines and answers with their count', async () => {
    const socketPath = await serve();
    for (let i = 0; i < 10; i += 1) logs.writer(id).write(3, `line ${i}`);
    await logs.flush(id);
    const lines: string[] = [];
    const result = await callControl(socketPath, 'apps.logs.lines', { id, tail: 2 }, (update) => lines.push(...(update as { lines: string[] }).lines));
    assert.deepEqual(lines.map(message), ['line 8', 'line 9']);
    assert.deepEqual(result, { package_id: id, lines: 2, dropped: 0 });
    assert.equal(followers[0]!.closed, true);
    await assert.rejects(callControl(socketPath, 'apps.logs.lines', { id, tail: 10_001 }), { code: 'E_BAD_REQUEST' });
    await assert.rejects(callControl(socketPath, 'apps.logs.lines', { id, level: 6 }), { code: 'E_BAD_REQUEST' });
    await assert.rejects(callControl(socketPath, 'apps.logs.lines', { id: 'dev.isogate.other', follow: true }), { code: 'E_NOT_INSTALLED' });
    assert.equal(followers.length, 1);
  });

  it('holds at most the bound for a client that never reads: the follower drops past it, the socket buffers no more', async () => {
    const maxFollowerBytes = 16 * 1024;
    const socketPath = await serve({ maxFileBytes: 1024 * 1024, maxFollowerBytes });
    const stalled = client(socketPath, { follow: true, tail: 0 }, false);
    await waitFor(() => followers.length === 1);
    // 4 MB of lines in small rounds, far more than the socket's buffers hold.
    for (let round = 0; round < 80; round += 1) {
      for (let i = 0; i < 50; i += 1) logs.writer(id).write(3, `round ${round} line ${i} ${'z'.repeat(1000)}`);
      await logs.flush(id);
    }
    const follower = followers[0]!.follower;
    assert.ok(follower.dropped() > 2000, String(follower.dropped()));
    // The socket filled (the client reads nothing), and then at most the operation's 64 KiB
    // threshold plus one batch (the follower's bound, JSON-quoted) waited in it.
    assert.ok(maxBacklog > 64 * 1024 && maxBacklog <= 64 * 1024 + 2 * maxFollowerBytes, String(maxBacklog));
    stalled.socket.destroy();
    await waitFor(() => followers[0]!.closed);
  });

  it('isogate apps logs refuses a bad --tail or --level, and -o with -f, with E_USAGE before asking the gateway', async function () {
    this.timeout(60_000);
    await serve();
    const run = (args: string[]): Promise<{ code: number | null; stdout: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [CLI, 'apps', 'logs', id, ...args, '--data', dir, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let stdout = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
        });
        child.once('close', (code) => resolve({ code, stdout }));
      });
    for (const [args, pattern] of [
      [['--tail', 'ten'], /--tail is a number of lines from 0 to 10000, not "ten"/],
      [['-f', '--tail', '10001'], /--tail is a number of lines/],
      [['--level', '6'], /--level is a log level from 0 \(critical\) to 5 \(all\), not "6"/],
      [['-f', '-o', path.join(dir, 'out.tar.gz')], /-o FILE downloads the log archive/],
    ] as const) {
      const result = await run([...args]);
      assert.equal(result.code, 2, result.stdout);
      const error = (JSON.parse(result.stdout) as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'E_USAGE');
      assert.match(error.message, pattern);
    }
    assert.deepEqual(followers, []);
    await assert.rejects(fs.stat(path.join(dir, 'out.tar.gz')), { code: 'ENOENT' });
  });

  it('isogate apps logs -f prints the tail and new lines escaped, and its follower ends with the process', async function () {
    this.timeout(60_000);
    await serve();
    await fs.mkdir(path.join(dir, 'logs', id), { recursive: true, mode: 0o700 });
    // A line this module would have escaped, planted raw: the CLI escapes what it prints too.
    await fs.writeFile(path.join(dir, 'logs', id, 'app.log'), '2026-01-01T00:00:00.000Z ERROR    [app] planted \u001b[2J\u009b31m\n', { mode: 0o600 });
    logs.writer(id).write(1, 'written before');
    await logs.flush(id);
    const child = spawn(process.execPath, [CLI, 'apps', 'logs', id, '-f', '--tail', '2', '--level', '1', '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => stdout.split('\n').length > 2 || child.exitCode !== null, 30_000);
    assert.equal(child.exitCode, null, stderr);
    const [planted, before] = stdout.split('\n');
    assert.equal(planted, '2026-01-01T00:00:00.000Z ERROR    [app] planted \\x1b[2J\\u{9b}31m');
    assert.match(before!, /ERROR +\[app\] written before$/);
    logs.writer(id).write(3, 'info is not shown at level 1');
    logs.writer(id).write(0, 'written after');
    await waitFor(() => /written after/.test(stdout), 30_000);
    assert.doesNotMatch(stdout, /info is not shown/);
    child.kill('SIGINT');
    await exited;
    await waitFor(() => followers[0]?.closed === true);
    // No data is written anywhere else by a follower: the data directory holds what it held.
    assert.deepEqual((await fs.readdir(path.join(dir, 'logs', id))).sort(), ['app.log']);
  });
});
