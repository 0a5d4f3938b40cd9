/**
 * The local harness (`@isogate/sdk/harness`): the app in a real isolate through the gateway's
 * sandbox, fed and observed by a test: emits, storage, configuration (validated), egress served
 * by fixtures, the gateway's limits (a CPU-bound handler is ended with E_CPU_LIMIT), and refusals
 * with their own codes.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { projectManifest } from '../../sdk/cli/templates.js';
import { isIsogateError } from '../../sdk/errors.js';
import { startApp } from '../../sdk/harness/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const MAIN = `import { config, egress, emit, log, on, storage } from 'isogate:sdk';
let factor = Number(config.get().factor);
config.onChange((next) => { factor = Number(next.factor); });
on('input', async (message) => {
  const { value } = message as { value: number };
  if (value === -1) { for (;;) {} }
  if (value === -2) throw new Error('negative two');
  const answer = await egress.fetch('cloud', { path: '/scale', method: 'POST', body: String(value) });
  log.info('cloud said', answer.status, answer.text());
  await storage.put('last', String(value));
  emit('output', { value: value * factor });
});
`;

describe('the local harness', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await makeTempDir();
    await fs.mkdir(path.join(dir, 'src'));
    const manifest = {
      ...projectManifest('com.example.harnessed', 'harnessed'),
      egress: [{ name: 'cloud', host: 'cloud.example.com', port: 443, protocol: 'https' }],
    };
    manifest.resources.cpuMsPerEvent = 50;
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    await fs.writeFile(path.join(dir, 'src', 'main.ts'), MAIN);
  });
  after(async () => {
    await removeDir(dir);
  });

  it('feeds a message, records the emit, the storage, the log and the egress call its fixture answered', async () => {
    const app = await startApp({ project: dir, config: { factor: 5 }, egress: { cloud: (request) => ({ status: 201, body: `got ${request.body}` }) } });
    try {
      await app.send('input', { value: 3 });
      assert.deepEqual(await app.nextEmit('output'), { value: 15 });
      assert.equal(app.storage.get('last'), '3');
      assert.deepEqual(
        app.egressCalls.map((call) => [call.target, call.kind, call.request?.path, call.request?.method]),
        [['cloud', 'fetch', '/scale', 'POST']],
      );
      assert.ok(app.logs.some((line) => line.message === 'cloud said 201 got 3'));
      await app.setConfig({ factor: 1 });
      app.clear();
      await app.send('input', { value: 4 });
      assert.deepEqual(await app.nextEmit('output'), { value: 4 });
    } finally {
      await app.stop();
    }
  });

  it('refuses, each with its code: a message the schema refuses, an unknown endpoint, a failing handler, a missing fixture, bad configuration', async () => {
    await assert.rejects(startApp({ project: dir, config: { factor: 'x' } }), (error: unknown) => isIsogateError(error, 'E_CONFIG'));
    await assert.rejects(startApp({ project: dir, egress: { elsewhere: {} } }), (error: unknown) => isIsogateError(error, 'E_USAGE'));
    const app = await startApp({ project: dir });
    try {
      await assert.rejects(app.send('input', { value: 'two' }), (error: unknown) => isIsogateError(error, 'E_MESSAGE'));
      await assert.rejects(app.send('output', { value: 1 }), (error: unknown) => isIsogateError(error, 'E_CAPABILITY'));
      await assert.rejects(app.send('input', { value: -2 }), (error: unknown) => isIsogateError(error, 'E_APP_FAILED'));
      // No fixture for "cloud": unreachable, as a gateway says it; the handler fails with it.
      await assert.rejects(app.send('input', { value: 1 }), (error: unknown) => isIsogateError(error, 'E_APP_FAILED'));
      // The log line crosses as a notification, after the delivery's answer.
      await waitFor(() => app.logs.some((line) => /cloud is unreachable/.test(line.message)));
      assert.deepEqual(app.emitted(), []);
      await assert.rejects(app.nextEmit('output', 50), (error: unknown) => isIsogateError(error, 'E_HARNESS_TIMEOUT'));
    } finally {
      await app.stop();
    }
  });

  it("ends a handler that runs past the manifest's CPU budget with E_CPU_LIMIT, as the gateway would", async () => {
    const app = await startApp({ project: dir, egress: { cloud: {} } });
    try {
      await assert.rejects(app.send('input', { value: -1 }), (error: unknown) => isIsogateError(error, 'E_CPU_LIMIT'));
      assert.equal(app.failure?.code, 'E_CPU_LIMIT');
    } finally {
      await app.stop();
    }
  });
});
