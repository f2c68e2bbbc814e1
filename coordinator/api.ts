/**
 * What the gRPC service (grpc/) calls: the coordinator's operations on plain model values.
 * `Plans`/`Agents` come from the registry; `Checkpoints` from the checkpoint orchestration;
 * `Policies` from coordinator/policies/.
 */
import type { CheckpointId } from '../src/ids.js';
import type { Result } from './errors.js';
import type {
  AgentInfo,
  AppRef,
  CheckpointCopy,
  CheckpointRecord,
  CheckpointState,
  ConsistencyLevel,
  Plan,
  PlanInput,
  ProgressEvent,
  SnapshotOptions,
} from './model.js';
import type { Policy, PolicyInput } from './policies/model.js';

export interface Page<T> {
  readonly items: readonly T[];
  /** Empty when there is no further page. */
  readonly nextPageToken: string;
}

export interface PlansApi {
  /** expectedRevision 0: create only (ALREADY_EXISTS if present); otherwise compare-and-set. */
  register(plan: PlanInput, expectedRevision: number): Promise<Result<Plan>>;
  get(planId: string): Promise<Result<Plan>>;
  list(tenant: string | undefined, pageSize: number, pageToken: string): Promise<Result<Page<Plan>>>;
  delete(planId: string, deleteCheckpoints: boolean): Promise<Result<void>>;
}

export interface TakeSnapshotRequest {
  readonly planId: string;
  readonly level: ConsistencyLevel;
  /** Fields left out take the coordinator's defaults. */
  readonly options: Partial<SnapshotOptions>;
  readonly idempotencyKey?: string;
  /** Internal: the checkpoint a rollback takes first, to keep the present. */
  readonly safety?: boolean;
  /** Internal: started by a periodic schedule (a manual request outranks it). */
  readonly periodic?: boolean;
  /** Internal: a crash-level checkpoint replacing a failed app-level one (fallback policy downgrade). */
  readonly fallbackFrom?: { readonly id: number; readonly reason: string };
  /** Internal: a staged checkpoint (BeginCheckpoint), held for the caller's finish. */
  readonly staged?: { readonly holdMs: number };
}

/** A staged checkpoint's begin: the round runs until every server froze (or every app acked), then holds. */
export interface BeginCheckpointRequest {
  readonly planId: string;
  /** crash: freeze every server; app: barriers, each app holding its sends from its snapshot (policy sync). */
  readonly level: 'crash' | 'app';
  /** The agents release their servers by themselves this long after the begin; 0: the coordinator's default. */
  readonly holdMs: number;
  readonly options: Partial<SnapshotOptions>;
  readonly idempotencyKey?: string;
}

/** One volume snapshot the caller took while the checkpoint was held, with its times (the coordinator's clock). */
export interface GivenVolumeSnapshot {
  readonly volumeId: string;
  readonly server: string;
  readonly snapshotRef: string;
  readonly startedAtUnixMs: number;
  readonly endedAtUnixMs: number;
}

export interface FinishCheckpointRequest {
  readonly checkpointId: CheckpointId;
  /** One per volume of the plan (none for a plan without volumes). */
  readonly volumes: readonly GivenVolumeSnapshot[];
}

export interface RestoreRequest {
  readonly checkpointId: CheckpointId;
  /** Source server -> target server. */
  readonly servers: Readonly<Record<string, string>>;
  /** Finer mapping of single apps; wins over the server mapping. */
  readonly apps: readonly { readonly source: AppRef; readonly target: AppRef }[];
  readonly idempotencyKey?: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly problems: readonly { readonly part: string; readonly detail: string }[];
}

/** What DeleteCheckpoint removed besides the record, so the answer says so (issue 9, defect 6). */
export interface DeleteOutcome {
  /** Stored objects (app states, channel states) deleted. */
  readonly deletedObjects: number;
  /** The backend's references of the volume snapshots deleted. */
  readonly deletedVolumeSnapshots: readonly string[];
}

export interface CheckpointsApi {
  /** Creates the checkpoint and starts it; resolves as soon as it has an id (watch for the end). */
  take(request: TakeSnapshotRequest): Promise<Result<CheckpointRecord>>;
  get(id: CheckpointId): Promise<Result<CheckpointRecord>>;
  list(filter: { planId?: string; states?: readonly CheckpointState[] }, pageSize: number, pageToken: string): Promise<Result<Page<CheckpointRecord>>>;
  /**
   * Streams progress until the checkpoint ends (the last event carries the terminal state); the
   * first event is the current record. Returns a function that stops the stream.
   */
  watch(id: CheckpointId, onEvent: (e: ProgressEvent) => void, onEnd: () => void): Promise<Result<() => void>>;
  rollback(request: { checkpointId: CheckpointId; skipSafetyCheckpoint: boolean; idempotencyKey?: string }): Promise<Result<{ safetyCheckpointId: CheckpointId | 0; epoch: number }>>;
  restore(request: RestoreRequest): Promise<Result<{ epoch: number }>>;
  verify(id: CheckpointId): Promise<Result<VerifyReport>>;
  /** The record, its stored parts and its volume snapshots; FAILED_PRECONDITION while running or pinned. */
  delete(id: CheckpointId, idempotencyKey?: string): Promise<Result<DeleteOutcome>>;
  /** Aborts a checkpoint in flight; answers with its record (ABORTING, or ABORTED when it had ended so). */
  cancel(id: CheckpointId, idempotencyKey?: string): Promise<Result<CheckpointRecord>>;
  /**
   * A staged checkpoint: resolves once it is held (every server frozen, or every app acked), or
   * fails with the reason it aborted (CHECKPOINT_ABORTED).
   */
  begin(request: BeginCheckpointRequest): Promise<Result<CheckpointRecord>>;
  /** Ends a held checkpoint with the caller's volume snapshots; resolves with its final record once completed. */
  finish(request: FinishCheckpointRequest): Promise<Result<CheckpointRecord>>;
  /** Pins (or unpins) a completed checkpoint: retention never deletes a pinned one. */
  pin(id: CheckpointId, pinned: boolean, idempotencyKey?: string): Promise<Result<CheckpointRecord>>;
}

export interface AgentsApi {
  list(tenant: string | undefined): Promise<Result<readonly AgentInfo[]>>;
}

/** A plan's schedule and retention (coordinator/policies/). */
export interface PoliciesApi {
  /** NOT_FOUND if the plan does not exist; ALREADY_EXISTS if it has a policy. */
  create(policy: PolicyInput): Promise<Result<Policy>>;
  get(planId: string): Promise<Result<Policy>>;
  list(tenant: string | undefined, pageSize: number, pageToken: string): Promise<Result<Page<Policy>>>;
  /** expectedRevision 0: whatever the revision; otherwise compare-and-set. */
  update(policy: PolicyInput, expectedRevision: number): Promise<Result<Policy>>;
  delete(planId: string): Promise<Result<void>>;
}

/** A copy held at a site, as ListCheckpointCopies shows it (docs/sites.md). */
export interface CopyListing {
  readonly site: string;
  readonly sourceSite: string;
  readonly sourceCheckpointId: number;
  readonly copiedAtUnixMs: number;
  /** The record as at the source. */
  readonly record: CheckpointRecord;
  readonly objects: number;
  readonly bytes: number;
}

/** A restore from a copy held at a site rather than from this deployment's own store. */
export interface FromSite {
  readonly site: string;
  /** The deployment that took the checkpoint; empty: the only one the site holds a copy of it from. */
  readonly sourceSite: string;
}

/** Copies of checkpoints at other sites (coordinator/sites/). */
export interface SitesApi {
  /** Answers once the copy is made and verified at the site (state copied); a failed copy is an error, and is recorded on the checkpoint. */
  copy(checkpointId: CheckpointId, site: string): Promise<Result<CheckpointCopy>>;
  listCopies(site: string, filter: { readonly planId?: string; readonly tenant?: string }): Promise<Result<CopyListing[]>>;
  /**
   * Imports the site's copy of checkpoint `request.checkpointId` (its id at the source) as a new
   * pinned checkpoint here, then restores it. `tenant`: the caller's scope; a copy of another
   * tenant is as missing as one that is not there.
   */
  restoreFrom(request: RestoreRequest, from: FromSite, tenant?: string): Promise<Result<{ epoch: number; checkpointId: CheckpointId }>>;
}

export interface CoordinatorApi {
  readonly plans: PlansApi;
  readonly checkpoints: CheckpointsApi;
  readonly agents: AgentsApi;
  /** Absent: the policy calls answer UNAVAILABLE (a coordinator built without a policy store). */
  readonly policies?: PoliciesApi;
  /** Absent: every site a call names is NOT_FOUND (a coordinator without sites). */
  readonly sites?: SitesApi;
}
