/**
 * Two-factor login (issue 16, part 2): the account's certificate on the TLS connection and its
 * name and password; first-login credentials changed before anything else; the manual's lockout,
 * one session, idle period, credentials expiry and logout, each audited with the manual's text.
 */
import { strict as assert } from 'node:assert';
import { apiPki, assertError, type Harness, readyClient, startHarness } from './harness.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

describe('REST API login', function () {
  this.timeout(60_000);
  let harness: Harness;

  beforeEach(async () => {
    harness = await startHarness();
  });
  afterEach(async () => {
    await harness.close();
  });

  const events = (): string[] => harness.audit.events();
  const texts = (): string[] => harness.audit.records.map((record) => record.text);

  it('logs the admin in with certificate, name and password, and refuses all but a password change until the first-login password is changed', async () => {
    const admin = harness.client(apiPki().admin);
    const login = await admin.login('admin', 'adminadmin');
    assert.equal(login.status, 200);
    assert.deepEqual(
      { ...(login.json as object), csrfToken: 'x' },
      { role: 'admin', name: 'admin', csrfToken: 'x', mustChange: true, idleMinutes: 5, warnings: [] },
    );
    const cookie = ([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]!;
    assert.match(cookie, /^__Host-isogate-session=[\w-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
    assert.ok(texts().includes('admin logged in'));
    assert.equal(harness.audit.records.find((record) => record.event === 'adminAuthenticated')?.name, 'admin: User authentication');

    assertError(await admin.call('GET', '/status'), 'E_PASSWORD_CHANGE', 403);
    assert.deepEqual(harness.calls, [], 'nothing reached the service layer');

    assertError(
      await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'adminadmin', newPassword: 'aaaabbbbccc' } }),
      'E_CREDENTIALS_RULE',
      422,
    );
    assertError(
      await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'adminadmin', newPassword: 'adminadmin' } }),
      'E_CREDENTIALS_RULE',
      422,
    );
    assertError(
      await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'adminadmin', newPassword: 'Admin-pass-2026', name: 'ad min' } }),
      'E_CREDENTIALS_RULE',
      422,
    );
    assertError(
      await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'wrong-password', newPassword: 'Admin-pass-2026' } }),
      'E_AUTH',
      401,
    );
    const changed = await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'adminadmin', newPassword: 'Admin-pass-2026' } });
    assert.equal(changed.status, 200, changed.text);
    assert.equal((changed.json as { mustChange: boolean }).mustChange, false);
    assert.ok(texts().includes('The administrator password for initial login is changed'));

    const status = await admin.call('GET', '/status');
    assert.equal(status.status, 200);
    assert.deepEqual(harness.calls, ['status']);

    // The old password is history now: it can neither log in nor come back.
    await admin.call('DELETE', '/session');
    assertError(await admin.login('admin', 'adminadmin'), 'E_AUTH', 401);
    assert.equal((await admin.login('admin', 'Admin-pass-2026')).status, 200);
    assertError(
      await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'Admin-pass-2026', newPassword: 'adminadmin' } }),
      'E_CREDENTIALS_RULE',
      422,
    );
  });

  it("refuses a wrong password, an unknown name and another account's certificate with one sentence, each audited with its own text", async () => {
    const admin = harness.client(apiPki().admin);
    const wrong = await admin.login('admin', 'not-the-password');
    assertError(wrong, 'E_AUTH', 401);
    const unknown = await admin.login('root', 'adminadmin');
    assertError(unknown, 'E_AUTH', 401);
    assert.equal((wrong.json as { message: string }).message, (unknown.json as { message: string }).message);
    const user = harness.client(apiPki().user);
    assertError(await user.login('admin', 'adminadmin'), 'E_AUTH', 401);
    assert.deepEqual(
      texts().filter((text) => text.includes('authentication error')),
      [
        'User admin authentication error: incorrect password',
        'User root authentication error: no user found with specified name',
        'User admin authentication error: invalid certificate',
      ],
    );
    assert.equal(admin.cookie, undefined);
    assert.equal(harness.authenticator.activeSession(), undefined);
  });

  it('refuses a connection without a certificate, with one of another root, an expired one, one for servers and one bound to no account', async () => {
    const keys = apiPki();
    for (const identity of [undefined, keys.foreign, keys.expired, keys.serverUsage, keys.unbound]) {
      const client = harness.client(identity);
      assertError(await client.login('admin', 'adminadmin'), 'E_CERTIFICATE_REQUIRED', 401);
      // A certificate the root vouches for but no account holds has no session to show either.
      assertError(await client.call('GET', '/status'), identity === keys.unbound ? 'E_SESSION' : 'E_CERTIFICATE_REQUIRED', 401);
    }
    assert.equal(events().filter((event) => event === 'authInvalidCertificate').length, 9);
    assert.equal(harness.authenticator.activeSession(), undefined);
    assert.deepEqual(harness.calls, []);
  });

  it('blocks the account after the configured failed attempts for the configured minutes (Critical), even for the right password', async () => {
    harness.settings.failed_login_attempts = 3;
    harness.settings.lockout_minutes = 2;
    const admin = harness.client(apiPki().admin);
    assertError(await admin.login('admin', 'wrong-1'), 'E_AUTH', 401);
    assertError(await admin.login('admin', 'wrong-2'), 'E_AUTH', 401);
    const third = await admin.login('admin', 'wrong-3');
    assertError(third, 'E_LOCKED', 429);
    assert.equal(third.headers['retry-after'], '120');
    const blocked = harness.audit.records.filter((record) => record.event === 'userBlocked');
    assert.equal(blocked.length, 1);
    assert.equal(blocked[0]!.severity, 'Critical');
    assert.equal(blocked[0]!.text, 'User blocked due to exceeding the number of failed login attempts');
    assertError(await admin.login('admin', 'adminadmin'), 'E_LOCKED', 429);
    // The other account is not locked by the admin's certificate's failures.
    assert.equal((await harness.client(apiPki().user).login('user', 'useruser')).status, 200);
    harness.advance(2 * MINUTE + 1);
    assert.equal((await admin.login('admin', 'adminadmin')).status, 200);
  });

  it('keeps one session: the admin displaces the user, the user cannot displace the admin', async () => {
    const user = await readyClient(harness, 'user');
    const admin = await readyClient(harness, 'admin');
    assertError(await user.call('GET', '/status'), 'E_SESSION', 401);
    assert.ok(texts().includes('Connection session of user ended: replaced by a new login of admin'));
    assertError(await user.login('user', 'User-pass-2026'), 'E_SESSION_ACTIVE', 409);
    assert.equal((await admin.call('GET', '/status')).status, 200);
    // An admin session idle past the idle period no longer holds the place.
    harness.advance(6 * MINUTE);
    assert.equal((await user.login('user', 'User-pass-2026')).status, 200);
  });

  it('ends an idle session (WebServer: Connection session lock) and refuses its cookie', async () => {
    harness.settings.idle_minutes = 3;
    const admin = await readyClient(harness, 'admin');
    harness.advance(2 * MINUTE);
    assert.equal((await admin.call('GET', '/status')).status, 200);
    harness.advance(2 * MINUTE);
    assert.equal((await admin.call('GET', '/status')).status, 200, 'each request restarts the idle period');
    // A page's periodic refresh is served but does not keep the session alive.
    harness.advance(2 * MINUTE);
    assert.equal((await admin.call('GET', '/audit/system', { headers: { 'x-isogate-background': '1' } })).status, 200);
    harness.advance(1 * MINUTE + 1);
    assertError(await admin.call('GET', '/status'), 'E_SESSION', 401);
    assert.ok(events().includes('sessionIdleLock'));
    assert.ok(texts().includes('Connection session blocked due to inactivity'));
  });

  it("answers the pages' session probe without a cookie with E_SESSION unaudited, and still audits a stale cookie and a route without one", async () => {
    const refused = (): number => events().filter((event) => event === 'requestRefused').length;
    const browser = harness.client(apiPki().admin);
    for (let load = 0; load < 3; load += 1) assertError(await browser.call('GET', '/session'), 'E_SESSION', 401);
    assert.equal(refused(), 0, 'a page load asking whether it is logged in is not an attack');

    assertError(await browser.call('GET', '/status'), 'E_SESSION', 401);
    assert.equal(refused(), 1, 'a route without a session is still refused and audited');
    browser.cookie = 'forged-or-stale-token';
    assertError(await browser.call('GET', '/session'), 'E_SESSION', 401);
    assert.equal(refused(), 2, 'a session cookie that is no session is audited, probe or not');
    assert.ok(texts().some((text) => text.includes('GET /api/v1/session: E_SESSION')));
    assert.deepEqual(harness.calls, []);
  });

  it('refuses a session cookie replayed after logout, and one carried to another certificate', async () => {
    const admin = await readyClient(harness, 'admin');
    const stolen = { cookie: admin.cookie, csrf: admin.csrf };
    const thief = harness.client(apiPki().user);
    Object.assign(thief, stolen);
    assertError(await thief.call('GET', '/status'), 'E_SESSION', 401);
    assert.ok(texts().some((text) => text.includes('a session cookie of admin came with another certificate')));

    const loggedOut = await admin.call('DELETE', '/session');
    assert.equal(loggedOut.status, 200);
    assert.match(String(([] as string[]).concat(loggedOut.headers['set-cookie'] ?? [])[0]), /Max-Age=0/);
    const replay = harness.client(apiPki().admin);
    Object.assign(replay, stolen);
    assertError(await replay.call('GET', '/status'), 'E_SESSION', 401);
    assertError(await replay.call('POST', '/apps/com.example.app/start'), 'E_SESSION', 401);
    assert.ok(texts().includes('Connection session of admin ended: logged out'));
    assert.deepEqual(harness.calls, []);
  });

  it('warns of credentials about to expire, blocks an expired user account and takes an expired admin to the credentials update', async () => {
    await readyClient(harness, 'admin').then((admin) => admin.call('DELETE', '/session'));
    harness.settings.credentials_validity_days = 180;
    harness.settings.credentials_expiry_notice_days = 10;
    harness.advance(175 * DAY);
    const admin = harness.client(apiPki().admin);
    const warned = await admin.login('admin', 'Admin-pass-2026');
    assert.equal(warned.status, 200);
    assert.deepEqual((warned.json as { warnings: unknown[] }).warnings, [
      { code: 'credentials_expiry', days: 5, message: 'User name and password expire in 5 days' },
    ]);
    assert.ok(events().includes('adminCredentialsExpiry'));
    await admin.call('DELETE', '/session');

    harness.advance(10 * DAY);
    const user = harness.client(apiPki().user);
    assertError(await user.login('user', 'useruser'), 'E_CREDENTIALS_EXPIRED', 403);
    assert.ok(events().includes('userCredentialsExpired'));
    const expired = await admin.login('admin', 'Admin-pass-2026');
    assert.equal(expired.status, 200);
    assert.equal((expired.json as { mustChange: boolean }).mustChange, true);
    assertError(await admin.call('GET', '/status'), 'E_PASSWORD_CHANGE', 403);
    assert.ok(events().includes('adminCredentialsExpired'));
    assert.ok(texts().includes('User name and password expired, refresh the account credentials'));
  });

  it('ends all sessions for emergency support mode', async () => {
    const admin = await readyClient(harness, 'admin');
    await harness.authenticator.endAllSessions('emergency support mode');
    assertError(await admin.call('GET', '/status'), 'E_SESSION', 401);
    assert.ok(texts().includes('Connection session of admin ended: emergency support mode'));
  });
});
