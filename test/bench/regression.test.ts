import { strict as assert } from 'node:assert';
import { type BenchResult, compare, latencyResult, type ResultEntry, toEntry } from './harness.js';
import { markdown } from './markdown.js';
import { compareResults, DEFAULT_SPREAD, MIN_SPREAD, parseResults } from './regression.js';
import { foldRuns } from './runs.js';

const result = (name: string, ratio: number, extra: Partial<BenchResult> = {}): BenchResult => ({
  name,
  unit: 'msg/s',
  value: ratio * 100,
  baselineName: 'postMessage',
  baseline: 100,
  ratio,
  target: 0.5,
  pass: ratio >= 0.5,
  ...extra,
});

const entry = (name: string, ratio: number, spread?: number): ResultEntry => ({
  ...toEntry(result(name, ratio)),
  ...(spread === undefined ? {} : { spread, spreadFrom: 'runs' as const, runs: 3 }),
});

const machine = { cpu: 'Test CPU', cores: 2, node: 'v20.19.0', date: '2026-12-02T00:00:00.000Z', load: 1, memoryGb: 8 };

describe('benchmark runs, spread and regressions', () => {
  it('folds repeated runs into the median run, with the spread between them', () => {
    const [folded] = foldRuns([[result('a', 0.8)], [result('a', 1.0)], [result('a', 0.9)]]);
    assert.equal(folded!.ratio, 0.9);
    assert.equal(folded!.value, 90);
    assert.equal(folded!.runs, 3);
    assert.deepEqual(folded!.ratios, [0.8, 1.0, 0.9]);
    assert.ok(Math.abs(folded!.spread! - 0.2 / 0.9) < 1e-9);
    assert.equal(folded!.spreadFrom, 'runs');
  });

  it('keeps a single run with the spread of its rounds', async () => {
    let n = 0;
    const measured = await compare({
      name: 'r',
      unit: 'ms',
      baselineName: 'b',
      higherIsBetter: true,
      target: 1,
      rounds: 3,
      subject: async () => [10, 12, 8][n++]!,
      baseline: async () => 10,
    });
    const [folded] = foldRuns([[measured]]);
    assert.equal(folded!.runs, 1);
    assert.equal(folded!.spreadFrom, 'rounds');
    assert.ok(Math.abs(folded!.spread! - 0.4) < 1e-9);
  });

  it('gives a latency percentile the spread between two halves of its samples', () => {
    const subject = Array.from({ length: 200 }, (_, i) => 1 + (i % 10) / 10);
    const p99 = latencyResult({ name: 'lat', baselineName: 'b', p: 99, target: 0.2, subject, baseline: subject.map((v) => v / 2) });
    assert.equal(p99.name, 'lat, p99');
    assert.equal(typeof p99.spread, 'number');
  });

  it('reports a ratio that fell by more than its spread as a regression, and one within it as not', () => {
    const changes = compareResults(
      [entry('a', 1.0, 0.1), entry('b', 1.0, 0.1), entry('c', 1.0, 0.1), entry('old', 1)],
      [entry('a', 0.85, 0.1), entry('b', 0.95, 0.1), entry('c', 1.3, 0.1), entry('new', 1)],
    );
    const by = new Map(changes.map((c) => [c.name, c]));
    assert.equal(by.get('a')!.change, 'regressed');
    assert.equal(by.get('b')!.change, 'within spread');
    assert.equal(by.get('c')!.change, 'improved');
    assert.equal(by.get('new')!.change, 'new');
    assert.equal(by.get('old')!.change, 'gone');
  });

  it('takes the larger spread of the two runs, never below MIN_SPREAD, and DEFAULT_SPREAD where neither measured one', () => {
    assert.equal(compareResults([entry('a', 1, 0.3)], [entry('a', 0.75, 0.01)])[0]!.change, 'within spread');
    const tight = compareResults([entry('a', 1, 0)], [entry('a', 0.96, 0)])[0]!;
    assert.equal(tight.allowed, MIN_SPREAD);
    assert.equal(tight.change, 'within spread');
    const unknown = compareResults([entry('a', 1)], [entry('a', 0.8)])[0]!;
    assert.equal(unknown.allowed, DEFAULT_SPREAD);
    assert.equal(unknown.change, 'within spread');
    assert.equal(compareResults([entry('a', 1)], [entry('a', 0.7)])[0]!.change, 'regressed');
  });

  it('refuses a results file it cannot compare with, naming what is wrong', () => {
    assert.throws(() => parseResults('{', 'old.json'), /old.json is not JSON/);
    assert.throws(() => parseResults('{"name": "a"}', 'old.json'), /the top level is not an array/);
    assert.throws(() => parseResults('[{"name": "a", "ratio": "1"}]', 'old.json'), /entry 0 is not \{name, value/);
    assert.equal(parseResults(JSON.stringify([entry('a', 1)]), 'old.json').length, 1);
  });

  it('writes a Markdown table with the machine, the spread, the change and the percentiles by themselves', () => {
    const entries = [entry('route, 200 B', 0.4, 0.12), { ...entry('latency | one at a time, p99', 0.3), pass: false }];
    const changes = compareResults([entry('route, 200 B', 0.6, 0.1)], entries);
    const page = markdown({ entries, machine, runs: 3, durationS: 300, chartFile: 'benchmarks.svg', changes, comparedWith: 'old.json' });
    assert.match(page, /Test CPU, 2 cores, 8 GB, Node v20\.19\.0, 2026-12-02/);
    assert.match(page, /\*\*1 regressed beyond their spread\*\*: route, 200 B/);
    assert.match(page, /\| FAIL \| route, 200 B \| 40\.00 msg\/s \| postMessage: 100 msg\/s \| 0\.40x \|/);
    assert.match(page, /\*\*REGRESSED\*\* -33% \(was 0\.60x; spread 12%\)/);
    // A | in a name is escaped, not a new column.
    assert.match(page, /latency \\\| one at a time, p99/);
    assert.match(page, /## Latency percentiles \(p50 \/ p99\)/);
    assert.match(page, /!\[ratios against their goals\]\(benchmarks\.svg\)/);
  });
});
