import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { AppLogs } from '../../platform/logs/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

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
  beforeEach(async () => { root = await makeTempDir('isogate-logs-'); });
  afterEach(() => removeDir(root));

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
    assert.ok(files.every((f) => f.size <= 64 * 1024), JSON.stringify(files));
    const newest = await fs.readFile(path.join(root, id, 'app.log'), 'utf8');
    assert.match(newest, /round 39 line 399/);
  });

  it('drops past its queue bound, counts, and says so once it drains', async () => {
    const logs = new AppLogs({ root, maxPendingBytes: 4096 });
    const writer = logs.writer(id);
    for (let i = 0; i < 1000; i += 1) writer.write(3, `line ${i}`);
    assert.ok(writer.dropped() > 0);
    await logs.flush(id);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await logs.flush(id);
    assert.match(await fs.readFile(path.join(root, id, 'app.log'), 'utf8'), /\d+ log records dropped/);
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
