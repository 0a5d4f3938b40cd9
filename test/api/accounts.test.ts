/**
 * The Users section's API (the manual's "Managing accounts"): both accounts shown without their
 * secrets, the user's certificate replaced by the administrator (only one the gateway's root
 * signed), the user's credentials set by the administrator, and the connection settings within
 * the manual's ranges, each change audited with the manual's text.
 */
import { strict as assert } from 'node:assert';
import { apiPki, assertError, type Harness, newClientIdentity, readyClient, startHarness } from './harness.js';

const DAY = 86_400_000;
const base64 = (text: string): string => Buffer.from(text).toString('base64');

describe('REST API accounts', function () {
  this.timeout(60_000);
  let harness: Harness;

  beforeEach(async () => {
    harness = await startHarness();
  });
  afterEach(async () => {
    await harness.close();
  });

  const texts = (): string[] => harness.audit.records.map((record) => record.text);

  it('shows both accounts and the root, never a password hash', async () => {
    const admin = await readyClient(harness, 'admin');
    const users = await admin.call('GET', '/users');
    assert.equal(users.status, 200);
    const { accounts } = users.json as { accounts: { role: string; name: string; mustChange: boolean }[] };
    assert.deepEqual(
      accounts.map((account) => [account.role, account.name, account.mustChange]),
      [
        ['admin', 'admin', false],
        ['user', 'user', true],
      ],
    );
    assert.doesNotMatch(users.text, /salt|hash"/);
  });

  it("binds the user account to a new certificate of the gateway's root, and refuses one of another root or not a certificate", async () => {
    const admin = await readyClient(harness, 'admin');
    const replacement = newClientIdentity('user 2', { notAfter: new Date(harness.now + 5 * DAY) });
    const foreign = newClientIdentity('user 3', {}, apiPki().otherRoot);
    assertError(await admin.call('PUT', '/users/user/certificate', { body: { certificate: base64(foreign.certPem) } }), 'E_CERTIFICATE', 422);
    assertError(await admin.call('PUT', '/users/user/certificate', { body: { certificate: base64('no certificate here') } }), 'E_CERT_FILE', 422);
    assertError(await admin.call('PUT', '/users/user/certificate', { body: { certificate: base64(apiPki().admin.certPem) } }), 'E_CONFLICT', 409);
    const bound = await admin.call('PUT', '/users/user/certificate', { body: { certificate: base64(replacement.certPem) } });
    assert.equal(bound.status, 200, bound.text);
    assert.ok(texts().includes('Certificate for user user changed'));
    await admin.call('DELETE', '/session');

    assertError(await harness.client(apiPki().user).login('user', 'useruser'), 'E_CERTIFICATE_REQUIRED', 401);
    const login = await harness.client(replacement).login('user', 'useruser');
    assert.equal(login.status, 200);
    assert.deepEqual((login.json as { warnings: unknown[] }).warnings, [
      { code: 'certificate_expiry', days: 5, message: 'User certificate expires in 5 days' },
    ]);
    assert.ok(harness.audit.events().includes('userCertificateExpiry'));
  });

  it("lets the administrator set the user's credentials, which the user must change at its next login", async () => {
    const user = await readyClient(harness, 'user');
    await user.call('DELETE', '/session');
    const admin = await readyClient(harness, 'admin');
    const set = await admin.call('PUT', '/users/user/credentials', {
      body: { oldPassword: 'User-pass-2026', newPassword: 'Set-by-admin-1', name: 'operator' },
    });
    assert.equal(set.status, 200, set.text);
    assert.ok(texts().includes('Password for user operator changed'));
    assert.ok(texts().includes('operator user name changed'));
    assertError(
      await admin.call('PUT', '/users/admin/credentials', { body: { oldPassword: 'Admin-pass-2026', newPassword: 'Another-pass-1', name: 'operator' } }),
      'E_CREDENTIALS_RULE',
      422,
    );
    await admin.call('DELETE', '/session');
    const again = harness.client(apiPki().user);
    const login = await again.login('operator', 'Set-by-admin-1');
    assert.equal((login.json as { mustChange: boolean }).mustChange, true);
    assertError(await again.call('GET', '/apps'), 'E_PASSWORD_CHANGE', 403);
  });

  it("changes the connection settings within the manual's ranges, audited with its events", async () => {
    const admin = await readyClient(harness, 'admin');
    const before = await admin.call('GET', '/users/settings');
    assert.equal((before.json as { idle_minutes: number }).idle_minutes, 5);
    const changed = await admin.call('PUT', '/users/settings', {
      body: { lockout_minutes: 10, idle_minutes: 7, failed_login_attempts: 4, credentials_validity_days: 365 },
    });
    assert.equal(changed.status, 200, changed.text);
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { lockout_minutes: 10, idle_minutes: 7, failed_login_attempts: 4, credentials_validity_days: 365 },
    );
    assert.ok(texts().includes('Lockout duration after failed password attempts changed. New value: 10 minutes'));
    assert.ok(texts().includes('User idle time before locking changed, new value: 7 min'));
    assert.ok(texts().includes('Maximum number of failed login attempts changed. New value: 4'));
    assertError(await admin.call('PUT', '/users/settings', { body: {} }), 'E_BAD_REQUEST', 400);
    assertError(await admin.call('PUT', '/users/settings', { body: { credentials_validity_days: 100 } }), 'E_BAD_REQUEST', 400);
    assert.equal(
      harness.config.read((doc) => doc.USER_SETTINGS?.credentials_validity_days),
      365,
    );
    // The configuration document holds the same ranges, whichever door changes it.
    await assert.rejects(
      harness.config.update((doc) => {
        doc.USER_SETTINGS = { failed_login_attempts: 11 };
      }),
      { code: 'E_CONFIG' },
    );
    await assert.rejects(
      harness.config.update((doc) => {
        (doc.USER_SETTINGS as Record<string, unknown>).session_minutes = 5;
      }),
      { code: 'E_CONFIG' },
    );
    assert.equal(
      harness.config.read((doc) => doc.USER_SETTINGS?.failed_login_attempts),
      4,
    );
  });
});
