/**
 * The participant's vocabulary: what goes in (inputs), what comes out (effects), and why an input can
 * be turned away (rejections). A participant is one process of Chandy-Lamport: one app endpoint.
 *
 * Effects are written in the order the shell must carry them out. In particular a `snapshot` effect
 * must be executed (the app's state captured) before any effect after it in the same step: the
 * barriers that follow it and the messages delivered after it are on the far side of the cut.
 *
 * On the hot path (send, message, barrier, transmit, deliver) a channel is named by its handle, a
 * small integer fixed when the participant is created: an input's handle is its position in
 * `ParticipantConfig.inputs`, an output's its position in `outputs`. Channel ids appear only where a
 * value leaves the participant for good (counts, channel states, acks) or comes in rarely (restore,
 * configure).
 */
import type { ChannelId, CheckpointId, Epoch, ProcessId } from '../ids.js';

/** An input channel of one participant: its position in `ParticipantConfig.inputs`. */
export type InputHandle = number;
/** An output channel of one participant: its position in `ParticipantConfig.outputs`. */
export type OutputHandle = number;

/** How a participant with several inputs lines its barriers up. One module each in `policies/`. */
export type PolicyConfig =
  /** Chandy-Lamport: snapshot at the first barrier, record every other input until its barrier. */
  | { readonly kind: 'unaligned' }
  /** ABS: block an input after its barrier; snapshot when every forward input delivered its barrier. */
  | { readonly kind: 'aligned' }
  /** ABS, switching this checkpoint to unaligned when alignment takes longer than the timeout. */
  | { readonly kind: 'aligned-timeout'; readonly alignmentTimeoutMs: number }
  /** Stop the world: pause sending, flush every output with a marker, snapshot once all inputs are drained. */
  | { readonly kind: 'sync' }
  /** The baseline: snapshot when told, no markers, no channel state. Not consistent, on purpose. */
  | { readonly kind: 'none' };

export type PolicyKind = PolicyConfig['kind'];

/**
 * `fifo-checked` (the default and the only sound choice) rejects a gap or a reordering as a protocol
 * error. `unchecked` accepts messages in any order; it exists so the simulator can show what
 * Chandy-Lamport does over non-FIFO channels.
 */
export type ChannelOrder = 'fifo-checked' | 'unchecked';

export interface ParticipantConfig {
  readonly id: ProcessId;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
  /** Inputs that close a cycle (see graph analysis). Aligned modes record them instead of waiting. */
  readonly backEdgeInputs?: readonly ChannelId[];
  readonly policy: PolicyConfig;
  readonly channelOrder?: ChannelOrder;
  /** How many finished checkpoint ids are remembered to recognise stale barriers. */
  readonly finishedIdsRememberedMax?: number;
  /**
   * Inputs that are log channels (a durable log, e.g. a JetStream stream, carries their messages;
   * their barriers travel apart from it). A barrier of a log input takes effect right behind the
   * message its `afterSeq` names, under every policy; the input's channel state is the log range
   * itself (`CheckpointAck.logRanges`), never copies of its messages. Needs fifo-checked order.
   */
  readonly logInputs?: readonly ChannelId[];
}

/**
 * One part of a log channel's history: the messages from `fromSeq` on (up to the next part's
 * `fromSeq`) are those the sender sent in `epoch`. A rollback leaves the abandoned messages in the
 * log, so the same seq may be there several times, once per epoch; only the part's epoch is valid.
 */
export interface LogEpoch {
  readonly epoch: Epoch;
  readonly fromSeq: number;
}

/**
 * A log input's channel state at a checkpoint: the messages with seq in (afterSeq, throughSeq], which
 * stay in the log. `afterSeq` is what the app had consumed at its snapshot, `throughSeq` the sender's
 * last message before its barrier. `epochs` says which epoch sent which of them, oldest first (the
 * first part covers afterSeq + 1); empty when the range is.
 */
export interface LogRange {
  readonly afterSeq: number;
  readonly throughSeq: number;
  readonly epochs: readonly LogEpoch[];
}

/** A message as recorded in channel state: its per-channel sequence number and its payload. */
export interface RecordedMessage<P> {
  readonly seq: number;
  readonly payload: P;
}

/**
 * Per-channel counts at the instant of a local snapshot: for every output the number of messages
 * sent, for every input the number delivered to the app. Under FIFO these are the last sequence numbers.
 */
export interface SnapshotCounts {
  readonly sent: Readonly<Record<ChannelId, number>>;
  readonly received: Readonly<Record<ChannelId, number>>;
}

export type TimerKey = { readonly kind: 'alignment'; readonly checkpointId: CheckpointId };

export type Input<P> =
  /** Become an initiator of this checkpoint: snapshot now (sync: pause and flush first). */
  | { readonly type: 'trigger'; readonly checkpointId: CheckpointId }
  /** The app asks to send on one of its outputs. */
  | { readonly type: 'send'; readonly channel: OutputHandle; readonly payload: P }
  /** A data message arrived on an input. */
  | {
      readonly type: 'message';
      readonly channel: InputHandle;
      readonly seq: number;
      readonly epoch: Epoch;
      readonly payload: P;
    }
  /**
   * A barrier (marker) arrived on an input. On a log input it travels apart from the messages, so
   * it may come before message `afterSeq`: it then waits for it (never a gap).
   */
  | {
      readonly type: 'barrier';
      readonly channel: InputHandle;
      readonly checkpointId: CheckpointId;
      readonly epoch: Epoch;
      /**
       * Sequence number of the sender's last message before this barrier (the `afterSeq` of its
       * `send-barrier` effect), when the transport carries it: a barrier that claims more messages
       * than arrived reveals a gap even with no message after it.
       */
      readonly afterSeq?: number;
      /**
       * The sender put this barrier (an unaligned checkpoint's) ahead of messages it had queued for
       * credit: messages up to `afterSeq` may still come after it, and they belong to this
       * checkpoint's channel state of this input. Meaningful only with `afterSeq` and fifo-checked
       * order (see docs/core.md).
       */
      readonly overtaking?: boolean;
    }
  /** The state captured at the `snapshot` effect is durable. */
  | { readonly type: 'snapshot-stored'; readonly checkpointId: CheckpointId }
  /** The coordinator gave the checkpoint up. */
  | { readonly type: 'abort'; readonly checkpointId: CheckpointId }
  /** The coordinator reports the checkpoint completed everywhere (best effort, may never come). */
  | { readonly type: 'complete'; readonly checkpointId: CheckpointId }
  /**
   * Change the barrier policy and the back-edge inputs (both can be per checkpoint request). Taken
   * only while no checkpoint is in flight, so a checkpoint never changes rules half way.
   */
  | { readonly type: 'configure'; readonly policy: PolicyConfig; readonly backEdgeInputs: readonly ChannelId[] }
  /** Process released items still waiting (see `Participant.backlogSize`). */
  | { readonly type: 'drain' }
  /** A timer started by a `start-timer` effect fired. */
  | { readonly type: 'timer'; readonly timer: TimerKey }
  /**
   * Roll back to a checkpoint: the shell has already put the app's state back; the core resets its
   * counts, fences older epochs and re-delivers the recorded channel state before anything new.
   */
  | {
      readonly type: 'restore';
      readonly epoch: Epoch;
      readonly counts: SnapshotCounts;
      readonly channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>;
      /**
       * Every log input's range of the checkpoint (its ack's `logRanges`), required when there are
       * log inputs: the core then takes the range's messages again, of the epochs the range names,
       * as the shell replays them from the log after `afterSeq`, and fences every other old one.
       */
      readonly logRanges?: Readonly<Record<ChannelId, LogRange>>;
    };

export interface AckStats {
  /** Messages held back on blocked inputs while aligning. */
  readonly bufferedMessages: number;
  /** Messages recorded as channel state. */
  readonly channelStateMessages: number;
  /** True when an aligned checkpoint finished unaligned (alignment timeout or trigger while aligning). */
  readonly finishedUnaligned: boolean;
}

/** A participant's finished part of a checkpoint: a fresh value the shell may keep. */
export interface CheckpointAck<P> {
  readonly checkpointId: CheckpointId;
  readonly counts: SnapshotCounts;
  /** Every input's recorded messages, keyed by channel id (empty for an input not recorded). */
  readonly channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>;
  /** Present when the participant has log inputs: each one's range (its channel state stays empty). */
  readonly logRanges?: Readonly<Record<ChannelId, LogRange>>;
  readonly stats: AckStats;
}

/**
 * One effect. The participant writes effects into records it reuses (see `Effects`): an effect is
 * valid until its step's effects are released, so a shell that needs a value later copies that value
 * (the objects an effect points to, `counts`, `ack` and `timer`, are fresh and may be kept).
 */
export type Effect<P> =
  /** Put this app message on the wire of an output channel. */
  | {
      readonly type: 'transmit';
      readonly channel: OutputHandle;
      readonly seq: number;
      readonly epoch: Epoch;
      readonly payload: P;
    }
  /** Hand this message to the app. */
  | { readonly type: 'deliver'; readonly channel: InputHandle; readonly seq: number; readonly payload: P }
  /** Capture the app's state now, before carrying out any later effect. */
  | { readonly type: 'snapshot'; readonly checkpointId: CheckpointId; readonly counts: SnapshotCounts }
  /** Put a barrier on the wire of an output channel. */
  | {
      readonly type: 'send-barrier';
      readonly channel: OutputHandle;
      readonly checkpointId: CheckpointId;
      readonly epoch: Epoch;
      /** Sequence number of the last message sent on this output before the barrier. */
      readonly afterSeq: number;
    }
  /** This participant's part of the checkpoint is done: state stored, channel states complete. */
  | { readonly type: 'ack'; readonly ack: CheckpointAck<P> }
  /** This participant cannot complete the checkpoint. */
  | { readonly type: 'decline'; readonly checkpointId: CheckpointId; readonly reason: DeclineReason }
  | { readonly type: 'start-timer'; readonly timer: TimerKey; readonly afterMs: number }
  | { readonly type: 'cancel-timer'; readonly timer: TimerKey }
  /** Sync policy: the app must stop sending until `resumed`. */
  | { readonly type: 'paused'; readonly checkpointId: CheckpointId }
  | { readonly type: 'resumed'; readonly checkpointId: CheckpointId }
  /** An input lost a message (gap) or broke order; it stays failed until a restore. */
  | { readonly type: 'channel-failed'; readonly channel: InputHandle; readonly detail: string };

export type EffectType = Effect<unknown>['type'];

/**
 * The effects a participant has written and the shell has not released yet, oldest first. A step
 * appends its effects; the shell notes `length` before the step, carries out the effects from that
 * mark to the `length` after it, then calls `release(mark)`. A step fed while the shell is still
 * carrying out an earlier one (the app sends while it handles a delivery) appends after the earlier
 * step's effects and is released first, so marks nest like stack frames.
 */
export interface Effects<P> {
  readonly length: number;
  /** The effect at `index` (0 <= index < length); the record is reused once released. */
  at(index: number): Effect<P>;
  /** Forgets the effects from `mark` on; every step fed since that mark must be carried out. */
  release(mark: number): void;
}

export type DeclineReason =
  /** A barrier of a later checkpoint arrived before this one aligned (aligned modes). */
  | 'subsumed'
  /** An input lost a message: no checkpoint spanning the gap may complete. */
  | 'channel-failed';

/**
 * Why an input was turned away. Stale and duplicate inputs are normal under retries and races:
 * the shell counts and logs them at debug. The rest are a peer's protocol violations.
 */
export type RejectReason =
  | 'duplicate-barrier'
  | 'stale-barrier'
  | 'duplicate-trigger'
  | 'stale-trigger'
  | 'duplicate-message'
  | 'stale-epoch'
  | 'future-epoch'
  | 'stale-timer'
  | 'unknown-checkpoint'
  | 'duplicate-stored'
  | 'unknown-channel'
  | 'unexpected-barrier'
  | 'not-snapshotted'
  | 'gap'
  | 'channel-failed'
  | 'paused'
  | 'epoch-not-increasing'
  | 'busy'
  | 'invalid-config'
  /** A checkpoint id that is not a positive safe integer (0 included). */
  | 'invalid-checkpoint-id'
  /** A restore whose log ranges do not fit the log inputs (missing, misnumbered, or channel state for one). */
  | 'invalid-log-range';

export interface Rejection {
  readonly reason: RejectReason;
  readonly detail: string;
}
