/**
 * A run's fault profile, drawn from its seed as TigerBeetle's VOPR draws its own: each seed gets its
 * own mix (a lossy network and a healthy store, or the reverse), so a few thousand seeds cover far
 * more combinations than a fixed profile would. Every probability applies only during the safety
 * phase; `active` turns false for the liveness phase, when the world is healed and must make progress.
 */
import type { Prng } from '../prng.js';

export interface FaultProfile {
  /** A control message or agent event is lost. */
  readonly messageLossProbability: number;
  /** A delivered message is delivered a second time, later. */
  readonly messageDuplicateProbability: number;
  /** Each message takes a delay uniform in [min, max] ms, so messages overtake one another. */
  readonly messageDelayMsMin: number;
  readonly messageDelayMsMax: number;
  /** A KV or Object Store operation fails (the caller sees an error; a KV write may still have landed). */
  readonly storeErrorProbability: number;
  /** A volume backend call takes up to this long. */
  readonly volumeDelayMsMax: number;
  /** A volume backend call fails. */
  readonly volumeFailureProbability: number;
  /** Mean time between agent crashes, over all agents; Infinity: none. */
  readonly agentCrashEveryMs: number;
  /** Mean time between coordinator crashes; Infinity: none. */
  readonly coordinatorCrashEveryMs: number;
  /** How long a crashed process stays down. */
  readonly downMsMax: number;
  /** Storage corrupts a stored app state now and then (a rollback to it must be refused before anything changes). */
  readonly corruptsObjects: boolean;
}

export const NO_FAULTS: FaultProfile = {
  messageLossProbability: 0,
  messageDuplicateProbability: 0,
  messageDelayMsMin: 1,
  messageDelayMsMax: 5,
  storeErrorProbability: 0,
  volumeDelayMsMax: 20,
  volumeFailureProbability: 0,
  agentCrashEveryMs: Number.POSITIVE_INFINITY,
  coordinatorCrashEveryMs: Number.POSITIVE_INFINITY,
  downMsMax: 0,
  corruptsObjects: false,
};

/** One seed's profile: each fault is off in about a third of the seeds and of varying strength in the rest. */
export function drawFaultProfile(prng: Prng): FaultProfile {
  const maybe = (p: number, value: () => number, off: number): number => (prng.next() < p ? value() : off);
  const delayMin = 1 + prng.int(5);
  return {
    messageLossProbability: maybe(0.7, () => 0.02 + prng.next() * 0.18, 0),
    messageDuplicateProbability: maybe(0.6, () => 0.02 + prng.next() * 0.13, 0),
    messageDelayMsMin: delayMin,
    messageDelayMsMax: delayMin + maybe(0.7, () => 10 + prng.int(300), 5),
    storeErrorProbability: maybe(0.6, () => 0.01 + prng.next() * 0.1, 0),
    volumeDelayMsMax: maybe(0.6, () => 100 + prng.int(4_000), 20),
    volumeFailureProbability: maybe(0.5, () => 0.05 + prng.next() * 0.25, 0),
    agentCrashEveryMs: maybe(0.6, () => 2_000 + prng.int(10_000), Number.POSITIVE_INFINITY),
    coordinatorCrashEveryMs: maybe(0.5, () => 4_000 + prng.int(15_000), Number.POSITIVE_INFINITY),
    downMsMax: 200 + prng.int(3_000),
    corruptsObjects: prng.next() < 0.5,
  };
}

/** The profile in one line, for the trace and the failure report. */
export function describeFaults(f: FaultProfile): string {
  const pct = (p: number): string => `${(p * 100).toFixed(1)}%`;
  const every = (ms: number): string => (Number.isFinite(ms) ? `${ms}ms` : 'never');
  return [
    `loss=${pct(f.messageLossProbability)}`,
    `dup=${pct(f.messageDuplicateProbability)}`,
    `delay=${f.messageDelayMsMin}-${f.messageDelayMsMax}ms`,
    `store-errors=${pct(f.storeErrorProbability)}`,
    `volume-delay<=${f.volumeDelayMsMax}ms`,
    `volume-failures=${pct(f.volumeFailureProbability)}`,
    `agent-crash-every=${every(f.agentCrashEveryMs)}`,
    `coordinator-crash-every=${every(f.coordinatorCrashEveryMs)}`,
    `down<=${f.downMsMax}ms`,
    `corruption=${f.corruptsObjects ? 'on' : 'off'}`,
  ].join(' ');
}
