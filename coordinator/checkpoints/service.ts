/**
 * The checkpoint operations of the coordinator (CheckpointsApi): take, get, list, watch, verify,
 * delete, rollback and restore. Each checkpoint in flight is a CheckpointRunner; this module owns the
 * request validation, defaults, idempotency, pacing, retention and the fan-out of progress events.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { PolicyConfig } from '../../src/core/types.js';
import type { CheckpointId } from '../../src/ids.js';
import type { AgentEvent } from '../../src/wire/index.js';
import type { StateObjects } from '../../adapters/state-store.js';
import type { BeginCheckpointRequest, CheckpointsApi, DeleteOutcome, FinishCheckpointRequest, Page, RestoreRequest, TakeSnapshotRequest, VerifyReport } from '../api.js';
import type { AgentFences } from '../agents.js';
import type { ControlBus } from '../bus.js';
import { fail, failField, failWith, ok, type Result } from '../errors.js';
import { IN_FLIGHT_STATES, TERMINAL_STATES, type CheckpointRecord, type CheckpointState, type Plan, type ProgressEvent, type SnapshotOptions } from '../model.js';
import type { CoordinatorStore, StoredCheckpoint } from '../store/index.js';
import { CHECKPOINT_ID_JUMP_MAX } from '../store/checkpoints.js';
import { isAllOpaque, opaqueGraph, planGraph, type PlanGraph } from './plan-graph.js';
import type { RestoreDeps } from './restore.js';
import { Operations, type RollbackOutcome, type RollbackRequest } from './operations.js';
import { CheckpointRunner, type RunnerDeps } from './runner.js';
import { AppLevel } from '../../src/control/round-app.js';
import { CrashLevel } from '../../src/control/round-crash.js';
import { OpaqueLevel } from '../../src/control/round-opaque.js';
import { HOLD_DEADLINE_PASSED, type RoundLevel, type RoundRejection } from '../../src/control/round.js';
import { NO_NEGATIVE_CONTROLS, type NegativeControls } from '../../src/control/negative-controls.js';
import type { AppGraph } from '../../src/graph/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { verifyCheckpoint } from './verify.js';
import { Admission } from './admission.js';
import { canRetire, finishMarkedDelete, retireParts } from './retire.js';
import { mayHoldVolumeSnapshots, recoverLeftRounds, sweepCheckpointVolumes, type RecoveryReport } from './recover.js';
import { checkpointIdsOf, findOrphans, type OrphanedCheckpoint, type Owner } from '../../src/control/orphans.js';
import { decideDeleteMark, decidePin, decideRetention, type DeleteMarkDecision, type PinDecision, type RetentionRules } from '../../src/control/retention.js';
import type { KeyedCallKind } from '../store/index.js';
import { sameTake, snapshotOptions } from './snapshot-options.js';
import type { AdmissionConfig } from '../../src/control/admission.js';

/** What one orphan sweep deleted, and what it could not do (done again by the next sweep). */
export interface OrphanSweepReport {
  readonly deleted: readonly OrphanedCheckpoint[];
  readonly problems: readonly string[];
}

export interface CheckpointServiceOptions {
  readonly defaults: SnapshotOptions;
  /**
   * The largest max_concurrent a request may ask for (checkpoints of one plan in flight at once; a
   * request beyond its own max_concurrent is answered busy, RESOURCE_EXHAUSTED with PLAN_BUSY).
   */
  readonly maxConcurrentMax: number;
  /** The longest freeze_deadline a request may ask for (agents cut theirs to their own maximum, 60 s by default). */
  readonly freezeDeadlineMsMax: number;
  /** Completed checkpoints kept per plan; older ones (with their objects and volume snapshots) are deleted. */
  readonly retainedPerPlan: number;
  /** Retention keeps the targets and safety checkpoints of this many of a plan's last rollbacks. */
  readonly rollbacksProtected: number;
  readonly commitTimeoutMs: number;
  /** How long a rollback or restore waits for each agent to answer. */
  readonly restoreTimeoutMs: number;
  readonly timeoutMsMax: number;
  /** Largest app state acked inline (kept in the record, no object); 0: every state is an object. */
  readonly inlineStateBytesMax: number;
  /** All inline states of one checkpoint together at most this: a large plan's apps get less each. */
  readonly inlineStateRecordBytesMax: number;
  /** Who is online: a rollback or restore to a server without an agent fails at once. */
  readonly agents?: RestoreDeps['agents'];
  /**
   * The agents' fences (heartbeats): a plan's next checkpoint id is issued above the highest of its
   * servers, which an app refuses anything below. Absent: the id counter alone.
   */
  readonly fences?: AgentFences;
  /** The group snapshot of a crash-level checkpoint; absent: plans with volumes cannot go crash. */
  readonly volumes?: VolumeBackend;
  /** Defects re-created on purpose for the fault simulator (src/control/negative-controls.ts); never in production. */
  readonly negativeControls?: NegativeControls;
  /** A plan's retention policy (coordinator/policies/); undefined: keep the newest retainedPerPlan. */
  readonly retentionFor?: (planId: string) => RetentionRules | undefined;
  /**
   * After each retention pass: whether the plan's log streams still hold what its retained
   * checkpoints need (checkpoints/log-retention.ts); absent: not checked.
   */
  readonly logRetention?: { check(planId: string, tenant: string, retained: readonly CheckpointId[]): Promise<unknown> };
}

/** What retention needs of a completed checkpoint. */
interface CompletedEntry {
  readonly pinned: boolean;
  readonly finishedAtUnixMs?: number;
}

function completedEntry(r: CheckpointRecord): CompletedEntry {
  return { pinned: r.pinned === true, ...(r.finishedAtUnixMs !== undefined ? { finishedAtUnixMs: r.finishedAtUnixMs } : {}) };
}

/** What the service needs of a checkpoint in flight, whatever its level. */
interface Run {
  readonly id: CheckpointId;
  /** Of the record, without assembling it (that copies every part: not once per event of a large plan). */
  readonly tenant: string;
  readonly epoch: number;
  readonly current: CheckpointRecord;
  start(): void;
  cancel(detail: string): void;
  /** A staged checkpoint's finish; why the round refused it, if it did. */
  finish(volumes: FinishCheckpointRequest['volumes']): RoundRejection | undefined;
  onEvent(e: AgentEvent): void;
}

/** What a caller waiting on a checkpoint waits for. */
type Until = 'held' | 'ended';

export const CHECKPOINT_SERVICE_DEFAULTS: CheckpointServiceOptions = {
  defaults: { timeoutMs: 30_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 10_000, maxConcurrent: 1 },
  maxConcurrentMax: 8,
  freezeDeadlineMsMax: 60_000,
  retainedPerPlan: 20,
  rollbacksProtected: 5,
  commitTimeoutMs: 30_000,
  restoreTimeoutMs: 30_000,
  timeoutMsMax: 3_600_000,
  inlineStateBytesMax: 16 * 1024,
  inlineStateRecordBytesMax: 128 * 1024,
};

/** How long an aborted round waits at least for answers under way (captures, a volume snapshot) before it cleans up. */
const ABORT_SETTLE_MS = 10_000;
/** Slack on top of a checkpoint's timeouts before its record counts as left behind (clock skew, a slow commit). */
const STALE_MARGIN_MS = 60_000;
/**
 * How long after an aborted checkpoint's timeout its objects are left for the round's own late
 * sweep and for agents still uploading; the orphan sweep deletes them after that.
 */
export const ORPHAN_SETTLE_MS = 30_000;
/** The leader's orphan sweep runs this often unless configured (a listing of every tenant's bucket). */
export const ORPHAN_SWEEP_INTERVAL_MS_DEFAULT = 300_000;

/** The most a checkpoint record may give to inline states (the record is one KV value, below NATS's max_payload). */
export const INLINE_STATE_BYTES_LIMIT = 256 * 1024;

export function validateServiceOptions(o: CheckpointServiceOptions): string | undefined {
  const positive: [string, number][] = [
    ['defaults.timeoutMs', o.defaults.timeoutMs],
    ['maxConcurrentMax', o.maxConcurrentMax],
    ['freezeDeadlineMsMax', o.freezeDeadlineMsMax],
    ['retainedPerPlan', o.retainedPerPlan],
    ['rollbacksProtected', o.rollbacksProtected],
    ['commitTimeoutMs', o.commitTimeoutMs],
    ['restoreTimeoutMs', o.restoreTimeoutMs],
    ['timeoutMsMax', o.timeoutMsMax],
  ];
  for (const [name, v] of positive) if (!Number.isSafeInteger(v) || v <= 0) return `${name} must be a positive integer, got ${v}`;
  for (const [name, v] of [
    ['inlineStateBytesMax', o.inlineStateBytesMax],
    ['inlineStateRecordBytesMax', o.inlineStateRecordBytesMax],
  ] as const) {
    // The limit travels as a uint32; an inline state also has to fit a NATS message with room to spare.
    if (!Number.isSafeInteger(v) || v < 0 || v > INLINE_STATE_BYTES_LIMIT) return `${name} must be an integer from 0 to ${INLINE_STATE_BYTES_LIMIT}, got ${v}`;
  }
  return undefined;
}

type Listener = { onEvent: (e: ProgressEvent) => void; onEnd: () => void };

export class CheckpointService implements CheckpointsApi {
  private readonly runs = new Map<CheckpointId, Run>();
  private readonly watchers = new Map<CheckpointId, Set<Listener>>();
  private readonly endedListeners: ((record: CheckpointRecord) => void)[] = [];
  private readonly deletedListeners: ((record: CheckpointRecord) => void)[] = [];
  private readonly operationListeners: ((kind: 'rollback' | 'restore', succeeded: boolean) => void)[] = [];
  /** Completed checkpoints per plan, once retention has listed them (see applyRetention). */
  private readonly completedIds = new Map<string, Map<CheckpointId, CompletedEntry>>();
  private readonly retention = new Map<string, Promise<void>>();
  /** Each plan's newest completed checkpoint, whose complete notice goes out with the next trigger. */
  private readonly lastCompleted = new Map<string, CheckpointId>();
  private readonly log: Logger;
  private readonly admission: Admission;
  private readonly admissionConfig: AdmissionConfig;
  /** Checkpoints admitted whose run is not registered yet (see liveIds). */
  private readonly admitting = new Set<CheckpointId>();
  /** Of those, the ones a manual request preempted meanwhile, with why: their run is cancelled, not started. */
  private readonly preemptedBeforeRun = new Map<CheckpointId, string>();
  /** The highest id this process was handed: a fence above it is looked into once (noteFence). */
  private idIssuedMax = 0;

  constructor(
    private readonly store: CoordinatorStore,
    private readonly objects: StateObjects,
    private readonly bus: ControlBus,
    logger: Logger,
    private readonly options: CheckpointServiceOptions = CHECKPOINT_SERVICE_DEFAULTS,
    private readonly nowUnixMs: () => number = Date.now,
  ) {
    this.log = logger.child({ component: 'checkpoints' });
    const invalid = validateServiceOptions(options);
    if (invalid) throw new Error(`invalid checkpoint service options: ${invalid}`);
    this.admissionConfig = { maxConcurrentMax: options.maxConcurrentMax, negativeControls: options.negativeControls ?? NO_NEGATIVE_CONTROLS };
    this.admission = new Admission(store.slots, randomUUID(), this.admissionConfig, this.log, nowUnixMs);
    bus.onEvents((e) => this.onEvent(e));
  }

  /**
   * An agent's fence above every id this process issued is the last checkpoint of another
   * coordinator (nothing to say), or an id no coordinator issued: the store lost its counter, or a
   * broken sender made it up (docs/security.md). The ids went on above it, or, if it was too far
   * ahead, did not, and the plan's checkpoints are refused as stale until its agents restart.
   */
  private async noteFence(plan: Plan, fence: CheckpointId, id: CheckpointId): Promise<void> {
    const where = { planId: plan.id, tenant: plan.tenant, fence, checkpointId: id };
    if (id <= fence) {
      this.log.error(where, `an agent of the plan has begun a checkpoint id more than ${CHECKPOINT_ID_JUMP_MAX} beyond the ids issued: not followed; restart the plan's agents to clear it`);
      return;
    }
    const issued = await this.store.checkpoints.get(fence);
    if (issued.ok || issued.error.kind !== 'not-found') return;
    this.log.warn(where, 'an agent of the plan has begun a checkpoint id the store has no record of: the ids go on above it');
  }

  /** A slot for the checkpoint, or PLAN_BUSY. The id counts as live from here until its run is registered. */
  private async admit(planId: string, id: CheckpointId, periodic: boolean, maxConcurrent: number): Promise<Result<void>> {
    this.admitting.add(id);
    const admitted = await this.admission.request(planId, id, periodic, maxConcurrent, () => this.liveIds());
    if (!admitted.ok) {
      this.admitting.delete(id);
      return admitted;
    }
    for (const p of admitted.value.preempted) {
      const detail = `a manual checkpoint request outranks periodic checkpoint ${p}: checkpoint ${id} took its slot`;
      const run = this.runs.get(p);
      if (run) run.cancel(detail);
      else if (this.admitting.has(p)) {
        // Admitted here, its run not built yet (its record is being created): cancelled as it starts,
        // so it never triggers after the manual one (F9: it did, and aborted `internal`).
        this.preemptedBeforeRun.set(p, detail);
        this.log.info({ checkpointId: p, plan: planId, by: id }, 'preempted periodic checkpoint has not started its round: it is cancelled as it starts');
      } else this.log.warn({ checkpointId: p, plan: planId }, 'preempted periodic checkpoint is not in flight here (it just ended, or another coordinator runs it): not cancelled from here');
    }
    return ok(undefined);
  }

  /**
   * The checkpoints whose admission slots this coordinator must keep: runs whose record is not final
   * yet, and requests between admission and the start of their run. A run whose record is final
   * only finishes its last store writes; its slot is free for the next request at once (a caller
   * that saw it completed or aborted must be able to take the next one).
   */
  private liveIds(): CheckpointId[] {
    const live = [...this.admitting];
    for (const r of this.runs.values()) if (!TERMINAL_STATES.includes(r.current.state)) live.push(r.id);
    return live;
  }

  private releaseSlot(planId: string, id: CheckpointId): Promise<void> {
    this.admitting.delete(id);
    this.preemptedBeforeRun.delete(id);
    return this.admission.release(planId, id);
  }

  private onEvent(e: AgentEvent): void {
    if (e.type !== 'ack' && e.type !== 'decline' && e.type !== 'progress' && e.type !== 'frozen' && e.type !== 'thawed' && e.type !== 'quiesced' && e.type !== 'captured') return;
    const run = this.runs.get(e.checkpointId);
    if (!run) {
      if (e.type !== 'progress') this.log.debug({ checkpointId: e.checkpointId, server: e.server, type: e.type }, 'event for a checkpoint not in flight');
      return;
    }
    if (run.tenant !== e.tenant) {
      this.log.warn({ checkpointId: e.checkpointId, tenant: e.tenant }, 'event from another tenant for this checkpoint: dropped');
      return;
    }
    // An agent at another epoch refuses the trigger with stale-epoch, under its own epoch: that
    // answer is for this checkpoint (it cannot complete), so it fails it now rather than at its timeout.
    const epochRefusal = e.type === 'decline' && e.reason === 'stale-epoch';
    if (e.epoch !== run.epoch && !epochRefusal) {
      this.log.warn({ checkpointId: e.checkpointId, server: e.server, epoch: e.epoch }, 'event of another epoch: dropped');
      return;
    }
    run.onEvent(e);
  }

  /**
   * Ends at once the rounds a stopped coordinator left in flight (coordinator/checkpoints/recover.ts):
   * run before the gRPC server starts. Assumes no other coordinator runs rounds meanwhile (the
   * leader lease of issue 11 makes that so; docs/api.md).
   */
  recover(): Promise<Result<RecoveryReport>> {
    return recoverLeftRounds(
      {
        store: this.store,
        objects: this.objects,
        bus: this.bus,
        volumes: this.options.volumes,
        admission: this.admissionConfig,
        logger: this.log,
        nowUnixMs: this.nowUnixMs,
        onDeleted: (record) => {
          for (const listener of this.deletedListeners) listener(record);
        },
      },
      this.liveIds(),
    );
  }

  /** In-flight runs, for a clean shutdown. */
  inFlight(): CheckpointId[] {
    return [...this.runs.keys()];
  }

  /**
   * A staged checkpoint: taken as any other, its round told to hold for the caller's finish; this
   * call resolves once the round is held, or fails with why it aborted.
   */
  async begin(request: BeginCheckpointRequest): Promise<Result<CheckpointRecord>> {
    const holdMs = request.holdMs === 0 ? this.options.defaults.freezeDeadlineMs : request.holdMs;
    if (!Number.isSafeInteger(holdMs) || holdMs < 1 || holdMs > this.options.freezeDeadlineMsMax) {
      return failField('hold_deadline', `hold_deadline ${holdMs} ms is out of range: from 1 to ${this.options.freezeDeadlineMsMax} ms`);
    }
    // At crash level the hold deadline is the agents' freeze deadline: their watchdogs thaw then.
    const options = request.level === 'crash' ? { ...request.options, freezeDeadlineMs: holdMs } : request.options;
    const taken = await this.take({ planId: request.planId, level: request.level, options, ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}), staged: { holdMs } });
    if (!taken.ok) return taken;
    if (taken.value.holdMs === undefined) return failWith('failed-precondition', 'NOT_STAGED', `idempotency_key ${JSON.stringify(request.idempotencyKey ?? '')} was first used for checkpoint ${taken.value.id}, which is not staged`);
    const held = await this.waitUntil(taken.value.id, 'held');
    if (held.state === 'aborted') return this.abortedError(held);
    return ok(held);
  }

  /** Ends a held checkpoint with the caller's volume snapshots; resolves with the completed record. */
  async finish(request: FinishCheckpointRequest): Promise<Result<CheckpointRecord>> {
    const id = request.checkpointId;
    const run = this.runs.get(id);
    if (!run) {
      const stored = await this.get(id);
      if (!stored.ok) return stored.error.kind === 'not-found' ? fail('not-found', `checkpoint ${id} does not exist (never begun, or deleted)`) : stored;
      const r = stored.value;
      if (r.holdMs === undefined) return failWith('failed-precondition', 'NOT_STAGED', `checkpoint ${id} was taken by TakeSnapshot, not begun by BeginCheckpoint: it takes no finish`, { checkpoint_id: String(id) });
      if (r.state === 'completed') return failWith('failed-precondition', 'ALREADY_FINISHED', `checkpoint ${id} was finished already and completed`, { checkpoint_id: String(id) });
      if (r.state === 'aborted') return this.abortedError(r);
      return fail('unavailable', `checkpoint ${id} is ${r.state} but not run by this coordinator; finish it on the coordinator that runs it`);
    }
    const refused = run.finish(request.volumes);
    if (refused !== undefined) return this.finishRefused(id, refused);
    const final = await this.waitUntil(id, 'ended');
    if (final.state === 'aborted') return this.abortedError(final);
    return ok(final);
  }

  private finishRefused(id: CheckpointId, r: RoundRejection): Result<CheckpointRecord> {
    const meta = { checkpoint_id: String(id) };
    switch (r.reason) {
      case 'invalid-volumes':
        return failField('volumes', `volumes: ${r.detail}; the checkpoint is still held`);
      case 'not-staged':
        return failWith('failed-precondition', 'NOT_STAGED', r.detail, meta);
      case 'not-held':
        return failWith('failed-precondition', 'NOT_HELD', r.detail, meta);
      case 'hold-expired':
        return failWith('failed-precondition', 'HOLD_EXPIRED', r.detail, meta);
      case 'duplicate':
        return failWith('failed-precondition', 'ALREADY_FINISHED', r.detail, meta);
      default:
        return failWith('failed-precondition', 'CHECKPOINT_ABORTED', r.detail, meta);
    }
  }

  /** The error for a staged checkpoint that aborted: HOLD_EXPIRED when its hold deadline ended it. */
  private abortedError(r: CheckpointRecord): Result<CheckpointRecord> {
    const meta = { checkpoint_id: String(r.id), failure_reason: r.failureReason ?? 'internal' };
    const detail = `checkpoint ${r.id} aborted (${r.failureReason ?? 'unknown'}): ${r.failureDetail ?? ''}`;
    if (r.failureReason === 'timeout' && r.failureDetail?.startsWith(HOLD_DEADLINE_PASSED)) return failWith('failed-precondition', 'HOLD_EXPIRED', detail, meta);
    return failWith('failed-precondition', 'CHECKPOINT_ABORTED', detail, meta);
  }

  async take(request: TakeSnapshotRequest): Promise<Result<CheckpointRecord>> {
    // Both reads at once: one round trip instead of two (each costs a socket write and a wake-up).
    const [plan, epoch] = await Promise.all([this.store.plans.get(request.planId), this.store.epochs.get(request.planId)]);
    if (!plan.ok) return plan;
    const checkedOptions = snapshotOptions(this.options, request.options);
    if (!checkedOptions.ok) return checkedOptions;
    const options = checkedOptions.value;
    if (request.idempotencyKey) {
      const existing = await this.store.checkpoints.findByIdempotencyKey(request.planId, request.idempotencyKey);
      if (!existing.ok) return existing;
      if (existing.value) return sameTake(existing.value, request, options);
    }
    // A staged checkpoint's volumes are snapshotted by the caller: it needs no backend here.
    if (request.level !== 'app' && !request.staged && plan.value.volumes.length > 0 && !this.options.volumes) {
      return fail('failed-precondition', `plan ${plan.value.id} has volumes but this coordinator has no volume backend: start it with --volume-backend directory:PATH or command:FILE`);
    }
    // The crash level holds servers, not apps: a plan of machines without agents has no app graph.
    const g = request.level === 'crash' ? undefined : planGraph(plan.value);
    if (g !== undefined && !g.ok) return fail('failed-precondition', g.message);
    // Level app: in-band and log channels run the barrier protocol, a plan of opaque channels only is
    // cut by quiescing (src/control/round-opaque.ts); opaque mixed with the others is not supported.
    const opaque = request.level === 'app' && isAllOpaque(plan.value) ? opaqueGraph(plan.value) : undefined;
    if (opaque && !opaque.ok) return fail('failed-precondition', opaque.message);
    if (opaque && request.staged) return fail('failed-precondition', `plan ${plan.value.id} has opaque channels only, cut by quiescing, which BeginCheckpoint does not hold: use level crash`);
    if (request.level === 'app' && !opaque && g?.ok === true && g.value.unsupportedChannels.length > 0) {
      const why = `mixes opaque channels (${g.value.unsupportedChannels.join(', ')}) with in-band or log ones, which level app does not support in one plan (in-band and log: barriers; all opaque: quiescing); split the plan or use level crash`;
      return fail('failed-precondition', `plan ${plan.value.id} ${why}`);
    }
    if (!epoch.ok) return epoch;
    const fence = this.options.fences?.highestCheckpointId(plan.value.tenant, plan.value.servers) ?? 0;
    const id = await this.store.checkpoints.nextId(fence);
    if (!id.ok) return id;
    if (fence > this.idIssuedMax) void this.noteFence(plan.value, fence, id.value);
    this.idIssuedMax = Math.max(this.idIssuedMax, id.value);
    // The id first, then the key, then the slot: a busy answer leaves a gap in the ids, never a
    // second checkpoint, and a concurrent retry of this very request is told to retry (ABORTED),
    // not that the plan is busy with its own first call.
    const key = request.idempotencyKey;
    if (key) {
      const claimed = await this.store.checkpoints.claimIdempotencyKey(plan.value.id, key, id.value);
      if (!claimed.ok) return claimed;
      if ('existing' in claimed.value) return sameTake(claimed.value.existing.record, request, options);
    }
    const admitted = await this.admit(plan.value.id, id.value, request.periodic ?? false, options.maxConcurrent ?? 1);
    if (!admitted.ok) {
      if (key) await this.store.checkpoints.releaseIdempotencyKey(plan.value.id, key, id.value);
      return admitted;
    }
    const record: CheckpointRecord = {
      id: id.value,
      planId: plan.value.id,
      tenant: plan.value.tenant,
      levelRequested: request.fallbackFrom ? 'app' : request.level,
      ...(request.fallbackFrom ? { fallbackReason: request.fallbackFrom.reason } : {}),
      ...(request.periodic ? { periodic: true } : {}),
      state: 'pending',
      epoch: epoch.value,
      options,
      ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}),
      // After admission: the record's interval is the time it held its slot.
      createdAtUnixMs: this.nowUnixMs(),
      parts: plan.value.apps.map((a) => ({ server: a.server, app: a.app, acked: false })),
      volumes: [],
      safety: request.safety ?? false,
      ...(request.staged ? { holdMs: request.staged.holdMs } : {}),
    };
    const created = await this.store.checkpoints.create(record);
    if (!created.ok || !created.value.created) this.releaseSlot(record.planId, record.id);
    if (!created.ok) return created;
    if (!created.value.created) return sameTake(created.value.existing.record, request, options);
    // Staged at level app: each app holds its sends from its snapshot until the finish (policy sync).
    const policy: PolicyConfig =
      request.level === 'none'
        ? { kind: 'none' }
        : request.staged
          ? { kind: 'sync' }
          : options.alignmentMode === 'unaligned'
          ? { kind: 'unaligned' }
          : options.alignmentTimeoutMs > 0
            ? { kind: 'aligned-timeout', alignmentTimeoutMs: options.alignmentTimeoutMs }
            : { kind: 'aligned' };
    let run: Run;
    try {
      run = this.runFor(request.level, record, plan.value, g?.ok === true ? g.value : undefined, opaque?.ok ? opaque.value : undefined, policy, created.value.stored);
    } finally {
      // Registered below with no await in between; a run that failed to build (a bug) holds no slot.
      this.admitting.delete(record.id);
    }
    this.runs.set(record.id, run);
    const preempted = this.preemptedBeforeRun.get(record.id);
    this.preemptedBeforeRun.delete(record.id);
    if (preempted === undefined) run.start();
    else run.cancel(preempted);
    return ok(run.current);
  }

  /**
   * The round of one checkpoint: the level chosen here (crash; app over in-band channels; app over
   * opaque channels, cut by quiescing), one runner for all of them.
   */
  private runFor(level: TakeSnapshotRequest['level'], record: CheckpointRecord, plan: Plan, g: PlanGraph | undefined, opaque: AppGraph | undefined, policy: PolicyConfig, stored: StoredCheckpoint): Run {
    const volumes = plan.volumes.map((v) => ({ id: v.id, server: v.server }));
    const thawTimeoutMs = Math.max(1_000, Math.min(record.options.freezeDeadlineMs, 30_000));
    const created =
      level === 'crash'
        ? CrashLevel.create({ planId: plan.id, servers: plan.servers, volumes, volumeBackend: this.options.volumes !== undefined, freezeDeadlineMs: record.options.freezeDeadlineMs })
        : opaque
          ? { ok: true as const, level: new OpaqueLevel({ graph: opaque }) as RoundLevel }
          : g === undefined
            ? { ok: false as const, message: "level app or none without the plan's app graph: a bug" }
            : AppLevel.create({
                checkpointId: record.id,
                graph: g,
                policy,
                // Staged: the agents' own timeout of the checkpoint releases the held apps at the hold deadline.
                timeoutMs: record.holdMs ?? record.options.timeoutMs,
                inlineStateBytesMax: inlineStateBytesMax(this.options, plan.apps.length, this.bus.maxPayloadBytes),
                completedBefore: this.lastCompleted.get(plan.id),
                volumes,
                volumeBackend: this.options.volumes !== undefined,
                planId: plan.id,
              });
    if (!created.ok) throw new Error(`checkpoint ${record.id} of plan ${plan.id}: ${created.message}`);
    const deps: RunnerDeps = {
      bus: this.bus,
      store: this.store.checkpoints,
      objects: this.objects,
      volumes: this.options.volumes,
      logger: this.log,
      nowUnixMs: this.nowUnixMs,
      progress: (e) => this.fanOut(e),
      watched: (id) => (this.watchers.get(id)?.size ?? 0) > 0,
      stored,
      ended: (r) => this.ended(r),
      commitTimeoutMs: this.options.commitTimeoutMs,
      thawTimeoutMs,
      // An abort waits for the thaws it asked for (each bounded by thawTimeoutMs) and for captures
      // or a volume snapshot under way, so that what they leave is deleted with the rest.
      settleMs: Math.max(ABORT_SETTLE_MS, thawTimeoutMs + 1_000),
      negativeControls: this.options.negativeControls ?? NO_NEGATIVE_CONTROLS,
    };
    return new CheckpointRunner(record, plan, created.level, deps);
  }

  /** Resolves with the final record of a checkpoint (used by rollback's safety checkpoint). */
  waitFor(id: CheckpointId): Promise<CheckpointRecord> {
    return this.waitUntil(id, 'ended');
  }

  /** Resolves with the record once the checkpoint is held (`held`; or ended first) or ended. */
  private waitUntil(id: CheckpointId, until: Until): Promise<CheckpointRecord> {
    const reached = (r: CheckpointRecord): boolean => TERMINAL_STATES.includes(r.state) || (until === 'held' && r.state === 'held');
    return new Promise((resolve, reject) => {
      const settle = async (): Promise<void> => {
        // The stream may end before a terminal event reached this watcher (the run ended between
        // reading the record and subscribing): the stored record is the final word then.
        const final = await this.get(id);
        if (final.ok) resolve(final.value);
        else reject(new Error(final.error.message));
      };
      void this.watch(
        id,
        (e) => {
          if (reached(e.checkpoint)) resolve(e.checkpoint);
        },
        () => void settle(),
      );
    });
  }

  private fanOut(e: ProgressEvent): void {
    for (const l of this.watchers.get(e.checkpoint.id) ?? []) {
      try {
        l.onEvent(e);
      } catch (error) {
        this.log.warn({ err: error }, 'watcher failed');
      }
    }
  }

  /** Called with every checkpoint that ended, completed or aborted (the periodic schedules listen). */
  onEnded(listener: (record: CheckpointRecord) => void): void {
    this.endedListeners.push(listener);
  }

  /** Called with each checkpoint this coordinator deleted (DeleteCheckpoint, retention, or a delete a stopped coordinator left, finished by recover()), once its record is gone. */
  onDeleted(listener: (record: CheckpointRecord) => void): void {
    this.deletedListeners.push(listener);
  }

  private ended(record: CheckpointRecord): void {
    this.runs.delete(record.id);
    // Completed, but a freeze of file systems with no volume snapshotted and no hook run saved
    // nothing: said loudly (snapctl says it on the checkpoint too), never a silent 0 B backup.
    if (record.state === 'completed' && record.levelAchieved === 'crash' && record.volumes.length === 0 && (record.servers ?? []).every((s) => s.hooks.length === 0)) {
      this.log.warn({ checkpointId: record.id, plan: record.planId, tenant: record.tenant }, 'crash-level checkpoint captured nothing: the plan has no volumes and no server ran a freeze hook');
    }
    void this.releaseSlot(record.planId, record.id);
    for (const l of this.endedListeners) l(record);
    // A cancelled checkpoint was stopped on purpose (a manual request outranking it, a rollback of its
    // plan): falling back would start the very work the cancel was for stopping.
    if (
      record.state === 'aborted' &&
      record.failureReason !== 'cancelled' &&
      record.levelRequested === 'app' &&
      record.options.fallbackPolicy === 'downgrade' &&
      record.fallbackReason === undefined
    ) {
      void this.fallBack(record);
    }
    for (const l of this.watchers.get(record.id) ?? []) l.onEnd();
    this.watchers.delete(record.id);
    if (record.state === 'completed') {
      if (record.id > (this.lastCompleted.get(record.planId) ?? 0)) this.lastCompleted.set(record.planId, record.id);
      this.applyRetention(record);
    }
  }

  /**
   * The `downgrade` fallback: an app-level checkpoint that failed is followed by a crash-level one,
   * recorded with level requested `app`, level achieved `crash` and the reason. Never silent: the
   * failed checkpoint's record names the one that replaced it.
   */
  private async fallBack(failed: CheckpointRecord): Promise<void> {
    const reason = `app-level checkpoint ${failed.id} aborted (${failed.failureReason ?? 'unknown'}: ${failed.failureDetail ?? ''})`;
    const taken = await this.take({
      planId: failed.planId,
      level: 'crash',
      options: failed.options,
      fallbackFrom: { id: failed.id, reason },
    });
    if (!taken.ok) {
      this.log.error({ checkpointId: failed.id, error: taken.error.message }, 'fallback to crash level not possible');
      return;
    }
    await this.store.checkpoints.update(failed.id, (r) => ({ ...r, failureDetail: `${r.failureDetail ?? ''}; fell back to crash-level checkpoint ${taken.value.id}` }));
    this.log.warn({ checkpointId: failed.id, fallback: taken.value.id }, 'fell back to crash level');
  }

  /**
   * Ends the checkpoints a coordinator left behind: a record still in flight that no run of this
   * coordinator owns, older than its own timeout plus the commit timeout (so no live coordinator can
   * still complete it), is marked aborted and its stored parts deleted. Without this, a coordinator
   * that died mid-checkpoint left a `collecting` record and its objects for ever. Returns the ids
   * ended. Run at start-up and now and then (coordinator/main.ts).
   */
  async sweepStale(): Promise<Result<CheckpointId[]>> {
    const now = this.nowUnixMs();
    const stale: CheckpointRecord[] = [];
    let token = '';
    do {
      const page = await this.store.checkpoints.list({ states: IN_FLIGHT_STATES }, 500, token);
      if (!page.ok) return page;
      for (const r of page.value.items) {
        if (this.runs.has(r.id)) continue;
        if (now > r.createdAtUnixMs + r.options.timeoutMs + this.options.commitTimeoutMs + STALE_MARGIN_MS) stale.push(r);
      }
      token = page.value.nextPageToken;
    } while (token !== '');
    const ended: CheckpointId[] = [];
    for (const r of stale) {
      const removed = await retireParts(r, this.objects, this.options.volumes);
      if (!removed.ok) this.log.warn({ checkpointId: r.id, plan: r.planId, tenant: r.tenant, error: removed.error.message }, 'parts of a stale checkpoint not deleted');
      // As recovery does: its coordinator stopped, so snapshots it never wrote down may exist.
      if (this.options.volumes !== undefined && mayHoldVolumeSnapshots(r)) await sweepCheckpointVolumes(this.store, this.options.volumes, this.log, r);
      const detail = `found ${r.state} ${Math.round((now - r.createdAtUnixMs) / 1000)} s after it was created, with no coordinator running it (the one that did stopped): aborted`;
      const updated = await this.store.checkpoints.update(r.id, (cur) =>
        TERMINAL_STATES.includes(cur.state) ? undefined : { ...cur, state: 'aborted', failureReason: 'timeout', failureDetail: detail, finishedAtUnixMs: now },
      );
      if (!updated.ok) {
        this.log.warn({ checkpointId: r.id, error: updated.error.message }, 'stale checkpoint not marked aborted');
        continue;
      }
      this.log.warn({ checkpointId: r.id, plan: r.planId, tenant: r.tenant, state: r.state }, 'stale checkpoint aborted');
      // Its admission slot goes with it, whoever admitted it: the plan is not busy with it any more.
      await this.admission.release(r.planId, r.id);
      ended.push(r.id);
    }
    return ok(ended);
  }

  /**
   * Deletes the objects no checkpoint owns any more (src/control/orphans.ts decides; F11 in
   * docs/RELIABILITY.md): those a round's own late sweep never reached because its coordinator died
   * first, or that an agent without a purge right left behind. Run by the leader at takeover and
   * periodically. The tenants are those with plans; each bucket is listed before its records are
   * read. What could not be listed, read or deleted is in the report and waits for the next sweep.
   */
  async sweepOrphans(): Promise<Result<OrphanSweepReport>> {
    const tenants = new Set<string>();
    let token = '';
    do {
      const page = await this.store.plans.list({}, 500, token);
      if (!page.ok) return page;
      for (const p of page.value.items) tenants.add(p.tenant);
      token = page.value.nextPageToken;
    } while (token !== '');
    const deleted: OrphanedCheckpoint[] = [];
    const problems: string[] = [];
    for (const tenant of [...tenants].sort()) {
      const listed = await this.objects.list(tenant, 'cp/');
      if (!listed.ok) {
        problems.push(`objects of tenant ${tenant} not listed: ${listed.error.message}`);
        continue;
      }
      const owners = new Map<CheckpointId, Owner>();
      for (const id of checkpointIdsOf(listed.value)) owners.set(id, await this.ownerOf(id));
      for (const orphan of findOrphans({ tenant, names: listed.value, owners, nowUnixMs: this.nowUnixMs(), settleMs: ORPHAN_SETTLE_MS })) {
        const removed = await this.objects.delete(tenant, orphan.names);
        if (!removed.ok) {
          problems.push(`objects of checkpoint ${orphan.checkpointId} (tenant ${tenant}) not deleted: ${removed.error.message}`);
          continue;
        }
        this.log.warn({ checkpointId: orphan.checkpointId, tenant, reason: orphan.reason, objects: orphan.names }, 'orphaned objects deleted');
        deleted.push(orphan);
      }
    }
    return ok({ deleted, problems });
  }

  private async ownerOf(id: CheckpointId): Promise<Owner> {
    const run = this.runs.get(id);
    if (run !== undefined) return { kind: 'record', tenant: run.tenant, state: 'in-flight', timeoutMs: 0 };
    const got = await this.store.checkpoints.get(id);
    if (!got.ok) return got.error.kind === 'not-found' ? { kind: 'absent' } : { kind: 'unreadable' };
    const r = got.value.record;
    const state = r.state === 'completed' ? 'completed' : r.state === 'aborted' ? 'ended-incomplete' : 'in-flight';
    return { kind: 'record', tenant: r.tenant, state, timeoutMs: r.options.timeoutMs, ...(r.finishedAtUnixMs !== undefined ? { finishedAtUnixMs: r.finishedAtUnixMs } : {}) };
  }

  /**
   * Retention of a plan (src/control/retention.ts decides): the newest `retainedPerPlan` completed
   * checkpoints are kept (or what the plan's retention policy keeps), and so are pinned ones and the
   * targets and safety checkpoints of the plan's last `rollbacksProtected` rollbacks; the rest go
   * with their parts and volume snapshots.
   * The completed ids of a plan are read from the store once, then kept up to date here: reading
   * every record of the plan at every completion made retention the largest cost of a round for a
   * plan of a thousand apps. Runs one at a time per plan.
   */
  private applyRetention(completed: CheckpointRecord): void {
    const planId = completed.planId;
    const previous = this.retention.get(planId) ?? Promise.resolve();
    const next = previous.then(async () => {
      await this.retainPlan(planId, completed);
      const retained = this.completedIds.get(planId);
      if (this.options.logRetention !== undefined && retained !== undefined) await this.options.logRetention.check(planId, completed.tenant, [...retained.keys()]);
    }).catch((error: unknown) => {
      // A pass that threw must not end retention of the plan: the chain goes on with the next one.
      this.log.error({ plan: planId, tenant: completed.tenant, err: error }, 'retention pass failed');
    });
    this.retention.set(planId, next);
  }

  private async retainPlan(planId: string, completed: CheckpointRecord): Promise<void> {
    let known = this.completedIds.get(planId);
    if (known === undefined) {
      const listed = await this.listCompleted(planId);
      if (!listed.ok) {
        this.log.warn({ plan: planId, error: listed.error.message }, 'retention skipped: completed checkpoints not listed');
        return;
      }
      known = listed.value;
      this.completedIds.set(planId, known);
    }
    if (!known.has(completed.id)) known.set(completed.id, completedEntry(completed));
    const rules = this.options.retentionFor?.(planId);
    // Without a policy nothing goes while the plan has at most keepNewest: the decision's input is
    // not built, which costs O(completed) per checkpoint (3 % of the coordinator's CPU in the depth
    // benchmark, which keeps every one of its 1,030 checkpoints).
    if (rules === undefined && known.size <= this.options.retainedPerPlan) return;
    const asked = {
      completed: [...known].map(([id, c]) => ({ id, ...c })),
      keepNewest: this.options.retainedPerPlan,
      ...(rules !== undefined ? { rules, nowUnixMs: this.nowUnixMs() } : {}),
    };
    // Protection only keeps more: when nothing would go without it, the plan's operations (a key
    // listing, a JetStream consumer each time) need not be read after every completed checkpoint.
    if (decideRetention({ ...asked, protectedIds: [] }).delete.length === 0) return;
    const rollbacks = await this.store.operations.recentRollbacks(planId, this.options.rollbacksProtected);
    if (!rollbacks.ok) {
      // Without them retention cannot tell what protects a rollback: better keep too much.
      this.log.warn({ plan: planId, error: rollbacks.error.message }, 'retention skipped: recent rollbacks not read');
      return;
    }
    const decision = decideRetention({
      ...asked,
      protectedIds: rollbacks.value.flatMap((r) => [
        { id: r.targetId, because: 'rollback-target' as const },
        ...(r.safetyId !== 0 ? [{ id: r.safetyId, because: 'rollback-safety' as const }] : []),
      ]),
    });
    for (const old of decision.delete) {
      const r = await this.delete(old);
      if (!r.ok && r.error.kind === 'failed-precondition') {
        // Pinned since this plan's list was read (the store is the truth): kept, the rest go on.
        const stored = await this.store.checkpoints.get(old);
        const entry = known.get(old);
        if (stored.ok && stored.value.record.pinned === true && entry !== undefined) known.set(old, { ...entry, pinned: true });
        this.log.info({ checkpointId: old, plan: planId, tenant: completed.tenant, reason: r.error.message }, 'checkpoint kept by retention');
        continue;
      }
      if (!r.ok && r.error.kind !== 'not-found') {
        this.log.warn({ checkpointId: old, plan: planId, tenant: completed.tenant, error: r.error.message }, 'checkpoint not deleted by retention; tried again at the next completion');
        return;
      }
      known.delete(old);
      if (r.ok) this.log.info({ checkpointId: old, plan: planId, tenant: completed.tenant, ...r.value }, 'checkpoint deleted by retention');
    }
  }

  private async listCompleted(planId: string): Promise<Result<Map<CheckpointId, CompletedEntry>>> {
    const ids = new Map<CheckpointId, CompletedEntry>();
    let token = '';
    do {
      const page = await this.store.checkpoints.list({ planId, states: ['completed'] }, 500, token);
      if (!page.ok) return page;
      for (const c of page.value.items) ids.set(c.id, completedEntry(c));
      token = page.value.nextPageToken;
    } while (token !== '');
    return ok(ids);
  }

  async get(id: CheckpointId): Promise<Result<CheckpointRecord>> {
    const run = this.runs.get(id);
    if (run) return ok(run.current);
    const stored = await this.store.checkpoints.get(id);
    return stored.ok ? ok(stored.value.record) : stored;
  }

  list(filter: { planId?: string; states?: readonly CheckpointState[] }, pageSize: number, pageToken: string): Promise<Result<Page<CheckpointRecord>>> {
    return this.store.checkpoints.list(filter, pageSize, pageToken);
  }

  async watch(id: CheckpointId, onEvent: (e: ProgressEvent) => void, onEnd: () => void): Promise<Result<() => void>> {
    const current = await this.get(id);
    if (!current.ok) return current;
    if (!this.runs.has(id)) {
      // Not in flight (any more): a run that ended while the record was read is final in the store.
      const final = current.value.state === 'completed' || current.value.state === 'aborted' ? current : await this.get(id);
      if (!final.ok) return final;
      onEvent({ kind: 'state-changed', atUnixMs: this.nowUnixMs(), checkpoint: final.value });
      onEnd();
      return ok(() => undefined);
    }
    onEvent({ kind: 'state-changed', atUnixMs: this.nowUnixMs(), checkpoint: current.value });
    const listener: Listener = { onEvent, onEnd };
    const set = this.watchers.get(id) ?? new Set<Listener>();
    set.add(listener);
    this.watchers.set(id, set);
    return ok(() => {
      set.delete(listener);
    });
  }

  /**
   * Runs a call on one checkpoint under its idempotency key (store/keyed.ts): a retry returns the
   * first call's result; a failed call gives the key back so that a retry runs again.
   */
  private async keyed<T extends object>(kind: KeyedCallKind, key: string | undefined, request: string, call: () => Promise<Result<T>>): Promise<Result<T>> {
    if (key === undefined || key === '') return call();
    const k = { kind, key, request };
    const claim = await this.store.keyed.claim(k);
    if (!claim.ok) return claim;
    if (!claim.value.fresh) return ok(claim.value.result as T);
    const result = await call();
    if (!result.ok) {
      await this.store.keyed.abandon(k, claim.value.revision);
      return result;
    }
    const finished = await this.store.keyed.finish(k, claim.value.revision, result.value as Record<string, unknown>);
    if (!finished.ok) this.log.warn({ kind, error: finished.error.message }, 'result of a keyed call not recorded; a retry may run it again');
    return result;
  }

  delete(id: CheckpointId, idempotencyKey?: string): Promise<Result<DeleteOutcome>> {
    return this.keyed('delete', idempotencyKey, `DeleteCheckpoint ${id}`, async () => {
      const running = this.runs.get(id);
      if (running && !TERMINAL_STATES.includes(running.current.state)) {
        return fail('failed-precondition', `checkpoint ${id} is still running; cancel it (CancelCheckpoint) or delete it once it completed or aborted`);
      }
      const stored = await this.store.checkpoints.get(id);
      if (!stored.ok) return stored.error.kind === 'not-found' ? fail('not-found', `checkpoint ${id} does not exist (never taken, or deleted)`) : stored;
      // Checked before anything is written: a refusal changes nothing.
      const retirable = canRetire(stored.value.record, this.options.volumes);
      if (!retirable.ok) return retirable;
      // The mark first (src/control/retention.ts decides), by compare-and-set: from here a pin is
      // refused, and a delete cut short is finished by a retry or by the next coordinator's recovery.
      let refused: DeleteMarkDecision | undefined;
      const marked = await this.store.checkpoints.update(
        id,
        (r) => {
          const d = decideDeleteMark(r);
          refused = d.type === 'refused' ? d : undefined;
          return d.type === 'mark' ? { ...r, deleting: true } : undefined;
        },
        stored.value,
      );
      if (!marked.ok) return marked.error.kind === 'not-found' ? fail('not-found', `checkpoint ${id} does not exist (never taken, or deleted)`) : marked;
      if (refused?.type === 'refused') {
        const state = marked.value.record.state;
        return fail(
          'failed-precondition',
          refused.reason === 'pinned'
            ? `checkpoint ${id} is pinned; unpin it (UnpinCheckpoint) before deleting it`
            : `checkpoint ${id} is ${state} and run by another coordinator; delete it once it completed or aborted`,
        );
      }
      return this.finishDelete(marked.value.record);
    });
  }

  /** The parts and volume snapshots of a record marked `deleting`, then the record. */
  private async finishDelete(record: CheckpointRecord): Promise<Result<DeleteOutcome>> {
    const retired = await finishMarkedDelete(record, this.objects, this.options.volumes, this.store.checkpoints);
    if (!retired.ok) return retired;
    this.completedIds.get(record.planId)?.delete(record.id);
    this.log.info({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, ...retired.value }, 'checkpoint deleted');
    for (const listener of this.deletedListeners) listener(record);
    return retired;
  }

  cancel(id: CheckpointId, idempotencyKey?: string): Promise<Result<CheckpointRecord>> {
    return this.keyed('cancel', idempotencyKey, `CancelCheckpoint ${id}`, async () => {
      const run = this.runs.get(id);
      if (run && !TERMINAL_STATES.includes(run.current.state)) {
        run.cancel('cancelled by request (CancelCheckpoint)');
        this.log.info({ checkpointId: id, plan: run.current.planId, tenant: run.tenant }, 'checkpoint cancelled by request');
        return ok(run.current);
      }
      const current = await this.get(id);
      if (!current.ok) return current.error.kind === 'not-found' ? fail('not-found', `checkpoint ${id} does not exist (never taken, or deleted)`) : current;
      const state = current.value.state;
      if (state === 'aborted') return ok(current.value);
      if (state === 'completed') return fail('failed-precondition', `checkpoint ${id} already completed; delete it (DeleteCheckpoint) to discard it`);
      return fail('unavailable', `checkpoint ${id} is ${state} but not run by this coordinator; cancel it on the coordinator that runs it`);
    });
  }

  pin(id: CheckpointId, pinned: boolean, idempotencyKey?: string): Promise<Result<CheckpointRecord>> {
    const call = pinned ? 'PinCheckpoint' : 'UnpinCheckpoint';
    return this.keyed(pinned ? 'pin' : 'unpin', idempotencyKey, `${call} ${id}`, async () => {
      // One compare-and-set with a delete's mark (src/control/retention.ts decidePin): of a pin and a
      // delete that race, one is refused.
      let decision: PinDecision | undefined;
      const updated = await this.store.checkpoints.update(id, (r) => {
        decision = decidePin(r, pinned);
        if (decision.type !== 'write') return undefined;
        return pinned ? { ...r, pinned: true } : (({ pinned: _, ...rest }) => rest)(r);
      });
      if (!updated.ok) return updated.error.kind === 'not-found' ? fail('not-found', `checkpoint ${id} does not exist (never taken, or deleted)`) : updated;
      const record = updated.value.record;
      if (decision?.type === 'refused') {
        return fail(
          'failed-precondition',
          decision.reason === 'deleting'
            ? `checkpoint ${id} is being deleted; it cannot be pinned or unpinned`
            : `checkpoint ${id} is ${record.state}; only a completed checkpoint can be pinned or unpinned`,
        );
      }
      this.completedIds.get(record.planId)?.set(id, completedEntry(record));
      this.log.info({ checkpointId: id, plan: record.planId, tenant: record.tenant, pinned }, pinned ? 'checkpoint pinned' : 'checkpoint unpinned');
      return ok(record);
    });
  }

  async verify(id: CheckpointId): Promise<Result<VerifyReport>> {
    const record = await this.get(id);
    if (!record.ok) return record;
    const plan = await this.store.plans.get(record.value.planId);
    return ok(await verifyCheckpoint(record.value, plan.ok ? plan.value : undefined, this.objects));
  }

  private readonly operations: Operations = new Operations({
    take: (r) => this.take(r),
    waitFor: (id) => this.waitFor(id),
    get: (id) => this.get(id),
    cancelRunsOf: (planId, detail) => {
      for (const r of this.runs.values()) if (r.current.planId === planId) r.cancel(detail);
    },
    store: () => this.store,
    restoreDeps: () => ({
      store: this.store,
      bus: this.bus,
      objects: this.objects,
      logger: this.log,
      timeoutMs: this.options.restoreTimeoutMs,
      ...(this.options.agents ? { agents: this.options.agents } : {}),
      ...(this.options.volumes ? { volumes: this.options.volumes } : {}),
    }),
    volumes: () => this.options.volumes,
  });

  async rollback(request: RollbackRequest): Promise<Result<RollbackOutcome>> {
    const result = await this.operations.rollback(request);
    this.operationEnded('rollback', result.ok);
    return result;
  }

  async restore(request: RestoreRequest): Promise<Result<{ epoch: number }>> {
    const result = await this.operations.restore(request);
    this.operationEnded('restore', result.ok);
    return result;
  }

  /** Called with every rollback and restore call that returned (the metrics listen). */
  onOperationEnded(listener: (kind: 'rollback' | 'restore', succeeded: boolean) => void): void {
    this.operationListeners.push(listener);
  }

  private operationEnded(kind: 'rollback' | 'restore', succeeded: boolean): void {
    for (const l of this.operationListeners) l(kind, succeeded);
  }
}

/**
 * What one app of a plan of `apps` apps may ack inline: the configured limit, shared out so that
 * every inline state of the checkpoint together stays within the record's budget. The record is one
 * KV value, so the budget is also at most a quarter of the server's max_payload: base64 makes the
 * states a third larger, and the parts' own fields need the rest.
 */
export function inlineStateBytesMax(o: Pick<CheckpointServiceOptions, 'inlineStateBytesMax' | 'inlineStateRecordBytesMax'>, apps: number, maxPayloadBytes: number): number {
  const budget = Math.min(o.inlineStateRecordBytesMax, Math.floor(maxPayloadBytes / 4));
  return Math.min(o.inlineStateBytesMax, Math.floor(budget / Math.max(1, apps)));
}
