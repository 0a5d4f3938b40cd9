/**
 * What a soak run's samples must show, and the bounds, each with why it is what it is. Pure:
 * the samples in, the verdicts out, so the bounds are tested on made-up curves (a leak, a
 * flat line with GC noise, a throughput that decays) without running a gateway for an hour.
 */

/** One sample of the gateway process, taken inside it every few seconds. */
export interface Sample {
  /** Seconds since the traffic started. */
  t: number;
  /** Resident set size, MiB, after a full collection of the main heap (see gateway-child.ts). */
  rssMb: number;
  heapUsedMb: number;
  /** The apps' isolates' used heaps, summed, MiB: garbage included (each isolate collects on its own schedule). */
  isolatesHeapMb: number;
  /** The isolates' committed heaps (V8's total_heap_size), and what their objects hold outside them. */
  isolatesHeapTotalMb?: number;
  isolatesExternalMb?: number;
  /** process.memoryUsage()'s external and arrayBuffers: native memory V8 knows of (where a growing RSS with flat heaps points). */
  externalMb: number;
  arrayBuffersMb: number;
  /** Event-loop delay over the interval since the last sample (monitorEventLoopDelay), ms. */
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  /** Router counters summed over every route, since the start. */
  delivered: number;
  dropped: number;
  failed: number;
  invalid: number;
  queued: number;
}

export interface Bounds {
  /**
   * Samples before this many seconds are warm-up. Measured here (2 cores): RSS stands about
   * 50 MiB higher for the first 30 s, until the install's verification workers idle out, and the
   * apps' isolates take another 20-30 s to reach the sawtooth of their own collections.
   */
  warmupS: number;
  /**
   * The most resident memory may rise along the line fitted to RSS after warm-up, over the
   * measured window, MiB. 10 MiB is a quarter of the 40 MiB the README budgets for 20 small apps:
   * a rise of that much in one window is a leak whichever window it is. The same bound over a
   * longer window is a finer one: CI's 2 minutes (a 60 s window, 3000 deliveries/s of about
   * 200 B) catch a gateway that retains a third of what it delivers; an hour catches 10 MiB/h,
   * about 3 KB/s. The line is fitted to every sample after warm-up; the main heap is collected
   * before each sample and the apps collect their own every second (apps.ts), so what is left
   * of the collectors' sawtooth is noise around the line, not a trend.
   */
  rssRiseMb: number;
  /** ELD p99 over the run (the median of the per-interval p99s) at most this, ms: a control-socket command waits about this long. */
  eldP99Ms: number;
  /** The line fitted to ELD p99 after warm-up may rise by at most this over the window, ms: latency that grows with uptime. */
  eldRiseMs: number;
  /** Delivered/s after warm-up at least this share of what the apps offer: the gateway keeps up. */
  deliveredShare: number;
  /** The line fitted to delivered/s may fall by at most this share of its mean over the window. */
  deliveredFall: number;
}

export const DEFAULT_BOUNDS: Bounds = Object.freeze({
  warmupS: 60,
  rssRiseMb: 10,
  eldP99Ms: 100,
  eldRiseMs: 25,
  deliveredShare: 0.95,
  deliveredFall: 0.1,
});

export interface Fit {
  slope: number;
  intercept: number;
  /** Coefficient of determination: how much of the variation the line explains. */
  r2: number;
}

/** Ordinary least squares of y on x. */
export function fitLine(points: readonly (readonly [number, number])[]): Fit {
  const n = points.length;
  if (n < 2) return { slope: 0, intercept: n ? points[0]![1] : 0, r2: 0 };
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const [x, y] of points) {
    sxx += (x - mx) ** 2;
    sxy += (x - mx) * (y - my);
    syy += (y - my) ** 2;
  }
  if (sxx === 0) return { slope: 0, intercept: my, r2: 0 };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy) };
}

export interface Check {
  name: string;
  pass: boolean;
  /** What was measured, against what bound, in words. */
  detail: string;
}

export interface Verdict {
  pass: boolean;
  checks: Check[];
  rssFit: Fit;
  eldFit: Fit;
  deliveredFit: Fit;
  /** Delivered/s between consecutive samples, at the later sample's time. */
  rate: [number, number][];
  windowS: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const m = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
}

/** Delivered messages per second between consecutive samples. */
export function deliveryRate(samples: readonly Sample[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i < samples.length; i += 1) {
    const dt = samples[i]!.t - samples[i - 1]!.t;
    if (dt > 0) out.push([samples[i]!.t, (samples[i]!.delivered - samples[i - 1]!.delivered) / dt]);
  }
  return out;
}

/**
 * The verdict on a run. `offeredPerS` is what the apps emit per second across every route hop
 * (what delivered/s should be once the gateway keeps up).
 */
export function judge(samples: readonly Sample[], offeredPerS: number, bounds: Bounds = DEFAULT_BOUNDS): Verdict {
  const warm = samples.filter((s) => s.t >= bounds.warmupS);
  const first = warm[0]?.t ?? 0;
  const windowS = (warm.at(-1)?.t ?? 0) - first;
  const rssFit = fitLine(warm.map((s) => [s.t, s.rssMb]));
  const eldFit = fitLine(warm.map((s) => [s.t, s.eldP99Ms]));
  const rate = deliveryRate(samples);
  const warmRate = rate.filter(([t]) => t > bounds.warmupS);
  const deliveredFit = fitLine(warmRate);
  const meanRate = warmRate.reduce((sum, [, r]) => sum + r, 0) / Math.max(1, warmRate.length);
  const last = samples.at(-1);
  const rssRise = rssFit.slope * windowS;
  const eldRise = eldFit.slope * windowS;
  const eldP99 = median(warm.map((s) => s.eldP99Ms));
  const fall = (-deliveredFit.slope * windowS) / Math.max(meanRate, 1e-9);
  const checks: Check[] = [
    {
      name: 'enough samples after warm-up',
      pass: warm.length >= 8,
      detail: `${warm.length} samples over ${windowS.toFixed(0)} s after ${bounds.warmupS} s of warm-up (at least 8 for a line to mean anything)`,
    },
    {
      name: 'no RSS growth trend',
      pass: rssRise <= bounds.rssRiseMb,
      detail: `fitted RSS slope ${(rssFit.slope * 60).toFixed(3)} MiB/min (${(rssFit.slope * 3600).toFixed(1)} MiB/h): ${rssRise.toFixed(2)} MiB over the ${windowS.toFixed(0)} s window, bound ${bounds.rssRiseMb} MiB over the window (${((bounds.rssRiseMb / Math.max(windowS, 1e-9)) * 60).toFixed(2)} MiB/min over this one)`,
    },
    {
      name: 'event-loop delay p99',
      pass: eldP99 <= bounds.eldP99Ms,
      detail: `median of the per-interval p99s ${eldP99.toFixed(1)} ms, bound ${bounds.eldP99Ms} ms`,
    },
    {
      name: 'no event-loop delay growth trend',
      pass: eldRise <= bounds.eldRiseMs,
      detail: `fitted ELD p99 rises ${eldRise.toFixed(2)} ms over the window, bound ${bounds.eldRiseMs} ms`,
    },
    {
      name: 'delivered/s keeps up with what the apps offer',
      pass: meanRate >= bounds.deliveredShare * offeredPerS,
      detail: `mean ${meanRate.toFixed(0)}/s after warm-up, offered ${offeredPerS.toFixed(0)}/s, bound ${(bounds.deliveredShare * 100).toFixed(0)}% of it`,
    },
    {
      name: 'no delivered/s decline',
      pass: fall <= bounds.deliveredFall,
      detail: `fitted delivered/s falls ${(fall * 100).toFixed(1)}% of its mean over the window, bound ${(bounds.deliveredFall * 100).toFixed(0)}%`,
    },
    {
      name: 'nothing dropped, failed or invalid',
      pass: !!last && last.dropped === 0 && last.failed === 0 && last.invalid === 0,
      detail: last ? `dropped ${last.dropped}, failed ${last.failed}, invalid ${last.invalid} (every route is lossless)` : 'no samples',
    },
  ];
  return { pass: checks.every((c) => c.pass), checks, rssFit, eldFit, deliveredFit, rate, windowS };
}
