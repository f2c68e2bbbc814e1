/**
 * Properties of the production core, run through the deterministic simulator over generated
 * topologies, schedules, delays, workloads, trigger times and seeds. A failure prints the run's seed,
 * the shrunk scenario, and the command that replays it with the simulator's CLI.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../simulations/engine.js';
import type { Algorithm, Scenario, SimResult } from '../../simulations/types.js';
import { CHECKPOINT_TIMEOUT_MS, checkedScenario, checkpointMsBound, reproduction, scenarioArb } from './generated-scenarios.js';

const RUNS_PER_ALGORITHM = 250;

function explain(r: SimResult, scenario: Scenario): string {
  return [
    `seed ${r.seed}, algorithm ${r.algorithm}`,
    `replay: ${reproduction(scenario, r.algorithm, r.seed).command}`,
    ...r.violations.slice(0, 5).map((v) => `  checkpoint ${v.checkpointId}: ${v.message}`),
    ...r.checkpoints.filter((c) => !c.completed).slice(0, 3).map((c) => `  checkpoint ${c.id} not completed: ${c.abortReason ?? '?'}`),
  ].join('\n');
}

const sound: Algorithm[] = ['chandy-lamport', 'abs', 'abs-timeout', 'sync'];

describe('simulated runs of the production core', () => {
  for (const algorithm of sound) {
    it(`${algorithm}: every checkpoint completes without faults and every completed one passes invariants 1-4`, () => {
      const seen = { channelState: 0, buffered: 0, unaligned: 0, checkpoints: 0 };
      fc.assert(
        fc.property(scenarioArb({ faults: false }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (generated, seed) => {
          const scenario = checkedScenario(generated);
          // Liveness needs a timeout above the slowest a checkpoint can be on this network.
          expect(checkpointMsBound(scenario)).toBeLessThan(CHECKPOINT_TIMEOUT_MS);
          const r = runSimulation(scenario, { algorithm, seed });
          const allCompleted = r.checkpoints.every((c) => c.completed);
          if (!r.consistent || !allCompleted || r.metrics.checkpointsTriggered === 0) {
            throw new Error(explain(r, scenario));
          }
          seen.checkpoints += r.metrics.checkpointsCompleted;
          if (r.metrics.channelStateMessagesTotal > 0) seen.channelState += 1;
          if (r.metrics.bufferedMessagesTotal > 0) seen.buffered += 1;
          if (r.checkpoints.some((c) => c.finishedUnaligned > 0)) seen.unaligned += 1;
        }),
        { numRuns: RUNS_PER_ALGORITHM },
      );
      // The sample must exercise what the algorithm is about, or the property passed vacuously.
      expect(seen.checkpoints).toBeGreaterThan(RUNS_PER_ALGORITHM);
      if (algorithm === 'chandy-lamport') expect(seen.channelState).toBeGreaterThan(RUNS_PER_ALGORITHM / 10);
      if (algorithm === 'abs') expect(seen.buffered).toBeGreaterThan(RUNS_PER_ALGORITHM / 10);
      if (algorithm === 'abs-timeout') expect(seen.unaligned).toBeGreaterThan(RUNS_PER_ALGORITHM / 20);
    });
  }

  for (const algorithm of sound) {
    it(`${algorithm}: after a crash every process recovers from the latest completed checkpoint into a legal run`, () => {
      fc.assert(
        fc.property(scenarioArb({ faults: true }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (generated, seed) => {
          const scenario = checkedScenario(generated);
          const r = runSimulation(scenario, { algorithm, seed });
          if (!r.consistent || r.metrics.recoveries !== 1) throw new Error(explain(r, scenario));
          // Liveness after the fault: the next checkpoint triggered after the crash completes.
          const crashAt = scenario.faults?.[0]?.atMs ?? 0;
          const after = r.checkpoints.filter((c) => c.triggeredAtMs > crashAt);
          if (after.some((c) => !c.completed)) throw new Error(`a checkpoint after the crash did not complete\n${explain(r, scenario)}`);
        }),
        { numRuns: 60 },
      );
    });
  }
});

describe('unaligned barriers that overtake the messages in flight (scenario overtaking)', () => {
  it('chandy-lamport: every checkpoint completes and passes invariants 1-4, and the runs do overtake', () => {
    const runs = 150;
    let lostWhenUnflagged = 0;
    fc.assert(
      fc.property(scenarioArb({ faults: false }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (generated, seed) => {
        const scenario = checkedScenario({ ...generated, overtaking: true });
        const r = runSimulation(scenario, { algorithm: 'chandy-lamport', seed });
        if (!r.consistent || !r.checkpoints.every((c) => c.completed) || r.metrics.checkpointsTriggered === 0) {
          throw new Error(explain(r, scenario));
        }
        // The same run with the barriers' overtaking hidden from the core: where it is inconsistent,
        // a barrier did overtake messages, so the property above was not vacuous.
        const unflagged = runSimulation(scenario, { algorithm: 'chandy-lamport', seed, overtakingUnflagged: true });
        if (!unflagged.consistent) lostWhenUnflagged += 1;
      }),
      { numRuns: runs },
    );
    expect(lostWhenUnflagged).toBeGreaterThan(runs / 10);
  });

  it('chandy-lamport: after a crash every process recovers from the latest completed checkpoint into a legal run', () => {
    fc.assert(
      fc.property(scenarioArb({ faults: true }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (generated, seed) => {
        const scenario = checkedScenario({ ...generated, overtaking: true });
        const r = runSimulation(scenario, { algorithm: 'chandy-lamport', seed });
        if (!r.consistent || r.metrics.recoveries !== 1) throw new Error(explain(r, scenario));
      }),
      { numRuns: 60 },
    );
  });

  it.each(['abs', 'abs-timeout', 'sync'] as const)('%s: nothing overtakes (only unaligned barriers do), and the runs are consistent', (algorithm) => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = runSimulation({ ...busyFifo, overtaking: true }, { algorithm, seed });
      expect(r.violations, `seed ${seed}`).toEqual([]);
      // Hiding a flag that is never set changes nothing.
      expect(runSimulation({ ...busyFifo, overtaking: true }, { algorithm, seed, overtakingUnflagged: true }).violations).toEqual([]);
    }
  });
});

const busyFifo: Scenario = {
  name: 'busy-fifo',
  topology: { kind: 'complete', processes: 4 },
  workload: { kind: 'tokens', initialTokens: 100, sendIntervalMs: 1 },
  delays: { kind: 'uniform', minMs: 0, maxMs: 20 },
  checkpoints: { firstAtMs: 20, intervalMs: 40, timeoutMs: 10_000 },
  durationMs: 200,
};

describe('negative controls: the checker catches real violations', () => {
  it('a core that closes the recording at an overtaking barrier loses the overtaken messages: invariant 2 fails', () => {
    let broken = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const r = runSimulation({ ...busyFifo, overtaking: true }, { algorithm: 'chandy-lamport', seed, overtakingUnflagged: true });
      if (r.violations.some((v) => v.kind === 'channel-state')) broken += 1;
      // The same runs with the flag passed on are consistent: the violations are the naive core's.
      expect(runSimulation({ ...busyFifo, overtaking: true }, { algorithm: 'chandy-lamport', seed }).violations, `seed ${seed}`).toEqual([]);
    }
    expect(broken).toBeGreaterThan(10);
  });

  it('none: snapshots without markers produce orphan messages on generated runs', () => {
    let runs = 0;
    let withOrphans = 0;
    fc.assert(
      fc.property(scenarioArb({ faults: false }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (scenario, seed) => {
        const r = runSimulation({ ...scenario, workload: { kind: 'tokens', initialTokens: 100, sendIntervalMs: 1 } }, { algorithm: 'none', seed });
        runs += 1;
        if (r.violations.some((v) => v.kind === 'orphan')) withOrphans += 1;
      }),
      { numRuns: 200 },
    );
    expect(runs).toBe(200);
    // Quiet generated runs (zero delays, a trickle of traffic) can get lucky; busy ones do not.
    expect(withOrphans, `${withOrphans} of ${runs} runs had orphans`).toBeGreaterThan(runs / 10);
  });

  it('chandy-lamport over non-FIFO channels breaks invariant 2 (exact channel state)', () => {
    let broken = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = runSimulation(
        {
          name: 'non-fifo',
          topology: { kind: 'complete', processes: 4 },
          workload: { kind: 'tokens', initialTokens: 100, sendIntervalMs: 1 },
          delays: { kind: 'uniform', minMs: 0, maxMs: 20 },
          fifo: false,
          checkpoints: { firstAtMs: 20, intervalMs: 40, timeoutMs: 10_000 },
          durationMs: 200,
        },
        { algorithm: 'chandy-lamport', seed },
      );
      if (r.violations.some((v) => v.kind === 'channel-state')) broken += 1;
    }
    expect(broken).toBeGreaterThan(0);
  });

  it('the same scenario over FIFO channels is consistent for the same seeds', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = runSimulation(busyFifo, { algorithm: 'chandy-lamport', seed });
      expect(r.violations, `seed ${seed}`).toEqual([]);
    }
  });
});
