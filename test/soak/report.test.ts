import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { validateManifest } from '../../sdk/manifest.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { DEFAULT_BOUNDS, judge, type Sample } from './analysis.js';
import { offeredPerSecond, SINKS, SOURCES, soakApps, soakRoutes } from './apps.js';
import { writeReport } from './report.js';

const sample = (t: number, rssMb: number): Sample => ({
  t,
  rssMb,
  heapUsedMb: 27,
  isolatesHeapMb: 16,
  externalMb: 4.6,
  arrayBuffersMb: 0.3,
  eldP50Ms: 1,
  eldP99Ms: 12,
  eldMaxMs: 30,
  delivered: t * 3000,
  dropped: 0,
  failed: 0,
  invalid: 0,
  queued: 0,
});

describe('soak apps and report', () => {
  it('wires 20 valid apps with routes only between declared endpoints of the right direction', () => {
    const apps = soakApps(100);
    assert.equal(apps.length, 20);
    assert.equal(new Set(apps.map((a) => a.manifest.package_id)).size, 20);
    for (const app of apps) validateManifest(app.manifest);
    const endpoints = new Map(apps.flatMap((a) => (a.manifest.endpoints ?? []).map((e) => [`${a.manifest.package_id}:${e.name}`, e.direction])));
    const routes = soakRoutes();
    assert.equal(routes.length, 25);
    for (const route of routes) {
      assert.equal(endpoints.get(route.source), 'source', route.source);
      assert.equal(endpoints.get(route.destination), 'destination', route.destination);
    }
    // Each source's two routes plus the relays forwarding every message of the first.
    assert.equal(offeredPerSecond(100), 100 * SOURCES * 3);
    assert.ok(SINKS > 0);
  });

  it('writes report.md, a well-formed soak.svg with the three curves, and samples.json', async () => {
    const dir = await makeTempDir('isogate-soak-report-');
    try {
      const samples = Array.from({ length: 61 }, (_, i) => sample(i * 2, 300 + (i * 2 >= 60 ? (i * 2 - 60) * 0.5 : 0)));
      const verdict = judge(samples, 3000);
      assert.equal(verdict.pass, false, 'a 30 MiB/min rise is a leak');
      const files = await writeReport(dir, { samples, verdict, offeredPerS: 3000, minutes: 2, apps: 20, routes: 25, intervalS: 2, bounds: DEFAULT_BOUNDS });
      assert.deepEqual(
        files.map((f) => path.basename(f)),
        ['report.md', 'soak.svg', 'samples.json'],
      );
      const md = await fs.readFile(path.join(dir, 'report.md'), 'utf8');
      assert.match(md, /\*\*FAIL\*\*/);
      assert.match(md, /\| no RSS growth trend \| FAIL \| fitted RSS slope 30\.000 MiB\/min/);
      assert.match(md, /!\[RSS, event-loop delay and delivered\/s against time\]\(soak\.svg\)/);
      const svg = await fs.readFile(path.join(dir, 'soak.svg'), 'utf8');
      execFileSync('python3', ['-c', 'import sys, xml.dom.minidom as m; m.parseString(sys.stdin.buffer.read())'], { input: svg });
      for (const title of ['resident memory', 'event-loop delay per interval', 'delivered per second, every route']) assert.ok(svg.includes(title), title);
      const saved = JSON.parse(await fs.readFile(path.join(dir, 'samples.json'), 'utf8')) as { samples: Sample[] };
      assert.equal(saved.samples.length, 61);
    } finally {
      await removeDir(dir);
    }
  });
});
