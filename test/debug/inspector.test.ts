/**
 * DevTools in a pushed app's isolate, driven by a real CDP client (a WebSocket speaking the
 * protocol, as DevTools does): a breakpoint set by the bundle's line pauses the app while two
 * other apps keep routing messages and the paused app is not ended as hung; what the client
 * evaluates runs inside the isolate, which has no host globals; closing the socket resumes
 * the app; and only the owner's token opens a session, one at a time.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { invokeOperation } from '../../platform/api/operations.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import * as developer from '../../sdk/cli/developer.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { EndpointDeclaration } from '../../sdk/manifest.js';
import { buildPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor, waitForAsync } from '../fixtures/wait.js';

const TICKER = 'com.dev.ticker';
const SOURCE = 'com.dev.source';
const SINK = 'com.dev.sink';
const NO_PROGRESS = { progress: () => undefined };
const TICKER_SOURCE = [
  "import { log } from 'isogate:sdk';",
  'let n = 0;',
  'function tick() {',
  '  n += 1;', // line 3 (0-based): the breakpoint
  "  log.info('tick ' + n);",
  '}',
  'setInterval(tick, 20);',
  '',
].join('\n');
const endpoint = (name: string, direction: 'source' | 'destination'): EndpointDeclaration => ({ name, direction, dataType: 'count', format: 'json' });

/** A CDP client: commands answered by id, notifications waited for by method. */
class CdpClient {
  #next = 1;
  readonly #pending = new Map<number, (message: any) => void>();
  readonly notifications: any[] = [];
  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.id !== undefined) this.#pending.get(message.id)?.(message);
      else this.notifications.push(message);
    });
  }

  static open(url: string): Promise<CdpClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.once('open', () => resolve(new CdpClient(socket)));
      socket.once('unexpected-response', (_request, response) =>
        reject(Object.assign(new Error(`refused ${response.statusCode}`), { status: response.statusCode })),
      );
      socket.once('error', reject);
    });
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  async until(method: string, after = 0): Promise<any> {
    await waitFor(() => this.notifications.slice(after).some((n) => n.method === method), 20_000);
    return this.notifications.slice(after).find((n) => n.method === method);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}

describe('DevTools in a pushed app', function () {
  this.timeout(180_000);
  let dir: string;
  let serving: ServingStore;
  let gateway: Gateway;
  let url: string;
  let alice: string;
  let bob: string;
  const call = (op: string, params: Record<string, unknown> = {}): Promise<any> => invokeOperation(gateway.services, op, params, NO_PROGRESS);
  const tickerLog = async (): Promise<string> => fs.readFile(path.join(gateway.dataDir, 'logs', TICKER, 'app.log'), 'utf8').catch(() => '');
  const ticks = async (): Promise<number> => (await tickerLog()).match(/tick \d+/g)?.length ?? 0;
  const delivered = async (): Promise<number> => (await call('routes.list'))[0].counters.delivered;

  before(async () => {
    dir = await makeTempDir();
    serving = await serveStore({ dir: path.join(dir, 'store') });
    const trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);
    gateway = await startGateway({ dataDir: path.join(dir, 'data'), storeUrl: serving.url, trustRootFile: trust, updateWatchMs: 0 });
    ({ url, token: alice } = await call('debug.start', { name: 'alice' }));
    bob = (await call('debug.tokens.add', { name: 'bob' })).token;
    const push = async (manifest: ReturnType<typeof sampleManifest>, main: string): Promise<void> => {
      await developer.push({ gateway: url, token: alice }, await buildPackage(manifest, new Map([['app/main.js', Buffer.from(main)]])));
    };
    await push(sampleManifest({ package_id: TICKER, name: 'Ticker' }), TICKER_SOURCE);
    await push(
      sampleManifest({ package_id: SOURCE, name: 'Source', endpoints: [endpoint('out', 'source')] }),
      "import { emit } from 'isogate:sdk';\nlet n = 0;\nsetInterval(() => { n += 1; emit('out', { n }).catch(() => undefined); }, 20);\n",
    );
    await push(
      sampleManifest({ package_id: SINK, name: 'Sink', endpoints: [endpoint('in', 'destination')] }),
      "import { on } from 'isogate:sdk';\non('in', () => {});\n",
    );
    await call('routes.add', { source: `${SOURCE}:out`, destination: `${SINK}:in` });
  });
  after(async () => {
    await gateway?.close();
    await serving.close();
    await removeDir(dir);
  });

  let target: { webSocketUrl: string; devtoolsUrl: string };

  it('is only for the owner: debug restarts the app with its inspector and names the DevTools URL', async () => {
    await assert.rejects(developer.debug({ gateway: url, token: bob }, TICKER), (error: unknown) => isIsogateError(error, 'E_FORBIDDEN'));
    target = await developer.debug({ gateway: url, token: alice }, TICKER);
    const port = new URL(url).port;
    assert.equal(target.webSocketUrl, `ws://127.0.0.1:${port}/v1/inspector/${TICKER}/${alice}`);
    assert.equal(target.devtoolsUrl, `devtools://devtools/bundled/inspector.html?ws=127.0.0.1:${port}/v1/inspector/${TICKER}/${alice}`);
    assert.equal(gateway.services.launcher.status(TICKER).status, 'running');
    const refused = async (wsUrl: string, status: number): Promise<void> => {
      await assert.rejects(CdpClient.open(wsUrl), (error: { status?: number }) => error.status === status);
    };
    await refused(target.webSocketUrl.replace(alice, bob), 403);
    await refused(target.webSocketUrl.replace(alice, 'isgd_unknown'), 401);
    // A web page's script may open a socket to loopback; only DevTools' own origin (or none, a CDP client) is let in.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = new WebSocket(target.webSocketUrl, { origin: 'http://evil.example' });
        socket.once('open', resolve);
        socket.once('unexpected-response', (_request, response) => reject(Object.assign(new Error('refused'), { status: response.statusCode })));
      }),
      (error: { status?: number }) => error.status === 403,
    );
    // An app pushed but not started with its inspector has none to attach to.
    await refused(`ws://127.0.0.1:${port}/v1/inspector/${SINK}/${alice}`, 409);
    const audit = await call('audit.list', { limit: 1000 });
    assert.ok(
      audit.some((record: any) => record.name === 'KDS: Refusing a request' && record.details.code === 'E_FORBIDDEN' && record.details.developer === 'bob'),
    );
    assert.ok(!JSON.stringify(audit).includes(alice), 'a token never reaches the audit log');
  });

  it('pauses at a breakpoint by line while the other apps keep routing, is not ended as hung, and resumes when the socket closes', async () => {
    const cdp = await CdpClient.open(target.webSocketUrl);
    await assert.rejects(CdpClient.open(target.webSocketUrl), (error: { status?: number }) => error.status === 409);
    await cdp.send('Runtime.enable');
    await cdp.send('Debugger.enable');
    const script = await cdp.until('Debugger.scriptParsed');
    assert.ok(script);
    const breakpoint = await cdp.send('Debugger.setBreakpointByUrl', { lineNumber: 3, url: 'app/main.js' });
    assert.equal(breakpoint.result.locations.length, 1, JSON.stringify(breakpoint));
    const paused = await cdp.until('Debugger.paused');
    assert.equal(paused.params.callFrames[0].functionName, 'tick');
    assert.equal(paused.params.callFrames[0].location.lineNumber, 3);

    // What the client evaluates runs in the isolate: no host globals there.
    const frame = paused.params.callFrames[0].callFrameId;
    const inFrame = await cdp.send('Debugger.evaluateOnCallFrame', { callFrameId: frame, expression: 'typeof process + typeof require + typeof n' });
    assert.equal(inFrame.result.result.value, 'undefinedundefinednumber');

    // Paused well past its CPU budget while the router and the other apps carry on.
    const ticksAtPause = await ticks();
    const before = await delivered();
    await waitForAsync(async () => (await delivered()) >= before + 40);
    assert.equal(gateway.services.launcher.status(TICKER).status, 'running');
    assert.equal(await ticks(), ticksAtPause, 'the paused app did not run');

    // A session left paused: closing the socket resumes the app.
    await cdp.close();
    await waitForAsync(async () => (await ticks()) > ticksAtPause + 3);
    assert.equal(gateway.services.launcher.status(TICKER).status, 'running');
  });

  it('evaluates only inside the isolate without a pause too', async () => {
    const cdp = await CdpClient.open(target.webSocketUrl);
    await cdp.send('Runtime.enable');
    const app = cdp.notifications.find((n) => n.method === 'Runtime.executionContextCreated' && n.params.context.name === 'default');
    const answer = await cdp.send('Runtime.evaluate', {
      contextId: app.params.context.id,
      expression: 'typeof process + "," + typeof globalThis.require + "," + typeof Buffer',
    });
    assert.ok(answer.result, JSON.stringify(answer));
    assert.equal(answer.result.result.value, 'undefined,undefined,undefined');
    // The ways out a client would try: the Function constructor of any object, a host call, a
    // context that is not the app's. Each stays inside the isolate or is refused by V8 itself.
    const viaFunction = await cdp.send('Runtime.evaluate', {
      contextId: app.params.context.id,
      expression: '(function () { return this; })().constructor.constructor("return typeof process + typeof require")()',
    });
    assert.equal(viaFunction.result.result.value, 'undefinedundefined', JSON.stringify(viaFunction));
    const exit = await cdp.send('Runtime.evaluate', { contextId: app.params.context.id, expression: 'process.exit(1)' });
    assert.equal(exit.result.exceptionDetails?.exception?.className, 'ReferenceError', JSON.stringify(exit));
    const elsewhere = await cdp.send('Runtime.evaluate', { contextId: app.params.context.id + 1000, expression: '1' });
    assert.ok(elsewhere.error, `no other context answers: ${JSON.stringify(elsewhere)}`);
    assert.equal(gateway.services.launcher.status(TICKER).status, 'running');
    await cdp.close();
  });

  it('stops an app paused at a breakpoint when asked, ending its session, and the gateway carries on', async () => {
    const cdp = await CdpClient.open(target.webSocketUrl);
    await cdp.send('Debugger.enable');
    await cdp.send('Debugger.setBreakpointByUrl', { lineNumber: 3, url: 'app/main.js' });
    await cdp.until('Debugger.paused');
    const closed = new Promise<number>((resolve) => cdp.socket.once('close', (code) => resolve(code)));
    const stopped = await call('apps.stop', { id: TICKER });
    assert.equal(stopped.status, 'stopped');
    assert.equal(await closed, 1001);
    const before = await delivered();
    await waitForAsync(async () => (await delivered()) > before + 5);
    // Started again by hand it runs without the inspector: `isogate-sdk debug` turns it on each time.
    await call('apps.start', { id: TICKER });
    target = await developer.debug({ gateway: url, token: alice }, TICKER);
  });

  it('ends the sessions of a revoked token', async () => {
    const cdp = await CdpClient.open(target.webSocketUrl);
    const closed = new Promise<number>((resolve) => cdp.socket.once('close', (code) => resolve(code)));
    await call('debug.tokens.revoke', { name: 'alice' });
    assert.equal(await closed, 1008);
    await assert.rejects(CdpClient.open(target.webSocketUrl), (error: { status?: number }) => error.status === 401);
    await assert.rejects(developer.debug({ gateway: url, token: alice }, TICKER), (error: unknown) => isIsogateError(error, 'E_AUTH'));
    assert.equal(gateway.services.launcher.status(TICKER).status, 'running');
  });
});
