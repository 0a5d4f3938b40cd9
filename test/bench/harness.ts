/**
 * Benchmarks measure a figure and, in the same run, the baseline it is judged against, and
 * report the ratio: on a shared, noisy machine only a same-run comparison means anything.
 * Each side is measured in alternating rounds and the median round is kept, so a burst of
 * noise hits both sides alike.
 */

export interface BenchResult {
  name: string;
  /** What the figure is (e.g. 'ms per install', 'messages/s'). */
  unit: string;
  value: number;
  baselineName: string;
  baseline: number;
  /** value / baseline when higher is better, baseline / value when lower is better: >= 1 is "as good as the baseline". */
  ratio: number;
  /** The target on the ratio, e.g. 1/1.5 for "within 1.5x of the baseline". */
  target: number;
  pass: boolean;
  /** The goal in words where it is not a ratio to the baseline (e.g. an absolute budget). */
  goal?: string;
  notes?: string[];
}

export interface Comparison {
  name: string;
  unit: string;
  baselineName: string;
  higherIsBetter: boolean;
  target: number;
  rounds?: number;
  /**
   * Rounds of each side run first and not counted, so neither side is judged on code V8 has
   * not optimised yet: a gateway's services run for months, and the baseline warms the same
   * process for the subject (or the other way round) in the first counted round otherwise.
   */
  warmupRounds?: number;
  /** One measurement of the subject (returns the figure for that round). */
  subject(): Promise<number>;
  baseline(): Promise<number>;
  notes?: () => string[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function compare(comparison: Comparison): Promise<BenchResult> {
  const rounds = comparison.rounds ?? 5;
  for (let round = 0; round < (comparison.warmupRounds ?? 0); round += 1) {
    await comparison.baseline();
    await comparison.subject();
  }
  const values: number[] = [];
  const baselines: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    // Alternate which side goes first so warm-up effects do not favour one.
    if (round % 2 === 0) {
      baselines.push(await comparison.baseline());
      values.push(await comparison.subject());
    } else {
      values.push(await comparison.subject());
      baselines.push(await comparison.baseline());
    }
  }
  const value = median(values);
  const baseline = median(baselines);
  const ratio = comparison.higherIsBetter ? value / baseline : baseline / value;
  return {
    name: comparison.name,
    unit: comparison.unit,
    value,
    baselineName: comparison.baselineName,
    baseline,
    ratio,
    target: comparison.target,
    pass: ratio >= comparison.target,
    ...(comparison.notes ? { notes: comparison.notes() } : {}),
  };
}

/**
 * One percentile of latency samples gathered over the rounds of both sides (lower is better),
 * for figures where the spread matters more than one round's median.
 */
export function latencyResult(options: { name: string; baselineName: string; p: number; target: number; subject: number[]; baseline: number[] }): BenchResult {
  const value = percentile(options.subject, options.p);
  const baseline = percentile(options.baseline, options.p);
  const ratio = baseline / value;
  return {
    name: `${options.name}, p${options.p}`,
    unit: 'ms',
    value,
    baselineName: options.baselineName,
    baseline,
    ratio,
    target: options.target,
    pass: ratio >= options.target,
  };
}

function fixed(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 1 ? value.toFixed(2) : value.toFixed(3);
}

/** One figure as `bench-results.json` holds it, so a run can be compared with the last one. */
export interface ResultEntry {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  /** As in BenchResult: >= 1 is "as good as the baseline" whichever way the figure runs. */
  ratio: number;
  /** The target on the ratio, as text ("ratio >= 0.67"), with the baseline it is taken against. */
  goal: string;
  pass: boolean;
}

export function toEntry(r: BenchResult): ResultEntry {
  return {
    name: r.name,
    value: r.value,
    unit: r.unit,
    baseline: r.baseline,
    ratio: r.ratio,
    goal: r.goal ?? `ratio >= ${r.target} vs ${r.baselineName}`,
    pass: r.pass,
  };
}

/** The console table; `previous` (by name, from the last run's file) adds a column to compare with. */
export function report(results: BenchResult[], previous?: ReadonlyMap<string, ResultEntry>): string {
  const rows = results.map((r) => {
    const before = previous?.get(r.name);
    return [
      r.pass ? 'PASS' : 'FAIL',
      r.name,
      `${fixed(r.value)} ${r.unit}`,
      `${r.baselineName}: ${fixed(r.baseline)} ${r.unit}`,
      `${r.ratio.toFixed(2)}x`,
      `>= ${r.target.toFixed(2)}x`,
      ...(previous ? [before ? `${fixed(before.value)} ${before.unit}, ${before.ratio.toFixed(2)}x` : '-'] : []),
    ];
  });
  const header = ['', 'benchmark', 'isogate', 'baseline (same run)', 'ratio', 'target', ...(previous ? ['previous run'] : [])];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const notes = results.flatMap((r) => (r.notes ?? []).map((n) => `  ${r.name}: ${n}`));
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ...(notes.length ? ['', ...notes] : [])].join('\n');
}
