/**
 * sdk/README.md's walkthrough, step by step, as a newcomer runs it: the SDK packed as its
 * tarball and installed offline into a project outside this repository, then init, test, run
 * (reloaded on an edit), push to a fresh gateway whose admin started the debug service, logs -f,
 * and debug, with a CDP client on the inspector's WebSocket that sets a breakpoint by the line
 * in the app's TypeScript (through the bundle's source map), sees the pause at that line and
 * resumes. Only the browser's clicks are left out.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { type GatewayProcess, ISOGATE_BIN, spawnGateway } from '../fixtures/gateway-process.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const APP = 'com.example.my-app';

/** A long-running command (run, logs -f) in its own process group, its output as lines. */
function follow(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const waiters = new Set<() => void>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const wake of waiters) wake();
  });
  const line = (match: RegExp, from = 0, timeoutMs = 60_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = lines.slice(from).find((candidate) => match.test(candidate));
        if (found === undefined) return false;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no line ${match} in time; printed: ${lines.join('\n')} ${stderr}`));
      }, timeoutMs);
      if (!check()) waiters.add(check);
    });
  /** Ctrl-C to the whole group (npx, the SDK's command and the isolate's Node under it). */
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    process.kill(-child.pid!, 'SIGINT');
    return exited;
  };
  return { child: child as ChildProcess, lines, line, stop };
}

/** A CDP client on a raw WebSocket: commands by id, events by name. */
async function cdpClient(url: string) {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let next = 0;
  const pending = new Map<number, { resolve: (result: any) => void; reject: (error: Error) => void }>();
  const events: { method: string; params: any }[] = [];
  const listeners = new Set<() => void>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.id !== undefined) {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) waiter?.reject(new Error(JSON.stringify(message.error)));
      else waiter?.resolve(message.result);
    } else {
      events.push(message);
      for (const wake of listeners) wake();
    }
  });
  const send = (method: string, params: Record<string, unknown> = {}): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  const until = (method: string, match: (params: any) => boolean = () => true, timeoutMs = 30_000): Promise<any> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = events.find((event) => event.method === method && match(event.params));
        if (!found) return false;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(found.params);
        return true;
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no ${method} in time; events: ${events.map((event) => event.method).join(', ')}`));
      }, timeoutMs);
      if (!check()) listeners.add(check);
    });
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.close();
    });
  return { send, until, close, events };
}

describe('the SDK walkthrough (sdk/README.md), from the packed tarball on a fresh gateway', function () {
  this.timeout(300_000);
  let dir: string;
  let work: string;
  let project: string;
  let gateway: GatewayProcess | undefined;
  let dataDir: string;
  let service: { url: string; token: string };
  const npx = (args: string[], cwd = project, env: NodeJS.ProcessEnv = {}) =>
    run('npx', ['--no', 'isogate-sdk', ...args], { cwd, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });

  before(async () => {
    dir = await makeTempDir('isogate-walkthrough-');
    const packed = JSON.parse(
      (await run(process.execPath, [path.join(root, 'scripts', 'pack-sdk.mjs'), dir], { cwd: root, maxBuffer: 16 * 1024 * 1024 })).stdout,
    );
    work = path.join(dir, 'work');
    await fs.mkdir(work);
    await fs.writeFile(path.join(work, 'package.json'), '{ "name": "work", "private": true }\n');
    // Offline: everything the SDK needs is in its tarball.
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', packed.tarball], { cwd: work });
    dataDir = path.join(dir, 'gateway');
    gateway = spawnGateway(['start', '--data', dataDir, '--json', '--no-supervisor']);
    await gateway.line((line) => typeof line.pid === 'number');
  });
  after(async () => {
    if (gateway && gateway.child.exitCode === null) {
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    }
    await removeDir(dir);
  });

  it('0. the admin starts the debug service: developer mode, a URL and a token', async () => {
    const { stdout } = await run(process.execPath, [ISOGATE_BIN, 'debug-service', 'start', '--data', dataDir, '--json']);
    service = JSON.parse(stdout);
    assert.match(service.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(service.token, /^isgd_/);
  });

  it('1. init: a project with tests, outside the repository, the SDK from node_modules', async () => {
    await npx(['init', 'my-app'], work);
    project = path.join(work, 'my-app');
    for (const file of ['manifest.json', 'src/main.ts', 'test/main.test.ts', 'test/messages.jsonl', 'tsconfig.json', 'README.md']) {
      await fs.access(path.join(project, file));
    }
    const readme = await fs.readFile(path.join(project, 'README.md'), 'utf8');
    assert.doesNotMatch(readme, /--self-signed/);
    assert.ok(path.relative(root, project).startsWith('..'), 'the project is outside the repository');
  });

  it("2. test: the template's tests pass in the harness", async () => {
    const { stdout } = await npx(['test']);
    assert.match(stdout, /pass 2/);
    assert.match(stdout, /fail 0/);
  });

  it('3. run: the fixtures flow through, and a save reloads the app', async () => {
    const running = follow('npx', ['--no', 'isogate-sdk', 'run', '--messages', 'test/messages.jsonl'], { cwd: project });
    try {
      await running.line(/^\[run\] running \(started/);
      await running.line(/^-> output \{"value":42\}$/);
      const from = running.lines.length;
      const main = path.join(project, 'src', 'main.ts');
      const source = await fs.readFile(main, 'utf8');
      assert.ok(source.includes('value * factor'));
      await fs.writeFile(main, source.replace('value * factor', 'value * factor + 1'));
      await running.line(/^\[run\] running \(reloaded/, from);
      await running.line(/^-> output \{"value":43\}$/, from);
      running.child.stdin!.write('input {"value": 100}\n');
      await running.line(/^-> output \{"value":201\}$/, from);
    } finally {
      await running.stop();
    }
  });

  it('4. push: installed unsigned on the gateway, running', async () => {
    const { stdout } = await npx(['push', '--gateway', service.url, '--token', service.token, '--json']);
    const pushed = JSON.parse(stdout);
    assert.equal(pushed.package_id ?? APP, APP);
    assert.equal(pushed.status, 'running');
  });

  it('5. logs -f: the app log from the gateway, following', async () => {
    const logs = follow('npx', ['--no', 'isogate-sdk', 'logs', '-f'], { cwd: project, env: { ISOGATE_GATEWAY: service.url, ISOGATE_TOKEN: service.token } });
    try {
      await logs.line(/started; \d+ messages handled so far/);
      const from = logs.lines.length;
      await logs.line(/alive; \d+ messages handled/, from);
    } finally {
      await logs.stop();
    }
  });

  it("6. debug: a breakpoint set by the line in src/main.ts stops there, in the app's isolate on the gateway, and resumes", async () => {
    const { stdout } = await npx(['debug', '--json'], project, { ISOGATE_GATEWAY: service.url, ISOGATE_TOKEN: service.token });
    const target = JSON.parse(stdout);
    assert.match(target.devtoolsUrl, /^devtools:\/\/devtools\/bundled\/inspector\.html\?ws=/);
    const cdp = await cdpClient(target.webSocketUrl);
    try {
      await cdp.send('Debugger.enable');
      const script = await cdp.until('Debugger.scriptParsed', (params) => params.url === 'app/main.js');
      // What DevTools reads: the map travels inline in the bundle, with the sources' text.
      assert.match(script.sourceMapURL, /^data:application\/json;(charset=utf-8;)?base64,/);
      const payload = JSON.parse(Buffer.from(script.sourceMapURL.slice(script.sourceMapURL.indexOf(',') + 1), 'base64').toString('utf8'));
      const map = new SourceMap(payload);
      const sourceIndex = payload.sources.findIndex((source: string) => source.endsWith('src/main.ts'));
      assert.ok(sourceIndex >= 0, `src/main.ts among ${payload.sources}`);
      const typescript = await fs.readFile(path.join(project, 'src', 'main.ts'), 'utf8');
      assert.equal(payload.sourcesContent[sourceIndex], typescript);
      const wanted = typescript.split('\n').findIndex((line) => line.includes('log.info(`alive'));
      assert.ok(wanted > 0);

      // Where that TypeScript line is in the bundle: the generated position that maps to it.
      const { scriptSource } = await cdp.send('Debugger.getScriptSource', { scriptId: script.scriptId });
      const generated = (scriptSource as string).split('\n').findIndex((text, line) => {
        const column = text.search(/\S/);
        if (column < 0) return false;
        const entry = map.findEntry(line, column) as { originalSource?: string; originalLine?: number };
        return entry.originalSource?.endsWith('src/main.ts') && entry.originalLine === wanted;
      });
      assert.ok(generated >= 0, 'the TypeScript line has a place in the bundle');
      const breakpoint = await cdp.send('Debugger.setBreakpointByUrl', { url: 'app/main.js', lineNumber: generated });
      assert.ok(breakpoint.breakpointId);

      const paused = await cdp.until('Debugger.paused');
      const location = paused.callFrames[0].location;
      const back = map.findEntry(location.lineNumber, location.columnNumber) as { originalSource?: string; originalLine?: number };
      assert.ok(back.originalSource?.endsWith('src/main.ts'));
      assert.equal(back.originalLine, wanted, 'paused at the TypeScript line the breakpoint was set on');
      assert.deepEqual(paused.hitBreakpoints, [breakpoint.breakpointId]);

      await cdp.send('Debugger.removeBreakpoint', { breakpointId: breakpoint.breakpointId });
      await cdp.send('Debugger.resume');
      await cdp.until('Debugger.resumed');
    } finally {
      await cdp.close();
    }
    // The gateway carries on: its control socket answers and the app still runs.
    const status = JSON.parse((await run(process.execPath, [ISOGATE_BIN, 'apps', 'list', '--data', dataDir, '--json'])).stdout);
    const app = (Array.isArray(status) ? status : status.apps).find((entry: any) => entry.package_id === APP || entry.id === APP);
    assert.ok(app, 'the pushed app is listed');
  });
});
