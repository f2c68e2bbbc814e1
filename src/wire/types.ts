/**
 * The NATS wire messages as plain TypeScript values (camelCase, numbers, string unions), and the
 * typed error every decoder returns instead of throwing. The .proto file (proto/snapshot/v1/wire.proto)
 * is the source of truth for what travels; these types are what the rest of the code sees of it.
 *
 * Numbers: every 64-bit field of the .proto (ids, epochs, sequence numbers, counts, sizes) is a
 * `number` here, and the codec rejects values above Number.MAX_SAFE_INTEGER as invalid. 2^53 is
 * far beyond any count this system reaches, and plain numbers keep the core free of bigint.
 */
import type { AckStats, DeclineReason, PolicyConfig, SnapshotCounts } from '../core/types.js';
import type { ChannelId, CheckpointId, Epoch } from '../ids.js';

/**
 * - `too-large`: longer than `wireMessageBytesMax`; checked before decoding, so no work is spent.
 * - `malformed`: not a protobuf encoding of the expected message.
 * - `invalid`: well-formed protobuf whose content breaks a rule (missing field, unknown enum value,
 *   bad id format, number out of range, ...). `field` is the path in .proto names, e.g.
 *   `ack.sent[2].channel`.
 */
export type WireErrorKind = 'too-large' | 'malformed' | 'invalid';

export interface WireError {
  readonly kind: WireErrorKind;
  readonly field?: string;
  readonly message: string;
}

export type WireResult<T> = import('../result.js').Result<T, WireError>;

export interface WireLimits {
  /** Longest message accepted or produced, in bytes; checked before any decoding. */
  readonly wireMessageBytesMax: number;
}

/** Names shared by every message: tenant, server and app ids match `[A-Za-z0-9_-]{1,64}`. */
export type TenantId = string;
export type ServerId = string;
export type AppName = string;
/** Unique per control message or event: `[A-Za-z0-9_.:-]{1,128}`. */
export type RequestId = string;

/** A stored object in the tenant's Object Store bucket, with the digest it was acked with. */
export interface ObjectRef {
  readonly name: string;
  /** `ALGORITHM=value`, e.g. `SHA-256=<base64url>`. */
  readonly digest: string;
  readonly sizeBytes: number;
}

// ------------------------------------------------------------------------------------------------
// Coordinator -> agent
// ------------------------------------------------------------------------------------------------

export interface ControlHeader {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  readonly server: ServerId;
  /** The plan the command is about; '' only on ping. Epochs belong to plans (DESIGN §3). */
  readonly plan: string;
  /** The plan's epoch. */
  readonly epoch: Epoch;
}

/**
 * Where an app's state of a checkpoint is: an object of the tenant's bucket, or, when it is small,
 * the bytes themselves, carried in the ack and kept in the checkpoint record.
 */
export type AppState = { readonly kind: 'object'; readonly ref: ObjectRef } | { readonly kind: 'inline'; readonly bytes: Uint8Array };

/** One app's part of a restore; see `AppRestore` in wire.proto. */
export interface AppRestore {
  readonly app: AppName;
  readonly state: AppState;
  /** Absent when the app recorded no channel state. */
  readonly channelState?: ObjectRef;
  /** Counts of the snapshot, keyed by the channel ids in use now. */
  readonly counts: SnapshotCounts;
  /** Channel id recorded inside channelState -> channel id now; empty for a rollback. */
  readonly channelAliases: Readonly<Record<ChannelId, ChannelId>>;
}

export type ControlCommand =
  | {
      readonly type: 'trigger';
      readonly checkpointId: CheckpointId;
      /** `aligned-timeout` travels as POLICY_ALIGNED with a non-zero alignment_timeout_ms. */
      readonly policy: PolicyConfig;
      readonly timeoutMs: number;
      readonly initiatorApps: readonly AppName[];
      /** Inputs of this server's apps that close a cycle: aligned mode records them. */
      readonly backEdgeChannels: readonly ChannelId[];
      /** A state of at most this many bytes is acked inline; 0: never. */
      readonly inlineStateBytesMax: number;
      /** The complete notice of the plan's previous checkpoint; absent when none completed. */
      readonly completedCheckpointId?: CheckpointId;
      /** The plan's apps on this server; absent or empty: every app of the server. */
      readonly apps?: readonly AppName[];
      /** The plan's layout this part belongs to: the agent keeps it for the plan's PlanTriggers. */
      readonly layout?: LayoutId;
    }
  | { readonly type: 'abort'; readonly checkpointId: CheckpointId; readonly reason: string }
  | { readonly type: 'complete'; readonly checkpointId: CheckpointId }
  | { readonly type: 'freeze'; readonly checkpointId: CheckpointId; readonly deadlineMs: number }
  /** `afterRestore`: the volumes were reverted while frozen: run the restore hooks first. */
  | { readonly type: 'thaw'; readonly checkpointId: CheckpointId; readonly afterRestore: boolean }
  | { readonly type: 'restore'; readonly checkpointId: CheckpointId; readonly apps: readonly AppRestore[] }
  /** `apps`: opaque apps to resume after a quiesce; empty: every app (after a restore). */
  | { readonly type: 'resume'; readonly checkpointId: CheckpointId; readonly apps: readonly AppName[] }
  /** Opaque apps: drain the inputs up to `drainTo`, stop, report output positions. */
  | { readonly type: 'quiesce'; readonly checkpointId: CheckpointId; readonly apps: readonly AppName[]; readonly drainTo: Readonly<Record<ChannelId, number>> }
  /** Opaque apps: store the state their quiesce hooks wrote. */
  | { readonly type: 'capture'; readonly checkpointId: CheckpointId; readonly apps: readonly AppName[] }
  | { readonly type: 'ping' }
  /** The coordinator does not know this agent as registered: register again (about no plan). */
  | { readonly type: 'hello' };

export type ControlType = ControlCommand['type'];

/** A control message: the header and the command side by side, so `switch (c.type)` narrows. */
export type Control = ControlHeader & ControlCommand;

/** A checkpoint's trigger once per plan, on snap.<tenant>.plan.<plan>.trg (PlanTrigger in wire.proto). */
export interface PlanTrigger {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  readonly plan: string;
  readonly epoch: Epoch;
  readonly checkpointId: CheckpointId;
  readonly policy: PolicyConfig;
  readonly timeoutMs: number;
  readonly inlineStateBytesMax: number;
  readonly completedCheckpointId?: CheckpointId;
  /** The layout of per-server parts this checkpoint uses: an agent that holds it knows its part. */
  readonly layout: LayoutId;
}

/** Names a plan's per-server trigger parts as the coordinator last sent them ([A-Za-z0-9_.:-]{1,128}). */
export type LayoutId = string;

// ------------------------------------------------------------------------------------------------
// Agent -> coordinator
// ------------------------------------------------------------------------------------------------

export interface AgentEventHeader {
  readonly requestId: RequestId;
  /** The requestId of the control message this answers; absent for unsolicited events. */
  readonly inReplyTo?: RequestId;
  readonly tenant: TenantId;
  readonly server: ServerId;
  readonly epoch: Epoch;
}

/** The core's ack statistics plus the durations the agent measures around them. */
export interface WireAckStats extends AckStats {
  readonly startDelayMs: number;
  readonly alignmentMs: number;
  readonly syncMs: number;
  readonly asyncMs: number;
}

/**
 * Every decline reason of the core plus those only an agent shell meets. The core's are listed
 * again so this union (and the proto enum) stays stable while the core's evolves; a reason the core
 * adds fails to compile in ./schema.ts until it is given a proto enum value.
 */
export type WireDeclineReason =
  | DeclineReason
  | 'subsumed'
  | 'channel-failed'
  | 'busy'
  | 'hook-failed'
  | 'timeout'
  | 'store-failed'
  | 'unknown-app'
  | 'unknown-checkpoint'
  | 'stale-epoch'
  | 'restore-failed'
  | 'freeze-failed'
  | 'internal';

export type ProgressPhase = 'started' | 'aligning' | 'snapshot-taken' | 'uploading';

export type HookAction = 'prepare' | 'freeze' | 'thaw' | 'resume' | 'restore';

/** One run of one hook, as kept in the checkpoint record. */
export interface HookResult {
  readonly hook: string;
  readonly action: HookAction;
  /** -1 when a signal ended it. */
  readonly exitCode: number;
  readonly signal?: string;
  readonly timedOut: boolean;
  readonly durationMs: number;
  /** The end of its standard error. */
  readonly stderr: string;
  readonly attempts: number;
  /** Absent for a server-wide hook. */
  readonly app?: AppName;
}

export type AgentEventBody =
  | { readonly type: 'register'; readonly apps: readonly AppName[]; readonly version: string }
  | {
      readonly type: 'heartbeat';
      readonly frozen: boolean;
      readonly checkpointsInFlight: readonly CheckpointId[];
      /** The highest checkpoint id the agent's apps have begun, 0 for none (Heartbeat.highest_checkpoint_id). */
      readonly highestCheckpointId: number;
    }
  | {
      readonly type: 'ack';
      readonly checkpointId: CheckpointId;
      readonly app: AppName;
      readonly counts: SnapshotCounts;
      readonly state: AppState;
      /** Absent when nothing was recorded. */
      readonly channelState?: ObjectRef;
      readonly stats: WireAckStats;
    }
  | {
      readonly type: 'decline';
      readonly checkpointId: CheckpointId;
      /** Absent when the whole server declines. */
      readonly app?: AppName;
      readonly reason: WireDeclineReason;
      readonly detail: string;
      /** Hooks that ran before the decline (a failed freeze keeps their exit codes and stderr). */
      readonly hooks?: readonly HookResult[];
    }
  | {
      readonly type: 'progress';
      readonly checkpointId: CheckpointId;
      readonly app: AppName;
      readonly phase: ProgressPhase;
      readonly bytesDone: number;
    }
  | {
      readonly type: 'frozen';
      readonly checkpointId: CheckpointId;
      readonly frozenAtUnixMs: number;
      readonly hooksMs: number;
      readonly hooks: readonly HookResult[];
    }
  | {
      readonly type: 'thawed';
      readonly checkpointId: CheckpointId;
      readonly thawedAtUnixMs: number;
      readonly byWatchdog: boolean;
      readonly hooks: readonly HookResult[];
      /** 0 when the guest never was frozen. */
      readonly frozenAtUnixMs: number;
    }
  | { readonly type: 'restored'; readonly checkpointId: CheckpointId; readonly apps: readonly AppName[] }
  | { readonly type: 'resumed' }
  | {
      readonly type: 'quiesced';
      readonly checkpointId: CheckpointId;
      readonly app: AppName;
      /** Per output channel: what the app had sent when it stopped, as its hooks reported. */
      readonly outputPositions: Readonly<Record<ChannelId, number>>;
      readonly hooks: readonly HookResult[];
    }
  | { readonly type: 'captured'; readonly checkpointId: CheckpointId; readonly app: AppName; readonly state: ObjectRef; readonly hooks: readonly HookResult[] };

export type AgentEventType = AgentEventBody['type'];

export type AgentEvent = AgentEventHeader & AgentEventBody;

// ------------------------------------------------------------------------------------------------
// Data channels
// ------------------------------------------------------------------------------------------------

export type Envelope =
  | {
      readonly type: 'message';
      readonly channel: ChannelId;
      readonly epoch: Epoch;
      /** Per-channel sequence number, 1 for the first message of the channel. */
      readonly seq: number;
      /** A view into the decoded bytes (no copy): copy it if the input buffer is reused. */
      readonly payload: Uint8Array;
    }
  | {
      readonly type: 'barrier';
      readonly channel: ChannelId;
      readonly epoch: Epoch;
      /** Sequence number of the last message sent before the barrier; 0 if none (wire field `seq`). */
      readonly afterSeq: number;
      readonly checkpointId: CheckpointId;
      /** Sent ahead of queued messages (an unaligned checkpoint): those up to afterSeq come after it. */
      readonly overtaking?: true;
    }
  | {
      /** Messages firstSeq, firstSeq + 1, ... in one envelope (at least two). */
      readonly type: 'run';
      readonly channel: ChannelId;
      readonly epoch: Epoch;
      readonly firstSeq: number;
      /** Views into the decoded bytes, as a message's payload is. */
      readonly payloads: readonly Uint8Array[];
    };

/** What a channel hands its receiver: a run arrives as its messages, one by one. */
export type ChannelItem = Exclude<Envelope, { readonly type: 'run' }>;

/** Receiver -> sender: messages with seq <= receivedSeq + window may be sent. */
export interface Credit {
  readonly channel: ChannelId;
  readonly epoch: Epoch;
  readonly receivedSeq: number;
  readonly window: number;
  /** The receiver misses messages from this seq on: republish from there (absent: no request). */
  readonly resendFrom?: number;
}
