/**
 * The data directory against a local user: who may change it (finding 10), one gateway at a
 * time (12), where the secrets are (13). Every refusal is asserted with its code and with the
 * directory left as it was.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { callControl } from '../../platform/api/control-socket.js';
import { FORMAT_FILE, LOCK_FILE } from '../../platform/datadir/index.js';
import { FileDeviceKeyProvider, memoryDeviceKeys } from '../../platform/device/index.js';
import { type Gateway, type GatewayOptions, startGateway } from '../../platform/main.js';
import { isIsogateError } from '../../sdk/errors.js';
import { refusedWith } from '../fixtures/errors.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';

const NOBODY = 65534;
const ISOGATE = path.resolve('bin/isogate.mjs');

/** A self-signed root from the openssl CLI: what --trust names, for a gateway with no embedded store. */
function writeTrustRoot(dir: string): string {
  const cert = path.join(dir, 'root.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      path.join(dir, 'root.key'),
      '-out',
      cert,
      '-subj',
      '/CN=datadir test root',
      '-days',
      '2',
    ],
    { stdio: 'ignore' },
  );
  return cert;
}

describe('data directory ownership and modes', () => {
  let work: string;
  let trust: string;
  beforeEach(async () => {
    work = await makeTempDir();
    trust = writeTrustRoot(work);
  });
  afterEach(async () => removeDir(work));

  const options = (dataDir: string): GatewayOptions => ({ dataDir, storeUrl: 'http://127.0.0.1:9', trustRootFile: trust });

  it('refuses a data directory writable by others (mode 0777) with E_DATA_DIR_UNSAFE, creating nothing in it', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data);
    await fs.chmod(data, 0o777);
    await assert.rejects(startGateway(options(data)), refusedWith('E_DATA_DIR_UNSAFE', /writable by group or others \(mode 0777\).*chmod 700/));
    assert.deepEqual(await fs.readdir(data), []);
  });

  it('refuses a data directory owned by another user with E_DATA_DIR_UNSAFE, creating nothing in it', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    await fs.chown(data, NOBODY, NOBODY);
    await assert.rejects(startGateway(options(data)), refusedWith('E_DATA_DIR_UNSAFE', /owned by uid 65534/));
    assert.deepEqual(await fs.readdir(data), []);
  });

  it('refuses a data directory below a parent writable by others without the sticky bit, without creating it', async () => {
    const parent = path.join(work, 'shared');
    await fs.mkdir(parent);
    await fs.chmod(parent, 0o777);
    const data = path.join(parent, 'data');
    await assert.rejects(
      startGateway(options(data)),
      refusedWith(
        'E_DATA_DIR_UNSAFE',
        new RegExp(`${parent}, above the data directory, is writable by group or others \\(mode 0777\\) without the sticky bit`),
      ),
    );
    assert.deepEqual(await fs.readdir(parent), []);
  });

  it('refuses a parent owned by another user, even a 0755 one: its owner could swap the data directory', async () => {
    const parent = path.join(work, 'theirs');
    await fs.mkdir(parent, { mode: 0o755 });
    const data = path.join(parent, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    await fs.chown(parent, NOBODY, NOBODY);
    await assert.rejects(startGateway(options(data)), refusedWith('E_DATA_DIR_UNSAFE', /theirs, above the data directory, is owned by uid 65534/));
    assert.deepEqual(await fs.readdir(data), []);
  });

  it('takes a sticky world-writable parent (like /tmp) only when the next directory down is its own', async () => {
    const sticky = path.join(work, 'tmp');
    await fs.mkdir(sticky);
    await fs.chmod(sticky, 0o1777);
    const planted = path.join(sticky, 'planted');
    await fs.mkdir(planted, { mode: 0o755 });
    await fs.chown(planted, NOBODY, NOBODY);
    // Someone else's directory in /tmp: they may rename it and everything below it.
    await assert.rejects(
      startGateway(options(path.join(planted, 'data'))),
      refusedWith('E_DATA_DIR_UNSAFE', /planted, above the data directory, is owned by uid 65534/),
    );
    assert.deepEqual(await fs.readdir(planted), []);

    const gateway = await startGateway(options(path.join(sticky, 'mine')));
    try {
      assert.equal((await fs.stat(gateway.dataDir)).mode & 0o7777, 0o700, 'the data directory is created 0700');
    } finally {
      await gateway.close();
    }
  });

  it('refuses a data directory reached through a link to an unsafe place', async () => {
    const open = path.join(work, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    await fs.mkdir(path.join(open, 'data'), { mode: 0o700 });
    const link = path.join(work, 'data-link');
    await fs.symlink(path.join(open, 'data'), link);
    await assert.rejects(startGateway(options(link)), refusedWith('E_DATA_DIR_UNSAFE', /open, above the data directory, is writable by group or others/));
    assert.deepEqual(await fs.readdir(path.join(open, 'data')), []);
  });
});

describe('the CLI client checks the control socket before sending anything', () => {
  let work: string;
  let impostor: net.Server;
  let received: number;
  let connections: number;
  beforeEach(async () => {
    work = await makeTempDir();
    received = 0;
    connections = 0;
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => (impostor ? impostor.close(() => resolve()) : resolve()));
    await removeDir(work);
  });

  /** A server that would answer any request as a gateway would, counting what reaches it. */
  async function serveImpostor(socketPath: string, mode = 0o600): Promise<void> {
    impostor = net.createServer((socket) => {
      connections += 1;
      socket.on('data', (chunk) => {
        received += chunk.length;
        socket.write(`${JSON.stringify({ id: 1, result: { version: 'impostor' } })}\n`);
      });
    });
    await new Promise<void>((resolve) => impostor.listen(socketPath, () => resolve()));
    await fs.chmod(socketPath, mode);
  }

  it('refuses a socket owned by another uid with E_CONTROL_SOCKET_UNSAFE; the impostor receives 0 bytes', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    const socketPath = path.join(data, 'control.sock');
    await serveImpostor(socketPath);
    await fs.lchown(socketPath, NOBODY, NOBODY);
    await assert.rejects(
      callControl(socketPath, 'status'),
      refusedWith('E_CONTROL_SOCKET_UNSAFE', /belongs to uid 65534, not to its data directory's owner \(uid 0\)/),
    );
    assert.equal(received, 0);
    assert.equal(connections, 0);
  });

  it('refuses a socket open to others with E_CONTROL_SOCKET_UNSAFE; the impostor receives 0 bytes', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    const socketPath = path.join(data, 'control.sock');
    await serveImpostor(socketPath, 0o666);
    await assert.rejects(callControl(socketPath, 'status'), refusedWith('E_CONTROL_SOCKET_UNSAFE', /mode 0666/));
    assert.equal(received, 0);
  });

  it('refuses a data directory others can write (where anyone could swap the socket) with E_CONTROL_SOCKET_UNSAFE', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data);
    await fs.chmod(data, 0o777);
    const socketPath = path.join(data, 'control.sock');
    await serveImpostor(socketPath);
    await assert.rejects(callControl(socketPath, 'status'), refusedWith('E_CONTROL_SOCKET_UNSAFE', /writable by group or others \(mode 0777\)/));
    assert.equal(received, 0);
  });

  it('refuses a data directory of another user, socket and all, with E_CONTROL_SOCKET_UNSAFE', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    const socketPath = path.join(data, 'control.sock');
    await serveImpostor(socketPath);
    await fs.lchown(socketPath, NOBODY, NOBODY);
    await fs.chown(data, NOBODY, NOBODY);
    await assert.rejects(callControl(socketPath, 'status'), refusedWith('E_CONTROL_SOCKET_UNSAFE', /belongs to uid 65534, neither you \(uid 0\) nor root/));
    assert.equal(received, 0);
  });

  it('refuses a data directory below a parent others can write with E_DATA_DIR_UNSAFE', async () => {
    const parent = path.join(work, 'shared');
    await fs.mkdir(parent);
    await fs.chmod(parent, 0o777);
    const data = path.join(parent, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    const socketPath = path.join(data, 'control.sock');
    await serveImpostor(socketPath);
    await assert.rejects(callControl(socketPath, 'status'), refusedWith('E_DATA_DIR_UNSAFE', /without the sticky bit/));
    assert.equal(received, 0);
  });

  it('still talks to a socket that is its own (the control case)', async () => {
    const data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    const socketPath = path.join(data, 'control.sock');
    await serveImpostor(socketPath);
    assert.deepEqual(await callControl(socketPath, 'status'), { version: 'impostor' });
    assert.ok(received > 0);
  });
});

describe('one gateway per data directory', function () {
  this.timeout(60_000);
  let work: string;
  let trust: string;
  let data: string;
  let first: Gateway | undefined;
  let child: ChildProcess | undefined;
  beforeEach(async () => {
    work = await makeTempDir();
    trust = writeTrustRoot(work);
    data = path.join(work, 'data');
  });
  afterEach(async () => {
    await first?.close();
    first = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    child = undefined;
    await removeDir(work);
  });

  const options = (): GatewayOptions => ({ dataDir: data, storeUrl: 'http://127.0.0.1:9', trustRootFile: trust });

  it('refuses a second gateway in the same process with E_DATA_DIR_LOCKED, leaving staging, apps and everything else as they were', async () => {
    first = await startGateway(options());
    // An install in progress: work in staging that a second gateway's crash recovery used to wipe.
    await fs.mkdir(path.join(data, 'staging', 'a1b2c3d4'), { recursive: true });
    await fs.writeFile(path.join(data, 'staging', 'a1b2c3d4', 'package.igp'), 'half a download');
    // And control.sock gone, which let a second gateway start before.
    await fs.rm(first.controlSocket);
    const before = await snapshotTree(data);
    await assert.rejects(startGateway(options()), refusedWith('E_DATA_DIR_LOCKED', new RegExp(`pid ${process.pid}`)));
    assert.deepEqual(await snapshotTree(data), before);
  });

  it('names the holder of the lock, a gateway in another process; once it is killed (SIGKILL) a new gateway starts', async () => {
    // Started with the isolate flag, bin/isogate.mjs runs the gateway in its own process instead of
    // starting a second one, so the child is the gateway itself and SIGKILL leaves it no chance to clean up.
    child = spawn(process.execPath, ['--no-node-snapshot', ISOGATE, 'start', '--data', data, '--store', 'http://127.0.0.1:9', '--trust', trust, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    await new Promise((resolve, reject) => {
      readline.createInterface({ input: child!.stdout! }).on('line', (line) => {
        output += `${line}\n`;
        if (line.startsWith('{"dataDir"')) resolve(undefined);
      });
      child!.once('exit', (code) => reject(new Error(`isogate start exited with ${code}: ${output}`)));
    });
    const before = await snapshotTree(data);
    await assert.rejects(startGateway(options()), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_DATA_DIR_LOCKED'));
      assert.equal(error.details.pid, child!.pid);
      return true;
    });
    assert.deepEqual(await snapshotTree(data), before);

    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    // The socket and lock file the killed gateway left behind stop nobody: the kernel let go of the lock.
    first = await startGateway(options());
    assert.equal((await fs.readFile(path.join(data, LOCK_FILE), 'utf8')).trim(), String(process.pid));
  });

  it('refuses a lock file that is a link, with E_DATA_DIR_UNSAFE, without writing through it', async () => {
    await fs.mkdir(data, { mode: 0o700 });
    const victim = path.join(work, 'victim');
    await fs.writeFile(victim, 'precious');
    await fs.symlink(victim, path.join(data, LOCK_FILE));
    await assert.rejects(startGateway(options()), refusedWith('E_DATA_DIR_UNSAFE', /must be a regular file, not a link/));
    assert.equal(await fs.readFile(victim, 'utf8'), 'precious');
    assert.deepEqual(await fs.readdir(data), [LOCK_FILE]);
  });

  it('refuses a lock file that is a hard link to a file elsewhere, with E_DATA_DIR_UNSAFE, leaving that file as it was', async () => {
    await fs.mkdir(data, { mode: 0o700 });
    const victim = path.join(work, 'victim');
    await fs.writeFile(victim, 'IMPORTANT CONTENT');
    await fs.link(victim, path.join(data, LOCK_FILE));
    await assert.rejects(startGateway(options()), refusedWith('E_DATA_DIR_UNSAFE', /hard link/));
    assert.equal(await fs.readFile(victim, 'utf8'), 'IMPORTANT CONTENT');
  });
});

describe('secrets at rest', function () {
  this.timeout(120_000);
  let work: string;
  beforeEach(async () => {
    work = await makeTempDir();
  });
  afterEach(async () => removeDir(work));

  async function filesBelow(root: string): Promise<string[]> {
    return [...(await snapshotTree(root)).keys()];
  }

  it('keeps the embedded store, with its CA key, outside the gateway data directory', async () => {
    const data = path.join(work, 'data');
    const gateway = await startGateway({ dataDir: data });
    let caKey: string;
    try {
      assert.equal(gateway.storeDir, `${data}-store`);
      caKey = await fs.readFile(path.join(gateway.storeDir!, 'ca', 'root.key.pem'), 'utf8');
      assert.equal((await fs.stat(gateway.storeDir!)).mode & 0o777, 0o700);
    } finally {
      await gateway.close();
    }
    const inData = await filesBelow(data);
    assert.ok(!inData.some((file) => file.startsWith('store/')), `nothing of the store in the data directory: ${inData.join(', ')}`);
    for (const file of inData) {
      assert.ok(!(await fs.readFile(path.join(data, file), 'utf8')).includes(caKey.trim()), `${file} does not hold the store's CA key`);
    }
    const publisherKey = path.join(`${data}-store`, 'publisher', 'publisher.key.pem');
    assert.ok((await fs.stat(publisherKey)).isFile(), "the sample publisher's key is the store's too");
  });

  it('keeps the embedded store where --store-data says, and refuses a place inside the data directory with E_OPTION', async () => {
    const data = path.join(work, 'data');
    await assert.rejects(
      startGateway({ dataDir: data, storeDataDir: path.join(data, 'store') }),
      refusedWith('E_OPTION', /must be outside the data directory/),
    );
    assert.deepEqual(await fs.readdir(data), []);
  });

  it('refuses a device key readable by others with E_DEVICE_KEY_UNSAFE, changing nothing else', async () => {
    const device = path.join(work, 'device');
    await fs.mkdir(device, { mode: 0o700 });
    const key = path.join(device, 'device.key');
    await fs.writeFile(key, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o644 });
    await fs.chmod(key, 0o644);
    await assert.rejects(new FileDeviceKeyProvider(device).open(), refusedWith('E_DEVICE_KEY_UNSAFE', /mode 0644.*decrypt every app's storage/));
    assert.equal((await fs.stat(key)).mode & 0o777, 0o644, 'not silently repaired');

    await fs.chmod(key, 0o600);
    await fs.chown(key, NOBODY, NOBODY);
    await assert.rejects(new FileDeviceKeyProvider(device).open(), refusedWith('E_DEVICE_KEY_UNSAFE', /uid 65534/));
    assert.deepEqual(await fs.readdir(device), ['device.key']);
  });

  it('refuses a device key directory others can enter with E_DEVICE_KEY_UNSAFE, and a key that is a link with E_UNSAFE_PATH', async () => {
    const device = path.join(work, 'device');
    await fs.mkdir(device, { mode: 0o700 });
    await fs.chmod(device, 0o755);
    await assert.rejects(new FileDeviceKeyProvider(device).open(), refusedWith('E_DEVICE_KEY_UNSAFE', /mode 0755/));
    assert.deepEqual(await fs.readdir(device), []);

    await fs.chmod(device, 0o700);
    const elsewhere = path.join(work, 'elsewhere.key');
    await fs.writeFile(elsewhere, `${Buffer.alloc(32, 9).toString('base64')}\n`, { mode: 0o600 });
    await fs.symlink(elsewhere, path.join(device, 'device.key'));
    await assert.rejects(new FileDeviceKeyProvider(device).open(), refusedWith('E_UNSAFE_PATH', /device\.key is a symbolic link/));
  });

  it('creates the device key 0600 in a 0700 directory and opens the same key again', async () => {
    const device = path.join(work, 'device');
    const keys = await new FileDeviceKeyProvider(device).open();
    assert.equal((await fs.stat(device)).mode & 0o777, 0o700);
    assert.equal((await fs.stat(path.join(device, 'device.key'))).mode & 0o777, 0o600);
    assert.deepEqual(await fs.readdir(device), ['device.key']);
    const again = await new FileDeviceKeyProvider(device).open();
    assert.deepEqual(again.derive('storage', 'x'), keys.derive('storage', 'x'));
  });

  it('takes its device key from the provider it is given (a TPM-backed one on a real device), writing no key file', async () => {
    const data = path.join(work, 'data');
    const trust = writeTrustRoot(work);
    let opened = 0;
    const provider = {
      description: 'test provider',
      open: async () => {
        opened += 1;
        return memoryDeviceKeys();
      },
    };
    const gateway = await startGateway({ dataDir: data, storeUrl: 'http://127.0.0.1:9', trustRootFile: trust, deviceKeys: provider });
    await gateway.close();
    assert.equal(opened, 1);
    await assert.rejects(fs.access(path.join(data, 'device', 'device.key')));
  });

  it('a gateway refuses to start on an unsafe device key before opening anything that needs it', async () => {
    const data = path.join(work, 'data');
    const trust = writeTrustRoot(work);
    await fs.mkdir(path.join(data, 'device'), { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(data, 'device', 'device.key'), `${Buffer.alloc(32, 7).toString('base64')}\n`);
    await fs.chmod(path.join(data, 'device', 'device.key'), 0o640);
    await assert.rejects(startGateway({ dataDir: data, storeUrl: 'http://127.0.0.1:9', trustRootFile: trust }), refusedWith('E_DEVICE_KEY_UNSAFE'));
    assert.deepEqual((await fs.readdir(data)).sort(), ['device', FORMAT_FILE, LOCK_FILE].sort(), 'no configuration, audit, storage or apps were opened');
  });
});
