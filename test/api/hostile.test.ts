/**
 * Hostile requests to the REST API (issue 16's list): CSRF from another origin, a user calling
 * the administrator's routes, oversized, malformed and deeply nested JSON, schema violations,
 * path traversal in a download's name, slow clients. Each is refused with its code and status,
 * audited, and reaches nothing behind the API.
 */
import { strict as assert } from 'node:assert';
import { OPERATION_ROUTES } from '../../platform/api/http/index.js';
import { type ApiClient, assertError, type Harness, rawConnection, readyClient, startHarness, untilClosed } from './harness.js';

const SAMPLE_PARAMS: Record<string, string> = { id: 'com.example.app', kind: 'ca', role: 'user' };

function concrete(template: string): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => SAMPLE_PARAMS[name]!);
}

describe('REST API against hostile requests', function () {
  this.timeout(60_000);
  let harness: Harness;
  let admin: ApiClient;

  beforeEach(async () => {
    harness = await startHarness({ bodyBytes: 4096, bodyTimeoutMs: 300, headersTimeoutMs: 300 });
    admin = await readyClient(harness, 'admin');
    harness.audit.records.length = 0;
  });
  afterEach(async () => {
    await harness.close();
  });

  const refusals = (): string[] => harness.audit.records.filter((record) => record.event === 'requestRefused').map((record) => record.text);

  it('refuses a changing request without the session CSRF token, and any from another origin or site, even with the token', async () => {
    assertError(await admin.call('POST', '/apps/com.example.app/start', { csrf: false }), 'E_CSRF', 403);
    assertError(await admin.call('POST', '/apps/com.example.app/start', { csrf: false, headers: { 'x-csrf-token': 'A'.repeat(43) } }), 'E_CSRF', 403);
    assertError(await admin.call('POST', '/apps/com.example.app/start', { headers: { origin: 'https://evil.example' } }), 'E_CSRF', 403);
    assertError(await admin.call('GET', '/status', { headers: { origin: 'https://evil.example' } }), 'E_CSRF', 403);
    assertError(await admin.call('POST', '/apps/com.example.app/stop', { headers: { 'sec-fetch-site': 'cross-site' } }), 'E_CSRF', 403);
    assertError(await admin.call('DELETE', '/session', { csrf: false }), 'E_CSRF', 403);
    // A login from another origin is refused too: nobody else's page may log the browser in.
    const other = harness.client();
    assertError(
      await other.call('POST', '/session', { body: { username: 'admin', password: 'x' }, headers: { origin: 'https://evil.example' } }),
      'E_CERTIFICATE_REQUIRED',
      401,
    );
    assert.equal(refusals().length, 6);
    assert.ok(refusals().every((text) => text.includes('E_CSRF')));
    assert.deepEqual(harness.calls, []);
    // The gateway's own origin is welcome.
    assert.equal((await admin.call('GET', '/status', { headers: { origin: harness.api.url } })).status, 200);
  });

  it("refuses the user every route the manual's roles table keeps for the administrator, and serves it the rest", async () => {
    await admin.call('DELETE', '/session');
    const user = await readyClient(harness, 'user');
    harness.audit.records.length = 0;
    const adminOnly = OPERATION_ROUTES.filter((route) => !route.roles.includes('user'));
    assert.ok(adminOnly.length > 20);
    for (const route of adminOnly) {
      const answer = await user.call(route.method, concrete(route.path), route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {} });
      assertError(answer, 'E_FORBIDDEN', 403);
    }
    assertError(await user.call('GET', '/users'), 'E_FORBIDDEN', 403);
    assertError(await user.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'adminadmin', newPassword: 'Another-pass-1' } }), 'E_FORBIDDEN', 403);
    assertError(await user.call('PUT', '/users/user/certificate', { body: { certificate: 'AAAA' } }), 'E_FORBIDDEN', 403);
    assert.deepEqual(harness.calls, [], 'no refused call reached the service layer');
    assert.equal(refusals().length, adminOnly.length + 3);

    for (const route of OPERATION_ROUTES.filter((candidate) => candidate.roles.includes('user'))) {
      const answer = await user.call(route.method, concrete(route.path));
      assert.notEqual(answer.status, 403, `${route.method} ${route.path} is the user's: ${answer.text}`);
    }
    assert.equal((await user.call('GET', '/status')).status, 200);
    assert.equal((await user.call('GET', '/apps')).status, 200);
    assert.equal((await user.call('GET', '/audit/firewall')).status, 200);
  });

  it('refuses malformed, oversized, deeply nested and non-object JSON and other content types, before anything runs', async () => {
    const start = '/apps/com.example.app/rule';
    assertError(await admin.call('PUT', start, { raw: '{"rule": "auto"', headers: { 'content-type': 'application/json' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', start, { raw: '[1,2]', headers: { 'content-type': 'application/json' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', start, { raw: '\xff\xfe', headers: { 'content-type': 'application/json' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', start, { raw: 'rule=auto', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 'E_CONTENT_TYPE', 415);
    assertError(await admin.call('PUT', start, { raw: '{"rule":"auto"}', headers: { 'content-type': 'text/plain' } }), 'E_CONTENT_TYPE', 415);
    const big = await admin.call('PUT', start, { body: { rule: 'auto', padding: 'x'.repeat(5000) } });
    assertError(big, 'E_DOCUMENT_LIMIT', 413);
    assert.equal((big.json as { details: { maxBytes: number } }).details.maxBytes, 4096);
    let deep: unknown = 'bottom';
    for (let level = 0; level < 40; level++) deep = { deeper: deep };
    assertError(await admin.call('PUT', '/apps/com.example.app/config', { body: { value: deep } }), 'E_DOCUMENT_LIMIT', 413);
    assertError(
      await admin.call('PUT', '/apps/com.example.app/config', {
        raw: `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        headers: { 'content-type': 'application/json' },
      }),
      'E_DOCUMENT_LIMIT',
      413,
    );
    assert.equal(refusals().length, 8);
    assert.deepEqual(harness.calls, []);
  });

  it("lets an app's configuration past the usual body bound, up to its own, and no other body", async () => {
    // A traffic inspector's configuration holds its rule lists (sdk/limits.ts): the launcher
    // checks each app's own bound once the body is read.
    const value = { rules: 'x'.repeat(8000) };
    assertError(await admin.call('PUT', '/apps/com.example.app/config', { body: { value } }), 'E_NOT_INSTALLED', 404);
    assertError(await admin.call('PATCH', '/apps/com.example.app/config', { body: { patch: value } }), 'E_NOT_INSTALLED', 404);
    assert.deepEqual(harness.calls, ['launcher.setConfiguration', 'launcher.mergeConfiguration']);
    harness.calls.length = 0;
    assertError(await admin.call('PUT', '/apps/com.example.app/rule', { body: { rule: 'auto', padding: 'x'.repeat(8000) } }), 'E_DOCUMENT_LIMIT', 413);
    assert.deepEqual(harness.calls, []);
  });

  it("refuses parameters the operation's schema does not allow, in the body, the query and the path", async () => {
    assertError(await admin.call('PUT', '/apps/com.example.app/rule', { body: { rule: 'always' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', '/apps/com.example.app/rule', { body: { rule: 'auto', extra: 1 } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', '/apps/com.example.app/rule', { body: { rule: 'auto', id: 'com.other.app' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', '/apps/com.example.app/log-level', { body: { level: 9 } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('POST', '/routes', { body: { source: 'a', destination: 'b:c' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('GET', '/audit/system?limit=zero'), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('GET', '/audit/system?severity=Fatal'), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('GET', '/audit/system?from=yesterday'), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('GET', '/audit/system?log=firewall'), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', '/users/settings', { body: { lockout_minutes: 31 } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', '/users/settings', { body: { idle_minutes: 0 } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('GET', '/status', { raw: '{}', headers: { 'content-type': 'application/json' } }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('POST', '/apps/com.example.app/start?now=1'), 'E_BAD_REQUEST', 400);
    assert.deepEqual(harness.calls, []);
    assert.equal(
      harness.config.read((doc) => doc.USER_SETTINGS),
      undefined,
      'the configuration is unchanged',
    );
    assert.equal(refusals().length, 13);
  });

  it('refuses path traversal in a download name before any file is looked at', async () => {
    for (const id of ['..%2F..%2Fetc%2Fpasswd', 'com.example.app%00.tar.gz', 'com.example.app%2F..%2F..', '.%2E%2Fx']) {
      assertError(await admin.call('GET', `/apps/${id}/logs/archive`), 'E_BAD_REQUEST', 400);
      assertError(await admin.call('GET', `/apps/${id}/logs`), 'E_BAD_REQUEST', 400);
    }
    // Dot segments as sent, which an HTTP client would have resolved before sending.
    const socket = await rawConnection(harness.api);
    const answer = untilClosed(socket);
    socket.end(
      `GET /api/v1/apps/../../../etc/passwd/logs/archive HTTP/1.1\r\nHost: localhost\r\nCookie: __Host-isogate-session=${admin.cookie}\r\nConnection: close\r\n\r\n`,
    );
    assert.match(await answer, /^HTTP\/1\.1 404 [\s\S]*"code":"E_NOT_FOUND"/);
    assert.deepEqual(harness.calls, []);
    assert.equal(refusals().length, 9);
  });

  it('answers an unknown resource and an unknown method with their codes', async () => {
    assertError(await admin.call('GET', '/nothing/here'), 'E_NOT_FOUND', 404);
    assertError(await admin.call('PUT', '/status', { body: {} }), 'E_METHOD', 405);
    assert.deepEqual(harness.calls, []);
  });

  it('closes a connection whose headers trickle in, with E_REQUEST_TIMEOUT', async () => {
    const socket = await rawConnection(harness.api);
    const answer = untilClosed(socket);
    socket.write('GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n');
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /"code":"E_REQUEST_TIMEOUT"/);
    assert.ok(refusals().some((line) => line.includes('E_REQUEST_TIMEOUT')));
    assert.deepEqual(harness.calls, []);
  });

  it('refuses a body that trickles in, with E_REQUEST_TIMEOUT, and changes nothing', async () => {
    const socket = await rawConnection(harness.api);
    const answer = untilClosed(socket);
    socket.write(
      [
        'PUT /api/v1/users/settings HTTP/1.1',
        'Host: localhost',
        `Cookie: __Host-isogate-session=${admin.cookie}`,
        `X-CSRF-Token: ${admin.csrf}`,
        'Content-Type: application/json',
        'Content-Length: 100',
        '',
        '{"lockout_minutes":',
      ].join('\r\n'),
    );
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /"code":"E_REQUEST_TIMEOUT"/);
    assert.ok(refusals().some((line) => line.includes('E_REQUEST_TIMEOUT')));
    assert.equal(
      harness.config.read((doc) => doc.USER_SETTINGS),
      undefined,
    );
  });
});
