/**
 * The TLS terminator against real peers on loopback: Node's https server requiring a client
 * certificate, and Debian's mosquitto with `require_certificate true` checked by mosquitto_sub.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { CertificateStore, EgressService } from '../../platform/egress/index.js';
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import { buildProject } from '../../sdk/build/project.js';
import type { AppManifest, EgressTarget } from '../../sdk/manifest.js';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor, waitForAsync } from '../fixtures/wait.js';

interface Identity {
  certPem: string;
  keyPem: string;
}

function issue(
  name: string,
  usage: 'ca' | 'server' | 'client',
  issuer?: Identity,
  extra: { altNames?: string[]; notBefore?: Date; notAfter?: Date } = {},
): Identity {
  const keys = generateKeyPair();
  const certPem = createCertificate({
    subject: { commonName: name },
    publicKeyPem: keys.publicKeyPem,
    usage,
    ...(issuer ? { issuer } : { signingKeyPem: keys.keyPem }),
    ...extra,
  });
  return { certPem, keyPem: keys.keyPem };
}

const APP = 'dev.isogate.tests.uplink';
/** The test servers listen on loopback, which the gateway refuses unless the admin allows it. */
const LOOPBACK = ['127.0.0.0/8', '::1/128'];
/** Whether something accepts TCP connections on the loopback port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect({ host: '127.0.0.1', port }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

const UPLINK_PROJECT = fileURLToPath(new URL('../../sample-apps/uplink/', import.meta.url));

function appManifest(packageId: string, egress: EgressTarget[]): AppManifest {
  return {
    manifestVersion: 1,
    package_id: packageId,
    name: 'streamer',
    title: 'Streamer',
    version: '1.0.0',
    publisher: 'tests',
    type: 'service',
    buildSdkVersion: '1.0.0',
    entry: 'app/main.js',
    networkZone: 'wan',
    resources: { memoryMb: 32, cpuMsPerEvent: 1000, storageMb: 1 },
    egress,
  };
}

describe('TLS egress', function () {
  this.timeout(30_000);
  let dir: string;
  let ca: Identity;
  let otherCa: Identity;
  let client: Identity;
  let server: https.Server;
  let port: number;
  let certificates: CertificateStore;
  let egress: EgressService;
  let audit: MemoryAuditLog;
  let appLog: string[];
  const received: { path: string; body: string; clientCn: string }[] = [];

  async function serve(identity: Identity): Promise<{ server: https.Server; port: number }> {
    const s = https.createServer(
      { ...{ cert: identity.certPem, key: identity.keyPem }, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        let body = '';
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => {
          const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
          received.push({ path: req.url ?? '', body, clientCn: String(peer.subject?.CN) });
          res.setHeader('content-type', 'application/json');
          res.setHeader('x-via', ['edge', 'core']);
          res.end(req.url === '/big' ? 'x'.repeat(2 * 1024 * 1024) : JSON.stringify({ ok: true }));
        });
      },
    );
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return { server: s, port: (s.address() as AddressInfo).port };
  }

  const target = (p: number, host = 'localhost'): EgressTarget => ({ name: 'cloud', host, port: p, protocol: 'https' });

  before(async () => {
    dir = await makeTempDir('isogate-egress-');
    ca = issue('Plant cloud CA', 'ca');
    otherCa = issue('Other CA', 'ca');
    client = issue('gateway-uplink', 'client', ca);
    ({ server, port } = await serve(issue('localhost', 'server', ca, { altNames: ['localhost', '127.0.0.1'] })));
    audit = new MemoryAuditLog();
    appLog = [];
    certificates = new CertificateStore({ root: path.join(dir, 'certs'), keys: memoryDeviceKeys(), audit });
    egress = new EgressService({
      certificates,
      appLog: (_id, _level, line) => appLog.push(line),
      limits: { timeoutMs: 3000, maxResponseBytes: 1024 * 1024 },
      allowedRanges: LOOPBACK,
    });
  });
  after(async () => {
    await egress.close();
    server.close();
    await removeDir(dir);
  });

  it('refuses a client certificate with a key that is not its own, changing nothing', async () => {
    const stranger = issue('stranger', 'client', ca);
    await assert.rejects(certificates.setClient(APP, 'client.crt', Buffer.from(client.certPem), 'client.key', Buffer.from(stranger.keyPem)), {
      code: 'E_CERT_KEY_MISMATCH',
    });
    await assert.rejects(certificates.setCa(APP, 'ca.crt', Buffer.from('not a certificate')), { code: 'E_CERT_FILE' });
    assert.deepEqual(await certificates.list(APP), []);
  });

  it("without the app's CA the server is not trusted (system roots only)", async () => {
    await assert.rejects(egress.forApp(APP, [target(port)]).fetch('cloud', {}), { code: 'E_EGRESS_TLS' });
    assert.ok(appLog.some((line) => /Egress to "cloud" refused: E_EGRESS_TLS/.test(line)));
  });

  it('with the CA but no client certificate the server refuses the handshake', async () => {
    const ca_der = Buffer.from(ca.certPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const info = await certificates.setCa(APP, 'ca.cer', ca_der);
    assert.equal(info.subject, 'CN=Plant cloud CA');
    await assert.rejects(egress.forApp(APP, [target(port)]).fetch('cloud', {}), (error: { code: string; message: string }) => {
      assert.equal(error.code, 'E_EGRESS_TLS');
      assert.match(error.message, /client certificate/);
      return true;
    });
  });

  it('mutually authenticated, a request reaches the server, and a change applies without restart', async () => {
    const info = await certificates.setClient(APP, 'client.crt', Buffer.from(client.certPem), 'client.key', Buffer.from(client.keyPem));
    assert.equal(info.keyFileName, 'client.key');
    assert.ok(audit.events().includes('uploadAppCertificate'));
    const host = egress.forApp(APP, [target(port)]);
    const response = await host.fetch('cloud', { method: 'POST', path: '/api/alerts', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'application/json');
    assert.equal(response.headers['x-via'], 'edge, core');
    assert.deepEqual(JSON.parse(Buffer.from(response.body).toString()), { ok: true });
    assert.deepEqual(received.at(-1), { path: '/api/alerts', body: '{"a":1}', clientCn: 'gateway-uplink' });
    await certificates.delete(APP, 'client');
    await assert.rejects(host.fetch('cloud', {}), (error: { code: string; message: string }) => {
      assert.equal(error.code, 'E_EGRESS_TLS');
      assert.match(error.message, /requires a client certificate does this, and the app has none/);
      return true;
    });
    await certificates.setClient(APP, 'client.crt', Buffer.from(client.certPem), 'client.key', Buffer.from(client.keyPem));
  });

  it('refuses undeclared targets, wrong protocols, reserved headers and oversized responses', async () => {
    const host = egress.forApp(APP, [target(port)]);
    await assert.rejects(host.fetch('elsewhere', {}), { code: 'E_CAPABILITY', message: 'The manifest declares no egress target "elsewhere"' });
    await assert.rejects(host.publish('cloud', 't', 'x'), { code: 'E_EGRESS_PROTOCOL' });
    await assert.rejects(host.fetch('cloud', { headers: { Host: 'evil.example' } }), { code: 'E_BAD_REQUEST' });
    await assert.rejects(host.fetch('cloud', { path: '/x HTTP/1.1\r\nX: y' }), { code: 'E_BAD_REQUEST' });
    await assert.rejects(host.fetch('cloud', { path: '/big' }), { code: 'E_EGRESS_LIMIT' });
  });

  it('gives up on a server that does not answer in time, caps the requests an app has open, and frees them', async () => {
    const silentIdentity = issue('localhost', 'server', ca, { altNames: ['localhost'] });
    const silent = https.createServer({ cert: silentIdentity.certPem, key: silentIdentity.keyPem }, () => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const limited = new EgressService({
      certificates,
      appLog: (_id, _level, line) => appLog.push(line),
      limits: { timeoutMs: 400, maxConnections: 2 },
      allowedRanges: LOOPBACK,
    });
    try {
      const host = limited.forApp(APP, [{ name: 'silent', host: 'localhost', port: (silent.address() as AddressInfo).port, protocol: 'https' }, target(port)]);
      const hanging = [host.fetch('silent', { path: '/a' }), host.fetch('silent', { path: '/b' })];
      await assert.rejects(host.fetch('cloud', {}), { code: 'E_EGRESS_LIMIT' });
      for (const request of hanging) await assert.rejects(request, { code: 'E_EGRESS_TIMEOUT' });
      assert.ok(appLog.some((line) => /Egress to "silent" refused: E_EGRESS_TIMEOUT/.test(line)));
      // Both slots come back once the timed-out requests are let go.
      const [first, second] = await Promise.all([host.fetch('cloud', {}), host.fetch('cloud', {})]);
      assert.deepEqual([first.status, second.status], [200, 200]);
    } finally {
      await limited.close();
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('refuses a host-name mismatch, an expired server certificate and a server under another CA', async () => {
    const wrongName = await serve(issue('elsewhere.example', 'server', ca, { altNames: ['elsewhere.example'] }));
    const expired = await serve(
      issue('localhost', 'server', ca, {
        altNames: ['localhost'],
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      }),
    );
    const foreign = await serve(issue('localhost', 'server', otherCa, { altNames: ['localhost'] }));
    try {
      for (const [peer, pattern] of [
        [wrongName, /not for localhost/],
        [expired, /expired/],
        [foreign, /chain/],
      ] as const) {
        await assert.rejects(egress.forApp(APP, [target(peer.port)]).fetch('cloud', {}), (error: { code: string; message: string }) => {
          assert.equal(error.code, 'E_EGRESS_TLS');
          assert.match(error.message, pattern);
          return true;
        });
      }
    } finally {
      for (const peer of [wrongName, expired, foreign]) peer.server.close();
    }
  });

  describe('a TLS stream from an app (egress.connect)', () => {
    let plc: tls.Server;
    let plcPort: number;
    const sandboxes: AppSandbox[] = [];

    before(async () => {
      // A server that requires the client certificate, greets first and answers each line in capitals.
      const identity = issue('localhost', 'server', ca, { altNames: ['localhost'] });
      plc = tls.createServer({ cert: identity.certPem, key: identity.keyPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true }, (socket) => {
        socket.write(`hello ${String(socket.getPeerCertificate().subject?.CN)}\n`);
        socket.on('data', (chunk) => socket.write(chunk.toString().toUpperCase()));
        socket.on('end', () => socket.end('bye\n'));
      });
      await new Promise<void>((resolve) => plc.listen(0, '127.0.0.1', resolve));
      plcPort = (plc.address() as AddressInfo).port;
    });
    after(() => {
      for (const sandbox of sandboxes) sandbox.dispose();
      plc.close();
    });

    async function streamer(source: string, targets: EgressTarget[]): Promise<ReturnType<typeof fakeHost>> {
      const host = { ...fakeHost(APP), egress: egress.forApp(APP, targets) };
      const sandbox = await createAppSandbox({ manifest: appManifest(APP, targets), host, files: new Map([['app/main.js', source]]) });
      sandboxes.push(sandbox);
      await sandbox.start();
      return host;
    }

    it('talks both ways over mutual TLS, the platform holding the socket, and hears the close', async () => {
      const host = await streamer(
        `import { egress, log } from 'isogate:sdk';
        const connection = await egress.connect('plc');
        let text = '';
        connection.on('data', (chunk) => { text += String.fromCharCode(...chunk); });
        connection.on('close', (error) => log.info('closed ' + (error ? error.code : 'cleanly') + ' ' + JSON.stringify(text)));
        await connection.write('ping\\n');
        await connection.write(new Uint8Array([111, 107, 10]));
        setTimeout(async () => {
          await connection.end();
          try { await connection.write('late'); } catch (e) { log.info('late write ' + e.code); }
        }, 200);`,
        [{ name: 'plc', host: 'localhost', port: plcPort, protocol: 'tls' }],
      );
      const line = await host.waitForLog(/^closed /, 10_000);
      assert.equal(line, `closed cleanly ${JSON.stringify('hello gateway-uplink\nPING\nOK\nbye\n')}`);
      assert.equal(await host.waitForLog(/^late write /), 'late write E_EGRESS_CLOSED');
    });

    it('refuses a stream to an undeclared target, over the wrong protocol, or to a server it cannot verify', async () => {
      const otherName = issue('elsewhere.example', 'server', ca, { altNames: ['elsewhere.example'] });
      const wrongName = tls.createServer({ cert: otherName.certPem, key: otherName.keyPem }, (socket) => socket.end());
      await new Promise<void>((resolve) => wrongName.listen(0, '127.0.0.1', resolve));
      try {
        const host = await streamer(
          `import { egress, log } from 'isogate:sdk';
          const codes = [];
          for (const target of ['nowhere', 'cloud', 'mismatch']) { try { await egress.connect(target); codes.push('connected'); } catch (e) { codes.push(e.code); } }
          log.info('codes ' + codes.join(','));`,
          [
            { name: 'cloud', host: 'localhost', port, protocol: 'https' },
            { name: 'mismatch', host: 'localhost', port: (wrongName.address() as AddressInfo).port, protocol: 'tls' },
          ],
        );
        assert.equal(await host.waitForLog(/^codes /, 10_000), 'codes E_CAPABILITY,E_EGRESS_PROTOCOL,E_EGRESS_TLS');
      } finally {
        wrongName.close();
      }
    });

    it('settles a stream still in its TLS handshake when the app is closed: E_EGRESS_CLOSED, the socket released', async () => {
      // A peer that takes the TCP connection and reads, but never answers the ClientHello.
      const peers: net.Socket[] = [];
      const mute = net.createServer((socket) => {
        peers.push(socket);
        socket.resume();
      });
      await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
      // A connect deadline far past the test's own: only the close may settle the stream.
      const patient = new EgressService({ certificates, appLog: () => undefined, limits: { connectTimeoutMs: 600_000 }, allowedRanges: LOOPBACK });
      try {
        const closes: unknown[] = [];
        const pending = patient
          .forApp(APP, [{ name: 'mute', host: 'localhost', port: (mute.address() as AddressInfo).port, protocol: 'tls' }])
          .connect('mute', {
            data: () => undefined,
            close: (error) => {
              closes.push(error);
            },
          });
        await waitFor(() => peers.length === 1);
        const peerClosed = new Promise<void>((resolve) => peers[0]!.once('close', () => resolve()));
        await patient.closeApp(APP);
        await assert.rejects(pending, (error: { code: string; message: string }) => {
          assert.equal(error.code, 'E_EGRESS_CLOSED');
          assert.match(error.message, /closed before the connection to mute was made/);
          return true;
        });
        await peerClosed;
        assert.deepEqual(closes, [], 'a stream that never opened has no close event');
      } finally {
        await patient.close();
        for (const peer of peers) peer.destroy();
        mute.close();
      }
    });
  });

  describe('MQTT over TLS to mosquitto', () => {
    let broker: ChildProcess | undefined;
    let brokerPort: number;

    before(async function () {
      if (spawnSync('which', ['mosquitto']).status !== 0) this.skip();
      const serverId = issue('localhost', 'server', ca, { altNames: ['localhost', '127.0.0.1'] });
      const files = {
        ca: path.join(dir, 'm-ca.pem'),
        cert: path.join(dir, 'm-cert.pem'),
        key: path.join(dir, 'm-key.pem'),
        conf: path.join(dir, 'mosquitto.conf'),
        ccert: path.join(dir, 'c-cert.pem'),
        ckey: path.join(dir, 'c-key.pem'),
      };
      await fs.writeFile(files.ca, ca.certPem);
      await fs.writeFile(files.cert, serverId.certPem);
      await fs.writeFile(files.key, serverId.keyPem);
      await fs.writeFile(files.ccert, client.certPem);
      await fs.writeFile(files.ckey, client.keyPem);
      // mosquitto started as root drops to its own user, which must read these throwaway files.
      await fs.chmod(dir, 0o755);
      for (const file of [files.ca, files.cert, files.key]) await fs.chmod(file, 0o644);
      brokerPort = 20000 + Math.floor(Math.random() * 20000);
      await fs.writeFile(
        files.conf,
        [
          `listener ${brokerPort} 127.0.0.1`,
          `cafile ${files.ca}`,
          `certfile ${files.cert}`,
          `keyfile ${files.key}`,
          'require_certificate true',
          'allow_anonymous true',
          'tls_version tlsv1.2',
          '',
        ].join('\n'),
      );
      const started = spawn('mosquitto', ['-c', files.conf], { stdio: 'ignore' });
      broker = started;
      let exited = false;
      started.once('exit', () => {
        exited = true;
      });
      await waitForAsync(
        async () => {
          if (exited) throw new Error(`mosquitto exited at start (port ${brokerPort} taken?)`);
          return accepts(brokerPort);
        },
        10_000,
        20,
      );
    });
    after(() => {
      broker?.kill();
    });

    /**
     * mosquitto_sub for one message on plant/alerts/#. With -d it reports its SUBACK, which is
     * awaited before anything is published (no sleep standing in for it); its other debug lines
     * are left out of the message.
     */
    function subscribe(extra: string[]): { process: ChildProcess; subscribed: Promise<void>; message: Promise<string> } {
      // Line-buffered: piped, its debug lines would wait in stdio's buffer until it exits.
      const child = spawn('stdbuf', [
        '-oL',
        'mosquitto_sub',
        '-h',
        'localhost',
        '-p',
        String(brokerPort),
        '--cafile',
        path.join(dir, 'm-ca.pem'),
        '--cert',
        path.join(dir, 'c-cert.pem'),
        '--key',
        path.join(dir, 'c-key.pem'),
        '-t',
        'plant/alerts/#',
        '-d',
        ...extra,
        '-C',
        '1',
        '-W',
        '10',
      ]);
      let out = '';
      let onSubscribed!: () => void;
      const subscribed = new Promise<void>((resolve) => {
        onSubscribed = resolve;
      });
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (/^Subscribed \(mid: \d+\)/m.test(out)) onSubscribed();
      });
      const message = new Promise<string>((resolve, reject) => {
        child.once('close', () => {
          if (!/^Subscribed /m.test(out)) reject(new Error(`mosquitto_sub never subscribed: ${out}`));
          resolve(
            out
              .split('\n')
              .filter((line) => line && !/^(Client \S+ |Subscribed \()/.test(line))
              .join('\n'),
          );
        });
      });
      // A subscriber that dies before its SUBACK fails the test instead of hanging it.
      return { process: child, subscribed: Promise.race([subscribed, message.then(() => undefined)]), message };
    }

    it('the uplink sample app, built with the SDK, forwards an alert to the HTTPS server and to mosquitto', async () => {
      const built = await buildProject(UPLINK_PROJECT);
      const uplinkId = built.manifest.package_id;
      await certificates.setCa(uplinkId, 'ca.pem', Buffer.from(ca.certPem));
      await certificates.setClient(uplinkId, 'client.crt', Buffer.from(client.certPem), 'client.key', Buffer.from(client.keyPem));
      // The sample declares the plant's fixed ports; here its servers listen where the test put them.
      const targets = built.manifest.egress!.map((t) => ({ ...t, port: t.protocol === 'https' ? port : brokerPort }));
      const manifest = { ...built.manifest, egress: targets };
      const base = fakeHost(uplinkId);
      base.configuration = { sendTo: ['cloud', 'broker'], path: '/api/alerts', topic: 'plant/alerts' };
      const host = { ...base, egress: egress.forApp(uplinkId, targets) };
      const sandbox = await createAppSandbox({
        manifest,
        host,
        files: new Map([...built.files].map(([name, bytes]) => [name, Buffer.from(bytes).toString('utf8')])),
      });
      const sub = subscribe(['-v']);
      await sub.subscribed;
      try {
        await sandbox.start();
        const alert = { sensor: 'boiler-2', value: 97.5, limit: 90, severity: 'critical', at: '2026-11-25T10:00:00.000Z', count: 3 };
        const before = received.length;
        await sandbox.deliver('alerts', jsonBatch(alert));
        assert.equal(await sub.message, `plant/alerts/boiler-2 ${JSON.stringify(alert)}`);
        await waitFor(() => received.length > before);
        assert.deepEqual(received.at(-1), { path: '/api/alerts', body: JSON.stringify(alert), clientCn: 'gateway-uplink' });
        assert.ok(!host.logs.some((l) => l.level <= 1), JSON.stringify(host.logs));
      } finally {
        sandbox.dispose();
        sub.process.kill();
      }
    });

    it('publishes with the client certificate, seen by mosquitto_sub; refused without it', async () => {
      const sub = subscribe([]);
      await sub.subscribed;
      const host = egress.forApp(APP, [{ name: 'broker', host: 'localhost', port: brokerPort, protocol: 'mqtts' }]);
      await host.publish('broker', 'plant/alerts/temperature', '{"v":92}', { qos: 1 });
      assert.equal(await sub.message, '{"v":92}');

      const bare = 'dev.isogate.tests.nocert';
      await certificates.setCa(bare, 'ca.pem', Buffer.from(ca.certPem));
      await assert.rejects(
        egress.forApp(bare, [{ name: 'broker', host: 'localhost', port: brokerPort, protocol: 'mqtts' }]).publish('broker', 't', 'x'),
        (error: { code: string; message: string }) => {
          assert.equal(error.code, 'E_EGRESS_TLS');
          assert.match(error.message, /certificate required/);
          return true;
        },
      );
    });
  });
});
