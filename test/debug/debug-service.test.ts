/**
 * The debug service end to end on a real gateway: developer mode switched on by starting it
 * (sticky across restarts, audited with the manual's event, shown by the status), a token per
 * developer, pushes of unsigned packages owned by their token and updated in place, the log
 * tail, and every refusal with its own code, audited, changing nothing. A factory reset is the
 * only way out, and no token from before it works after it.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { invokeOperation } from '../../platform/api/operations.js';
import { factoryReset } from '../../platform/datadir/reset.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import * as developer from '../../sdk/cli/developer.js';
import { main as sdkMain } from '../../sdk/cli/main.js';
import { type ErrorCode, isIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { buildPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { runMain } from '../fixtures/cli.js';
import { buildSignedPackage, rawPackage, sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';

const APP = 'com.dev.counter';
const STORE_APP = 'com.acme.sensors';
const NO_PROGRESS = { progress: () => undefined };

const counterManifest = (version: string, overrides: Partial<AppManifest> = {}): AppManifest =>
  sampleManifest({
    package_id: APP,
    name: 'Counter',
    version,
    configuration: {
      schema: { type: 'object', additionalProperties: false, properties: { site: { type: 'string' }, mode: { enum: ['a', 'b'] } } },
      defaults: { site: 'nowhere', mode: 'a' },
    },
    ...overrides,
  });

// Every version counts its starts in storage and logs what it found, so the test sees what it was given.
const counterSource = (version: string, extra = ''): string => `
import { log, storage, config } from 'isogate:sdk';
const before = Number((await storage.get('starts')) ?? '0');
await storage.put('starts', String(before + 1));
log.info('counter ${version} start ' + (before + 1) + ' site=' + config.get().site);
${extra}
`;

async function counterPackage(version: string, extra = '', overrides: Partial<AppManifest> = {}): Promise<Buffer> {
  return buildPackage(counterManifest(version, overrides), new Map([['app/main.js', Buffer.from(counterSource(version, extra))]]));
}

async function refusedWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isIsogateError(error, code), `expected ${code}, got ${(error as Error).message}`);
    return true;
  });
}

describe('the debug service and developer mode', function () {
  this.timeout(180_000);
  let dir: string;
  let dataDir: string;
  let trust: string;
  let serving: ServingStore;
  let gateway: Gateway | undefined;
  const call = (op: string, params: Record<string, unknown> = {}): Promise<any> => invokeOperation(gateway!.services, op, params, NO_PROGRESS);

  before(async () => {
    dir = await makeTempDir();
    dataDir = path.join(dir, 'data');
    serving = await serveStore({ dir: path.join(dir, 'store') });
    const acme = path.join(dir, 'acme');
    await serving.store.issuePublisher('Acme Corp', acme);
    const signer = {
      keyPem: await fs.readFile(path.join(acme, 'publisher.key.pem'), 'utf8'),
      certPem: await fs.readFile(path.join(acme, 'publisher.cert.pem'), 'utf8'),
      chainPem: [] as string[],
    };
    await serving.store.publish(await buildSignedPackage({ manifest: sampleManifest({ package_id: STORE_APP, name: 'Sensors' }), signer }));
    trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);
  });
  after(async () => {
    await gateway?.close();
    await serving.close();
    await removeDir(dir);
  });

  const start = async (): Promise<Gateway> => {
    gateway = await startGateway({ dataDir, storeUrl: serving.url, trustRootFile: trust, updateWatchMs: 300 });
    return gateway;
  };
  const counterLog = async (): Promise<string> => fs.readFile(path.join(dataDir, 'logs', APP, 'app.log'), 'utf8').catch(() => '');
  const audit = async (): Promise<any[]> => call('audit.list', { limit: 10_000 });

  it('is off until started: no tokens, nothing listens, the status says so', async () => {
    await start();
    const status = await call('status');
    assert.equal(status.developerMode, false);
    assert.equal(status.debugService, null);
    await refusedWith(call('debug.tokens.add', { name: 'alice' }), 'E_STATE');
    // A push to a gateway not in developer mode finds nothing to talk to.
    await refusedWith(developer.push({ gateway: 'http://127.0.0.1:9', token: 'isgd_x' }, await counterPackage('1.0.0')), 'E_UNAVAILABLE');
    assert.equal(gateway!.services.orchestrator.get(APP), undefined);
  });

  let url: string;
  let alice: string;
  let bob: string;

  it('starts on loopback, switches developer mode on (config, audit, status) and shows the token once', async () => {
    const started = await call('debug.start', { name: 'alice' });
    url = started.url;
    alice = started.token;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(alice, /^isgd_[A-Za-z0-9_-]{43}$/);
    assert.equal(
      gateway!.services.config.read((doc) => doc.MODE_SWITCH.is_developer_mode),
      true,
    );
    const status = await call('status');
    assert.equal(status.developerMode, true);
    assert.equal(status.debugService, url);
    const enabled = (await audit()).filter((record) => record.name === 'Launcher: Enabling the developer mode');
    assert.equal(enabled.length, 1);
    assert.equal(enabled[0].text, 'The device is running in developer mode');
    assert.equal(enabled[0].severity, 'Warning');
    // Only the hash is kept.
    const stored = await fs.readFile(path.join(dataDir, 'debug', 'tokens.json'), 'utf8');
    assert.ok(!stored.includes(alice.slice(5)));
    assert.deepEqual(
      (await call('debug.tokens.list')).map((t: { name: string }) => t.name),
      ['alice'],
    );
    await refusedWith(call('debug.start', { name: 'carol' }), 'E_CONFLICT');
    const issued = (await audit()).filter((record) => record.name === 'KDS: Issuing a developer token');
    assert.deepEqual(
      issued.map((record) => record.text),
      ['A debug service token is issued to the developer alice'],
    );
    bob = (await call('debug.tokens.add', { name: 'bob' })).token;
    await refusedWith(call('debug.tokens.add', { name: 'bob' }), 'E_CONFLICT');
    await refusedWith(call('debug.tokens.add', { name: '../evil' }), 'E_BAD_REQUEST');
  });

  it('refuses a push without a token and with an unknown one, audited, nothing installed', async () => {
    const before = await snapshotTree(path.join(dataDir, 'apps'));
    const bare = await fetch(`${url}/v1/apps`, { method: 'POST', body: await counterPackage('1.0.0') });
    assert.equal(bare.status, 401);
    assert.equal(((await bare.json()) as { code: string }).code, 'E_AUTH');
    await refusedWith(developer.push({ gateway: url, token: 'isgd_not-a-token' }, await counterPackage('1.0.0')), 'E_AUTH');
    assert.deepEqual(await snapshotTree(path.join(dataDir, 'apps')), before);
    const refusals = (await audit()).filter((record) => record.name === 'KDS: Refusing a request' && record.details.code === 'E_AUTH');
    assert.equal(refusals.length, 2);
  });

  it('installs a push unsigned and owned by its token, marked so in apps list and audit, and starts it', async () => {
    const pushed = await developer.push({ gateway: url, token: alice }, await counterPackage('1.0.0'));
    assert.equal(pushed.updated, false);
    assert.equal(pushed.signature, 'unsigned');
    assert.equal(pushed.status, 'running');
    assert.equal((await call('status')).apps.unsigned, 1);
    const view = gateway!.services.installedApps().find((app) => app.package_id === APP)!;
    assert.equal(view.signature, 'unsigned');
    assert.equal(view.publisher, 'unsigned');
    assert.equal(view.origin, 'debug');
    assert.equal(view.owner, 'alice');
    const installed = (await audit()).find((record) => record.event === 'installSucceeded' && record.details?.packageId === APP);
    assert.equal(installed.details.signature, 'unsigned');
    assert.equal(installed.details.owner, 'alice');
    await waitForAsync(async () => /counter 1\.0\.0 start 1 /.test(await counterLog()));
  });

  it("refuses another developer's token on that app: push, logs and debug, each audited", async () => {
    const before = await snapshotTree(path.join(dataDir, 'apps'));
    await refusedWith(developer.push({ gateway: url, token: bob }, await counterPackage('1.0.1')), 'E_FORBIDDEN');
    const logs = await fetch(`${url}/v1/apps/${APP}/logs`, { headers: { authorization: `Bearer ${bob}` } });
    assert.equal(logs.status, 403);
    await refusedWith(developer.debug({ gateway: url, token: bob }, APP), 'E_FORBIDDEN');
    assert.deepEqual(await snapshotTree(path.join(dataDir, 'apps')), before);
    assert.equal(gateway!.services.orchestrator.get(APP)!.version, '1.0.0');
    const refused = (await audit()).filter((record) => record.name === 'KDS: Refusing a request' && record.details.code === 'E_FORBIDDEN');
    assert.equal(refused.length, 3);
    assert.ok(refused.every((record) => record.details.developer === 'bob'));
  });

  it('refuses hostile pushes with their own codes, installing nothing: traversal, reserved capabilities, a store app id', async () => {
    await call('apps.install', { id: STORE_APP });
    const before = await snapshotTree(path.join(dataDir, 'apps'));
    const traversal = await rawPackage([
      { name: 'manifest.json', data: Buffer.from(JSON.stringify(sampleManifest({ package_id: 'com.dev.evil' }))) },
      { name: '../evil.js', data: Buffer.from('x') },
    ]);
    await refusedWith(developer.push({ gateway: url, token: alice }, traversal), 'E_PACKAGE_PATH');
    const protector = await buildPackage(
      sampleManifest({ package_id: 'com.dev.protector', type: 'security', capabilities: ['traffic.inspect', 'traffic.block'] }),
      new Map([['app/main.js', Buffer.from('')]]),
    );
    await refusedWith(developer.push({ gateway: url, token: alice }, protector), 'E_RESERVED_CAPABILITY');
    const takeover = await buildPackage(sampleManifest({ package_id: STORE_APP, version: '9.0.0' }), new Map([['app/main.js', Buffer.from('')]]));
    await refusedWith(developer.push({ gateway: url, token: alice }, takeover), 'E_SIGNER_MISMATCH');
    await refusedWith(developer.push({ gateway: url, token: alice }, Buffer.from('not a package')), 'E_PACKAGE_FORMAT');
    // A body announced past the bound is refused before it is read.
    const oversized = await new Promise<{ status: number; code: string }>((resolve, reject) => {
      const request = http.request(`${url}/v1/apps`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice}`, 'content-length': String(65 * 1024 * 1024) },
      });
      request.on('response', (answer) => {
        let body = '';
        answer.on('data', (chunk) => {
          body += chunk;
        });
        answer.on('end', () => {
          resolve({ status: answer.statusCode!, code: JSON.parse(body).code });
          request.destroy();
        });
      });
      request.on('error', reject);
      request.write(Buffer.alloc(1024));
    });
    assert.deepEqual(oversized, { status: 422, code: 'E_PACKAGE_LIMIT' });
    assert.deepEqual(await snapshotTree(path.join(dataDir, 'apps')), before);
    assert.equal(gateway!.services.orchestrator.get(STORE_APP)!.record.signer !== null, true);
    const errors = (await audit()).filter((record) => record.details?.origin === 'debug' && record.details?.code);
    for (const code of ['E_PACKAGE_PATH', 'E_RESERVED_CAPABILITY', 'E_SIGNER_MISMATCH']) {
      assert.ok(
        errors.some((record) => record.details.code === code),
        `${code} audited`,
      );
    }
    await call('apps.uninstall', { id: STORE_APP });
  });

  it('updates a pushed app in place: storage and valid configuration kept, a failing version rolled back', async () => {
    await call('apps.config.set', { id: APP, value: { site: 'north', mode: 'b' } });
    const updated = await developer.push({ gateway: url, token: alice }, await counterPackage('1.1.0', '', {}));
    assert.equal(updated.updated, true);
    assert.equal(updated.previous_version, '1.0.0');
    assert.equal(updated.status, 'running');
    await waitForAsync(async () => /counter 1\.1\.0 start 2 site=north/.test(await counterLog()));
    // The same version again is a developer's next iteration, not a refusal.
    await developer.push({ gateway: url, token: alice }, await counterPackage('1.1.0', 'log.info("iteration");'));
    await waitForAsync(async () => /counter 1\.1\.0 start 3 site=north/.test(await counterLog()));

    // A version that fails to start (before its ready signal) gives the old one back.
    await refusedWith(
      developer.push({ gateway: url, token: alice }, await counterPackage('1.2.0', 'throw new Error("a broken build");')),
      'E_UPDATE_ROLLED_BACK',
    );
    assert.equal(gateway!.services.orchestrator.get(APP)!.version, '1.1.0');
    await waitForAsync(async () => gateway!.services.launcher.status(APP).status === 'running');
    assert.deepEqual(await call('apps.config.get', { id: APP }), { site: 'north', mode: 'b' });
    assert.ok(
      (await audit()).some((record) => record.name === 'Updater: Application update rolled back' && record.details?.to === '1.2.0'),
      'the rollback is audited',
    );
    // The store does not update a pushed app: it is pushed again.
    await refusedWith(call('apps.update', { id: APP }), 'E_CONFLICT');
  });

  it('tails its own app through the SDK CLI', async () => {
    const out = await runMain(sdkMain, ['logs', '--gateway', url, '--token', alice, '--id', APP, '--tail', '100']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /counter 1\.1\.0 start 3/);
    // Followed: the lines written after the request arrive on the same response.
    const abort = new AbortController();
    const response = await fetch(`${url}/v1/apps/${APP}/logs?follow=1&tail=1`, { headers: { authorization: `Bearer ${alice}` }, signal: abort.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const starts = [...(await counterLog()).matchAll(/counter \S+ start (\d+) /g)].map((match) => Number(match[1]));
    const next = new RegExp(`counter 1\\.1\\.0 start ${Math.max(...starts) + 1} `);
    await call('apps.stop', { id: APP });
    await call('apps.start', { id: APP });
    let seen = '';
    while (!next.test(seen)) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the follow ended early');
      seen += new TextDecoder().decode(value);
    }
    for (const line of seen.trim().split('\n')) assert.equal(typeof JSON.parse(line).line, 'string');
    abort.abort();
    const refused = await runMain(sdkMain, ['logs', '--gateway', url, '--token', bob, '--id', APP]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^E_FORBIDDEN: /);
  });

  it('stays in developer mode across a restart, with its tokens, where it listened', async () => {
    await gateway!.close();
    await start();
    const status = await call('status');
    assert.equal(status.developerMode, true);
    assert.equal(status.debugService, url);
    assert.deepEqual((await developer.push({ gateway: url, token: alice }, await counterPackage('1.3.0'))).version, '1.3.0');
  });

  it('is left only by a factory reset, after which no earlier token works', async () => {
    await refusedWith(factoryReset(dataDir), 'E_DATA_DIR_LOCKED');
    await gateway!.close();
    gateway = undefined;
    await refusedWith(factoryReset(dir), 'E_PATH');
    const reset = await factoryReset(dataDir);
    assert.ok(reset.removed.includes('debug') && reset.removed.includes('device'));
    await start();
    assert.equal((await call('status')).developerMode, false);
    assert.equal(gateway!.services.orchestrator.get(APP), undefined);
    const again = await call('debug.start', { name: 'alice' });
    await refusedWith(developer.push({ gateway: again.url, token: alice }, await counterPackage('1.0.0')), 'E_AUTH');
    assert.equal(gateway!.services.orchestrator.get(APP), undefined);
  });
});
