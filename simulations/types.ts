/**
 * The simulator's public vocabulary: what a scenario says and what a run reports. Scenario files
 * (JSON) are parsed into `Scenario`; `runSimulation` returns a `SimResult`.
 */
import type { ChannelId, CheckpointId, ProcessId } from '../src/ids.js';

/** The algorithms the engine runs through the barrier core (a coordinator triggers every checkpoint). */
export type CoordinatedAlgorithm = 'chandy-lamport' | 'abs' | 'abs-timeout' | 'sync' | 'none';
export const ALGORITHMS: readonly Algorithm[] = ['chandy-lamport', 'abs', 'abs-timeout', 'sync', 'none'];
/** Checkpointing without a coordinator or markers, recovered by a recovery line (rollback.ts). */
export type RollbackAlgorithm = 'uncoordinated' | 'cic';
export const ROLLBACK_ALGORITHMS: readonly RollbackAlgorithm[] = ['uncoordinated', 'cic'];
export type Algorithm = CoordinatedAlgorithm | RollbackAlgorithm;
/** Every algorithm the simulator runs, as the CLI accepts them. */
export const ALL_ALGORITHMS: readonly Algorithm[] = [...ALGORITHMS, ...ROLLBACK_ALGORITHMS];

export function isRollbackAlgorithm(algorithm: Algorithm): algorithm is RollbackAlgorithm {
  return algorithm === 'uncoordinated' || algorithm === 'cic';
}

export type TopologySpec =
  | {
      readonly kind: 'pipeline' | 'fan-in' | 'fan-out' | 'diamond' | 'ring' | 'complete';
      readonly processes: number;
    }
  | {
      readonly kind: 'random-dag' | 'random-cyclic';
      readonly processes: number;
      /** Expected out-degree of a process (random graphs only). */
      readonly degree?: number;
      /** Seed of the graph itself; defaults to the run's seed. */
      readonly graphSeed?: number;
    }
  | {
      readonly kind: 'explicit';
      readonly processes: readonly ProcessId[];
      readonly channels: readonly (readonly [ProcessId, ProcessId])[];
    };

export type DelayModel =
  | { readonly kind: 'fixed'; readonly ms: number }
  | { readonly kind: 'uniform'; readonly minMs: number; readonly maxMs: number }
  /**
   * Log-normal-ish: most deliveries near the median, a few far out, none beyond `maxMs` (default
   * 5x p99, see LONG_TAIL_MAX_PER_P99 in delays.ts: an unbounded tail outlasts any timeout).
   */
  | { readonly kind: 'long-tail'; readonly medianMs: number; readonly p99Ms: number; readonly maxMs?: number };

export type Workload =
  /** Every process holds tokens and transfers random amounts to its out-neighbours; the total is conserved. */
  | { readonly kind: 'tokens'; readonly initialTokens: number; readonly sendIntervalMs: number }
  /** Sources emit 1, 2, 3, ...; every other process counts what it receives and forwards it. */
  | { readonly kind: 'counting'; readonly sendIntervalMs: number };

export interface CheckpointSchedule {
  readonly firstAtMs: number;
  readonly intervalMs: number;
  /** Stop triggering after this many; default: as many as fit in the run. */
  readonly count?: number;
  readonly timeoutMs: number;
  /**
   * Who initiates a Chandy-Lamport checkpoint: `one` (a process chosen by the seed), or `concurrent`
   * (`concurrentInitiators` processes start checkpoints with distinct ids at the same instant).
   * ABS always triggers the graph's sources; sync and none trigger every process.
   */
  readonly initiators?: 'one' | 'concurrent';
  readonly concurrentInitiators?: number;
}

export interface Skew {
  /** A process that takes this long to handle each delivery (its inputs queue up). */
  readonly slowProcess?: { readonly process: ProcessId; readonly serviceTimeMs: number };
  /** A channel whose delays are multiplied by this factor. */
  readonly slowChannel?: { readonly channel: ChannelId; readonly delayFactor: number };
}

export type Fault = { readonly kind: 'crash'; readonly process: ProcessId; readonly atMs: number };

export interface Scenario {
  readonly name: string;
  readonly description?: string;
  readonly topology: TopologySpec;
  readonly workload: Workload;
  readonly delays: DelayModel;
  /** FIFO channels (default true). Non-FIFO exists to show what Chandy-Lamport needs FIFO for. */
  readonly fifo?: boolean;
  /**
   * An unaligned checkpoint's barrier overtakes the messages in flight on its channel, as the
   * agent's barrier overtakes messages queued for credit (default false). Needs FIFO channels.
   */
  readonly overtaking?: boolean;
  /**
   * Channels that are log channels (docs/channels.md): their messages stay in a durable log, the
   * receiver records the range (received, sent] instead of the messages, and a recovery replays the
   * range from the log. Needs FIFO channels; the coordinated algorithms only.
   */
  readonly logChannels?: readonly ChannelId[];
  readonly checkpoints: CheckpointSchedule;
  readonly alignmentTimeoutMs?: number;
  /** Messages in flight per channel before the sender is held back (backpressure). */
  readonly channelWindowMessagesMax?: number;
  readonly skew?: Skew;
  readonly faults?: readonly Fault[];
  readonly durationMs: number;
}

export interface RunOptions {
  readonly algorithm: Algorithm;
  readonly seed: number;
  /** Keep the full trace of messages, barriers and snapshots (needed for the SVG diagram). */
  readonly trace?: boolean;
  /** Replaces the delay model: decides when each message and barrier arrives. */
  readonly scheduler?: DeliveryScheduler;
  /**
   * Negative control for `Scenario.overtaking`: a barrier that overtook messages reaches the core
   * as a plain barrier (no `afterSeq`, no flag), as a core that ignores the flag would take it: the
   * input's recording closes at the barrier and the overtaken messages are lost from the channel
   * state. The checker must then report violations.
   */
  readonly overtakingUnflagged?: boolean;
  /**
   * Negative control for the rollback algorithms: a crash restarts the crashed process from its
   * latest checkpoint and nobody else, without rolling back the receivers of orphans. The checker
   * must then report the orphans.
   */
  readonly recoveryLineUnchecked?: boolean;
  /**
   * Report the recovery figures (`lostWork`, `replayedMessages`, `dominoDepth`, `recoveryTimeMs`)
   * for a coordinated algorithm too, as compare and sweep do beside a rollback algorithm. Off by
   * default, so a coordinated run's result stays what it was.
   */
  readonly recoveryFigures?: boolean;
}

/** What a delivery scheduler is asked: when does this item, sent now, arrive? */
export interface DeliveryRequest {
  readonly channel: ChannelId;
  readonly kind: 'message' | 'barrier';
  /** Per-channel sequence of the item on the wire (messages and barriers counted together, from 1). */
  readonly wireIndex: number;
  readonly sentAtMs: number;
}

/**
 * Decides arrival times. The default one draws from the scenario's delay model with the run's PRNG;
 * a replay scheduler takes arrival times from another simulator's log so its order is reproduced.
 * FIFO is enforced by the engine on top of whatever this returns (unless the scenario is non-FIFO).
 */
export interface DeliveryScheduler {
  arrivalMs(request: DeliveryRequest, random: () => number): number;
}

/**
 * The kind of a violation of invariant 5: a checkpoint that did not complete in a run without faults.
 * Every other kind is a safety violation (a cut checker's finding, an illegal recovery).
 */
export const LIVENESS_VIOLATION = 'liveness';

export interface ViolationReport {
  readonly checkpointId: CheckpointId;
  readonly kind: string;
  readonly channel?: ChannelId;
  readonly message: string;
}

export interface CheckpointReport {
  readonly id: CheckpointId;
  readonly completed: boolean;
  readonly abortReason?: string;
  readonly triggeredAtMs: number;
  readonly endedAtMs: number;
  readonly durationMs: number;
  readonly consistent: boolean;
  readonly channelStateMessages: number;
  readonly channelStateBytes: number;
  readonly bufferedMessages: number;
  readonly bufferedBytes: number;
  /** Longest time any process had an input blocked for this checkpoint. */
  readonly alignmentStallMsMax: number;
  readonly alignmentStallMs: Readonly<Record<ProcessId, number>>;
  readonly finishedUnaligned: number;
  /** Delivered messages per second during the checkpoint, relative to the run's average (1 = no dip). */
  readonly throughputRatio: number;
}

export interface RunMetrics {
  readonly events: number;
  readonly messagesSent: number;
  readonly messagesDelivered: number;
  readonly barriersSent: number;
  readonly checkpointsTriggered: number;
  readonly checkpointsCompleted: number;
  readonly checkpointsAborted: number;
  readonly durationMsMean: number;
  readonly channelStateMessagesTotal: number;
  readonly bufferedMessagesTotal: number;
  readonly alignmentStallMsMax: number;
  readonly throughputMsgsPerSec: number;
  readonly recoveries: number;
  /**
   * The rollback algorithms' figures (`uncoordinated`, `cic`; see docs/simulator.md): local
   * checkpoints taken (forced ones included), forced checkpoints (cic), bytes of checkpoint indexes
   * piggybacked on messages (cic), and, over the run's recoveries, the events undone (sends and
   * deliveries), the messages in transit across the recovery lines that were sent again, the most
   * checkpoints one process discarded past its line (domino depth), and the longest time a line lay
   * behind its crash. A coordinated run has the last four with `RunOptions.recoveryFigures` only.
   */
  readonly localCheckpoints?: number;
  readonly forcedCheckpoints?: number;
  readonly piggybackBytes?: number;
  readonly lostWork?: number;
  readonly replayedMessages?: number;
  readonly dominoDepth?: number;
  readonly recoveryTimeMs?: number;
}

export type TraceEvent =
  | {
      readonly kind: 'message';
      readonly channel: ChannelId;
      readonly from: ProcessId;
      readonly to: ProcessId;
      readonly seq: number;
      readonly sentAtMs: number;
      /** Absent while in flight at the end of the run or lost to a crash. */
      readonly deliveredAtMs?: number;
      /** Checkpoints whose channel state recorded this message. */
      readonly recordedIn: readonly CheckpointId[];
    }
  | {
      readonly kind: 'barrier';
      readonly channel: ChannelId;
      readonly from: ProcessId;
      readonly to: ProcessId;
      readonly checkpointId: CheckpointId;
      readonly sentAtMs: number;
      readonly deliveredAtMs?: number;
    }
  | { readonly kind: 'snapshot'; readonly process: ProcessId; readonly checkpointId: CheckpointId; readonly atMs: number }
  | { readonly kind: 'checkpoint-end'; readonly checkpointId: CheckpointId; readonly completed: boolean; readonly atMs: number }
  | { readonly kind: 'crash'; readonly process: ProcessId; readonly atMs: number }
  | { readonly kind: 'recover'; readonly checkpointId: CheckpointId | null; readonly atMs: number };

export interface SimResult {
  readonly scenario: string;
  readonly algorithm: Algorithm;
  readonly seed: number;
  readonly processes: readonly ProcessId[];
  readonly channels: readonly { readonly id: ChannelId; readonly from: ProcessId; readonly to: ProcessId }[];
  /** True when every completed checkpoint passed the cut checker and every recovery was legal. */
  readonly consistent: boolean;
  /** Safety violations, then liveness ones (`LIVENESS_VIOLATION`); the run passes only when empty. */
  readonly violations: readonly ViolationReport[];
  readonly checkpoints: readonly CheckpointReport[];
  readonly metrics: RunMetrics;
  readonly endedAtMs: number;
  readonly trace?: readonly TraceEvent[];
}
