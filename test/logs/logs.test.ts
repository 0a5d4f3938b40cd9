import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import sinon from 'sinon';
import tar from 'tar-stream';
import { AppLogs, type LogFollower } from '../../platform/logs/index.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { waitFor, waitForAsync } from '../fixtures/wait.js';

/** The files' lines, oldest file first. */
async function linesOnDisk(logs: AppLogs, dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const file of await logs.files(path.basename(dir))) lines.push(...(await fs.readFile(path.join(dir, file.name), 'utf8')).split('\n').filter(Boolean));
  return lines;
}

/** What a follower hands out until `until` holds of everything taken so far. */
async function take(follower: LogFollower, until: (lines: string[]) => boolean, taken: string[] = []): Promise<string[]> {
  while (!until(taken)) {
    const batch = await follower.next();
    if (!batch) break;
    taken.push(...batch);
  }
  return taken;
}

const message = (line: string): string => line.replace(/^\S+ +\S+ +\[\w+\] /, '');

async function readArchive(stream: Readable): Promise<Map<string, string>> {
  const extract = tar.extract();
  const files = new Map<string, string>();
  stream.pipe(createGunzip()).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    files.set(entry.header.name, Buffer.concat(chunks).toString('utf8'));
  }
  return files;
}

describe('app logs', () => {
  let root: string;
  const id = 'dev.isogate.logs';
  beforeEach(async () => {
    root = await makeTempDir('isogate-logs-');
  });
  afterEach(async () => {
    sinon.restore();
    await removeDir(root);
  });

  describe('a line a crash cut mid-append', () => {
    const INTACT = '2026-12-02T10:00:00.000Z INFO     [app] intact';
    // Cut inside a two-byte character, as a kill between two write(2)s of a chunk can.
    const TORN = Buffer.concat([Buffer.from('2026-12-02T10:00:01.000Z INFO     [app] half of a line \u00e9'), Buffer.from([0xc3])]);
    const REPAIRED = /^\S+ WARNING {2}\[platform\] the line above was cut off when the gateway stopped while writing it/;

    async function cutLog(): Promise<string> {
      const file = path.join(root, id, 'app.log');
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, Buffer.concat([Buffer.from(`${INTACT}\n`), TORN]));
      return file;
    }

    it('is ended and marked before the next line is appended: the next line stands on its own, nothing of the cut line lost', async () => {
      const file = await cutLog();
      const logs = new AppLogs({ root });
      logs.writer(id).write(3, 'after the restart');
      await logs.flush(id);
      const bytes = await fs.readFile(file);
      assert.ok(bytes.includes(Buffer.concat([TORN, Buffer.from('\n')])), 'the cut line is kept, ended');
      const lines = bytes.toString('utf8').split('\n');
      assert.equal(lines.length, 5);
      assert.equal(lines[0], INTACT);
      assert.match(lines[2]!, REPAIRED);
      assert.equal(message(lines[3]!), 'after the restart');
      assert.equal(lines[4], '');
      // Once: a second writer's start finds an intact tail.
      const again = new AppLogs({ root });
      again.writer(id).write(3, 'and again');
      await again.flush(id);
      assert.equal((await fs.readFile(file, 'utf8')).split('\n').filter((line) => REPAIRED.test(line)).length, 1);
    });

    it('is ended and marked when the log is read first (tail), and the reader following it gets the mark', async () => {
      const file = await cutLog();
      const logs = new AppLogs({ root });
      const follower = await logs.follow(id, { tail: 10, follow: true });
      try {
        const taken = await take(follower, (lines) => lines.some((line) => REPAIRED.test(line)));
        assert.equal(taken[0], INTACT);
        assert.ok(taken[1]!.startsWith('2026-12-02T10:00:01.000Z INFO     [app] half of a line'));
        assert.match(taken[2]!, REPAIRED);
      } finally {
        await follower.close();
      }
      await logs.flush(id);
      assert.equal((await fs.readFile(file, 'utf8')).split('\n').length, 4);
    });

    it('leaves a log that ends with its newline as it is', async () => {
      const file = path.join(root, id, 'app.log');
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, `${INTACT}\n`);
      const logs = new AppLogs({ root });
      const follower = await logs.follow(id, {});
      assert.deepEqual(await take(follower, () => false), [INTACT]);
      await logs.flush(id);
      assert.equal(await fs.readFile(file, 'utf8'), `${INTACT}\n`);
    });
  });

  it('rotates only past its size bound when lines keep arriving while it appends, every line kept in order across the files', async () => {
    // The finding: a line queued during an append rotated the file at any size (69 B, 132 B, ...).
    const maxFileBytes = 2048;
    const logs = new AppLogs({ root, maxFileBytes, maxFiles: 20 });
    const writer = logs.writer(id);
    const written: string[] = [];
    let bursts = 0;
    const burst = (): void => {
      for (let i = 0; i < 5; i += 1) {
        written.push(`burst ${bursts} line ${i}`);
        writer.write(3, `burst ${bursts} line ${i}`);
      }
      bursts += 1;
    };
    // The next burst arrives each time the writer opens app.log to append the last one.
    const realOpen = fs.open.bind(fs);
    sinon.stub(fs, 'open').callsFake((async (file: string, ...rest: unknown[]) => {
      const handle = await (realOpen as (...args: unknown[]) => Promise<unknown>)(file, ...rest);
      if (path.basename(String(file)) === 'app.log' && bursts < 60) burst();
      return handle;
    }) as typeof fs.open);
    burst();
    await waitFor(() => bursts === 60);
    await logs.flush(id);
    const files = await logs.files(id);
    assert.ok(files.length > 2, JSON.stringify(files));
    // Every file but the newest was rotated full: the next line (under 64 bytes) did not fit.
    for (const file of files.slice(0, -1)) assert.ok(file.size > maxFileBytes - 64 && file.size <= maxFileBytes, JSON.stringify(files));
    assert.deepEqual((await linesOnDisk(logs, path.join(root, id))).map(message), written);
    assert.equal(writer.dropped(), 0);
  });

  it('reports a rotation whose rename fails (E_LOG_ROTATE, through onError and the next flush) and writes nothing past the bound', async () => {
    const errors: Error[] = [];
    const logs = new AppLogs({ root, maxFileBytes: 1024, onError: (_, error) => errors.push(error) });
    const writer = logs.writer(id);
    for (let i = 0; i < 10; i += 1) writer.write(3, `first ${i} ${'x'.repeat(60)}`);
    await logs.flush(id);
    const rename = sinon.stub(fs, 'rename').callsFake(async () => {
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    });
    for (let i = 0; i < 10; i += 1) writer.write(3, `second ${i} ${'x'.repeat(60)}`);
    const rotateFailed = (error: { code?: string; message: string }): boolean =>
      error.code === 'E_LOG_ROTATE' && /could not be rotated: renaming app\.(\d\.)?log to app\.\d\.log failed \(EIO/.test(error.message);
    await assert.rejects(logs.flush(id), rotateFailed);
    assert.deepEqual(
      errors.map((error) => (error as { code?: string }).code),
      ['E_LOG_ROTATE'],
    );
    assert.ok(rename.called);
    assert.ok((await logs.files(id)).every((file) => file.size <= 1024));
    // While it cannot rotate, the full file is not written past its bound and nothing is moved.
    const before = await snapshotTree(root);
    const dropped = writer.dropped();
    for (let i = 0; i < 10; i += 1) writer.write(3, `third ${i} ${'x'.repeat(60)}`);
    await assert.rejects(logs.flush(id), rotateFailed);
    assert.equal(errors.length, 2);
    assert.deepEqual(await snapshotTree(root), before);
    assert.equal(writer.dropped(), dropped + 10);
    rename.restore();
    writer.write(3, 'after the fault');
    await logs.flush(id);
    assert.match(await fs.readFile(path.join(root, id, 'app.log'), 'utf8'), /after the fault\n$/);
  });

  it('filters by level and escapes what could forge a line', async () => {
    const logs = new AppLogs({ root });
    logs.setLevel(id, 2);
    const writer = logs.writer(id);
    writer.write(1, 'an error');
    writer.write(3, 'info is above level 2');
    writer.write(2, 'fake\n2026-01-01T00:00:00.000Z CRITICAL [platform] forged\u001b[31m');
    await logs.flush(id);
    const text = await fs.readFile(path.join(root, id, 'app.log'), 'utf8');
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /ERROR +\[app\] an error$/);
    assert.match(lines[1]!, /fake\\n2026.*forged\\x1b\[31m$/);
  });

  it('writes C1 controls (CSI, NEL), bidi overrides and line separators escaped: one record a message for any reader', async () => {
    const logs = new AppLogs({ root });
    const writer = logs.writer(id);
    writer.write(1, 'csi \u009b2J\u009b31mred');
    writer.write(1, 'nel\u00852026-01-01T00:00:00.000Z CRITICAL [platform] forged');
    writer.write(1, 'first\nsecond\u2028third \u202egnp.exe \\u{85} typed', 'platform');
    await logs.flush(id);
    const text = await fs.readFile(path.join(root, id, 'app.log'), 'utf8');
    // eslint-disable-next-line no-control-regex
    assert.equal(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/.exec(text), null, JSON.stringify(text));
    const lines = text.trimEnd().split(/\r\n|[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/);
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /\[app\] csi \\u\{9b\}2J\\u\{9b\}31mred$/);
    assert.match(lines[1]!, /\[app\] nel\\u\{85\}2026-01-01T00:00:00\.000Z CRITICAL \[platform\] forged$/);
    // A backslash the app typed is doubled, so it cannot pass for an escape.
    assert.match(lines[2]!, /\[platform\] first\\nsecond\\u\{2028\}third \\u\{202e\}gnp\.exe \\\\u\{85\} typed$/);
  });

  it('keeps at most five files of at most the bound under a flood, oldest dropped', async () => {
    const logs = new AppLogs({ root, maxFileBytes: 64 * 1024, maxPendingBytes: 256 * 1024 });
    const writer = logs.writer(id);
    for (let round = 0; round < 40; round += 1) {
      for (let i = 0; i < 400; i += 1) writer.write(3, `round ${round} line ${i} ${'x'.repeat(100)}`);
      await logs.flush(id);
    }
    const files = await logs.files(id);
    assert.equal(files.length, 5);
    assert.ok(
      files.every((f) => f.size <= 64 * 1024),
      JSON.stringify(files),
    );
    const newest = await fs.readFile(path.join(root, id, 'app.log'), 'utf8');
    assert.match(newest, /round 39 line 399/);
  });

  it('drops past its queue bound, counts, and says so once it drains', async () => {
    const logs = new AppLogs({ root, maxPendingBytes: 4096 });
    const writer = logs.writer(id);
    for (let i = 0; i < 1000; i += 1) writer.write(3, `line ${i}`);
    assert.ok(writer.dropped() > 0);
    // The count is written once the queue has drained, which may take more than one flush.
    const log = (): Promise<string> => fs.readFile(path.join(root, id, 'app.log'), 'utf8');
    await waitForAsync(
      async () => {
        await logs.flush(id);
        return /\d+ log records dropped/.test(await log());
      },
      5000,
      5,
    );
    assert.match(await log(), /\d+ log records dropped/);
  });

  describe('following', () => {
    it('gives the last lines at a level across the rotated files, then each new line as it is written, across a rotation', async () => {
      const logs = new AppLogs({ root, maxFileBytes: 512, maxFiles: 20 });
      const writer = logs.writer(id);
      for (let i = 0; i < 30; i += 1) writer.write(i % 3 === 0 ? 1 : 3, `before ${i}`);
      await logs.flush(id);
      assert.ok((await logs.files(id)).length >= 3);
      const follower = await logs.follow(id, { tail: 4, level: 2, follow: true });
      const tail = await take(follower, (lines) => lines.length >= 4);
      assert.deepEqual(tail.map(message), ['before 18', 'before 21', 'before 24', 'before 27']);
      const filesBefore = (await logs.files(id)).length;
      for (let i = 0; i < 30; i += 1) writer.write(i % 3 === 0 ? 0 : 4, `after ${i}`);
      const live = await take(follower, (lines) => lines.length >= 10);
      assert.deepEqual(
        live.map(message),
        Array.from({ length: 10 }, (_, n) => `after ${n * 3}`),
      );
      assert.ok((await logs.files(id)).length > filesBefore, 'the new lines rotated the file');
      assert.match(live[0]!, / CRITICAL \[app\] after 0$/);
      await follower.close();
      assert.equal(await follower.next(), undefined);
    });

    it('without follow, gives the last lines and ends; without a tail, every line', async () => {
      const logs = new AppLogs({ root, maxFileBytes: 256 });
      for (let i = 0; i < 20; i += 1) logs.writer(id).write(3, `line ${i}`);
      await logs.flush(id);
      const last = await logs.follow(id, { tail: 3 });
      assert.deepEqual((await take(last, () => false)).map(message), ['line 17', 'line 18', 'line 19']);
      assert.equal(await last.next(), undefined);
      const all = await logs.follow(id, {});
      const lines = (await take(all, () => false)).map(message);
      // The oldest files fell off at five; what is left is in order, through the last line.
      assert.deepEqual(
        lines,
        lines.map((_, n) => `line ${20 - lines.length + n}`),
      );
      await assert.rejects(logs.follow(id, { tail: 10_001 }), { code: 'E_OPTION' });
    });

    it('holds at most its bound of lines for a reader that does not take them: the rest dropped, counted and announced where they were', async () => {
      const maxFollowerBytes = 4096;
      const logs = new AppLogs({ root, maxFollowerBytes });
      const follower = await logs.follow(id, { tail: 0, follow: true });
      for (let round = 0; round < 10; round += 1) {
        for (let i = 0; i < 100; i += 1) logs.writer(id).write(3, `round ${round} line ${i} ${'y'.repeat(50)}`);
        await logs.flush(id);
      }
      assert.ok(follower.dropped() > 900, String(follower.dropped()));
      const batch = (await follower.next())!;
      const kept = batch.slice(0, -1);
      assert.ok(kept.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0) <= maxFollowerBytes);
      assert.deepEqual(
        kept.map(message),
        kept.map((_, n) => `round 0 line ${n} ${'y'.repeat(50)}`),
      );
      assert.match(
        batch.at(-1)!,
        new RegExp(`WARNING +\\[platform\\] ${1000 - kept.length} log lines not shown here: this reader fell more than 4096 bytes behind`),
      );
      // Taken, it gets new lines again.
      logs.writer(id).write(3, 'after catching up');
      assert.deepEqual((await take(follower, (lines) => lines.length > 0)).map(message), ['after catching up']);
      await follower.close();
    });

    it('ends its followers when the app is removed', async () => {
      const logs = new AppLogs({ root });
      logs.writer(id).write(3, 'one');
      const follower = await logs.follow(id, { follow: true });
      assert.deepEqual((await take(follower, (lines) => lines.length > 0)).map(message), ['one']);
      const waiting = follower.next();
      await logs.remove(id);
      assert.equal(await waiting, undefined);
    });
  });

  it('archives as log_files_<id>.tar.gz with its size shown first, and is removed on uninstall', async () => {
    const logs = new AppLogs({ root, maxFileBytes: 2048 });
    await assert.rejects(logs.archiveInfo(id), { code: 'E_LOG_EMPTY' });
    for (let i = 0; i < 100; i += 1) logs.writer(id).write(3, `line ${i}`);
    const info = await logs.archiveInfo(id);
    assert.equal(info.fileName, `log_files_${id}.tar.gz`);
    assert.ok(info.files >= 2 && info.uncompressedBytes > 0);
    const files = await readArchive(await logs.archive(id));
    assert.equal(files.size, info.files);
    const all = [...files.values()].join('');
    assert.equal(all.length, info.uncompressedBytes);
    for (let i = 0; i < 100; i += 1) assert.ok(all.includes(`line ${i}\n`), `line ${i}`);
    await logs.remove(id);
    await assert.rejects(fs.stat(path.join(root, id)), { code: 'ENOENT' });
  });
});
