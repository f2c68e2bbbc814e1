/** One seed, one run: the same seed gives the same trace, byte for byte; another seed another run. */
import { describe, expect, it } from 'vitest';
import { runSeed } from '../../simulations/vopr/run.js';

describe('vopr: determinism', () => {
  it('two runs of one seed have the same trace, steps and verdict', () => {
    for (const seed of [1, 7, 123456789]) {
      const a = runSeed(seed, [], { traceAll: true });
      const b = runSeed(seed, [], { traceAll: true });
      expect(b.traceAll).toEqual(a.traceAll);
      expect(b.traceDigest).toBe(a.traceDigest);
      expect(b.steps).toBe(a.steps);
      expect(b.violations).toEqual(a.violations);
      expect(b.counts).toEqual(a.counts);
    }
  });

  it('a negative control changes nothing but the machines: its runs are deterministic too', () => {
    const a = runSeed(3, ['send-once'], { traceAll: true });
    expect(runSeed(3, ['send-once'], { traceAll: true }).traceAll).toEqual(a.traceAll);
  });

  it('different seeds give different runs', () => {
    expect(runSeed(1, [], { traceAll: false }).traceDigest).not.toBe(runSeed(2, [], { traceAll: false }).traceDigest);
  });
});
