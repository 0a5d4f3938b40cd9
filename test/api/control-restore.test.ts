/**
 * `isogate backup restore` of a backup over the control socket's 1 MiB request line: the one
 * operation that carries a file has its own bound (read from the operation the line names
 * first), every other line keeps 1 MiB, and a line past either is refused with E_DOCUMENT_LIMIT
 * before it is parsed. Then the CLI end to end against a gateway: a >1 MiB backup made and
 * restored, with a passphrase beyond ASCII.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type ControlServer, callControl, LinePieces, MAX_REQUEST_LINE_BYTES, serveControlSocket } from '../../platform/api/control-socket.js';
import { requestBytesFor } from '../../platform/api/operations.js';
import { MAX_BACKUP_BYTES } from '../../platform/backup/index.js';
import { main } from '../../platform/cli/main.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { DOCUMENT_LIMITS } from '../../sdk/limits.js';
import { runMain } from '../fixtures/cli.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor, waitForAsync } from '../fixtures/wait.js';

/** Writes `data` raw and collects every answer line until the server closes the connection (or, with `until`, once that many lines came). */
function rawExchange(socketPath: string, data: string, until?: number): Promise<{ id?: unknown; result?: unknown; error?: { code: string } }[]> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath, () => socket.write(data));
    let text = '';
    const lines = () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { error?: { code: string } });
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (until !== undefined && lines().length >= until) socket.destroy();
    });
    socket.on('close', () => resolve(lines()));
  });
}

describe('control socket: a backup larger than the usual request line', function () {
  this.timeout(120_000);
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  describe('the bound per operation', () => {
    let server: ControlServer;
    let socketPath: string;
    const seen: { op: string; bytes: number }[] = [];
    beforeEach(async () => {
      seen.length = 0;
      socketPath = path.join(dir, 'control.sock');
      server = await serveControlSocket(
        socketPath,
        async (op, params) => {
          seen.push({ op, bytes: JSON.stringify(params).length });
          return 'fine';
        },
        { requestBytes: requestBytesFor },
      );
    });
    afterEach(() => server.close());

    const large = 3 * 1024 * 1024;
    const content = 'A'.repeat(large);

    it('takes a restore line of several MiB that names its operation first, as the CLI sends it', async () => {
      assert.equal(await callControl(socketPath, 'backup.restore', { content, passphrase: 'long enough' }), 'fine');
      assert.deepEqual(seen, [{ op: 'backup.restore', bytes: JSON.stringify({ content, passphrase: 'long enough' }).length }]);
      // The connection's next line is bounded as usual again.
      const answers = await rawExchange(
        socketPath,
        `${JSON.stringify({ op: 'backup.restore', id: 1, params: { content } })}\n${JSON.stringify({ op: 'status', id: 2, params: { x: content } })}\n`,
      );
      assert.deepEqual(
        answers.map((answer) => answer.result ?? answer.error?.code),
        ['fine', 'E_DOCUMENT_LIMIT'],
      );
    });

    it("takes an app's configuration of several MiB (a traffic inspector's rule lists), as `apps config ID --set FILE` sends it", async () => {
      const value = { APP_CONFIGURATION: { industrial_commands_rules: content } };
      assert.equal(await callControl(socketPath, 'apps.config.set', { id: 'dev.isogate.network-protector', value }), 'fine');
      assert.equal(await callControl(socketPath, 'apps.config.merge', { id: 'dev.isogate.network-protector', patch: value }), 'fine');
      assert.deepEqual(
        seen.map((entry) => entry.op),
        ['apps.config.set', 'apps.config.merge'],
      );
      assert.ok(requestBytesFor('apps.config.set')! >= 2 * DOCUMENT_LIMITS.inspectorConfigurationBytes);
    });

    it('refuses a large line of any other operation, one naming its operation later, and the duplicate-"op" trick, each with E_DOCUMENT_LIMIT and unserved', async () => {
      for (const line of [
        JSON.stringify({ op: 'settings.set', id: 1, params: { document: { x: content } } }),
        JSON.stringify({ id: 1, params: { content }, op: 'backup.restore' }),
        `{"op":"backup.restore","id":1,"params":{"content":"${content}"},"op":"settings.set"}`,
      ]) {
        const answers = await rawExchange(socketPath, `${line}\n`, 1);
        assert.equal(answers[0]?.error?.code, 'E_DOCUMENT_LIMIT', line.slice(0, 60));
      }
      assert.deepEqual(seen, []);
    });

    it("refuses a restore line past the restore's own bound before its end arrives", async () => {
      const bound = requestBytesFor('backup.restore')!;
      assert.ok(bound > MAX_REQUEST_LINE_BYTES && bound >= (MAX_BACKUP_BYTES / 3) * 4);
      assert.equal(requestBytesFor('status'), undefined);
      assert.equal(requestBytesFor('__proto__'), undefined);
      // No newline ever: refused once the bound is passed, not kept growing.
      const answers = await rawExchange(socketPath, `{"op":"backup.restore","id":1,"params":{"content":"${'A'.repeat(bound + 10)}`);
      assert.equal(answers[0]?.error?.code, 'E_DOCUMENT_LIMIT');
      assert.deepEqual(seen, []);
    });
  });

  describe('a line as its pieces', () => {
    // A hostile client writes a line a byte at a time: held as one string per byte, a 22 MiB line
    // cost the gateway tens of times that in objects.
    it('holds a line sent a byte at a time in a bounded number of strings, and gives it back whole', () => {
      const pieces = new LinePieces();
      const text = `{"op":"backup.restore","params":{"content":"${'ж'.repeat(MAX_REQUEST_LINE_BYTES / 2)}"}}`;
      let most = 0;
      for (const char of text) {
        pieces.add(char);
        most = Math.max(most, pieces.count);
      }
      assert.ok(most <= text.length / 1024 + 1024, `${most} strings held for ${text.length} characters`);
      assert.equal(pieces.bytes, Buffer.byteLength(text));
      assert.equal(pieces.text(), text);
      pieces.clear();
      assert.equal(pieces.count, 0);
      assert.equal(pieces.text(), '');
    });
  });

  describe('one large line at a time, gateway-wide', () => {
    let server: ControlServer;
    let socketPath: string;
    const seen: string[] = [];
    let open: () => void = () => undefined;
    let gate: Promise<void> = Promise.resolve();
    beforeEach(async () => {
      seen.length = 0;
      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      socketPath = path.join(dir, 'control.sock');
      server = await serveControlSocket(
        socketPath,
        async (op, params) => {
          seen.push(`${op}:${JSON.stringify(params).length}`);
          // The restore being answered holds its line's text (the backup): nothing else large may come meanwhile.
          if (op === 'backup.restore') await gate;
          return 'fine';
        },
        { requestBytes: requestBytesFor },
      );
    });
    afterEach(async () => {
      open();
      await server.close();
    });

    const content = 'A'.repeat(2 * 1024 * 1024);
    const restoreLine = (id: number) => `${JSON.stringify({ op: 'backup.restore', id, params: { content, passphrase: 'long enough' } })}\n`;

    it('refuses a second large line, on another connection or pipelined on the same one, with E_CONFLICT while the first is answered; then takes one again', async () => {
      const first = callControl(socketPath, 'backup.restore', { content, passphrase: 'long enough' });
      await waitFor(() => seen.length === 1);
      const other = await rawExchange(socketPath, restoreLine(2), 1);
      assert.equal(other[0]?.error?.code, 'E_CONFLICT');
      // A usual line is not held up by it.
      assert.deepEqual(await rawExchange(socketPath, `${JSON.stringify({ op: 'status', id: 3 })}\n`, 1), [{ id: 3, result: 'fine' }]);
      open();
      assert.equal(await first, 'fine');

      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      seen.length = 0;
      const pipelined = rawExchange(socketPath, `${restoreLine(4)}${restoreLine(5)}`, 1);
      const answers = await pipelined;
      assert.equal(answers[0]?.error?.code, 'E_CONFLICT', 'the second line of the connection is refused while its first is answered');
      assert.equal(seen.length, 1);
      open();
      assert.equal(await callControl(socketPath, 'backup.restore', { content, passphrase: 'long enough' }), 'fine');
    });

    it('frees the bound when a connection closes in the middle of a large line', async () => {
      open();
      const probe = async () => {
        const [answer] = await rawExchange(socketPath, restoreLine(6), 1);
        return answer?.result ?? answer?.error?.code;
      };
      const partial = net.connect(socketPath, () => partial.write(restoreLine(1).slice(0, content.length)));
      partial.on('error', () => undefined);
      // Held once the gateway has read past the usual bound of the unfinished line.
      await waitForAsync(async () => (await probe()) === 'E_CONFLICT');
      partial.destroy();
      await waitForAsync(async () => (await probe()) === 'fine');
    });
  });

  describe('the CLI against a gateway', () => {
    let gateway: Gateway;
    let dataDir: string;
    beforeEach(async () => {
      dataDir = path.join(dir, 'data');
      gateway = await startGateway({ dataDir });
    });
    afterEach(() => gateway.close());

    it('backs up and restores a configuration over 1 MiB with a passphrase beyond ASCII', async () => {
      const notes = { text: 'ж'.repeat(700 * 1024) };
      await gateway.services.config.update((doc) => {
        doc.PLANT_NOTES = notes;
      });
      const passphraseFile = path.join(dir, 'passphrase.txt');
      await fs.writeFile(passphraseFile, 'пароль для резервной копии\n', { mode: 0o600 });
      const file = path.join(dir, 'big.igb');
      const made = await runMain(main, ['backup', 'create', '-o', file, '--passphrase-file', passphraseFile, '--data', dataDir]);
      assert.equal(made.code, 0, made.stderr);
      assert.ok((await fs.stat(file)).size > 1024 * 1024, 'the backup is larger than one usual request line');
      await gateway.services.config.update((doc) => {
        doc.PLANT_NOTES = { text: 'changed' };
      });

      await fs.writeFile(passphraseFile, 'not the passphrase\n');
      const wrong = await runMain(main, ['backup', 'restore', file, '--passphrase-file', passphraseFile, '--data', dataDir]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /E_BACKUP_PASSPHRASE/);
      assert.deepEqual(
        gateway.services.config.read((doc) => doc.PLANT_NOTES),
        { text: 'changed' },
      );

      await fs.writeFile(passphraseFile, 'пароль для резервной копии\n');
      const restored = await runMain(main, ['backup', 'restore', file, '--passphrase-file', passphraseFile, '--data', dataDir]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.match(restored.stdout, /Configuration restored/);
      assert.deepEqual(
        gateway.services.config.read((doc) => doc.PLANT_NOTES),
        notes,
      );
    });

    it('refuses a file over the backup bound in the CLI with E_DOCUMENT_LIMIT, sending nothing', async () => {
      const passphraseFile = path.join(dir, 'passphrase.txt');
      await fs.writeFile(passphraseFile, 'a long passphrase\n', { mode: 0o600 });
      const file = path.join(dir, 'huge.igb');
      await fs.writeFile(file, Buffer.alloc(MAX_BACKUP_BYTES + 1, 0x41));
      const before = gateway.services.audit.list({ log: 'system' }).length;
      const refused = await runMain(main, ['backup', 'restore', file, '--passphrase-file', passphraseFile, '--data', dataDir]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /E_DOCUMENT_LIMIT/);
      assert.equal(gateway.services.audit.list({ log: 'system' }).length, before, 'nothing reached the gateway');
    });
  });
});
