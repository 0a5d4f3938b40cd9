/**
 * The debug service's parts that need no gateway: developer tokens (kept only as hashes,
 * names checked, bounded), the service's option checks, the factory reset's refusals, and what
 * the two CLIs say and send for developer mode, each refusal with its own code.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FileAuditLog } from '../../platform/audit/index.js';
import { main as isogate } from '../../platform/cli/main.js';
import { factoryReset } from '../../platform/datadir/reset.js';
import { type DebugHost, DebugService, DeveloperTokens, inspectorPath, MAX_DEVELOPERS } from '../../platform/debug/index.js';
import { DataDir } from '../../platform/durable/index.js';
import { main as sdk } from '../../sdk/cli/main.js';
import { type ErrorCode, isIsogateError } from '../../sdk/errors.js';
import { fakeGateway, runMain } from '../fixtures/cli.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const NOW = new Date('2026-12-01T00:00:00Z');

async function refusedWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isIsogateError(error, code));
}

describe('developer tokens', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('keeps only a hash, answers the developer of a token, and forgets a revoked one', async () => {
    const tokens = await DeveloperTokens.open(dir);
    const { token } = await tokens.add('alice', NOW);
    const stored = await fs.readFile(path.join(dir, 'tokens.json'), 'utf8');
    assert.ok(!stored.includes(token.slice(5)), 'the token itself is not stored');
    assert.equal(((await fs.stat(path.join(dir, 'tokens.json'))).mode & 0o777).toString(8), '600');
    const reopened = await DeveloperTokens.open(dir);
    assert.equal(reopened.developerOf(token), 'alice');
    assert.equal(reopened.developerOf(`${token}x`), undefined);
    assert.equal(reopened.developerOf(token.replace('isgd_', 'xxxx_')), undefined);
    assert.equal(reopened.developerOf(undefined), undefined);
    assert.deepEqual(reopened.list(), [{ name: 'alice', createdAt: NOW.toISOString() }]);
    await reopened.revoke('alice');
    assert.equal(reopened.developerOf(token), undefined);
    await refusedWith(reopened.revoke('alice'), 'E_NOT_FOUND');
  });

  it('refuses a bad name, a second token for a name and more than the bound, changing nothing', async () => {
    const tokens = await DeveloperTokens.open(dir);
    await tokens.add('alice', NOW);
    const before = await snapshotTree(dir);
    await refusedWith(tokens.add('alice', NOW), 'E_CONFLICT');
    for (const name of ['', '../x', 'a b', 'x'.repeat(65), '-lead', 'émile']) await refusedWith(tokens.add(name, NOW), 'E_OPTION');
    assert.deepEqual(await snapshotTree(dir), before);
    for (let i = 1; i < MAX_DEVELOPERS; i += 1) await tokens.add(`dev${i}`, NOW);
    await refusedWith(tokens.add('one-too-many', NOW), 'E_CONFLICT');
  });

  it('drops entries of a tampered file that are not token hashes', async () => {
    await fs.writeFile(path.join(dir, 'tokens.json'), JSON.stringify({ tokens: [{ name: 'x', sha256: 'short', createdAt: 'now' }, { name: 'y' }, 'z'] }));
    assert.deepEqual((await DeveloperTokens.open(dir)).list(), []);
  });
});

describe('debug service options', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir();
  });
  after(() => removeDir(dir));

  it('checks maxPackageBytes at construction', async () => {
    const audit = await FileAuditLog.open(path.join(dir, 'audit'));
    for (const maxPackageBytes of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => new DebugService({ dir: path.join(dir, 'debug'), data: new DataDir(dir), audit, host: {} as DebugHost, maxPackageBytes }),
        (error: unknown) => isIsogateError(error, 'E_OPTION'),
      );
    }
  });

  it('refuses a port out of range before it listens or changes the mode', async () => {
    const audit = await FileAuditLog.open(path.join(dir, 'audit2'));
    let enabled = false;
    const host = {
      developerMode: () => enabled,
      enableDeveloperMode: async () => {
        enabled = true;
      },
    } as unknown as DebugHost;
    const service = new DebugService({ dir: path.join(dir, 'debug'), data: new DataDir(dir), audit, host, maxPackageBytes: 1024 });
    await refusedWith(service.start('alice', { port: 70_000 }), 'E_OPTION');
    assert.equal(enabled, false);
    assert.equal(service.url, undefined);
  });

  it('refuses a push and a DevTools session with E_STATE, audited, when the gateway is not in developer mode, though the service answers', async () => {
    const audit = await FileAuditLog.open(path.join(dir, 'audit3'));
    let mode = false;
    const pushed: string[] = [];
    const host = {
      developerMode: () => mode,
      enableDeveloperMode: async () => {
        mode = true;
      },
      push: async (file: string) => {
        pushed.push(file);
        return {};
      },
      ownerOf: () => 'alice',
      inspectable: () => undefined,
    } as unknown as DebugHost;
    const service = new DebugService({ dir: path.join(dir, 'debug3'), data: new DataDir(dir), audit, host, maxPackageBytes: 1024 });
    const { url, token } = await service.start('alice');
    try {
      // The mode gone under a listening service (its state replaced behind its back): every request is refused first.
      mode = false;
      const push = await fetch(`${url}/v1/apps`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: new Uint8Array([1, 2, 3]) });
      assert.equal(push.status, 409);
      assert.equal(((await push.json()) as { code: string }).code, 'E_STATE');
      const wsPath = new URL(service.url!).host;
      const upgrade = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(wsPath.split(':')[1]), '127.0.0.1', () => {
          socket.write(
            `GET ${inspectorPath('com.example.app', token)} HTTP/1.1\r\nHost: ${wsPath}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          );
        });
        let answer = '';
        socket.on('data', (chunk) => {
          answer += chunk;
        });
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
      });
      assert.match(upgrade, /^HTTP\/1\.1 409 E_STATE/);
      assert.deepEqual(pushed, [], 'nothing reached the orchestrator');
      // The inspector's refusal is audited beside its answer.
      const refusals = () => audit.list().filter((record) => record.event === 'debugRefused' && record.details?.code === 'E_STATE');
      await waitFor(() => refusals().length === 2);
    } finally {
      await service.close();
    }
  });
});

describe('isogate reset --factory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('refuses without --factory, and without --yes when there is no terminal to ask on, erasing nothing', async () => {
    const data = path.join(dir, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    await fs.writeFile(path.join(data, 'format.json'), '{}');
    const before = await snapshotTree(data);
    const bare = await runMain(isogate, ['reset', '--data', data]);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /E_USAGE: reset needs --factory/);
    const unconfirmed = await runMain(isogate, ['reset', '--factory', '--data', data]);
    assert.equal(unconfirmed.code, 2);
    assert.match(unconfirmed.stderr, /E_USAGE: .*add --yes/);
    assert.deepEqual(await snapshotTree(data), before);
  });

  it('refuses a directory that is not a data directory or does not exist', async () => {
    await fs.writeFile(path.join(dir, 'precious.txt'), 'mine');
    await refusedWith(factoryReset(dir), 'E_PATH');
    await refusedWith(factoryReset(path.join(dir, 'missing')), 'E_PATH');
    assert.equal(await fs.readFile(path.join(dir, 'precious.txt'), 'utf8'), 'mine');
  });

  it('erases everything in a data directory with --yes', async () => {
    const data = path.join(dir, 'data');
    await fs.mkdir(path.join(data, 'debug'), { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(data, 'format.json'), '{}');
    await fs.writeFile(path.join(data, 'debug', 'tokens.json'), '{}');
    const out = await runMain(isogate, ['reset', '--factory', '--yes', '--json', '--data', data]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout).removed, ['debug', 'format.json']);
    assert.deepEqual(await fs.readdir(data), ['gateway.lock']);
  });
});

describe('developer mode on the command lines', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('isogate debug-service start sends its options and shows the URL and the token', async () => {
    const answer = { url: 'http://127.0.0.1:4000', name: 'alice', token: 'isgd_abc' };
    const gateway = await fakeGateway(dir, { 'debug.start': answer });
    try {
      const out = await runMain(isogate, ['debug-service', 'start', '--data', dir, '--name', 'alice', '--port', '4000']);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /listens at http:\/\/127\.0\.0\.1:4000/);
      assert.match(out.stdout, /Token of alice \(shown only now\): isgd_abc/);
      assert.deepEqual(gateway.requests, [{ op: 'debug.start', params: { name: 'alice', port: 4000 } }]);
      const json = await runMain(isogate, ['debug-service', 'start', '--data', dir, '--json']);
      assert.deepEqual(JSON.parse(json.stdout), answer);
      const bad = await runMain(isogate, ['debug-service', 'start', '--data', dir, '--port', '99999']);
      assert.equal(bad.code, 2);
      assert.equal(gateway.requests.length, 2, 'a bad port is refused before anything is sent');
    } finally {
      await gateway.close();
    }
  });

  it('isogate-sdk push, logs and debug need a gateway and a token, and say so before sending anything', async () => {
    const saved = { gateway: process.env.ISOGATE_GATEWAY, token: process.env.ISOGATE_TOKEN };
    delete process.env.ISOGATE_GATEWAY;
    delete process.env.ISOGATE_TOKEN;
    try {
      for (const argv of [
        ['push', dir],
        ['push', dir, '--gateway', 'http://127.0.0.1:1'],
        ['logs', '--token', 'isgd_x', '--id', 'com.example.app'],
        ['debug', '--gateway', 'ftp://127.0.0.1:1', '--token', 'isgd_x', '--id', 'com.example.app'],
      ]) {
        const out = await runMain(sdk, argv);
        assert.equal(out.code, 2, `${argv.join(' ')}: ${out.stderr}`);
        assert.match(out.stderr, /^E_USAGE: /);
      }
      const unreachable = await runMain(sdk, ['debug', '--gateway', 'http://127.0.0.1:9', '--token', 'isgd_x', '--id', 'com.example.app']);
      assert.equal(unreachable.code, 1);
      assert.match(unreachable.stderr, /^E_UNAVAILABLE: No debug service answers at http:\/\/127\.0\.0\.1:9/);
    } finally {
      if (saved.gateway !== undefined) process.env.ISOGATE_GATEWAY = saved.gateway;
      if (saved.token !== undefined) process.env.ISOGATE_TOKEN = saved.token;
    }
  });
});
