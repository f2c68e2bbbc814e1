/** The participant's record of one checkpoint it has seen but not finished. */
import type { CheckpointId } from '../ids.js';
import type { InputHandle, RecordedMessage, SnapshotCounts } from './types.js';

export type PendingPhase =
  /** Barriers are arriving; the local snapshot is not taken yet. */
  | 'aligning'
  /** The snapshot is taken; open recordings and the store may still be outstanding. */
  | 'snapshotted';

export interface PendingCheckpoint {
  readonly id: CheckpointId;
  phase: PendingPhase;
  /** Inputs whose barrier for this checkpoint has been processed. */
  readonly barrierChannels: Set<InputHandle>;
  /** Inputs recorded since the snapshot whose barrier has not arrived yet. */
  readonly recording: Map<InputHandle, RecordedMessage<unknown>[]>;
  /** Finished channel states, by input. */
  readonly channelStates: Map<InputHandle, RecordedMessage<unknown>[]>;
  /** Inputs blocked for this checkpoint (aligned and sync). */
  readonly blocked: Set<InputHandle>;
  /**
   * Inputs whose barrier overtook messages (unaligned): the seq of the last message before the
   * barrier. The input stays recorded until that message is delivered, then its channel state closes.
   * Created at the first such barrier: most checkpoints have none.
   */
  overtaken: Map<InputHandle, number> | undefined;
  counts: SnapshotCounts | undefined;
  stored: boolean;
  /** Initiated here (trigger), as opposed to started by a barrier. */
  triggered: boolean;
  finishedUnaligned: boolean;
  alignmentTimerRunning: boolean;
  bufferedMessages: number;
  channelStateMessages: number;
  /** Recorded log inputs whose barrier closed the recording: the seq delivered then (the range's end). */
  logThrough: Map<InputHandle, number> | undefined;
}

export function newPending(id: CheckpointId): PendingCheckpoint {
  return {
    id,
    phase: 'aligning',
    barrierChannels: new Set(),
    recording: new Map(),
    channelStates: new Map(),
    blocked: new Set(),
    overtaken: undefined,
    counts: undefined,
    stored: false,
    triggered: false,
    finishedUnaligned: false,
    alignmentTimerRunning: false,
    bufferedMessages: 0,
    channelStateMessages: 0,
    logThrough: undefined,
  };
}
