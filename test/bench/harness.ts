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
  /**
   * Relative spread of the ratio within this run, (max - min) / median over the rounds
   * (compare() pairs each round's figure with the baseline round beside it), where the figure
   * has rounds. run.ts's repeated runs replace it with the spread between runs.
   */
  spread?: number;
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

/** (max - min) / median: 0 for identical figures, 0.2 when they span a fifth of their median. */
export function relativeSpread(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) return 0;
  const mid = median(finite);
  return mid === 0 ? 0 : (Math.max(...finite) - Math.min(...finite)) / Math.abs(mid);
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
  const perRound = values.map((v, i) => (comparison.higherIsBetter ? v / baselines[i]! : baselines[i]! / v));
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
    ...(rounds > 1 ? { spread: relativeSpread(perRound) } : {}),
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
  // The samples split in two interleaved halves, each half's ratio: how far the percentile moves
  // on half the evidence, which is this figure's spread within the run.
  const half = (values: number[], odd: number): number[] => values.filter((_, i) => i % 2 === odd);
  const halves = [0, 1].map((odd) => percentile(half(options.baseline, odd), options.p) / percentile(half(options.subject, odd), options.p));
  return {
    name: `${options.name}, p${options.p}`,
    unit: 'ms',
    value,
    baselineName: options.baselineName,
    baseline,
    ratio,
    target: options.target,
    pass: ratio >= options.target,
    ...(options.subject.length >= 4 && options.baseline.length >= 4 ? { spread: relativeSpread([...halves, ratio]) } : {}),
  };
}

export function fixed(value: number): string {
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
  /** The target on the ratio as a number (what the chart draws). */
  target?: number;
  /** What the baseline is, in words. */
  baselineName?: string;
  /** Relative spread of the ratio, (max - min) / median, and where it was measured (see docs/benchmarks.md). */
  spread?: number;
  spreadFrom?: 'runs' | 'rounds';
  /** How many runs of the whole suite the figure is the median of, and their ratios. */
  runs?: number;
  ratios?: number[];
}

export function toEntry(r: BenchResult): ResultEntry {
  return {
    name: r.name,
    value: r.value,
    unit: r.unit,
    baseline: r.baseline,
    ratio: r.ratio,
    goal: r.goal ?? `ratio >= ${Number(r.target.toPrecision(3))} vs ${r.baselineName}`,
    pass: r.pass,
    target: r.target,
    baselineName: r.baselineName,
    ...(r.spread === undefined ? {} : { spread: r.spread, spreadFrom: 'rounds' as const }),
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
