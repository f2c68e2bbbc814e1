/** The delay models: what a sample can be, and the bound the liveness property rests on. */
import { describe, expect, it } from 'vitest';
import { delayMaxMs, LONG_TAIL_MAX_PER_P99, sampleDelayMs } from '../../simulations/delays.js';
import { Prng } from '../../simulations/prng.js';
import { scenarioForTopology, validateScenario } from '../../simulations/scenario-file.js';
import type { DelayModel } from '../../simulations/types.js';

/** A `random` that returns the given values in turn. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] as number;
}

describe('long-tail delays', () => {
  const model: DelayModel = { kind: 'long-tail', medianMs: 1, p99Ms: 49 };
  // The first draw just below 1 makes the Box-Muller radius as large as a double allows.
  const farthest = draws(1 - 2 ** -53, 0);

  it('the farthest draw of the tail is capped at LONG_TAIL_MAX_PER_P99 times the p99', () => {
    expect(sampleDelayMs(model, farthest)).toBe(49 * LONG_TAIL_MAX_PER_P99);
    expect(delayMaxMs(model)).toBe(49 * LONG_TAIL_MAX_PER_P99);
  });

  it('a model with its own maxMs is capped there instead', () => {
    const capped: DelayModel = { ...model, maxMs: 60 };
    expect(sampleDelayMs(capped, farthest)).toBe(60);
    expect(delayMaxMs(capped)).toBe(60);
  });

  it('the median draw is the median, uncapped', () => {
    // u1 = 1 - 0 = 1: radius 0, z = 0.
    expect(sampleDelayMs(model, draws(0, 0.3))).toBe(1);
  });

  it('no sample of a seeded stream exceeds the bound, and about 1% exceed the p99', () => {
    const rng = new Prng(7);
    const random = (): number => rng.next();
    const n = 200_000;
    let aboveP99 = 0;
    let max = 0;
    for (let i = 0; i < n; i++) {
      const d = sampleDelayMs(model, random);
      if (d > 49) aboveP99 += 1;
      if (d > max) max = d;
    }
    expect(max).toBeLessThanOrEqual(delayMaxMs(model));
    expect(aboveP99 / n).toBeGreaterThan(0.008);
    expect(aboveP99 / n).toBeLessThan(0.012);
  });
});

describe('delay bounds of the other models', () => {
  it('fixed is its delay and uniform its maximum', () => {
    expect(delayMaxMs({ kind: 'fixed', ms: 3 })).toBe(3);
    expect(delayMaxMs({ kind: 'uniform', minMs: 1, maxMs: 20 })).toBe(20);
  });
});

describe('long-tail maxMs in a scenario file', () => {
  const withDelays = (delays: unknown): unknown => ({ ...scenarioForTopology('ring', 3), delays });

  it('is optional, and accepted at or above the p99', () => {
    expect(validateScenario(withDelays({ kind: 'long-tail', medianMs: 1, p99Ms: 49 }), 'f').ok).toBe(true);
    expect(validateScenario(withDelays({ kind: 'long-tail', medianMs: 1, p99Ms: 49, maxMs: 49 }), 'f').ok).toBe(true);
  });

  it('below the p99 is refused with the reason', () => {
    const r = validateScenario(withDelays({ kind: 'long-tail', medianMs: 1, p99Ms: 49, maxMs: 10 }), 'f');
    expect(r.ok ? [] : r.error).toEqual(['f: delays.maxMs must be >= delays.p99Ms (49), got 10']);
  });
});
