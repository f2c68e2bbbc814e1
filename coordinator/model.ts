/**
 * The coordinator's records, as stored in JetStream KV (JSON) and mapped to and from the gRPC
 * messages of proto/snapshot/v1/coordinator.proto. camelCase, numbers for ids and times.
 */
import type { RoundFailureReason } from '../src/control/round.js';
import type { SnapshotCounts } from '../src/core/types.js';
import type { CheckpointId, Epoch } from '../src/ids.js';
import type { HookResult, ObjectRef } from '../src/wire/index.js';

export type ConsistencyLevel = 'none' | 'crash' | 'app';
export type ChannelKind = 'in-band' | 'log' | 'opaque';
export type AlignmentMode = 'aligned' | 'unaligned';
export type FallbackPolicy = 'fail' | 'downgrade';

export interface AppRef {
  readonly server: string;
  readonly app: string;
}

export interface PlanChannel {
  readonly from: AppRef;
  readonly to: AppRef;
  readonly kind: ChannelKind;
  /** JetStream stream of a `log` channel. */
  readonly logStream?: string;
  /** Its subject in that stream, as its agents are configured (optional: docs/channels.md). */
  readonly logSubject?: string;
}

export interface Volume {
  readonly id: string;
  readonly server: string;
  /** What the volume backend needs to find the volume (a path, an rbd image, ...). */
  readonly backendRef: string;
}

/**
 * A server of the plan that runs no agent (docs/backends.md): at crash level the coordinator's
 * server backend pauses it (or freezes its file systems through qemu-guest-agent) instead of
 * asking an agent, and its disks are snapshotted as one group. Its disks are volumes of the plan
 * like any other, the system disk included.
 */
export interface AgentlessServer {
  readonly server: string;
  /** What the server backend needs to reach the machine: the QMP socket (qemu), a domain name (templates). */
  readonly backendRef: string;
  /** qemu backend: the qemu-guest-agent socket; when it answers, the guest's file systems are frozen instead of the machine paused. */
  readonly guestAgentRef?: string;
}

/** What a caller registers; the registry adds revision and timestamps. */
export interface PlanInput {
  readonly id: string;
  readonly tenant: string;
  readonly servers: readonly string[];
  readonly apps: readonly AppRef[];
  readonly channels: readonly PlanChannel[];
  readonly volumes: readonly Volume[];
  /** Servers (of `servers`) with no agent; absent: every server runs one. */
  readonly agentlessServers?: readonly AgentlessServer[];
  /** Sites each completed checkpoint is copied to (docs/sites.md); absent: none. */
  readonly copyToSites?: readonly string[];
}

export interface Plan extends PlanInput {
  /** KV revision: the compare-and-set token for updates. */
  readonly revision: number;
  readonly createdAtUnixMs: number;
  readonly updatedAtUnixMs: number;
}

export interface SnapshotOptions {
  readonly timeoutMs: number;
  readonly alignmentMode: AlignmentMode;
  /** 0: never switch to unaligned. */
  readonly alignmentTimeoutMs: number;
  readonly fallbackPolicy: FallbackPolicy;
  readonly freezeDeadlineMs: number;
  /**
   * Pacing: checkpoints of the plan in flight at once, this one included; a request beyond it is
   * answered busy (RESOURCE_EXHAUSTED, PLAN_BUSY). Absent (records written before the option
   * existed, callers that leave it out): 1.
   */
  readonly maxConcurrent?: number;
}

export type CheckpointState =
  | 'pending'
  | 'triggering'
  | 'collecting'
  /** A staged checkpoint: every server frozen (or every app acked and holding), waiting for FinishCheckpoint. */
  | 'held'
  | 'committing'
  | 'completed'
  | 'aborting'
  | 'aborted';

export const TERMINAL_STATES: readonly CheckpointState[] = ['completed', 'aborted'];
/** A record in one of these states is a checkpoint some coordinator is (or was) running. */
export const IN_FLIGHT_STATES: readonly CheckpointState[] = ['pending', 'triggering', 'collecting', 'held', 'committing', 'aborting'];

/** Why a checkpoint aborted: what its round decides (src/control/round.ts), and what only the service knows. */
export type FailureReason =
  | RoundFailureReason
  | 'too-many-failures'
  /** The coordinator running it stopped; the next one to start aborted it (docs/api.md, restart). */
  | 'coordinator-lost';

/**
 * A small app state kept in the checkpoint record itself rather than as an object (the app acked it
 * inline; see Trigger.inline_state_bytes_max in wire.proto). The digest is the coordinator's, taken
 * when the ack arrived, and checked again whenever the bytes are used.
 */
export interface InlineState {
  readonly base64: string;
  readonly digest: string;
  readonly sizeBytes: number;
}

/** One app's part of a checkpoint: what it acked, and its Flink-style statistics. */
export interface AppPart {
  readonly server: string;
  readonly app: string;
  readonly acked: boolean;
  readonly ackedAtUnixMs?: number;
  /** The app's state as a stored object; an acked part has this or `inlineState`. */
  readonly state?: ObjectRef;
  readonly inlineState?: InlineState;
  readonly channelState?: ObjectRef;
  readonly counts?: SnapshotCounts;
  readonly startDelayMs?: number;
  readonly alignmentMs?: number;
  readonly syncMs?: number;
  readonly asyncMs?: number;
  readonly bufferedMessages?: number;
  readonly channelStateMessages?: number;
  readonly finishedUnaligned?: boolean;
  readonly failureReason?: FailureReason;
  readonly failureDetail?: string;
}

export interface VolumeSnapshot {
  readonly volumeId: string;
  readonly server: string;
  readonly snapshotRef: string;
  readonly frozenAtUnixMs: number;
  readonly snapshotAtUnixMs: number;
  readonly thawedAtUnixMs: number;
  /** An aborted checkpoint's snapshot, deleted through the volume backend at this time. */
  readonly deletedAtUnixMs?: number;
  /** Why an aborted checkpoint's snapshot could not be deleted (it is left on the backend). */
  readonly deleteError?: string;
}

/** One server's part of a crash-level checkpoint: its frozen window and what its hooks did. */
export interface ServerFreeze {
  readonly server: string;
  /** When the coordinator learnt the server was frozen / told it to thaw (the coordinator's clock). */
  readonly frozenAtUnixMs?: number;
  readonly thawedAtUnixMs?: number;
  /** The same instants as the agent reported them (the guest's clock, for the record). */
  readonly agentFrozenAtUnixMs?: number;
  readonly agentThawedAtUnixMs?: number;
  readonly byWatchdog?: boolean;
  readonly hooks: readonly HookResult[];
}

export interface CheckpointRecord {
  readonly id: CheckpointId;
  readonly planId: string;
  readonly tenant: string;
  readonly levelRequested: ConsistencyLevel;
  /** Absent until the checkpoint completed; never silently lower than requested without `fallbackReason`. */
  readonly levelAchieved?: ConsistencyLevel;
  readonly fallbackReason?: string;
  readonly state: CheckpointState;
  readonly failureReason?: FailureReason;
  readonly failureDetail?: string;
  /** The plan's epoch the checkpoint was taken in. */
  readonly epoch: Epoch;
  readonly options: SnapshotOptions;
  readonly idempotencyKey?: string;
  readonly createdAtUnixMs: number;
  readonly triggeredAtUnixMs?: number;
  readonly finishedAtUnixMs?: number;
  readonly parts: readonly AppPart[];
  readonly volumes: readonly VolumeSnapshot[];
  /**
   * A staged checkpoint (BeginCheckpoint): the agents release their servers by themselves this long
   * after the begin, and the checkpoint aborts unless FinishCheckpoint came first.
   */
  readonly holdMs?: number;
  /**
   * A staged checkpoint's volume snapshots, taken by the caller and given with FinishCheckpoint:
   * they belong to the caller, so deleting the checkpoint leaves them alone.
   */
  readonly callerVolumes?: readonly VolumeSnapshot[];
  /** Crash level: every server's frozen window and hook results. */
  readonly servers?: readonly ServerFreeze[];
  /** Taken automatically before a rollback. */
  readonly safety: boolean;
  /** Started by a periodic schedule rather than a request. */
  readonly periodic?: boolean;
  /** Kept by retention whatever its age (PinCheckpoint); only a completed checkpoint is pinned. */
  readonly pinned?: boolean;
  /**
   * A DeleteCheckpoint (or retention) began: written before the first part is deleted, so its parts
   * may be gone; a pin is refused, and a retry or the next coordinator's recovery finishes the
   * delete (src/control/retention.ts decideDeleteMark).
   */
  readonly deleting?: boolean;
  /** Copies of this checkpoint at other sites, as this deployment last made or tried each (docs/sites.md). */
  readonly copies?: readonly CheckpointCopy[];
  /** A checkpoint brought in from a copy at another site to restore it here (RestoreSnapshot from_site). */
  readonly importedFrom?: CopySource;
}

/** The latest copy of a checkpoint to one site: made (verified there by digest) or failed. */
export type CheckpointCopy =
  | {
      readonly site: string;
      readonly state: 'copied';
      readonly copiedAtUnixMs: number;
      /** From the checkpoint's completion to the copy's record written at the site. */
      readonly lagMs: number;
    }
  | {
      readonly site: string;
      readonly state: 'failed';
      readonly failedAtUnixMs: number;
      readonly detail: string;
    };

/** Where an imported checkpoint came from. */
export interface CopySource {
  /** The site its copy was read from. */
  readonly site: string;
  /** The deployment that took it (the copy's source), and its id there. */
  readonly sourceSite: string;
  readonly sourceCheckpointId: number;
  readonly copiedAtUnixMs: number;
}

/** A progress event of a checkpoint, as WatchCheckpoint streams it. */
export interface ProgressEvent {
  readonly kind: 'state-changed' | 'app-progress' | 'app-acked' | 'app-declined' | 'server-frozen' | 'server-thawed' | 'volumes-snapshotted';
  readonly atUnixMs: number;
  readonly server?: string;
  readonly app?: string;
  readonly detail?: string;
  readonly checkpoint: CheckpointRecord;
}

export type AgentStatus = 'online' | 'late' | 'offline';

export interface AgentInfo {
  readonly tenant: string;
  readonly server: string;
  readonly apps: readonly string[];
  readonly version: string;
  readonly status: AgentStatus;
  readonly registeredAtUnixMs: number;
  readonly lastHeartbeatAtUnixMs: number;
  readonly frozen: boolean;
}
