/**
 * `npm run bench -- --compare FILE`: each figure of this run beside the same figure in FILE (a
 * bench-results.json of an earlier run). A figure regressed when its ratio fell by more than
 * its spread: the larger of the two runs' stored spreads, never below MIN_SPREAD (two runs that
 * happened to agree closely do not make a one per cent change news) and DEFAULT_SPREAD where
 * neither run measured one. Ratios are compared, not raw figures: the same-run baseline takes
 * out how loaded the machine was, which raw figures on a shared machine cannot.
 */
import type { ResultEntry } from './harness.js';

/** Below this, a change is noise on any machine this runs on. */
export const MIN_SPREAD = 0.05;
/**
 * Where neither side measured its spread (a figure without rounds, run once): ratios on the
 * shared 2-core development machine move by tens of per cent between runs (README).
 */
export const DEFAULT_SPREAD = 0.25;

export type Change = 'regressed' | 'improved' | 'within spread' | 'new' | 'gone';

export interface FigureChange {
  name: string;
  change: Change;
  before?: ResultEntry;
  after?: ResultEntry;
  /** after.ratio / before.ratio - 1. */
  relative?: number;
  /** The spread a change had to exceed. */
  allowed?: number;
}

export function allowedSpread(before: ResultEntry, after: ResultEntry): number {
  const measured = [before.spread, after.spread].filter((s): s is number => typeof s === 'number' && Number.isFinite(s));
  return measured.length ? Math.max(MIN_SPREAD, ...measured) : DEFAULT_SPREAD;
}

/** Reads a results file as run.ts writes it; a clear error for anything else. */
export function parseResults(text: string, file: string): ResultEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new Error(`${file} is not a bench-results.json: the top level is not an array`);
  parsed.forEach((entry: unknown, index) => {
    const e = entry as Partial<ResultEntry> | null;
    if (!e || typeof e.name !== 'string' || typeof e.ratio !== 'number' || typeof e.value !== 'number' || typeof e.unit !== 'string')
      throw new Error(`${file}: entry ${index} is not {name, value, unit, baseline, ratio, goal, pass}`);
  });
  return parsed as ResultEntry[];
}

export function compareResults(before: readonly ResultEntry[], after: readonly ResultEntry[]): FigureChange[] {
  const old = new Map(before.map((e) => [e.name, e]));
  const changes: FigureChange[] = after.map((now) => {
    const then = old.get(now.name);
    if (!then) return { name: now.name, change: 'new', after: now };
    const relative = now.ratio / then.ratio - 1;
    const allowed = allowedSpread(then, now);
    // A ratio is >= 1 when as good as the baseline whichever way the figure runs, so lower is worse.
    const change: Change = relative < -allowed ? 'regressed' : relative > allowed ? 'improved' : 'within spread';
    return { name: now.name, change, before: then, after: now, relative, allowed };
  });
  const measured = new Set(after.map((e) => e.name));
  for (const then of before) if (!measured.has(then.name)) changes.push({ name: then.name, change: 'gone', before: then });
  return changes;
}
