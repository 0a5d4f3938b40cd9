import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import sinon from 'sinon';
import { type ControlServer, callControl, serveControlSocket } from '../../platform/api/control-socket.js';
import { fail, isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('control socket', () => {
  let dir: string;
  let socketPath: string;
  let server: ControlServer | undefined;
  beforeEach(async () => {
    dir = await makeTempDir();
    socketPath = path.join(dir, 'control.sock');
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await removeDir(dir);
  });

  it('answers a request, streaming progress before the result', async () => {
    server = await serveControlSocket(socketPath, async (op, params, context) => {
      context.progress({ step: 1 });
      context.progress({ step: 2 });
      return { op, params };
    });
    const updates: unknown[] = [];
    const result = await callControl(socketPath, 'apps.list', { a: 1 }, (update) => updates.push(update));
    assert.deepEqual(result, { op: 'apps.list', params: { a: 1 } });
    assert.deepEqual(updates, [{ step: 1 }, { step: 2 }]);
  });

  it('is readable and writable by its owner only', async () => {
    server = await serveControlSocket(socketPath, async () => null);
    assert.equal((await fs.stat(socketPath)).mode & 0o777, 0o600);
  });

  it('binds 0600 under any process umask, never leaving the process under another umask across an await', async () => {
    const realUmask = process.umask.bind(process);
    // Reading the mask means setting it: process.umask() without a mask is deprecated for that reason.
    const currentMask = (): number => {
      const mask = realUmask(0o077);
      realUmask(mask);
      return mask;
    };
    // Whatever runs at the next await (a continuation, a file opened by another subsystem) sees the mask left then.
    const seenAtAwaits: number[] = [];
    const callerMask = realUmask(0o002);
    try {
      sinon.replace(process, 'umask', ((mask?: number | string) => {
        const previous = mask === undefined ? realUmask() : realUmask(mask);
        queueMicrotask(() => seenAtAwaits.push(currentMask()));
        return previous;
      }) as typeof process.umask);
      server = await serveControlSocket(socketPath, async () => null);
    } finally {
      sinon.restore();
      realUmask(callerMask);
    }
    assert.ok(seenAtAwaits.length >= 2, 'the mask was set and restored');
    assert.deepEqual(
      seenAtAwaits.filter((mask) => mask !== 0o002),
      [],
      "every await saw the caller's mask",
    );
    const stat = await fs.lstat(socketPath);
    assert.ok(stat.isSocket());
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal(await callControl(socketPath, 'status'), null);
  });

  it('carries error codes to the client', async () => {
    server = await serveControlSocket(socketPath, async () => {
      throw fail('E_APP_LIMIT', 'too many', { limit: 20 });
    });
    await assert.rejects(callControl(socketPath, 'apps.install'), (error: unknown) => isIsogateError(error, 'E_APP_LIMIT') && error.details.limit === 20);
  });

  it('answers malformed lines with E_BAD_REQUEST and keeps serving', async () => {
    server = await serveControlSocket(socketPath, async () => 'fine');
    const raw = await new Promise<string>((resolve) => {
      const socket = net.connect(socketPath, () => socket.write('not json\n[1,2]\n{"id":3}\n'));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.split('\n').length > 3) {
          socket.destroy();
          resolve(text);
        }
      });
    });
    const answers = raw
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { error?: { code: string } });
    assert.deepEqual(
      answers.map((a) => a.error?.code),
      ['E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_BAD_REQUEST'],
    );
    assert.equal(await callControl(socketPath, 'status'), 'fine');
  });

  it('refuses an endless line without a newline', async () => {
    server = await serveControlSocket(socketPath, async () => 'fine');
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(socketPath, () => socket.write('x'.repeat(1024 * 1024 + 10)));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
      });
      socket.on('close', () => resolve(text));
    });
    assert.equal((JSON.parse(answer.trim()) as { error: { code: string } }).error.code, 'E_DOCUMENT_LIMIT');
  });

  /** Writes `data` raw and collects every answer line until the gateway closes the connection. */
  function rawExchange(data: string): Promise<{ code: string }[]> {
    return new Promise((resolve) => {
      const socket = net.connect(socketPath, () => socket.write(data));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.endsWith('\n')) socket.end();
      });
      socket.on('error', () => undefined);
      socket.on('close', () =>
        resolve(
          text
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((line) => (JSON.parse(line) as { error: { code: string } }).error),
        ),
      );
    });
  }

  it('refuses an oversized request line that comes with its newline with E_DOCUMENT_LIMIT, before parsing or dispatching it', async () => {
    const dispatched: string[] = [];
    server = await serveControlSocket(socketPath, async (op) => {
      dispatched.push(op);
      return 'done';
    });
    // A valid request 2 MB long: today's check looked only at lines still missing their newline.
    const request = JSON.stringify({ id: 1, op: 'apps.config', params: { value: { blob: 'x'.repeat(2 * 1024 * 1024) } } });
    const answers = await rawExchange(`${request}\n`);
    assert.deepEqual(
      answers.map((a) => a.code),
      ['E_DOCUMENT_LIMIT'],
    );
    assert.deepEqual(dispatched, []);
    assert.equal(await callControl(socketPath, 'status'), 'done');
  });

  it('refuses a request nested past the bound with E_DOCUMENT_LIMIT and does not dispatch it', async () => {
    const dispatched: string[] = [];
    server = await serveControlSocket(socketPath, async (op) => {
      dispatched.push(op);
      return 'done';
    });
    const deep = `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`;
    await assert.rejects(callControl(socketPath, 'apps.config', JSON.parse(deep)), (error: unknown) => isIsogateError(error, 'E_DOCUMENT_LIMIT'));
    assert.deepEqual(dispatched, []);
  });

  it('refuses to start a second gateway on the same data directory', async () => {
    server = await serveControlSocket(socketPath, async () => null);
    await assert.rejects(
      serveControlSocket(socketPath, async () => null),
      (error: unknown) => isIsogateError(error, 'E_CONFLICT'),
    );
  });

  it('replaces a stale socket left by a crash', async () => {
    // A process killed while listening leaves its socket behind (a clean close removes it).
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`]);
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal((await fs.lstat(socketPath)).isSocket(), true);
    server = await serveControlSocket(socketPath, async () => 'up');
    assert.equal(await callControl(socketPath, 'status'), 'up');
  });

  it('tells the client when no gateway runs', async () => {
    await assert.rejects(callControl(socketPath, 'status'), (error: unknown) => isIsogateError(error, 'E_UNAVAILABLE') && /isogate start/.test(error.message));
  });
});
