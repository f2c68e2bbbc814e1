/**
 * One barrier policy per module, behind this interface, chosen once by `createPolicy`. A policy
 * decides only *when* a participant snapshots and what happens to an input after its barrier; the
 * participant owns sequencing, buffering, recording and completion, so each policy stays a few lines.
 */
import { err, ok, type Result } from '../result.js';
import type { PendingCheckpoint } from './pending.js';
import type { ChannelId } from '../ids.js';
import type { InputHandle, PolicyConfig, PolicyKind, Rejection } from './types.js';
import { alignedPolicy } from './policies/aligned.js';
import { alignedTimeoutPolicy } from './policies/aligned-timeout.js';
import { nonePolicy } from './policies/none.js';
import { syncPolicy } from './policies/sync.js';
import { unalignedPolicy } from './policies/unaligned.js';

/** What a policy may ask of the participant. */
export interface PolicyController {
  /** Take the local snapshot now; optionally send barriers on every output and record open inputs. */
  snapshot(p: PendingCheckpoint, how: { sendBarriers: boolean; recordOpenInputs: boolean }): void;
  /** Hold back everything arriving on this input until the checkpoint snapshots. */
  block(p: PendingCheckpoint, channel: InputHandle): void;
  /** The input's barrier arrived after the snapshot: its channel state is complete. */
  closeRecording(p: PendingCheckpoint, channel: InputHandle): void;
  /** True when every input that must align (all but back edges) delivered this checkpoint's barrier. */
  forwardInputsAligned(p: PendingCheckpoint): boolean;
  /** True when every input, back edges included, delivered this checkpoint's barrier. */
  allInputsAligned(p: PendingCheckpoint): boolean;
  startAlignmentTimer(p: PendingCheckpoint, afterMs: number): void;
  /** Stop the app's sends and flush every output with a marker (sync). */
  pauseAndFlush(p: PendingCheckpoint): void;
  /** The input's channel id, for a rejection's detail. */
  inputId(channel: InputHandle): ChannelId;
}

/**
 * How checkpoints relate while several are in flight:
 * - `independent`: each id has its own snapshot and recordings (Chandy-Lamport with several initiators);
 * - `one-aligning`: at most one checkpoint is aligning; a barrier of a later id on an input that has not
 *   yet delivered the aligning one's barrier subsumes it (Flink's rule), while a later barrier on a
 *   blocked input waits in that input's buffer (FIFO keeps it behind the earlier checkpoint's cut);
 * - `one-at-a-time`: a later id subsumes every earlier checkpoint still in flight, whatever its phase
 *   (sync: the coordinator has moved on, so an abort or complete notice that never came is implied).
 */
export type Concurrency = 'independent' | 'one-aligning' | 'one-at-a-time';

interface PolicyCommon {
  readonly concurrency: Concurrency;
  onTrigger(c: PolicyController, p: PendingCheckpoint): void;
  onAlignmentTimeout(c: PolicyController, p: PendingCheckpoint): void;
}

/** A policy whose processes exchange barriers (sync calls them markers): every policy but none. */
export interface PolicyWithBarriers extends PolicyCommon {
  readonly kind: Exclude<PolicyKind, 'none'>;
  /** Called once per input per checkpoint, after the participant filtered stale and duplicate barriers. */
  onBarrier(c: PolicyController, p: PendingCheckpoint, channel: InputHandle): Rejection | undefined;
}

/**
 * Policy none sends no barriers, so a barrier that reaches it is a peer's protocol error: the
 * participant refuses it before it would start a checkpoint, and there is no handler to ask.
 */
export interface PolicyWithoutBarriers extends PolicyCommon {
  readonly kind: 'none';
}

export type BarrierPolicy = PolicyWithBarriers | PolicyWithoutBarriers;

export type PolicyError = { readonly kind: 'invalid-policy'; readonly message: string };

export function createPolicy(config: PolicyConfig): Result<BarrierPolicy, PolicyError> {
  switch (config.kind) {
    case 'unaligned':
      return ok(unalignedPolicy);
    case 'aligned':
      return ok(alignedPolicy);
    case 'aligned-timeout': {
      const ms = config.alignmentTimeoutMs;
      // A timeout of 0 gives up aligning at the first barrier: 'unaligned' under another name, and
      // one the wire and the scenario file cannot express, so the core refuses it too.
      if (!Number.isFinite(ms) || ms <= 0) {
        return err({ kind: 'invalid-policy', message: `alignmentTimeoutMs must be a finite number > 0, got ${String(ms)}` });
      }
      return ok(alignedTimeoutPolicy(ms));
    }
    case 'sync':
      return ok(syncPolicy);
    case 'none':
      return ok(nonePolicy);
    default: {
      const unknown: never = config;
      return err({ kind: 'invalid-policy', message: `unknown policy ${JSON.stringify(unknown)}` });
    }
  }
}
