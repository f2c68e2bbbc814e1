/**
 * Properties of the production core, run through the deterministic simulator over generated
 * topologies, schedules, delays, workloads, trigger times and seeds. A failure prints the run's seed,
 * the shrunk scenario, and the command that replays it with the simulator's CLI.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../simulations/engine.js';
import type { Algorithm, Scenario, SimResult } from '../../simulations/types.js';

const RUNS_PER_ALGORITHM = 250;

const topology = fc.oneof(
  fc.record({
    kind: fc.constantFrom('pipeline', 'fan-in', 'fan-out', 'diamond', 'ring', 'complete' as const),
    processes: fc.integer({ min: 2, max: 6 }),
  }),
  fc.record({
    kind: fc.constantFrom('random-dag', 'random-cyclic' as const),
    processes: fc.integer({ min: 2, max: 9 }),
    degree: fc.double({ min: 1, max: 3, noNaN: true }),
    graphSeed: fc.integer({ min: 0, max: 1_000_000 }),
  }),
);

const delays = fc.oneof(
  fc.record({ kind: fc.constant('fixed' as const), ms: fc.integer({ min: 0, max: 5 }) }),
  fc.integer({ min: 0, max: 5 }).chain((minMs) =>
    fc.record({ kind: fc.constant('uniform' as const), minMs: fc.constant(minMs), maxMs: fc.integer({ min: minMs, max: 20 }) }),
  ),
  fc.record({ kind: fc.constant('long-tail' as const), medianMs: fc.integer({ min: 1, max: 5 }), p99Ms: fc.integer({ min: 5, max: 60 }) }),
);

const workload = fc.oneof(
  fc.record({ kind: fc.constant('tokens' as const), initialTokens: fc.integer({ min: 1, max: 200 }), sendIntervalMs: fc.integer({ min: 1, max: 10 }) }),
  fc.record({ kind: fc.constant('counting' as const), sendIntervalMs: fc.integer({ min: 1, max: 10 }) }),
);

function scenarioArb(options: { faults: boolean }): fc.Arbitrary<Scenario> {
  return fc
    .record({
      topology,
      delays,
      workload,
      firstAtMs: fc.integer({ min: 0, max: 60 }),
      intervalMs: fc.integer({ min: 5, max: 80 }),
      concurrent: fc.boolean(),
      alignmentTimeoutMs: fc.integer({ min: 0, max: 30 }),
      window: fc.integer({ min: 1, max: 64 }),
      slowFactor: fc.option(fc.integer({ min: 2, max: 10 }), { nil: undefined }),
      crashAtMs: options.faults ? fc.integer({ min: 1, max: 290 }) : fc.constant(undefined),
    })
    .map((g) => {
      const channelOf = g.slowFactor !== undefined ? 'p0->p1' : undefined;
      const s: Scenario = {
        name: 'generated',
        topology: g.topology as Scenario['topology'],
        workload: g.workload,
        delays: g.delays,
        checkpoints: {
          firstAtMs: g.firstAtMs,
          intervalMs: g.intervalMs,
          timeoutMs: 10_000,
          initiators: g.concurrent ? 'concurrent' : 'one',
          concurrentInitiators: 2,
        },
        alignmentTimeoutMs: g.alignmentTimeoutMs,
        channelWindowMessagesMax: g.window,
        ...(channelOf && g.slowFactor !== undefined ? { skew: { slowChannel: { channel: channelOf, delayFactor: g.slowFactor } } } : {}),
        ...(g.crashAtMs !== undefined ? { faults: [{ kind: 'crash' as const, process: 'p0', atMs: g.crashAtMs }] } : {}),
        durationMs: 300,
      };
      return s;
    });
}

/** Saves a failing scenario and returns the command that replays it. */
function reproduction(scenario: Scenario, algorithm: Algorithm, seed: number): string {
  const dir = join(process.cwd(), '.test-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `failing-${algorithm}-${seed}.json`);
  writeFileSync(file, JSON.stringify(scenario, null, 2));
  return `npm run sim -- run --scenario ${file} --algorithm ${algorithm} --seed ${seed}`;
}

function explain(r: SimResult, scenario: Scenario): string {
  return [
    `seed ${r.seed}, algorithm ${r.algorithm}`,
    `replay: ${reproduction(scenario, r.algorithm, r.seed)}`,
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
        fc.property(scenarioArb({ faults: false }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (scenario, seed) => {
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
        fc.property(scenarioArb({ faults: true }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (scenario, seed) => {
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

describe('negative controls: the checker catches real violations', () => {
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
      const r = runSimulation(
        {
          name: 'fifo',
          topology: { kind: 'complete', processes: 4 },
          workload: { kind: 'tokens', initialTokens: 100, sendIntervalMs: 1 },
          delays: { kind: 'uniform', minMs: 0, maxMs: 20 },
          checkpoints: { firstAtMs: 20, intervalMs: 40, timeoutMs: 10_000 },
          durationMs: 200,
        },
        { algorithm: 'chandy-lamport', seed },
      );
      expect(r.violations, `seed ${seed}`).toEqual([]);
    }
  });
});
