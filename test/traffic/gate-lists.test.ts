/**
 * The IP address allowlist and denylist (NETWORK.IDS_PROXY): the manual's IP address rules, each
 * broken rule with its own code and nothing written; the denylist's 1000-entry bound with the
 * manual's Critical "Rule creation limit" event.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { checkIpAddress, DENYLIST_LIMIT, IpLists } from '../../platform/traffic/gate-lists.js';
import type { ErrorCode } from '../../sdk/errors.js';
import { refusedWith } from '../fixtures/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('the IP address allowlist and denylist', () => {
  let dir: string;
  let config: ConfigStore;
  let audit: MemoryAuditLog;
  let lists: IpLists;
  const file = () => path.join(dir, 'config.json');

  beforeEach(async () => {
    dir = await makeTempDir('isogate-lists-');
    config = await ConfigStore.open(file(), 'test');
    audit = new MemoryAuditLog();
    lists = new IpLists(config, audit);
  });
  afterEach(() => removeDir(dir));

  const HOSTILE: [unknown, ErrorCode][] = [
    ['', 'E_IP_BLANK'],
    ['   ', 'E_IP_BLANK'],
    [undefined, 'E_IP_BLANK'],
    ['192.168.1', 'E_IP_FORMAT'],
    ['192.168.1.1.1', 'E_IP_FORMAT'],
    ['192.168.1.256', 'E_IP_FORMAT'],
    ['192.168.01.1', 'E_IP_FORMAT'],
    ['192.168.1.-1', 'E_IP_FORMAT'],
    ['a.b.c.d', 'E_IP_FORMAT'],
    ['::1', 'E_IP_FORMAT'],
    ['192.168.1.1/24', 'E_IP_FORMAT'],
    ['0.1.2.3', 'E_IP_LEADING_ZERO'],
    ['255.255.255.255', 'E_IP_BROADCAST'],
  ];

  for (const [address, code] of HOSTILE) {
    it(`refuses ${JSON.stringify(address)} on the allowlist with ${code}, writing nothing`, async () => {
      const before = await fs.readFile(file(), 'utf8');
      await assert.rejects(lists.allow(address), refusedWith(code));
      assert.equal(await fs.readFile(file(), 'utf8'), before);
      assert.deepEqual(lists.allowlist(), []);
    });
  }

  it('keeps an allowed address in NETWORK.IDS_PROXY.allowList, refuses it twice and removes it', async () => {
    assert.equal(checkIpAddress(' 10.0.0.7 '), '10.0.0.7');
    assert.deepEqual(await lists.allow('10.0.0.7'), { ipAddrSource: '10.0.0.7' });
    await assert.rejects(lists.allow('10.0.0.7'), refusedWith('E_CONFLICT'));
    const stored = JSON.parse(await fs.readFile(file(), 'utf8'));
    assert.deepEqual(stored.NETWORK.IDS_PROXY.allowList, [{ ipAddrSource: '10.0.0.7' }]);
    assert.equal(lists.verdictAtAccept('10.0.0.7'), 'allowed');
    await lists.disallow('10.0.0.7');
    await assert.rejects(lists.disallow('10.0.0.7'), refusedWith('E_NOT_FOUND'));
    assert.deepEqual(lists.allowlist(), []);
  });

  it('denylists a source with the signature and the POSIX time, audits the block, and the allowlist wins at accept', async () => {
    assert.equal(await lists.deny('10.0.0.8', 'MODBUS write to coil', 1_700_000_000_500), 'denied');
    assert.deepEqual(lists.denylist(), [{ ipAddrSource: '10.0.0.8', timestamp: 1_700_000_000, signatureName: 'MODBUS write to coil' }]);
    assert.equal(await lists.deny('10.0.0.8', 'again'), 'listed');
    assert.equal(lists.denylist().length, 1);
    assert.equal(lists.verdictAtAccept('10.0.0.8'), 'denied');
    const blocked = audit.records.filter((record) => record.event === 'trafficBlocked');
    assert.equal(blocked.length, 1);
    assert.equal(blocked[0]!.text, 'The traffic from the device 10.0.0.8 is blocked');
    assert.equal(blocked[0]!.log, 'firewall');

    await lists.allow('10.0.0.8');
    assert.equal(lists.verdictAtAccept('10.0.0.8'), 'allowed');
    assert.equal(lists.mayDenylist('10.0.0.8'), false);
    await lists.disallow('10.0.0.8');

    await lists.undeny('10.0.0.8');
    assert.equal(lists.verdictAtAccept('10.0.0.8'), 'unlisted');
    await assert.rejects(lists.undeny('10.0.0.8'), refusedWith('E_NOT_FOUND'));
    await assert.rejects(lists.undeny('0.0.0.1'), refusedWith('E_IP_LEADING_ZERO'));
  });

  it('holds at most 1000 denied addresses: past that the Critical rule creation limit event and no entry', async () => {
    await config.update((draft) => {
      (draft.NETWORK as Record<string, unknown>).IDS_PROXY = {
        blockedList: Array.from({ length: DENYLIST_LIMIT }, (_, index) => ({
          ipAddrSource: `10.1.${index >> 8}.${index & 255}`,
          timestamp: 1,
          signatureName: 's',
        })),
      };
    });
    const before = await fs.readFile(file(), 'utf8');
    assert.equal(await lists.deny('10.9.9.9', 'one too many'), 'limit');
    assert.equal(await fs.readFile(file(), 'utf8'), before);
    assert.equal(lists.verdictAtAccept('10.9.9.9'), 'unlisted');
    const limit = audit.records.find((record) => record.event === 'blockRuleLimit');
    assert.ok(limit);
    assert.equal(limit.severity, 'Critical');
    assert.equal(limit.text, 'Failed to block device 10.9.9.9: maximum limit on blocking rules reached(1000)');
    // The document itself cannot hold more either.
    await assert.rejects(
      config.update((draft) => {
        ((draft.NETWORK as { IDS_PROXY: { blockedList: unknown[] } }).IDS_PROXY.blockedList as unknown[]).push({ ipAddrSource: '10.9.9.9' });
      }),
      refusedWith('E_CONFIG'),
    );
  });

  it('turns the lists off with IPSPFlag and the denylist alone with blockedListFlag', async () => {
    await lists.deny('10.0.0.9', 'sig');
    await config.update((draft) => {
      (draft.NETWORK as { IDS_PROXY: Record<string, unknown> }).IDS_PROXY.blockedListFlag = false;
    });
    assert.equal(lists.verdictAtAccept('10.0.0.9'), 'unlisted');
    assert.equal(lists.mayDenylist('10.0.0.9'), true);
    await config.update((draft) => {
      (draft.NETWORK as { IDS_PROXY: Record<string, unknown> }).IDS_PROXY.IPSPFlag = false;
    });
    assert.equal(lists.mayDenylist('10.0.0.10'), false);
  });
});
