/**
 * GET /apps/{id}/manifest (apps.manifest): what an installed app declares, as the Applications
 * page shows it, checked against the OpenAPI document's response schema by the harness; the
 * signer comes from the install record (never the manifest's own publisher text), unsigned
 * when there is none; the administrator's only.
 */
import { strict as assert } from 'node:assert';
import { type AppManifestView, appManifestView } from '../../platform/api/app-manifest.js';
import { invokeOperation } from '../../platform/api/operations.js';
import type { GatewayServices } from '../../platform/api/services.js';
import { main } from '../../platform/cli/main.js';
import { fail } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { fakeGateway, runMain } from '../fixtures/cli.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { assertError, type Harness, readyClient, startHarness } from './harness.js';

const ID = 'com.example.uplink';
const MANIFEST: AppManifest = {
  manifestVersion: 1,
  package_id: ID,
  name: 'uplink',
  title: 'Cloud uplink',
  version: '2.1.0',
  publisher: 'Totally The Vendor Ltd',
  type: 'service',
  buildSdkVersion: '1.0.0',
  entry: 'app/main.js',
  resources: { memoryMb: 64, cpuMsPerEvent: 250, storageMb: 4 },
  networkZone: 'wan',
  endpoints: [
    { name: 'alerts', direction: 'destination', dataType: 'plant.alert', format: 'json', schema: { type: 'object' } },
    { name: 'raw', direction: 'source', dataType: 'bytes', format: 'binary', maxMessageBytes: 4096 },
  ],
  egress: [{ name: 'cloud', host: 'cloud.example.com', port: 8883, protocol: 'mqtts', description: 'The plant cloud' }],
  configuration: { schema: { type: 'object', properties: { topic: { type: 'string' } } }, defaults: { topic: 'plant/alerts' } },
} as AppManifest;
const SIGNER = {
  subject: 'CN=Example Publisher',
  issuer: 'CN=Store CA',
  serialNumber: '01',
  fingerprint256: 'AA:BB',
  validTo: 'Dec  1 00:00:00 2030 GMT',
};

function installed(signer: typeof SIGNER | null): Record<string, unknown> {
  const app = { packageId: ID, version: MANIFEST.version, manifest: MANIFEST, dir: '/apps/x', record: { signer, origin: signer ? 'store' : 'debug' } };
  return {
    orchestrator: { get: (id: string) => (id === ID ? app : undefined) },
    requireInstalled: (id: string) => {
      if (id !== ID) throw fail('E_NOT_INSTALLED', `${id} is not installed`);
    },
  };
}

describe('REST API app manifest', function () {
  this.timeout(60_000);
  let harness: Harness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it("answers what the app declares, signed by the install record's signer, not by the manifest's claim", async () => {
    harness = await startHarness({}, installed(SIGNER));
    const admin = await readyClient(harness, 'admin');
    const answer = await admin.call('GET', `/apps/${ID}/manifest`);
    assert.equal(answer.status, 200, answer.text);
    const view = answer.json as AppManifestView;
    assert.equal(view.signature, 'verified');
    assert.deepEqual(view.signer, { subject: SIGNER.subject, issuer: SIGNER.issuer, fingerprint256: SIGNER.fingerprint256, validTo: SIGNER.validTo });
    assert.equal(view.publisher_claim, 'Totally The Vendor Ltd');
    assert.deepEqual(view.limits, MANIFEST.resources);
    assert.deepEqual(
      view.endpoints.map((endpoint) => [endpoint.name, endpoint.direction, endpoint.format, endpoint.maxMessageBytes, endpoint.schema]),
      [
        ['alerts', 'destination', 'json', null, true],
        ['raw', 'source', 'binary', 4096, false],
      ],
    );
    assert.deepEqual(view.egress, [{ name: 'cloud', host: 'cloud.example.com', port: 8883, protocol: 'mqtts', description: 'The plant cloud' }]);
    assert.deepEqual(view.capabilities, []);
    assert.deepEqual(view.configuration, { schema: MANIFEST.configuration!.schema, required: false, defaults: { topic: 'plant/alerts' } });
  });

  it('says unsigned for an app without a signer, and the control socket door answers the same view', async () => {
    harness = await startHarness({}, installed(null));
    const admin = await readyClient(harness, 'admin');
    const answer = await admin.call('GET', `/apps/${ID}/manifest`);
    assert.equal(answer.status, 200, answer.text);
    assert.equal((answer.json as AppManifestView).signature, 'unsigned');
    assert.equal((answer.json as AppManifestView).signer, null);
    const local = await invokeOperation(installed(null) as unknown as GatewayServices, 'apps.manifest', { id: ID }, { progress: () => undefined });
    assert.deepEqual(local, answer.json);
  });

  it('refuses an app that is not installed, a malformed id and the user account, each with its code', async () => {
    harness = await startHarness({}, installed(SIGNER));
    const admin = await readyClient(harness, 'admin');
    assertError(await admin.call('GET', '/apps/com.example.other/manifest'), 'E_NOT_INSTALLED', 404);
    assertError(await admin.call('GET', '/apps/..%2F..%2Fetc/manifest'), 'E_BAD_REQUEST', 400);
    await admin.call('DELETE', '/session');
    const user = await readyClient(harness, 'user');
    assertError(await user.call('GET', `/apps/${ID}/manifest`), 'E_FORBIDDEN', 403);
  });

  it('lists the installed apps in full to the administrator (and the control socket), and to the user without what the manifest route keeps from it', async () => {
    const row = {
      package_id: ID,
      name: 'uplink',
      publisher: SIGNER.subject,
      publisher_claim: MANIFEST.publisher,
      origin: 'debug',
      owner: 'alice',
      version: MANIFEST.version,
      type: 'service',
      status: 'failed',
      state: 3,
      launch_rule: 'auto',
      log_level: 2,
      configured: true,
      restarts: 1,
      last_error: { code: 'E_EGRESS', message: 'cloud.example.com:8883 refused', at: '2026-01-01T00:00:00.000Z' },
      signature: 'verified',
      signer: { subject: SIGNER.subject, issuer: SIGNER.issuer, fingerprint256: SIGNER.fingerprint256, spkiSha256: null, validTo: SIGNER.validTo },
      installed_at: '2026-01-01T00:00:00.000Z',
      manifest: MANIFEST,
    };
    const services = { ...installed(SIGNER), installedApps: () => [row] };
    harness = await startHarness({}, services);
    const admin = await readyClient(harness, 'admin');
    const full = await admin.call('GET', '/apps');
    assert.equal(full.status, 200, full.text);
    assert.deepEqual(full.json, [JSON.parse(JSON.stringify(row))]);
    assert.deepEqual(await invokeOperation(services as unknown as GatewayServices, 'apps.list', {}, { progress: () => undefined }), [row]);
    await admin.call('DELETE', '/session');

    const user = await readyClient(harness, 'user');
    const reduced = await user.call('GET', '/apps');
    assert.equal(reduced.status, 200, reduced.text);
    assert.deepEqual(reduced.json, [
      {
        package_id: ID,
        name: 'uplink',
        publisher: SIGNER.subject,
        version: '2.1.0',
        type: 'service',
        status: 'failed',
        state: 3,
        launch_rule: 'auto',
        signature: 'verified',
      },
    ]);
    assert.equal(reduced.text.includes('cloud.example.com'), false, 'no egress host, in the manifest or an error');
    assert.equal(reduced.text.includes(SIGNER.fingerprint256), false);
    assert.equal(reduced.text.includes('alice'), false);
  });

  it("shows the same view from the CLI (`isogate apps manifest ID`), the publisher's text escaped", async () => {
    const dir = await makeTempDir();
    const view = appManifestView({
      packageId: ID,
      version: MANIFEST.version,
      manifest: { ...MANIFEST, title: 'Cloud\u001b[2J uplink' },
      record: { signer: SIGNER, origin: 'store' } as never,
    });
    const gateway = await fakeGateway(dir, { 'apps.manifest': view });
    try {
      const shown = await runMain(main, ['apps', 'manifest', ID, '--data', dir]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.deepEqual(gateway.requests, [{ op: 'apps.manifest', params: { id: ID } }]);
      assert.match(shown.stdout, /Signed by CN=Example Publisher, issued by CN=Store CA/);
      assert.match(shown.stdout, /Egress: cloud mqtts:\/\/cloud\.example\.com:8883/);
      assert.match(shown.stdout, /Endpoints: alerts \(destination, plant\.alert, json, schema\); raw \(source, bytes, binary\)/);
      assert.equal(shown.stdout.includes('\u001b'), false, 'no terminal control from the package reaches the terminal');
    } finally {
      await gateway.close();
      await removeDir(dir);
    }
  });
});
