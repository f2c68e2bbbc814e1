/**
 * The rollback algorithms (`uncoordinated`, `cic`) over generated topologies, workloads, delays,
 * crash times and seeds: every recovery line they compute passes the cut checker, and the recovered
 * run is legal. The negative control restarts only the crashed process without the domino rollback,
 * which must leave orphans the checker finds, or the property above would pass vacuously.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../simulations/engine.js';
import type { RollbackAlgorithm, Scenario, SimResult } from '../../simulations/types.js';
import { checkedScenario, reproduction, scenarioArb } from './generated-scenarios.js';

const RUNS = 200;

function explain(r: SimResult, scenario: Scenario): string {
  return [
    `seed ${r.seed}, algorithm ${r.algorithm}`,
    `replay: ${reproduction(scenario, r.algorithm, r.seed).command}`,
    ...r.violations.slice(0, 5).map((v) => `  line ${v.checkpointId} [${v.kind}]: ${v.message}`),
  ].join('\n');
}

describe('rollback recovery in simulated runs', () => {
  for (const algorithm of ['uncoordinated', 'cic'] as const satisfies readonly RollbackAlgorithm[]) {
    it(`${algorithm}: every recovery line is a consistent cut and the recovered run is legal`, () => {
      const seen = { replayed: 0, rolledBack: 0, forced: 0 };
      fc.assert(
        fc.property(scenarioArb({ faults: true }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (generated, seed) => {
          const scenario = checkedScenario(generated);
          const r = runSimulation(scenario, { algorithm, seed });
          if (!r.consistent || r.metrics.recoveries !== 1 || r.checkpoints.some((c) => !c.consistent)) throw new Error(explain(r, scenario));
          if ((r.metrics.replayedMessages ?? 0) > 0) seen.replayed += 1;
          if ((r.metrics.lostWork ?? 0) > 0) seen.rolledBack += 1;
          if ((r.metrics.forcedCheckpoints ?? 0) > 0) seen.forced += 1;
        }),
        { numRuns: RUNS },
      );
      // The sample must contain lines with messages in transit and work undone.
      expect(seen.replayed).toBeGreaterThan(RUNS / 10);
      expect(seen.rolledBack).toBeGreaterThan(RUNS / 10);
      if (algorithm === 'cic') expect(seen.forced).toBeGreaterThan(RUNS / 10);
      else expect(seen.forced).toBe(0);
    });
  }

  it('without the domino rollback the checker finds orphans in some runs', () => {
    let orphaned = 0;
    fc.assert(
      fc.property(scenarioArb({ faults: true }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (generated, seed) => {
        const r = runSimulation(checkedScenario(generated), { algorithm: 'uncoordinated', seed, recoveryLineUnchecked: true });
        if (r.violations.some((v) => v.kind === 'orphan')) orphaned += 1;
      }),
      { numRuns: RUNS },
    );
    expect(orphaned).toBeGreaterThan(RUNS / 10);
  });
});
