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
import { waitFor, waitForAsync } from '../fixtures/wait.js';

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

  describe('bounds per connection', () => {
    type Answer = { id?: unknown; result?: unknown; progress?: unknown; error?: { code: string; message: string; details: Record<string, unknown> } };
    /** A raw client: its answers as they come, and a promise of all of them once the gateway closes it. */
    function client(): { socket: net.Socket; answers: Answer[]; connected: Promise<void>; closed: Promise<Answer[]> } {
      const socket = net.connect(socketPath);
      const answers: Answer[] = [];
      let text = '';
      socket.setEncoding('utf8');
      socket.on('error', () => undefined);
      socket.on('data', (chunk: string) => {
        text += chunk;
        for (let newline = text.indexOf('\n'); newline >= 0; newline = text.indexOf('\n')) {
          answers.push(JSON.parse(text.slice(0, newline)) as Answer);
          text = text.slice(newline + 1);
        }
      });
      return { socket, answers, connected: once(socket, 'connect').then(() => undefined), closed: once(socket, 'close').then(() => answers) };
    }
    const line = (id: number, op: string) => `${JSON.stringify({ op, id })}\n`;

    it('refuses a connection past the most at once with E_CONNECTION_LIMIT, serving those open, and takes one again once one closes', async () => {
      server = await serveControlSocket(socketPath, async () => 'fine', { limits: { maxConnections: 2 } });
      const first = client();
      const second = client();
      first.socket.write(line(1, 'status'));
      second.socket.write(line(1, 'status'));
      // Answered, so counted by the gateway.
      await waitFor(() => first.answers.length === 1 && second.answers.length === 1);
      const [refusal, ...rest] = await client().closed;
      assert.equal(refusal?.error?.code, 'E_CONNECTION_LIMIT');
      assert.equal(refusal?.error?.details.maxConnections, 2);
      assert.deepEqual(rest, []);
      // The connections open are served as before.
      second.socket.write(line(2, 'status'));
      await waitFor(() => second.answers.length === 2);
      assert.deepEqual(second.answers[1], { id: 2, result: 'fine' });
      first.socket.destroy();
      await waitForAsync(async () => (await callControl(socketPath, 'status').catch((error: unknown) => String(error))) === 'fine');
      second.socket.destroy();
    });

    it('ends a connection that sends no request, or never finishes its line, with E_REQUEST_TIMEOUT, unserved, while a client beside it is served', async () => {
      const dispatched: string[] = [];
      server = await serveControlSocket(
        socketPath,
        async (op) => {
          dispatched.push(op);
          return 'fine';
        },
        { limits: { idleMs: 150 } },
      );
      const silent = client();
      const partial = client();
      await partial.connected;
      // A byte at a time as fast as it can: bytes that come do not move the deadline.
      partial.socket.write('{"op":"status","id":1,"params":{"x":"');
      let written = 0;
      const trickle = (): void => {
        if (partial.socket.destroyed || written >= 256 * 1024) return;
        partial.socket.write('x');
        written += 1;
        setImmediate(trickle);
      };
      trickle();
      assert.equal(await callControl(socketPath, 'status'), 'fine');
      const [silentAnswers, partialAnswers] = await Promise.all([silent.closed, partial.closed]);
      assert.deepEqual(
        silentAnswers.map((answer) => answer.error?.code),
        ['E_REQUEST_TIMEOUT'],
      );
      assert.match(silentAnswers[0]!.error!.message, /No request arrived within 150 ms/);
      assert.equal(partialAnswers.at(-1)?.error?.code, 'E_REQUEST_TIMEOUT');
      assert.match(partialAnswers.at(-1)!.error!.message, /not finished/);
      assert.ok(written < 256 * 1024, `the deadline held while ${written} bytes came`);
      assert.deepEqual(dispatched, ['status']);
    });

    it('does not end a request being answered past the idle period (an install with progress), though an idle client beside it is ended', async () => {
      let open: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      server = await serveControlSocket(
        socketPath,
        async (op, _params, context) => {
          if (op !== 'apps.install') return 'fine';
          context.progress({ step: 'downloading' });
          await gate;
          context.progress({ step: 'installed' });
          return 'installed';
        },
        { limits: { idleMs: 250 } },
      );
      const updates: unknown[] = [];
      const install = callControl(socketPath, 'apps.install', {}, (update) => updates.push(update));
      await waitFor(() => updates.length === 1);
      // Opened after the install began, so ended after the install's connection was idle as long.
      const idle = await client().closed;
      assert.equal(idle[0]?.error?.code, 'E_REQUEST_TIMEOUT');
      open();
      assert.equal(await install, 'installed');
      assert.deepEqual(updates, [{ step: 'downloading' }, { step: 'installed' }]);
    });

    it('reads no further pipelined request while the most are in flight, then answers every one in order', async () => {
      let open: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const held: unknown[] = [];
      server = await serveControlSocket(
        socketPath,
        async (op, params) => {
          if (op !== 'hold') return 'fine';
          held.push(params);
          await gate;
          return 'done';
        },
        { limits: { maxInFlight: 2 } },
      );
      const hostile = client();
      hostile.socket.write(Array.from({ length: 10 }, (_, index) => line(index + 1, 'hold')).join(''));
      await waitFor(() => held.length === 2);
      // A client beside it is served; by then the pipelined lines have long arrived.
      assert.equal(await callControl(socketPath, 'status'), 'fine');
      assert.equal(held.length, 2, 'no third request read while two are answered');
      open();
      await waitFor(() => hostile.answers.length === 10);
      assert.deepEqual(
        hostile.answers.map((answer) => [answer.id, answer.result]),
        Array.from({ length: 10 }, (_, index) => [index + 1, 'done']),
      );
      hostile.socket.destroy();
    });

    it('reads no further request from a client that does not read its answers, then serves it once it reads', async () => {
      const answered: number[] = [];
      const big = 'x'.repeat(64 * 1024);
      server = await serveControlSocket(
        socketPath,
        async (op) => {
          if (op !== 'big') return 'fine';
          answered.push(answered.length);
          return big;
        },
        { limits: { unreadReplyBytes: 0, maxInFlight: 4 } },
      );
      const hostile = client();
      hostile.socket.pause();
      const count = 100;
      hostile.socket.write(Array.from({ length: count }, (_, index) => line(index + 1, 'big')).join(''));
      await waitFor(() => answered.length > 0);
      assert.equal(await callControl(socketPath, 'status'), 'fine');
      // What the kernel's buffers hold and one answer more, not the 6.4 MB of answers the requests ask for.
      assert.ok(answered.length < count / 2, `${answered.length} of ${count} requests answered to a client that reads nothing`);
      hostile.socket.resume();
      await waitFor(() => hostile.answers.length === count, 30_000);
      assert.deepEqual(
        hostile.answers.map((answer) => answer.id),
        Array.from({ length: count }, (_, index) => index + 1),
      );
      assert.ok(hostile.answers.every((answer) => answer.result === big));
      hostile.socket.destroy();
    });

    it('ends a client that reads none of its answers, once none is owed, with E_REQUEST_TIMEOUT after the idle period', async () => {
      const answered: number[] = [];
      const big = 'x'.repeat(64 * 1024);
      server = await serveControlSocket(
        socketPath,
        async () => {
          answered.push(answered.length);
          return big;
        },
        { limits: { idleMs: 300, unreadReplyBytes: 0 } },
      );
      const hostile = client();
      hostile.socket.pause();
      const count = 20_000;
      // More than the kernel holds: the rest is written once the gateway reads again, which it does only to end the connection.
      assert.equal(hostile.socket.write(Array.from({ length: count }, (_, index) => line(index + 1, 'big')).join('')), false);
      await once(hostile.socket, 'drain');
      hostile.socket.resume();
      const answers = await hostile.closed;
      assert.ok(answered.length < count / 10, `${answered.length} of ${count} answered`);
      assert.equal(answers.length, answered.length + 1);
      assert.equal(answers.at(-1)?.error?.code, 'E_REQUEST_TIMEOUT');
      assert.match(answers.at(-1)!.error!.message, /answers sent were not read/);
      assert.equal(await callControl(socketPath, 'status'), big);
    });

    it('refuses limits that are not positive integers with E_OPTION', async () => {
      for (const limits of [{ maxConnections: 0 }, { idleMs: 1.5 }, { maxInFlight: -1 }, { unreadReplyBytes: Number.NaN }]) {
        await assert.rejects(
          serveControlSocket(socketPath, async () => null, { limits }),
          (error: unknown) => isIsogateError(error, 'E_OPTION'),
          JSON.stringify(limits),
        );
      }
    });
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

  it('tells the client when no gateway runs, and how to start one of its own or the demo', async () => {
    const hint = (error: unknown) =>
      isIsogateError(error, 'E_UNAVAILABLE') &&
      error.message.includes('"isogate start --data DIR"') &&
      error.message.includes('"npm start" (its data directory: ./.isogate-demo)');
    // No socket in an existing directory, no directory at all, and a socket nobody listens on.
    await assert.rejects(callControl(socketPath, 'status'), hint);
    await assert.rejects(callControl(path.join(dir, 'missing', 'control.sock'), 'status'), hint);
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`]);
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    await fs.chmod(socketPath, 0o600);
    assert.ok((await fs.lstat(socketPath)).isSocket(), 'refused at connect, not found missing');
    await assert.rejects(callControl(socketPath, 'status'), hint);
  });
});
