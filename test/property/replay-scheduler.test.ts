/**
 * `replayScheduler` is how another simulator's delivery order is fed to the production core
 * (docs/core.md, "Plugging into another simulator"): a run recorded under one scheduler and replayed
 * from its arrival log must be the same run, byte for byte, and a different log must give a different
 * run, or the replay would be proving nothing.
 *
 * It lives with the simulator's properties because it runs the real engine end to end; the recorded
 * runs range over seeds and algorithms.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { delayModelScheduler, replayScheduler } from '../../simulations/delays.js';
import { runSimulation } from '../../simulations/engine.js';
import { Prng } from '../../simulations/prng.js';
import { scenarioForTopology } from '../../simulations/scenario-file.js';
import type { Algorithm, DeliveryRequest, DeliveryScheduler, SimResult } from '../../simulations/types.js';

/**
 * Control messages (coordinator to process) are not on a wire the log indexes, so recorder and
 * replay both give them this fixed delay, drawn from nobody's PRNG.
 */
const CONTROL_DELAY_MS = 1;
const controlScheduler = delayModelScheduler({ kind: 'fixed', ms: CONTROL_DELAY_MS });

type ArrivalLog = Record<string, number[]>;

/**
 * "Another simulator": uniform delays from its own PRNG (never the engine's, which the replay does
 * not draw from, so the workload's draws line up in both runs), logging each arrival by wire index.
 */
function recordingScheduler(delaySeed: number, log: ArrivalLog): DeliveryScheduler {
  const own = new Prng(delaySeed);
  return {
    arrivalMs(request: DeliveryRequest, random: () => number): number {
      if (request.channel === 'coordinator') return controlScheduler.arrivalMs(request, random);
      const at = request.sentAtMs + 1 + own.next() * 9;
      (log[request.channel] ??= [])[request.wireIndex - 1] = at;
      return at;
    },
  };
}

/** A random cyclic graph with the token workload: fan-in, back edges, and draws from the run's PRNG. */
const scenario = scenarioForTopology('random-cyclic', 6, { durationMs: 400 });

function record(algorithm: Algorithm, seed: number, delaySeed: number): { result: SimResult; log: ArrivalLog } {
  const log: ArrivalLog = {};
  const result = runSimulation(scenario, { algorithm, seed, trace: true, scheduler: recordingScheduler(delaySeed, log) });
  return { result, log };
}

function replay(algorithm: Algorithm, seed: number, log: ArrivalLog): SimResult {
  return runSimulation(scenario, { algorithm, seed, trace: true, scheduler: replayScheduler(log, controlScheduler) });
}

/** The order in which items reached their receivers, as `channel#n`: what a scheduler decides. */
function deliveryOrder(result: SimResult): string[] {
  const delivered = (result.trace ?? []).flatMap((e) =>
    (e.kind === 'message' || e.kind === 'barrier') && e.deliveredAtMs !== undefined
      ? [{ at: e.deliveredAtMs, label: e.kind === 'message' ? `${e.channel}#${e.seq}` : `${e.channel}|${e.checkpointId}` }]
      : [],
  );
  return delivered.sort((x, y) => x.at - y.at).map((d) => d.label);
}

describe('replayScheduler', () => {
  it('a run replayed from its arrival log is byte-identical to the recorded run', () => {
    const { result, log } = record('abs', 7, 1);
    expect(Object.keys(log).length).toBeGreaterThan(3);
    expect(result.metrics.checkpointsCompleted).toBeGreaterThan(0);
    expect(JSON.stringify(replay('abs', 7, log))).toBe(JSON.stringify(result));
  });

  it('a log with one channel slowed down gives a different delivery order and a different result', () => {
    const { result, log } = record('abs', 7, 1);
    const [slowed, arrivals] = Object.entries(log)[0]!;
    const changed: ArrivalLog = { ...log, [slowed]: arrivals.map((at) => at + 40) };
    const other = replay('abs', 7, changed);
    expect(deliveryOrder(other)).not.toEqual(deliveryOrder(result));
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(result));
  });

  it('items beyond the log fall back to the fallback scheduler', () => {
    const { result, log } = record('chandy-lamport', 3, 2);
    const truncated: ArrivalLog = Object.fromEntries(Object.entries(log).map(([c, a]) => [c, a.slice(0, 5)]));
    const other = replay('chandy-lamport', 3, truncated);
    // The first five items per channel keep their times; the rest take the fallback's fixed delay.
    expect(deliveryOrder(other).slice(0, 5)).toEqual(deliveryOrder(result).slice(0, 5));
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(result));
  });

  it('for any seed, delay stream and algorithm, record then replay gives the same run', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Algorithm>('chandy-lamport', 'abs', 'abs-timeout', 'sync', 'none'),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (algorithm, seed, delaySeed) => {
          const { result, log } = record(algorithm, seed, delaySeed);
          const replayed = replay(algorithm, seed, log);
          if (JSON.stringify(replayed) !== JSON.stringify(result)) {
            throw new Error(`replay differs: algorithm ${algorithm}, seed ${seed}, delay seed ${delaySeed}`);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
