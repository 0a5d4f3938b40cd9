/**
 * Egress to the gateway's own side: every spelling and every DNS answer that leads to a refused
 * address is refused before any connection is made, unless the admin's EGRESS.allowed_ranges
 * includes it (each family by its own ranges); a change of the list reaches connections still
 * in their handshake; and the app hears one code and one sentence, E_EGRESS_UNREACHABLE,
 * whether the address is refused (E_EGRESS_ADDRESS, with the address, only in its log for the
 * admin), the name does not resolve, or the port is closed, resets or never answers.
 */
import { strict as assert } from 'node:assert';
import dns from 'node:dns';
import { promises as fs } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import mqttPacket from 'mqtt-packet';
import sinon from 'sinon';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { canonicalHost } from '../../platform/egress/address-policy.js';
import { AddressPolicy, CertificateStore, type EgressLimits, EgressService } from '../../platform/egress/index.js';
import type { EgressHost } from '../../platform/sandbox/bridge.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { EgressProtocol, EgressTarget } from '../../sdk/manifest.js';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

interface Identity {
  certPem: string;
  keyPem: string;
}

function issue(name: string, usage: 'ca' | 'server' | 'client', issuer?: Identity, altNames?: string[]): Identity {
  const keys = generateKeyPair();
  const certPem = createCertificate({
    subject: { commonName: name },
    publicKeyPem: keys.publicKeyPem,
    usage,
    ...(issuer ? { issuer } : { signingKeyPem: keys.keyPem }),
    ...(altNames ? { altNames } : {}),
  });
  return { certPem, keyPem: keys.keyPem };
}

const APP = 'dev.isogate.tests.egress-policy';
const KINDS: readonly EgressProtocol[] = ['https', 'mqtts', 'tls'];

/** Whatever each kind does with a target, until it is refused or done. */
async function attempt(host: EgressHost, kind: EgressProtocol, name: string): Promise<unknown> {
  if (kind === 'https') return host.fetch(name, { path: '/' });
  if (kind === 'mqtts') return host.publish(name, 'plant/alerts', 'x', { qos: 1 });
  const stream = await host.connect(name, { data: () => undefined, close: () => undefined });
  stream.destroy();
  return stream;
}

/** What the app is told about any declared target it cannot reach, refused address or not. */
const unreachableSentence = (host: string, p: number | string): string =>
  `cloud (${host}:${p}) cannot be reached: it has no address the gateway's egress policy allows, or the connection was refused, reset or not answered in time`;

/** Spellings of the gateway's own side a manifest's host pattern lets through. */
const SPELLINGS = ['127.0.0.1', '0', '2130706433', '0x7f000001', '127.1', '0177.0.0.1', '169.254.169.254', '10.0.0.1', 'localhost'];
/** What the terminator also refuses when it is handed an IPv6 literal directly. */
const IPV6_SPELLINGS = ['::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::'];
/** Hosts that reach this machine's loopback, where a test may connect. */
const LOOPBACK_HOSTS = new Set([
  '127.0.0.1',
  '::1',
  'localhost',
  '0',
  '0.0.0.0',
  '2130706433',
  '0x7f000001',
  '127.1',
  '0177.0.0.1',
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::',
]);

describe('egress address policy', function () {
  this.timeout(30_000);
  let dir: string;
  let ca: Identity;
  let certificates: CertificateStore;
  let server: https.Server;
  let accepted = 0;
  const open = new Set<net.Socket>();
  let port: number;
  let appLog: string[];
  const services: EgressService[] = [];
  /** A test must never reach beyond loopback: a connection to anything else fails here, unsent. */
  let tripwire: sinon.SinonStub;

  const service = (allowedRanges?: string[], limits: Partial<EgressLimits> = {}): EgressService => {
    const created = new EgressService({
      certificates,
      appLog: (_id, _level, line) => appLog.push(line),
      limits: { timeoutMs: 5000, ...limits },
      ...(allowedRanges ? { allowedRanges } : {}),
    });
    services.push(created);
    return created;
  };
  const target = (kind: EgressProtocol, host: string, p = port): EgressTarget => ({ name: 'cloud', host, port: p, protocol: kind });

  before(async () => {
    dir = await makeTempDir('isogate-egress-policy-');
    ca = issue('Plant cloud CA', 'ca');
    const identity = issue('localhost', 'server', ca, ['localhost', '127.0.0.1', '::1']);
    server = https.createServer({ cert: identity.certPem, key: identity.keyPem }, (_req, res) => res.end('{"ok":true}'));
    server.on('connection', (socket: net.Socket) => {
      accepted += 1;
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    certificates = new CertificateStore({ root: path.join(dir, 'certs'), keys: memoryDeviceKeys(), audit: new MemoryAuditLog() });
    await certificates.setCa(APP, 'ca.pem', Buffer.from(ca.certPem));
    const connect = net.Socket.prototype.connect;
    tripwire = sinon.stub(net.Socket.prototype, 'connect').callsFake(function (this: net.Socket, ...args: unknown[]) {
      const first = args[0] as unknown;
      const options = (Array.isArray(first) ? first[0] : first) as { host?: string; path?: string } | number;
      const host = typeof options === 'object' ? options.host : (args[1] as string | undefined);
      if (typeof options !== 'object' || !options.path) {
        if (host !== undefined && !LOOPBACK_HOSTS.has(host)) throw new Error(`test tripwire: a connection to ${host} was attempted`);
      }
      return connect.apply(this, args as Parameters<typeof connect>);
    });
  });
  beforeEach(() => {
    accepted = 0;
    appLog = [];
  });
  after(async () => {
    tripwire.restore();
    for (const created of services) await created.close();
    server.closeAllConnections();
    server.close();
    await removeDir(dir);
  });

  it('reads every spelling of an address as the URL host parser does', () => {
    for (const spelling of ['127.0.0.1', '2130706433', '0x7f000001', '127.1', '0177.0.0.1', '127.0.0.1.'])
      assert.deepEqual(canonicalHost(spelling), { address: '127.0.0.1', family: 4 }, spelling);
    assert.deepEqual(canonicalHost('0'), { address: '0.0.0.0', family: 4 });
    assert.deepEqual(canonicalHost('::ffff:127.0.0.1'), { address: '::ffff:7f00:1', family: 6 });
    assert.deepEqual(canonicalHost('Plant.Example'), { name: 'plant.example' });
    assert.equal(canonicalHost('1.2.3.4.5'), undefined);
  });

  it("refuses the gateway's own side in every IPv4 and IPv6 form, and allows the internet", () => {
    const policy = AddressPolicy.fromRanges(undefined);
    const refused: Record<string, string> = {
      '127.0.0.1': 'loopback',
      '127.255.0.9': 'loopback',
      '::1': 'loopback',
      '0.0.0.0': 'unspecified',
      '0.1.2.3': 'unspecified',
      '::': 'unspecified',
      '169.254.169.254': 'link-local',
      'fe80::1': 'link-local',
      'fe80::1%eth0': 'link-local',
      '10.0.0.1': 'private',
      '172.16.5.4': 'private',
      '172.31.255.255': 'private',
      '192.168.1.1': 'private',
      'fc00::1': 'private',
      'fd12:3456::1': 'private',
      '100.64.0.1': 'carrier-grade NAT',
      '100.127.255.254': 'carrier-grade NAT',
      '224.0.0.251': 'multicast',
      '239.255.255.250': 'multicast',
      'ff02::1': 'multicast',
      '240.0.0.1': 'reserved or broadcast',
      '255.255.255.255': 'reserved or broadcast',
      '::ffff:127.0.0.1': 'loopback (127.0.0.1, IPv4-mapped)',
      '::ffff:a9fe:a9fe': 'link-local (169.254.169.254, IPv4-mapped)',
      '::ffff:10.0.0.1': 'private (10.0.0.1, IPv4-mapped)',
      '::7f00:1': 'loopback (127.0.0.1, IPv4-compatible)',
      '::a00:1': 'private (10.0.0.1, IPv4-compatible)',
      '::ffff:0:7f00:1': 'loopback (127.0.0.1, IPv4-translated)',
      '64:ff9b::7f00:1': 'loopback (127.0.0.1, NAT64)',
      '64:ff9b::a9fe:a9fe': 'link-local (169.254.169.254, NAT64)',
      '64:ff9b::c0a8:101': 'private (192.168.1.1, NAT64)',
      '2002:7f00:1::': 'loopback (127.0.0.1, 6to4)',
      '2002:a00:1::1': 'private (10.0.0.1, 6to4)',
    };
    for (const [address, reason] of Object.entries(refused)) assert.equal(policy.refusal(address), reason, address);
    for (const address of [
      '93.184.216.34',
      '8.8.8.8',
      '172.32.0.1',
      '100.128.0.1',
      '2606:4700::1111',
      '64:ff9b::808:808',
      '2002:808:808::1',
      '::ffff:8.8.8.8',
    ]) {
      assert.equal(policy.refusal(address), undefined, address);
    }
  });

  it('allows exactly the ranges the admin lists, in any form of their addresses', () => {
    const policy = AddressPolicy.fromRanges(['127.0.0.0/8', 'fd00:1::/64']);
    for (const address of ['127.0.0.1', '127.9.9.9', '::ffff:127.0.0.1', '::7f00:1', '64:ff9b::7f00:1', 'fd00:1::5'])
      assert.equal(policy.refusal(address), undefined, address);
    for (const address of ['::1', '10.0.0.1', 'fd00:2::5', '169.254.169.254']) assert.notEqual(policy.refusal(address), undefined, address);
  });

  it('refuses a range that is not CIDR with E_CONFIG naming it', () => {
    const bad: [unknown, RegExp][] = [
      ['10.0.0.0/33', /allowed_ranges\[0\] "10\.0\.0\.0\/33".*prefix length of an IPv4 range is 0 to 32/],
      ['::1/129', /0 to 128/],
      ['10.0.0.0', /no \/PREFIX/],
      ['localhost/8', /not an IPv4 or IPv6 address/],
      ['2130706433/8', /not an IPv4 or IPv6 address/],
      ['10.0.0.0/8/8', /no \/PREFIX/],
      ['10.0.0.0/-1', /prefix length/],
      ['10.0.0.0/ 8', /prefix length/],
      ['10.0.0.0/', /prefix length/],
      [42, /not a string/],
    ];
    for (const [range, pattern] of bad) {
      assert.throws(
        () => AddressPolicy.fromRanges([range]),
        (error: unknown) => isIsogateError(error, 'E_CONFIG') && pattern.test(error.message),
        String(range),
      );
    }
    assert.throws(() => AddressPolicy.fromRanges('127.0.0.0/8'), { code: 'E_CONFIG' });
  });

  for (const kind of KINDS) {
    it(`${kind}: refuses each spelling of the gateway's own side, connecting nowhere; the app hears E_EGRESS_UNREACHABLE, the admin's log E_EGRESS_ADDRESS and why`, async () => {
      const egress = service();
      for (const host of [...SPELLINGS, ...IPV6_SPELLINGS]) {
        await assert.rejects(attempt(egress.forApp(APP, [target(kind, host)]), kind, 'cloud'), (error: unknown) => {
          assert.ok(isIsogateError(error, 'E_EGRESS_UNREACHABLE'), `${host}: ${String(error)}`);
          assert.equal(error.message, unreachableSentence(host, port));
          assert.deepEqual(Object.keys(error.details), []);
          return true;
        });
      }
      assert.equal(accepted, 0);
      assert.ok(
        appLog.some((line) =>
          /refused: E_EGRESS_UNREACHABLE: .*\(E_EGRESS_ADDRESS: .*localhost \(127\.0\.0\.1\) is a loopback address.*EGRESS\.allowed_ranges/.test(line),
        ),
        appLog.join('\n'),
      );
    });
  }

  it('refuses a host name when any address of its DNS answer is refused, connecting nowhere', async () => {
    // A rebinding answer: one address the admin allowed, one on the plant's network.
    const lookup = sinon.stub(dns.promises, 'lookup').resolves([
      { address: '127.0.0.1', family: 4 },
      { address: '10.1.2.3', family: 4 },
    ] as never);
    try {
      const egress = service(['127.0.0.0/8']);
      for (const kind of KINDS) {
        await assert.rejects(
          attempt(egress.forApp(APP, [target(kind, 'plant-cloud.example')]), kind, 'cloud'),
          (error: unknown) => isIsogateError(error, 'E_EGRESS_UNREACHABLE') && error.message === unreachableSentence('plant-cloud.example', port),
        );
      }
      assert.equal(lookup.callCount, KINDS.length);
      assert.equal(accepted, 0);
      assert.equal(
        appLog.filter((line) => /\(E_EGRESS_ADDRESS: .*plant-cloud\.example \(10\.1\.2\.3\) is a private address/.test(line)).length,
        KINDS.length,
        appLog.join('\n'),
      );
    } finally {
      lookup.restore();
    }
  });

  for (const kind of KINDS) {
    it(`${kind}: tells the app nothing that separates a name resolving to a plant address from a name that does not exist`, async () => {
      // An app that declares plant names as targets must not learn which exist, nor their addresses.
      const plant: Record<string, string> = { 'nas.corp.example': '10.20.30.40', 'scada-hmi.corp.example': '192.168.7.12', 'metadata.corp.example': 'fd00::7' };
      const lookup = sinon.stub(dns.promises, 'lookup').callsFake((async (name: string) => {
        const address = plant[name];
        if (address) return [{ address, family: net.isIP(address) }];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      }) as never);
      try {
        const egress = service();
        const seen: string[] = [];
        for (const name of [...Object.keys(plant), 'printer.corp.example']) {
          await assert.rejects(attempt(egress.forApp(APP, [target(kind, name)]), kind, 'cloud'), (error: unknown) => {
            assert.ok(isIsogateError(error, 'E_EGRESS_UNREACHABLE'), `${name}: ${String(error)}`);
            assert.deepEqual(Object.keys(error.details), [], name);
            seen.push(`${error.code} ${error.message.replace(name, 'NAME')}`);
            for (const address of Object.values(plant)) assert.ok(!error.message.includes(address), error.message);
            assert.doesNotMatch(error.message, /private|IPv[46]|10\.|192\.168|fd00/);
            return true;
          });
        }
        assert.equal(new Set(seen).size, 1, seen.join('\n'));
        assert.equal(accepted, 0);
        // The admin's log says which was which, with the address.
        assert.ok(
          appLog.some((line) => line.includes('(E_EGRESS_ADDRESS: ') && line.includes('nas.corp.example (10.20.30.40) is a private address')),
          appLog.join('\n'),
        );
        assert.ok(
          appLog.some((line) => line.includes('printer.corp.example') && line.endsWith('(ENOTFOUND)')),
          appLog.join('\n'),
        );
      } finally {
        lookup.restore();
      }
    });
  }

  it("judges each address only by its own family's allowed ranges: no IPv6 range allows an IPv4 address, nor the reverse", () => {
    const internalIpv4 = [
      '127.0.0.1',
      '169.254.169.254',
      '10.0.0.1',
      '192.168.1.1',
      '::ffff:127.0.0.1',
      '::ffff:a9fe:a9fe',
      '::7f00:1',
      '64:ff9b::a00:1',
      '2002:7f00:1::',
    ];
    for (const range of ['::/0', '::/8', '::/64', '::/96', '::ffff:0:0/96', '64:ff9b::/96']) {
      const policy = AddressPolicy.fromRanges([range]);
      for (const address of internalIpv4) assert.notEqual(policy.refusal(address), undefined, `${range} let ${address} through`);
    }
    const everyIpv6 = AddressPolicy.fromRanges(['::/0']);
    for (const address of ['::1', 'fe80::1', 'fd00::1', '::']) assert.equal(everyIpv6.refusal(address), undefined, address);
    const everyIpv4 = AddressPolicy.fromRanges(['0.0.0.0/0']);
    for (const address of ['127.0.0.1', '10.0.0.1', '::ffff:127.0.0.1', '64:ff9b::a9fe:a9fe']) assert.equal(everyIpv4.refusal(address), undefined, address);
    for (const address of ['::1', 'fe80::1', 'fd00::1', '::']) assert.notEqual(everyIpv4.refusal(address), undefined, address);
  });

  it('reaches loopback in every spelling once EGRESS.allowed_ranges includes it, the certificate checked for the declared host', async () => {
    const egress = service(['127.0.0.0/8']);
    for (const host of ['localhost', '127.0.0.1', '2130706433', '0x7f000001', '127.1']) {
      const response = await egress.forApp(APP, [target('https', host)]).fetch('cloud', { path: '/' });
      assert.equal(response.status, 200, host);
    }
    // Allowing ::1 does not allow 127.0.0.1 written as IPv6.
    await assert.rejects(
      service(['::1/128'])
        .forApp(APP, [target('https', '::ffff:127.0.0.1')])
        .fetch('cloud', {}),
      { code: 'E_EGRESS_UNREACHABLE' },
    );
    assert.match(appLog.at(-1) ?? '', /E_EGRESS_ADDRESS: .*loopback \(127\.0\.0\.1, IPv4-mapped\)/);
  });

  it('applies a changed list at once, closing connections the new list refuses, and refuses a bad list changing nothing', async () => {
    const file = path.join(dir, 'config.json');
    const config = await ConfigStore.open(file, 'test');
    const egress = service(config.read((doc) => doc.EGRESS?.allowed_ranges));
    // As platform/main.ts wires them.
    config.addCheck((doc) => AddressPolicy.fromRanges(doc.EGRESS?.allowed_ranges));
    config.on('change', ({ after }) => egress.setAllowedRanges(after.EGRESS?.allowed_ranges));
    const host = egress.forApp(APP, [target('https', 'localhost')]);
    await assert.rejects(host.fetch('cloud', {}), { code: 'E_EGRESS_UNREACHABLE', message: unreachableSentence('localhost', port) });
    await config.update((doc) => {
      doc.EGRESS = { allowed_ranges: ['127.0.0.0/8', '::1/128'] };
    });
    assert.equal((await host.fetch('cloud', {})).status, 200);
    assert.equal(accepted, 1);

    const before = await fs.readFile(file, 'utf8');
    await assert.rejects(
      config.update((doc) => {
        doc.EGRESS = { allowed_ranges: ['127.0.0.0/8', '10.0.0.0/40'] };
      }),
      (error: unknown) => isIsogateError(error, 'E_CONFIG') && /allowed_ranges\[1\] "10\.0\.0\.0\/40"/.test(error.message),
    );
    assert.equal(await fs.readFile(file, 'utf8'), before);
    assert.equal((await host.fetch('cloud', {})).status, 200, 'the old list still applies');
    assert.equal(accepted, 1, 'the kept connection served it');

    await config.update((doc) => {
      delete doc.EGRESS;
    });
    await assert.rejects(host.fetch('cloud', {}), { code: 'E_EGRESS_UNREACHABLE', message: unreachableSentence('localhost', port) });
    await waitFor(() => open.size === 0);
  });

  describe('an EGRESS.allowed_ranges change while a connection is in its TLS handshake', () => {
    // A proxy that accepts TCP at once (the address check on connect passes) and lets the TLS
    // handshake through only when the test says so, after the admin removed the range.
    let proxy: net.Server;
    let proxyPort: number;
    let forwardTo = 0;
    const waiting: net.Socket[] = [];
    const peers: net.Socket[] = [];
    const backends = {} as Record<EgressProtocol, { server: net.Server; port: number }>;
    /** What the servers behind the proxy heard from the app: echoed bytes, requests, publishes. */
    const heard: Record<EgressProtocol, number> = { https: 0, mqtts: 0, tls: 0 };

    const release = (client: net.Socket): void => {
      const upstream = net.connect(forwardTo, '127.0.0.1', () => {
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      peers.push(client, upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    };
    const use = async (host: EgressHost, kind: EgressProtocol): Promise<unknown> => {
      if (kind !== 'tls') return attempt(host, kind, 'cloud');
      const stream = await host.connect('cloud', { data: () => undefined, close: () => undefined });
      await stream.write(new TextEncoder().encode('still talking to 127.0.0.1 after the range was removed'));
      return stream;
    };

    before(async () => {
      const identity = issue('127.0.0.1', 'server', ca, ['127.0.0.1']);
      const credentials = { cert: identity.certPem, key: identity.keyPem };
      backends.tls = {
        server: tls.createServer(credentials, (socket) =>
          socket.on('data', (chunk: Buffer) => {
            heard.tls += chunk.length;
            socket.write(chunk);
          }),
        ),
        port: 0,
      };
      backends.https = {
        server: https.createServer(credentials, (_req, res) => {
          heard.https += 1;
          res.end('{}');
        }),
        port: 0,
      };
      backends.mqtts = {
        server: tls.createServer(credentials, (socket) => {
          const parser = mqttPacket.parser();
          parser.on('packet', (packet) => {
            if (packet.cmd === 'connect') socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
            if (packet.cmd === 'publish') {
              heard.mqtts += 1;
              if (packet.qos === 1) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId! }));
            }
          });
          socket.on('data', (chunk: Buffer) => parser.parse(chunk));
        }),
        port: 0,
      };
      for (const backend of Object.values(backends)) {
        await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve));
        backend.port = (backend.server.address() as AddressInfo).port;
      }
      proxy = net.createServer((client) => {
        client.pause();
        waiting.push(client);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyPort = (proxy.address() as AddressInfo).port;
    });
    after(() => {
      for (const socket of [...waiting, ...peers]) socket.destroy();
      proxy.close();
      for (const backend of Object.values(backends)) backend.server.close();
    });

    for (const kind of KINDS) {
      it(`${kind}: a connection whose TCP was checked under the old list is refused when its handshake completes; the server hears nothing`, async () => {
        forwardTo = backends[kind].port;
        const before = heard[kind];
        const egress = service(['127.0.0.0/8']);
        const outcome = use(egress.forApp(APP, [target(kind, '127.0.0.1', proxyPort)]), kind);
        outcome.catch(() => undefined);
        await waitFor(() => waiting.length === 1);
        egress.setAllowedRanges([]);
        release(waiting.shift()!);
        await assert.rejects(
          outcome,
          (error: unknown) => isIsogateError(error, 'E_EGRESS_UNREACHABLE') && error.message === unreachableSentence('127.0.0.1', proxyPort),
        );
        // https: the change destroys the app's pool and the request with it, before the handshake
        // ends (the connector's late check then drops the socket); the others meet the late check.
        const cause = kind === 'https' ? /\(UND_ERR_DESTROYED\)$/ : /\(E_EGRESS_ADDRESS: .*127\.0\.0\.1 is a loopback address/;
        assert.ok(
          appLog.some((line) => cause.test(line)),
          appLog.join('\n'),
        );
        assert.equal(heard[kind], before);
      });
    }
  });

  describe('a declared target that cannot be reached', () => {
    let closedPort: number;
    let resetting: net.Server;
    let silent: net.Server;
    const held: net.Socket[] = [];

    before(async () => {
      const probe = net.createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      closedPort = (probe.address() as AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
      // Accepts, then resets the connection; and accepts, then never says a word.
      resetting = net.createServer((socket) => socket.resetAndDestroy());
      silent = net.createServer((socket) => {
        held.push(socket);
      });
      for (const peer of [resetting, silent]) await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
    });
    after(() => {
      for (const socket of held) socket.destroy();
      resetting.close();
      silent.close();
    });

    for (const kind of KINDS) {
      it(`${kind}: a closed port, a reset and a port that never answers give E_EGRESS_UNREACHABLE with one sentence`, async () => {
        const egress = service(['127.0.0.0/8', '::1/128'], { connectTimeoutMs: 300 });
        const messages: string[] = [];
        for (const p of [closedPort, (resetting.address() as AddressInfo).port, (silent.address() as AddressInfo).port]) {
          await assert.rejects(attempt(egress.forApp(APP, [target(kind, 'localhost', p)]), kind, 'cloud'), (error: unknown) => {
            assert.ok(isIsogateError(error, 'E_EGRESS_UNREACHABLE'), `port ${p}: ${String(error)}`);
            assert.deepEqual(Object.keys(error.details), []);
            messages.push(error.message.replace(`:${p})`, ':PORT)'));
            return true;
          });
        }
        assert.deepEqual(messages, Array(3).fill(unreachableSentence('localhost', 'PORT')));
        // The admin still learns what happened, from the app's log.
        assert.ok(
          appLog.some((line) => /E_EGRESS_UNREACHABLE: .*\(ECONNREFUSED\)$/.test(line)),
          appLog.join('\n'),
        );
        assert.ok(
          appLog.some((line) => /E_EGRESS_UNREACHABLE: .*\(no connection within 300 ms\)$/.test(line)),
          appLog.join('\n'),
        );
      });
    }

    it('https: a request whose own deadline passes before a connection is made is unreachable too, not a timeout', async () => {
      const egress = service(['127.0.0.0/8'], { connectTimeoutMs: 10_000, timeoutMs: 200 });
      await assert.rejects(
        egress.forApp(APP, [target('https', 'localhost', (silent.address() as AddressInfo).port)]).fetch('cloud', {}),
        (error: unknown) =>
          isIsogateError(error, 'E_EGRESS_UNREACHABLE') && error.message === unreachableSentence('localhost', (silent.address() as AddressInfo).port),
      );
    });
  });
});
