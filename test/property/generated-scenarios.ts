/**
 * The scenarios the simulator's property tests generate, and how a failing one is saved for replay.
 * Every generated scenario must be one the simulator's CLI accepts from a file, or the replay command
 * a failure prints does not run (replay.test.ts checks this); so the generator draws only values the
 * scenario format allows, and `checkedScenario` refuses any other before a run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { reproduceCommand } from '../../simulations/cli-args.js';
import { delayMaxMs } from '../../simulations/delays.js';
import { PROCESSES_MIN, validateScenario, type GeneratedTopologyKind } from '../../simulations/scenario-file.js';
import { buildTopology } from '../../simulations/topology.js';
import type { Algorithm, Scenario } from '../../simulations/types.js';

/**
 * Far above the longest a checkpoint can take in a generated run without faults (see
 * `checkpointMsBound`), so a timeout there is a liveness bug, not a slow network.
 */
export const CHECKPOINT_TIMEOUT_MS = 10_000;

const PROCESSES_MAX = { shaped: 6, random: 9 } as const;

function processesOf(kind: GeneratedTopologyKind, max: number): fc.Arbitrary<number> {
  // Below the shape's minimum (a diamond of 2) the scenario file refuses the scenario.
  return fc.integer({ min: PROCESSES_MIN[kind], max });
}

const shapedKinds = ['pipeline', 'fan-in', 'fan-out', 'diamond', 'ring', 'complete'] as const;
const randomKinds = ['random-dag', 'random-cyclic'] as const;

const topology = fc.oneof(
  fc.constantFrom(...shapedKinds).chain((kind) => fc.record({ kind: fc.constant(kind), processes: processesOf(kind, PROCESSES_MAX.shaped) })),
  fc.constantFrom(...randomKinds).chain((kind) =>
    fc.record({
      kind: fc.constant(kind),
      processes: processesOf(kind, PROCESSES_MAX.random),
      degree: fc.double({ min: 1, max: 3, noNaN: true }),
      graphSeed: fc.integer({ min: 0, max: 1_000_000 }),
    }),
  ),
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

export function scenarioArb(options: { faults: boolean }): fc.Arbitrary<Scenario> {
  return fc
    .record({
      topology,
      delays,
      workload,
      firstAtMs: fc.integer({ min: 0, max: 60 }),
      intervalMs: fc.integer({ min: 5, max: 80 }),
      concurrent: fc.boolean(),
      // At least 1: the scenario format (like the wire) refuses an aligned-timeout of 0, so a run
      // generated with 0 printed a replay command the CLI rejected.
      alignmentTimeoutMs: fc.integer({ min: 1, max: 30 }),
      window: fc.integer({ min: 1, max: 64 }),
      slowFactor: fc.option(fc.integer({ min: 2, max: 10 }), { nil: undefined }),
      crashAtMs: options.faults ? fc.integer({ min: 1, max: 290 }) : fc.constant(undefined),
    })
    .map((g) => {
      const top = g.topology as Scenario['topology'];
      // A channel the graph has (p0->p1 is not one of a fan-in of 3 or more): the first one built.
      const slowChannel = g.slowFactor !== undefined ? buildTopology(top, 0).channels[0]?.id : undefined;
      const s: Scenario = {
        name: 'generated',
        topology: top,
        workload: g.workload,
        delays: g.delays,
        checkpoints: {
          firstAtMs: g.firstAtMs,
          intervalMs: g.intervalMs,
          timeoutMs: CHECKPOINT_TIMEOUT_MS,
          // The format takes concurrentInitiators only with concurrent initiators.
          ...(g.concurrent ? { initiators: 'concurrent' as const, concurrentInitiators: 2 } : { initiators: 'one' as const }),
        },
        alignmentTimeoutMs: g.alignmentTimeoutMs,
        channelWindowMessagesMax: g.window,
        ...(slowChannel !== undefined && g.slowFactor !== undefined ? { skew: { slowChannel: { channel: slowChannel, delayFactor: g.slowFactor } } } : {}),
        ...(g.crashAtMs !== undefined ? { faults: [{ kind: 'crash' as const, process: 'p0', atMs: g.crashAtMs }] } : {}),
        durationMs: 300,
      };
      return s;
    });
}

/**
 * An upper bound on how long a checkpoint takes in a run without faults: the trigger; a barrier path
 * to the last sender (at most processes - 1 hops) and its own barrier's hop, each at the model's
 * longest delay and the slow channel at its factor (FIFO holds an item back only behind items sent
 * earlier, which arrive by then too); the store; the ack. Liveness is claimed only below it.
 */
export function checkpointMsBound(s: Scenario): number {
  const hopMs = delayMaxMs(s.delays);
  const processes = buildTopology(s.topology, 0).processes.length;
  const slowFactor = s.skew?.slowChannel?.delayFactor ?? 1;
  const storeMs = 1;
  return hopMs * (2 + processes) + hopMs * Math.max(0, slowFactor - 1) + storeMs;
}

/** The scenario as the CLI would load it from the file a failure writes; throws when it would not. */
export function checkedScenario(s: Scenario): Scenario {
  const valid = validateScenario(JSON.parse(JSON.stringify(s)) as unknown, 'generated scenario');
  if (!valid.ok) throw new Error(`the generator made a scenario the CLI refuses:\n${valid.error.join('\n')}`);
  return s;
}

/** Saves a failing scenario under .test-results/ and returns the CLI command that replays it. */
export function reproduction(scenario: Scenario, algorithm: Algorithm, seed: number): { file: string; command: string } {
  const dir = join(process.cwd(), '.test-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `failing-${algorithm}-${seed}.json`);
  writeFileSync(file, JSON.stringify(scenario, null, 2));
  // The CLI's own reproduce command, so the quoting is the one the CLI prints for its runs.
  return { file, command: reproduceCommand({ source: { kind: 'file', path: file }, seed, sets: [] }, algorithm, seed) };
}
