/**
 * Hosts and request paths an attacker spells to look like one thing and reach another: invisible
 * and look-alike Unicode characters (which the URL host parser would drop or map, so that
 * "loc<U+200B>alhost" became localhost), and IPv6 forms that carry an IPv4 address (Teredo, 6to4,
 * NAT64, ISATAP, IPv4-mapped and -compatible) whose inner address is on the gateway's own side.
 * Each is refused before any connection: the app hears E_EGRESS_UNREACHABLE, the admin's log says
 * E_EGRESS_ADDRESS and why; a request path with such a character is E_BAD_REQUEST.
 */
import { strict as assert } from 'node:assert';
import net from 'node:net';
import path from 'node:path';
import sinon from 'sinon';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { canonicalHost } from '../../platform/egress/address-policy.js';
import { AddressPolicy, CertificateStore, EgressService } from '../../platform/egress/index.js';
import type { EgressHost } from '../../platform/sandbox/bridge.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { EgressProtocol } from '../../sdk/manifest.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const APP = 'dev.isogate.tests.egress-hardening';
const KINDS: readonly EgressProtocol[] = ['https', 'mqtts', 'tls'];

/** Spellings of loopback and the plant's network with invisible or look-alike characters in them. */
const UNICODE_HOSTS: Record<string, string> = {
  'zero-width space': '127.0.0.1\u200b',
  'zero-width space in a name': 'loc\u200balhost',
  'zero-width joiner': 'local\u200dhost',
  'zero-width non-joiner': '10.0.0\u200c.1',
  'soft hyphen': 'local\u00adhost',
  'byte order mark': '\ufeff127.0.0.1',
  'word joiner': 'localhost\u2060',
  'combining grapheme joiner': '10\u034f.0.0.1',
  'Mongolian vowel separator': '127.0.0.1\u180e',
  'ideographic full stop': '127\u30020\u30020\u30021',
  'full-width digits': '\uff11\uff12\uff17.0.0.1',
  'Cyrillic o': 'l\u043ecalhost',
  'right-to-left override': '\u202e1.0.0.721',
  'no-break space': '127.0.0.1\u00a0',
};

describe('egress host hardening', function () {
  this.timeout(20_000);
  let dir: string;
  let certificates: CertificateStore;
  let service: EgressService;
  let appLog: string[];
  let connects: sinon.SinonSpy;

  before(async () => {
    dir = await makeTempDir('isogate-egress-hardening-');
    certificates = new CertificateStore({ root: path.join(dir, 'certs'), keys: memoryDeviceKeys(), audit: new MemoryAuditLog() });
  });
  beforeEach(() => {
    appLog = [];
    service = new EgressService({ certificates, appLog: (_id, _level, line) => appLog.push(line), limits: { timeoutMs: 3000 } });
    connects = sinon.spy(net.Socket.prototype, 'connect');
  });
  afterEach(async () => {
    connects.restore();
    await service.close();
  });
  after(async () => {
    await removeDir(dir);
  });

  const forHost = (kind: EgressProtocol, host: string): EgressHost => service.forApp(APP, [{ name: 'cloud', host, port: 443, protocol: kind }]);
  const attempt = async (egress: EgressHost, kind: EgressProtocol): Promise<unknown> => {
    if (kind === 'https') return egress.fetch('cloud', { path: '/' });
    if (kind === 'mqtts') return egress.publish('cloud', 'plant/alerts', 'x', { qos: 1 });
    const stream = await egress.connect('cloud', { data: () => undefined, close: () => undefined });
    stream.destroy();
    return stream;
  };

  it('reads no host with a character outside printable ASCII as a host', () => {
    for (const [what, host] of Object.entries(UNICODE_HOSTS)) assert.equal(canonicalHost(host), undefined, what);
    // Still read as before: every ASCII spelling the URL host parser knows.
    assert.deepEqual(canonicalHost('127.1'), { address: '127.0.0.1', family: 4 });
    assert.deepEqual(canonicalHost('xn--lcalhost-nbh'), { name: 'xn--lcalhost-nbh' });
  });

  for (const kind of KINDS) {
    it(`${kind}: refuses a declared host with an invisible or look-alike character, connecting nowhere; the log names the character`, async () => {
      for (const [what, host] of Object.entries(UNICODE_HOSTS)) {
        appLog = [];
        await assert.rejects(attempt(forHost(kind, host), kind), (error: unknown) => {
          assert.ok(isIsogateError(error, 'E_EGRESS_UNREACHABLE'), `${what}: ${String(error)}`);
          assert.deepEqual(Object.keys(error.details), []);
          return true;
        });
        const code = host
          .match(/[^\x21-\x7e]/u)![0]
          .codePointAt(0)!
          .toString(16)
          .toUpperCase()
          .padStart(4, '0');
        assert.ok(
          appLog.some((line) => line.includes('(E_EGRESS_ADDRESS: ') && line.includes(`has the character U+${code}`)),
          `${what}: ${appLog.join('\n')}`,
        );
      }
      assert.equal(connects.callCount, 0);
    });
  }

  it('refuses every IPv6 form that carries a loopback or private IPv4 address, and allows the same forms around public ones', () => {
    const policy = AddressPolicy.fromRanges(undefined);
    const refused: Record<string, string> = {
      // Teredo: server 65.54.227.120 (public), client 10.0.0.1 inverted (f5ff:fffe).
      '2001:0:4136:e378:8000:63bf:f5ff:fffe': 'private (10.0.0.1, Teredo client)',
      // Teredo: the client 127.0.0.1 inverted (80ff:fffe).
      '2001:0:4136:e378:8000:63bf:80ff:fffe': 'loopback (127.0.0.1, Teredo client)',
      // Teredo: the server 192.168.1.1, the client 8.8.8.8 (f7f7:f7f7).
      '2001:0:c0a8:101:8000:63bf:f7f7:f7f7': 'private (192.168.1.1, Teredo server)',
      '2002:7f00:1::1': 'loopback (127.0.0.1, 6to4)',
      '2002:c0a8:101:5::1': 'private (192.168.1.1, 6to4)',
      '64:ff9b::7f00:1': 'loopback (127.0.0.1, NAT64)',
      '64:ff9b::a00:1': 'private (10.0.0.1, NAT64)',
      '::ffff:7f00:1': 'loopback (127.0.0.1, IPv4-mapped)',
      '::ffff:c0a8:101': 'private (192.168.1.1, IPv4-mapped)',
      '::ffff:0:a00:1': 'private (10.0.0.1, IPv4-translated)',
      '::7f00:1': 'loopback (127.0.0.1, IPv4-compatible)',
      '::ac10:1': 'private (172.16.0.1, IPv4-compatible)',
      '2001:db8:1::5efe:a00:1': 'private (10.0.0.1, ISATAP)',
      '2606:4700::200:5efe:7f00:1': 'loopback (127.0.0.1, ISATAP)',
    };
    for (const [address, reason] of Object.entries(refused)) assert.equal(policy.refusal(address), reason, address);
    for (const address of [
      '2001:0:4136:e378:8000:63bf:f7f7:f7f7',
      '2002:808:808::1',
      '64:ff9b::808:808',
      '::ffff:808:808',
      '2606:4700::5efe:808:808',
      '2001:4860:4860::8888',
    ])
      assert.equal(policy.refusal(address), undefined, address);
  });

  for (const kind of KINDS) {
    it(`${kind}: refuses a declared IPv6 literal of each embedding form around loopback, connecting nowhere`, async () => {
      for (const host of [
        '2001:0:4136:e378:8000:63bf:80ff:fffe',
        '2002:7f00:1::1',
        '64:ff9b::7f00:1',
        '::ffff:127.0.0.1',
        '::127.0.0.1',
        '2001:db8::5efe:127.0.0.1',
      ]) {
        appLog = [];
        await assert.rejects(attempt(forHost(kind, host), kind), (error: unknown) => isIsogateError(error, 'E_EGRESS_UNREACHABLE'), host);
        assert.ok(
          appLog.some((line) => /\(E_EGRESS_ADDRESS: .* is a loopback \(127\.0\.0\.1, [^)]+\) address/.test(line)),
          `${host}: ${appLog.join('\n')}`,
        );
      }
      assert.equal(connects.callCount, 0);
    });
  }

  it('refuses a request path with an invisible, look-alike or non-ASCII character (E_BAD_REQUEST), connecting nowhere', async () => {
    const egress = forHost('https', 'plant.example');
    for (const requestPath of ['/alerts\u200b', '/\ufeffalerts', '/al\u00aderts', '/\uff0e\uff0e/admin', '/caf\u00e9', '/a\u007f', '/a b']) {
      await assert.rejects(
        egress.fetch('cloud', { path: requestPath }),
        (error: unknown) => isIsogateError(error, 'E_BAD_REQUEST') && /only printable ASCII/.test(error.message),
        JSON.stringify(requestPath),
      );
    }
    assert.equal(connects.callCount, 0);
  });
});
