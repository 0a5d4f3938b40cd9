import { strict as assert } from 'node:assert';
import { seededRandom } from '../fixtures/random.js';
import { DEFAULT_BOUNDS, deliveryRate, fitLine, judge, type Sample } from './analysis.js';

const OFFERED = 3000;

/** Two minutes sampled every 2 s: a flat RSS of 280 MiB with a 15 MiB GC sawtooth and noise, steady delivery. */
function curve(change: (s: Sample, i: number) => Partial<Sample> = () => ({})): Sample[] {
  const rand = seededRandom(17);
  const samples: Sample[] = [];
  for (let i = 0; i <= 60; i += 1) {
    const t = i * 2;
    const s: Sample = {
      t,
      rssMb: 280 + ((t % 24) / 24) * 15 + rand() * 3,
      heapUsedMb: 27,
      isolatesHeapMb: 60,
      externalMb: 5,
      arrayBuffersMb: 1,
      eldP50Ms: 1,
      eldP99Ms: 12 + rand() * 10,
      eldMaxMs: 40,
      delivered: Math.round(t * OFFERED + rand() * 500),
      dropped: 0,
      failed: 0,
      invalid: 0,
      queued: 0,
    };
    samples.push({ ...s, ...change(s, i) });
  }
  return samples;
}

const check = (samples: Sample[], name: string): boolean => judge(samples, OFFERED).checks.find((c) => c.name === name)!.pass;

describe('soak analysis', () => {
  it('fits a line by least squares', () => {
    const fit = fitLine([
      [0, 1],
      [1, 3],
      [2, 5],
    ]);
    assert.equal(fit.slope, 2);
    assert.equal(fit.intercept, 1);
    assert.equal(fit.r2, 1);
    assert.deepEqual(fitLine([[5, 7]]), { slope: 0, intercept: 7, r2: 0 });
  });

  it('passes a flat curve with a GC sawtooth and noise', () => {
    const verdict = judge(curve(), OFFERED);
    assert.deepEqual(
      verdict.checks.filter((c) => !c.pass),
      [],
    );
    assert.ok(verdict.pass);
  });

  it('ignores what happens during warm-up', () => {
    // RSS 50 MiB higher until the workers idle out, as measured on a real run.
    assert.ok(
      check(
        curve((s) => (s.t < 30 ? { rssMb: s.rssMb + 50 } : {})),
        'no RSS growth trend',
      ),
    );
  });

  it('fails a leak of 12 MiB a minute after warm-up', () => {
    const leaking = curve((s) => ({ rssMb: s.rssMb + Math.max(0, s.t - DEFAULT_BOUNDS.warmupS) * (12 / 60) }));
    assert.equal(check(leaking, 'no RSS growth trend'), false);
    assert.match(judge(leaking, OFFERED).checks.find((c) => c.name === 'no RSS growth trend')!.detail, /bound 10 MiB over the window/);
  });

  it('fails event-loop delay that grows with uptime, and one that is high throughout', () => {
    assert.equal(
      check(
        curve((s) => ({ eldP99Ms: s.eldP99Ms + s.t })),
        'no event-loop delay growth trend',
      ),
      false,
    );
    assert.equal(
      check(
        curve((s) => ({ eldP99Ms: s.eldP99Ms + 150 })),
        'event-loop delay p99',
      ),
      false,
    );
  });

  it('fails delivery that falls behind what the apps offer, and delivery that decays', () => {
    assert.equal(
      check(
        curve((s) => ({ delivered: Math.round(s.t * OFFERED * 0.8) })),
        'delivered/s keeps up with what the apps offer',
      ),
      false,
    );
    // The rate falls from 3000/s to about 1500/s over the run.
    let delivered = 0;
    const decaying = curve((s, i) => {
      delivered += i === 0 ? 0 : 2 * OFFERED * (1 - s.t / 240);
      return { delivered: Math.round(delivered) };
    });
    assert.equal(check(decaying, 'no delivered/s decline'), false);
  });

  it('fails a run that dropped or failed a message', () => {
    assert.equal(
      check(
        curve((_, i) => (i === 60 ? { dropped: 1 } : {})),
        'nothing dropped, failed or invalid',
      ),
      false,
    );
    assert.equal(
      check(
        curve((_, i) => (i === 60 ? { failed: 2 } : {})),
        'nothing dropped, failed or invalid',
      ),
      false,
    );
  });

  it('fails a run too short to have a window after warm-up', () => {
    assert.equal(check(curve().slice(0, 33), 'enough samples after warm-up'), false);
  });

  it('measures delivered/s between consecutive samples', () => {
    const samples = curve().slice(0, 3);
    samples[1]!.delivered = 1000;
    samples[2]!.delivered = 5000;
    samples[0]!.delivered = 0;
    assert.deepEqual(deliveryRate(samples), [
      [2, 500],
      [4, 2000],
    ]);
  });
});
