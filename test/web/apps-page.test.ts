/**
 * The Applications page's admin controls in chromium against a real gateway (issue 16: "start
 * rule, manifest view, configuration editor validated against the app's schema; Application
 * log with live tail and archive download"): each change checked on the gateway itself, and the
 * user account shown none of them and refused them by the API.
 */
import { strict as assert } from 'node:assert';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Page } from 'playwright-core';
import tar from 'tar-stream';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';
import { callFromPage, logIn, logOut, startWebHarness, type WebHarness } from './harness.js';

const TELEMETRY = 'dev.isogate.samples.telemetry';
const NAME = 'telemetry-source';
const PASSWORD = 'Admin-pass-2026';

async function archiveFiles(file: string): Promise<Map<string, string>> {
  const extract = tar.extract();
  const files = new Map<string, string>();
  createReadStream(file).pipe(createGunzip()).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    files.set(entry.header.name, Buffer.concat(chunks).toString('utf8'));
  }
  return files;
}

describe('web interface: the Applications page (chromium)', function () {
  this.timeout(180_000);
  let web: WebHarness;
  let page: Page;
  let dir: string;
  const app = () => web.gateway.services.installedApps().find((row) => row.package_id === TELEMETRY)!;
  const row = () => page.getByRole('table', { name: 'Applications' }).getByRole('row').filter({ hasText: NAME });

  before(async () => {
    dir = await makeTempDir();
    web = await startWebHarness();
    await web.gateway.services.orchestrator.install(TELEMETRY);
    ({ page } = await web.open('admin'));
    await logIn(page, 'admin', 'adminadmin', PASSWORD);
    await page.getByRole('link', { name: 'Applications' }).click();
    await row().waitFor();
  });
  after(async () => {
    if (page) await logOut(page).catch(() => undefined);
    await web?.close();
    if (dir) await removeDir(dir);
  });

  it("sets the manual's start rule per app, shown in its row and kept by the gateway", async () => {
    const select = page.getByLabel(`Start rule ${NAME}`);
    assert.equal(await select.inputValue(), app().launch_rule);
    await select.selectOption({ label: 'Block start' });
    await page.getByRole('status').filter({ hasText: 'Start rule saved' }).waitFor();
    assert.equal(app().launch_rule, 'blocked');
    // Block start: the gateway refuses to start it, and the page says so.
    await row().getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: /E_/ }).waitFor();
    assert.notEqual(app().status, 'running');
    await select.selectOption({ label: 'Manual start' });
    await waitForAsync(async () => app().launch_rule === 'manual');
    await waitForAsync(async () => (await select.inputValue()) === 'manual');
  });

  it('shows the manifest in words: signed and by whom, endpoints, limits, egress hosts, capabilities, the configuration schema', async () => {
    await row().getByRole('button', { name: 'Manifest' }).click();
    const panel = page.getByRole('region', { name: `Manifest ${TELEMETRY}` });
    await panel.getByText('signed, the signature verified').waitFor();
    const signer = app().signer!;
    await panel.getByRole('definition').filter({ hasText: signer.subject }).first().waitFor();
    await panel.getByRole('definition').filter({ hasText: '32 MiB' }).waitFor();
    const endpoints = panel.getByRole('table', { name: `Endpoints ${TELEMETRY}` });
    await endpoints.getByRole('row').filter({ hasText: 'readings' }).filter({ hasText: 'plant.reading' }).filter({ hasText: 'Source' }).waitFor();
    // The telemetry source reaches no host and holds no reserved capability: said, not left blank.
    assert.equal(await panel.getByText('none declared').count(), 2);
    assert.match((await panel.getByLabel(`Configuration schema ${TELEMETRY}`).textContent()) ?? '', /"intervalMs"/);
    await panel.getByRole('button', { name: 'Close' }).click();
    await panel.waitFor({ state: 'detached' });
  });

  it('refuses a configuration that violates the app’s schema in the browser, naming the path, and the gateway refuses it too', async () => {
    const before = web.gateway.services.launcher.getConfiguration(TELEMETRY);
    const puts: string[] = [];
    const count = (request: { method(): string; url(): string }): void => {
      if (request.method() === 'PUT' && request.url().endsWith(`/apps/${TELEMETRY}/config`)) puts.push(request.url());
    };
    page.on('request', count);
    await row().getByRole('button', { name: 'Configuration' }).click();
    const editor = page.getByRole('textbox', { name: 'Configuration' });
    await waitForAsync(async () => (await editor.inputValue()).length > 0);
    await editor.fill('{"intervalMs": 10, "sensors": ["temperature"]}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: "does not match the app's schema" }).filter({ hasText: '/intervalMs' }).waitFor();
    page.off('request', count);
    assert.deepEqual(puts, [], 'a configuration the schema refuses is never sent');
    assert.deepEqual(web.gateway.services.launcher.getConfiguration(TELEMETRY), before);

    const refused = await callFromPage(page, 'PUT', `/apps/${TELEMETRY}/config`, { value: { intervalMs: 10 } });
    assert.equal(refused.status, 422);
    assert.equal(refused.body.code, 'E_CONFIG');
    assert.deepEqual(web.gateway.services.launcher.getConfiguration(TELEMETRY), before);
    await page.getByRole('button', { name: 'Close' }).click();
  });

  it('follows the application log live (a line the app logs appears while it is open), pauses and resumes, and downloads the archive with its progress', async () => {
    await row().getByRole('button', { name: 'Log' }).click();
    const panel = page.getByRole('region', { name: `Application log ${TELEMETRY}` });
    await panel.getByRole('status').filter({ hasText: 'Following new lines' }).waitFor();
    const lines = panel.getByRole('table', { name: `Application log ${TELEMETRY}` }).locator('tbody tr');
    // Started only now: what it logs at start is written after the tail opened.
    await row().getByRole('button', { name: 'Start', exact: true }).click();
    const emitting = lines.filter({ hasText: 'emitting temperature' });
    await emitting.first().waitFor({ timeout: 60_000 });
    assert.match((await emitting.first().textContent()) ?? '', /INFO/, 'the level is shown');
    assert.equal(app().status, 'running');

    await panel.getByRole('button', { name: 'Pause' }).click();
    await panel.getByRole('status').filter({ hasText: 'Paused' }).waitFor();
    const shown = await lines.count();
    const written = async (): Promise<number> => {
      const follower = await web.gateway.services.followLog(TELEMETRY, {});
      let total = 0;
      for (let batch = await follower.next(); batch; batch = await follower.next()) total += batch.length;
      await follower.close();
      return total;
    };
    const before = await written();
    await web.gateway.services.launcher.stop(TELEMETRY);
    await web.gateway.services.launcher.start(TELEMETRY);
    await waitForAsync(async () => (await written()) > before);
    assert.equal(await lines.count(), shown, 'paused: new lines wait');
    await panel.getByRole('button', { name: 'Resume' }).click();
    await waitForAsync(async () => (await lines.count()) > shown);

    const [download] = await Promise.all([page.waitForEvent('download'), panel.getByRole('button', { name: 'Download the log archive' }).click()]);
    assert.equal(download.suggestedFilename(), `log_files_${TELEMETRY}.tar.gz`);
    await panel.getByText(/Received .* of about/).waitFor();
    await panel.getByRole('status').filter({ hasText: 'Downloaded' }).waitFor();
    const saved = path.join(dir, download.suggestedFilename());
    await download.saveAs(saved);
    const files = await archiveFiles(saved);
    assert.match(files.get(`${TELEMETRY}/app.log`) ?? '', /INFO +\[app\] emitting temperature/);
    await panel.getByRole('button', { name: 'Close' }).click();
    await panel.waitFor({ state: 'detached' });
  });

  it('shows the user account none of these controls, and the API refuses them to it', async () => {
    await logOut(page);
    const { page: userPage } = await web.open('user');
    await logIn(userPage, 'user', 'useruser', 'User-pass-2026');
    await userPage.getByRole('link', { name: 'Applications' }).click();
    const userRow = userPage.getByRole('table', { name: 'Applications' }).getByRole('row').filter({ hasText: NAME });
    await userRow.filter({ hasText: 'Manual start' }).waitFor();
    assert.equal(await userPage.getByLabel(`Start rule ${NAME}`).count(), 0);
    for (const button of ['Manifest', 'Configuration', 'Log', 'Start', 'Uninstall']) {
      assert.equal(await userPage.getByRole('button', { name: button, exact: true }).count(), 0, button);
    }
    for (const [method, apiPath, body] of [
      ['PUT', `/apps/${TELEMETRY}/rule`, { rule: 'auto' }],
      ['GET', `/apps/${TELEMETRY}/manifest`],
      ['GET', `/apps/${TELEMETRY}/logs/lines?tail=5`],
      ['GET', `/apps/${TELEMETRY}/logs/archive`],
      ['PUT', `/apps/${TELEMETRY}/config`, { value: { intervalMs: 2000 } }],
    ] as const) {
      const answer = await callFromPage(userPage, method, apiPath, body);
      assert.equal(answer.status, 403, `${method} ${apiPath}`);
      assert.equal(answer.body.code, 'E_FORBIDDEN', `${method} ${apiPath}`);
    }
    // The list the page draws from: what the page shows, not the manifest the manifest route refuses.
    const listed = (await callFromPage(userPage, 'GET', '/apps')).body as unknown as Record<string, unknown>[];
    const row = listed.find((entry) => entry.package_id === TELEMETRY);
    assert.deepEqual(Object.keys(row ?? {}).sort(), ['launch_rule', 'name', 'package_id', 'publisher', 'signature', 'state', 'status', 'type', 'version']);
    assert.equal(app().launch_rule, 'manual');
    await logOut(userPage);
    // The next test file's admin logs in again from its own page.
    await logIn(page, 'admin', PASSWORD);
  });
});
