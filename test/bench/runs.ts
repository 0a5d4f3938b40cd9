/**
 * Repeated runs of the whole suite, folded into one entry per figure: the run whose ratio is
 * the median stands for the figure (its value, baseline and verdict together, so they agree
 * with each other), and the spread between the runs is stored beside it, (max - min) / median
 * of the ratios. Whole-suite passes rather than one benchmark N times in a row, so that a
 * burst of load from the machine's other users falls on different figures in different runs
 * instead of on every run of one figure.
 */
import { type BenchResult, median, type ResultEntry, relativeSpread, toEntry } from './harness.js';

/**
 * Runs of the whole suite a full `npm run bench` makes. Measured on the shared 2-core development
 * machine (2026-12-02): one run took 112 s with the machine nearly idle (load 3) and about 300 s
 * with seven other engineers' tests beside it (load 16-21: three runs took 894 s, past the
 * budget; at load 13-16 two runs took 273 s). Two runs are the fewest that measure a spread
 * between runs and stay inside the 15-minute budget under the heaviest load seen.
 */
export const FULL_RUN_REPEATS = 2;

export function foldRuns(runs: BenchResult[][]): ResultEntry[] {
  const byName = new Map<string, BenchResult[]>();
  for (const run of runs) {
    for (const result of run) byName.set(result.name, [...(byName.get(result.name) ?? []), result]);
  }
  return [...byName.values()].map((results) => {
    const ratios = results.map((r) => r.ratio);
    const mid = median(ratios);
    // The run nearest the median (the median itself for an odd count).
    const chosen = results.reduce((best, r) => (Math.abs(r.ratio - mid) < Math.abs(best.ratio - mid) ? r : best));
    const entry = toEntry(chosen);
    if (results.length < 2) return { ...entry, runs: 1 };
    return { ...entry, spread: relativeSpread(ratios), spreadFrom: 'runs' as const, runs: results.length, ratios };
  });
}
