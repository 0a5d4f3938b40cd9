/**
 * The gateway serves the REST API when given a port (issue 16: `isogate start --port N` listened
 * on nothing): HTTPS on loopback with the demo's server certificate, the demo admin and user
 * certificates bound to the manual's first-login accounts, and the one service layer behind it.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { CSRF_HEADER, SESSION_COOKIE } from '../../platform/api/http/index.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('gateway REST API', function () {
  this.timeout(120_000);
  let dir: string;
  let gateway: Gateway | undefined;
  let store: ServingStore | undefined;
  const agents: Agent[] = [];

  before(async () => {
    dir = await makeTempDir();
    gateway = await startGateway({
      dataDir: path.join(dir, 'data'),
      port: 0,
      embeddedStore: async (storeDir) => {
        store = await serveStore({ dir: storeDir });
        const serving = store;
        return { url: serving.url, rootCertPem: serving.store.rootCertPem, close: () => serving.close() };
      },
    });
  });
  after(async () => {
    for (const agent of agents) await agent.close();
    await gateway?.close();
    await removeDir(dir);
  });

  async function agentFor(role: 'admin' | 'user'): Promise<Agent> {
    const demo = gateway!.demo;
    const agent = new Agent({
      connect: {
        ca: await fs.readFile(demo.rootCertFile, 'utf8'),
        cert: await fs.readFile(role === 'admin' ? demo.adminCertFile : demo.userCertFile, 'utf8'),
        key: await fs.readFile(role === 'admin' ? demo.adminKeyFile : demo.userKeyFile, 'utf8'),
        servername: 'localhost',
      },
    });
    agents.push(agent);
    return agent;
  }

  it("listens over HTTPS on 127.0.0.1 and logs the demo admin in with the manual's first-login credentials, then serves the service layer", async () => {
    assert.match(gateway!.apiUrl!, /^https:\/\/127\.0\.0\.1:\d+$/);
    const agent = await agentFor('admin');
    const login = await request(`${gateway!.apiUrl}/api/v1/session`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'adminadmin' }),
    });
    assert.equal(login.statusCode, 200);
    const session = (await login.body.json()) as { csrfToken: string; mustChange: boolean };
    assert.equal(session.mustChange, true);
    const cookie = String(([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]).split(';')[0]!;
    assert.ok(cookie.startsWith(`${SESSION_COOKIE}=`));
    const headers = { cookie, [CSRF_HEADER]: session.csrfToken, 'content-type': 'application/json' };
    const changed = await request(`${gateway!.apiUrl}/api/v1/users/admin/credentials`, {
      dispatcher: agent,
      method: 'PUT',
      headers,
      body: JSON.stringify({ oldPassword: 'adminadmin', newPassword: 'Admin-pass-2026' }),
    });
    assert.equal(changed.statusCode, 200, await changed.body.text());
    const apps = await request(`${gateway!.apiUrl}/api/v1/apps`, { dispatcher: agent, headers });
    assert.equal(apps.statusCode, 200);
    assert.deepEqual(await apps.body.json(), []);
    const status = await request(`${gateway!.apiUrl}/api/v1/status`, { dispatcher: agent, headers });
    assert.equal(((await status.body.json()) as { version: string }).version, gateway!.services.status().version);
    const audited = gateway!.services.audit.list({ log: 'system' }).map((record) => record.name);
    assert.ok(audited.includes('admin: User authentication'));
    assert.ok(audited.includes('admin: Change credentials'));
  });

  it('binds the demo user certificate to the user account, whose first login must change its password', async () => {
    // The admin's session holds the one place until it ends.
    await gateway!.authenticator.endAllSessions('test');
    const agent = await agentFor('user');
    const login = await request(`${gateway!.apiUrl}/api/v1/session`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'user', password: 'useruser' }),
    });
    assert.equal(login.statusCode, 200);
    assert.equal(((await login.body.json()) as { role: string; mustChange: boolean }).mustChange, true);
  });
});
