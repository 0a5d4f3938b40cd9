/**
 * The traffic gate's options, each checked at construction, and the protected services'
 * configuration, checked on every change of the document (refused whole, nothing written).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { TrafficGate, type TrafficGateOptions } from '../../platform/traffic/gate.js';
import { IpLists } from '../../platform/traffic/gate-lists.js';
import type { ErrorCode } from '../../sdk/errors.js';
import { refusedWith } from '../fixtures/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('the traffic gate options and services', () => {
  let dir: string;
  let config: ConfigStore;
  let base: TrafficGateOptions;
  beforeEach(async () => {
    dir = await makeTempDir('isogate-gate-options-');
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const audit = new MemoryAuditLog();
    base = { config, audit, lists: new IpLists(config, audit), blocked: () => false, onInspectorFailure: () => undefined };
  });
  afterEach(() => removeDir(dir));

  for (const [name, value] of [
    ['verdictDeadlineMs', 0],
    ['verdictDeadlineMs', -5],
    ['verdictDeadlineMs', 1.5],
    ['alertsPerSecond', -1],
    ['alertsPerSecond', 0.5],
  ] as const) {
    it(`refuses ${name}: ${value} with E_OPTION`, () => {
      assert.throws(() => new TrafficGate({ ...base, [name]: value }), refusedWith('E_OPTION', new RegExp(name)));
    });
  }

  const service = { name: 'plc', protocol: 'modbus', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 502 } };
  for (const [what, services, code] of [
    ['two services of one name', [service, service], 'E_CONFIG'],
    ['an upstream without a port', [{ ...service, upstream: { host: '127.0.0.1', port: 0 } }], 'E_CONFIG'],
    ['an unknown protocol', [{ ...service, protocol: 'http' }], 'E_CONFIG'],
    ['a name with a space', [{ ...service, name: 'the plc' }], 'E_CONFIG'],
    ['a port past 65535', [{ ...service, listen: { host: '127.0.0.1', port: 70000 } }], 'E_CONFIG'],
    ['an unknown key', [{ ...service, tls: true }], 'E_CONFIG'],
    ['held bytes below 1 KiB', [{ ...service, maxHeldBytes: 10 }], 'E_CONFIG'],
  ] as [string, unknown[], ErrorCode][]) {
    it(`refuses ${what} in NETWORK.IDS_PROXY.services (${code}), writing nothing`, async () => {
      const gate = new TrafficGate(base);
      const before = await fs.readFile(path.join(dir, 'config.json'), 'utf8');
      await assert.rejects(
        config.update((draft) => {
          (draft.NETWORK as Record<string, unknown>).IDS_PROXY = { services };
        }),
        refusedWith(code),
      );
      assert.equal(await fs.readFile(path.join(dir, 'config.json'), 'utf8'), before);
      await gate.close();
    });
  }
});
