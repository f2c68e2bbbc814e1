/**
 * The checkpoint operations of the coordinator (CheckpointsApi): take, get, list, watch, verify,
 * delete, rollback and restore. Each checkpoint in flight is a CheckpointRunner; this module owns the
 * request validation, defaults, idempotency, pacing, retention and the fan-out of progress events.
 */
import type { Logger } from 'pino';
import type { PolicyConfig } from '../../src/core/types.js';
import type { CheckpointId } from '../../src/ids.js';
import type { AgentEvent } from '../../src/wire/index.js';
import type { StateObjects } from '../../adapters/state-store.js';
import type { CheckpointsApi, Page, RestoreRequest, TakeSnapshotRequest, VerifyReport } from '../api.js';
import type { ControlBus } from '../bus.js';
import { fail, ok, type Result } from '../errors.js';
import { TERMINAL_STATES, type CheckpointRecord, type CheckpointState, type Plan, type ProgressEvent, type SnapshotOptions } from '../model.js';
import type { CoordinatorStore, StoredCheckpoint } from '../store/index.js';
import { isAllOpaque, opaqueGraph, planGraph, type PlanGraph } from './plan-graph.js';
import type { RestoreDeps } from './restore.js';
import { Operations, type RollbackOutcome, type RollbackRequest } from './operations.js';
import { CheckpointRunner, type RunnerDeps } from './runner.js';
import { AppLevel } from '../../src/control/round-app.js';
import { CrashLevel } from '../../src/control/round-crash.js';
import { OpaqueLevel } from '../../src/control/round-opaque.js';
import type { RoundLevel } from '../../src/control/round.js';
import { NO_NEGATIVE_CONTROLS, type NegativeControls } from '../../src/control/negative-controls.js';
import type { AppGraph } from '../../src/graph/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { verifyCheckpoint } from './verify.js';
import { deleteCheckpointObjects, storedObjectNames } from './part-state.js';

export interface CheckpointServiceOptions {
  readonly defaults: SnapshotOptions;
  /** Checkpoints of one plan in flight at once; a request beyond it is FAILED_PRECONDITION. */
  readonly checkpointsInFlightPerPlanMax: number;
  /** Completed checkpoints kept per plan; older ones (and their objects) are deleted. */
  readonly retainedPerPlan: number;
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
  /** The group snapshot of a crash-level checkpoint; absent: plans with volumes cannot go crash. */
  readonly volumes?: VolumeBackend;
  /** Defects re-created on purpose for the fault simulator (src/control/negative-controls.ts); never in production. */
  readonly negativeControls?: NegativeControls;
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
  onEvent(e: AgentEvent): void;
}

export const CHECKPOINT_SERVICE_DEFAULTS: CheckpointServiceOptions = {
  defaults: { timeoutMs: 30_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 10_000 },
  checkpointsInFlightPerPlanMax: 1,
  retainedPerPlan: 20,
  commitTimeoutMs: 30_000,
  restoreTimeoutMs: 30_000,
  timeoutMsMax: 3_600_000,
  inlineStateBytesMax: 16 * 1024,
  inlineStateRecordBytesMax: 128 * 1024,
};

/** A record in one of these states is a checkpoint some coordinator is (or was) running. */
const IN_FLIGHT_STATES: readonly CheckpointState[] = ['pending', 'triggering', 'collecting', 'committing', 'aborting'];
/** How long an aborted round waits at least for answers under way (captures, a volume snapshot) before it cleans up. */
const ABORT_SETTLE_MS = 10_000;
/** Slack on top of a checkpoint's timeouts before its record counts as left behind (clock skew, a slow commit). */
const STALE_MARGIN_MS = 60_000;

/** The most a checkpoint record may give to inline states (the record is one KV value, below NATS's max_payload). */
export const INLINE_STATE_BYTES_LIMIT = 256 * 1024;

export function validateServiceOptions(o: CheckpointServiceOptions): string | undefined {
  const positive: [string, number][] = [
    ['defaults.timeoutMs', o.defaults.timeoutMs],
    ['checkpointsInFlightPerPlanMax', o.checkpointsInFlightPerPlanMax],
    ['retainedPerPlan', o.retainedPerPlan],
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
  /** Completed checkpoint ids per plan, ascending, once retention has listed them (see applyRetention). */
  private readonly completedIds = new Map<string, CheckpointId[]>();
  private readonly retention = new Map<string, Promise<void>>();
  /** Each plan's newest completed checkpoint, whose complete notice goes out with the next trigger. */
  private readonly lastCompleted = new Map<string, CheckpointId>();
  private readonly log: Logger;

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
    bus.onEvents((e) => this.onEvent(e));
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

  /** In-flight runs, for a clean shutdown. */
  inFlight(): CheckpointId[] {
    return [...this.runs.keys()];
  }

  async take(request: TakeSnapshotRequest): Promise<Result<CheckpointRecord>> {
    // Both reads at once: one round trip instead of two (each costs a socket write and a wake-up).
    const [plan, epoch] = await Promise.all([this.store.plans.get(request.planId), this.store.epochs.get(request.planId)]);
    if (!plan.ok) return plan;
    const options: SnapshotOptions = { ...this.options.defaults, ...definedOnly(request.options) };
    if (options.timeoutMs > this.options.timeoutMsMax) {
      return fail('invalid-argument', `timeout_ms ${options.timeoutMs} is above the maximum ${this.options.timeoutMsMax}`);
    }
    if (request.idempotencyKey) {
      const existing = await this.store.checkpoints.findByIdempotencyKey(request.planId, request.idempotencyKey);
      if (!existing.ok) return existing;
      if (existing.value) return ok(existing.value);
    }
    if (request.level !== 'app' && plan.value.volumes.length > 0 && !this.options.volumes) {
      return fail('failed-precondition', `plan ${plan.value.id} has volumes but this coordinator has no volume backend: start it with --volume-backend directory:PATH or command:FILE`);
    }
    const g = planGraph(plan.value);
    if (!g.ok) return fail('failed-precondition', g.message);
    // Level app: in-band channels run the barrier protocol, a plan of opaque channels only is cut by
    // quiescing (src/control/round-opaque.ts); anything else (log channels, in-band mixed with opaque) is not supported.
    const opaque = request.level === 'app' && isAllOpaque(plan.value) ? opaqueGraph(plan.value) : undefined;
    if (opaque && !opaque.ok) return fail('failed-precondition', opaque.message);
    if (request.level === 'app' && !opaque && g.value.unsupportedChannels.length > 0) {
      const kinds = new Set(plan.value.channels.map((c) => c.kind));
      const why =
        kinds.has('opaque') && kinds.has('in-band') && !kinds.has('log')
          ? `mixes in-band and opaque channels, which level app does not support in one plan (all in-band: barriers; all opaque: quiescing); split the plan or use level crash`
          : `has channels level app does not support in this version (in-band only, or opaque only): ${g.value.unsupportedChannels.join(', ')}`;
      return fail('failed-precondition', `plan ${plan.value.id} ${why}`);
    }
    // A run whose record is already final only finishes its last store writes: it is not in flight
    // (a caller that saw it completed or aborted must be able to take the next one at once).
    const inFlight = (): Run[] =>
      [...this.runs.values()].filter((r) => r.current.planId === request.planId && !TERMINAL_STATES.includes(r.current.state) && r.current.state !== 'aborting');
    // A manual request outranks periodic checkpoints: those in its way are cancelled.
    if (!request.periodic) {
      for (const r of inFlight()) if (r.current.periodic) r.cancel(`a manual checkpoint request outranks periodic checkpoint ${r.id}`);
    }
    const running = inFlight();
    if (running.length >= this.options.checkpointsInFlightPerPlanMax) {
      return fail('failed-precondition', `checkpoint ${running.map((r) => r.id).join(', ')} of plan ${request.planId} is still running (at most ${this.options.checkpointsInFlightPerPlanMax} at once)`);
    }
    if (!epoch.ok) return epoch;
    const id = await this.store.checkpoints.nextId();
    if (!id.ok) return id;
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
      createdAtUnixMs: this.nowUnixMs(),
      parts: plan.value.apps.map((a) => ({ server: a.server, app: a.app, acked: false })),
      volumes: [],
      safety: request.safety ?? false,
    };
    const created = await this.store.checkpoints.create(record);
    if (!created.ok) return created;
    if (!created.value.created) return ok(created.value.existing.record);
    const policy: PolicyConfig =
      request.level === 'none'
        ? { kind: 'none' }
        : options.alignmentMode === 'unaligned'
          ? { kind: 'unaligned' }
          : options.alignmentTimeoutMs > 0
            ? { kind: 'aligned-timeout', alignmentTimeoutMs: options.alignmentTimeoutMs }
            : { kind: 'aligned' };
    const run: Run = this.runFor(request.level, record, plan.value, g.value, opaque?.ok ? opaque.value : undefined, policy, created.value.stored);
    this.runs.set(record.id, run);
    run.start();
    return ok(run.current);
  }

  /**
   * The round of one checkpoint: the level chosen here (crash; app over in-band channels; app over
   * opaque channels, cut by quiescing), one runner for all of them.
   */
  private runFor(level: TakeSnapshotRequest['level'], record: CheckpointRecord, plan: Plan, g: PlanGraph, opaque: AppGraph | undefined, policy: PolicyConfig, stored: StoredCheckpoint): Run {
    const volumes = plan.volumes.map((v) => ({ id: v.id, server: v.server }));
    const thawTimeoutMs = Math.max(1_000, Math.min(record.options.freezeDeadlineMs, 30_000));
    const created =
      level === 'crash'
        ? CrashLevel.create({ planId: plan.id, servers: plan.servers, volumes, volumeBackend: this.options.volumes !== undefined, freezeDeadlineMs: record.options.freezeDeadlineMs })
        : opaque
          ? { ok: true as const, level: new OpaqueLevel({ graph: opaque }) as RoundLevel }
          : AppLevel.create({
              checkpointId: record.id,
              graph: g,
              policy,
              timeoutMs: record.options.timeoutMs,
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
          if (TERMINAL_STATES.includes(e.checkpoint.state)) resolve(e.checkpoint);
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

  private ended(record: CheckpointRecord): void {
    this.runs.delete(record.id);
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
      const removed = await deleteCheckpointObjects(this.objects, r);
      if (!removed.ok) this.log.warn({ checkpointId: r.id, error: removed.message }, 'parts of a stale checkpoint not deleted');
      const detail = `found ${r.state} ${Math.round((now - r.createdAtUnixMs) / 1000)} s after it was created, with no coordinator running it (the one that did stopped): aborted`;
      const updated = await this.store.checkpoints.update(r.id, (cur) =>
        TERMINAL_STATES.includes(cur.state) ? undefined : { ...cur, state: 'aborted', failureReason: 'timeout', failureDetail: detail, finishedAtUnixMs: now },
      );
      if (!updated.ok) {
        this.log.warn({ checkpointId: r.id, error: updated.error.message }, 'stale checkpoint not marked aborted');
        continue;
      }
      this.log.warn({ checkpointId: r.id, plan: r.planId, tenant: r.tenant, state: r.state }, 'stale checkpoint aborted');
      ended.push(r.id);
    }
    return ok(ended);
  }

  /**
   * Keeps the newest `retainedPerPlan` completed checkpoints of a plan; deletes the rest with their
   * objects. The completed ids of a plan are read from the store once, then kept up to date here:
   * reading every record of the plan at every completion made retention the largest cost of a round
   * for a plan of a thousand apps. Runs one at a time per plan.
   */
  private applyRetention(completed: CheckpointRecord): void {
    const planId = completed.planId;
    const previous = this.retention.get(planId) ?? Promise.resolve();
    const next = previous.then(async () => {
      let ids = this.completedIds.get(planId);
      if (ids === undefined) {
        const listed = await this.listCompleted(planId);
        if (!listed.ok) {
          this.log.warn({ plan: planId, error: listed.error.message }, 'retention skipped: completed checkpoints not listed');
          return;
        }
        ids = listed.value;
        this.completedIds.set(planId, ids);
      }
      if (!ids.includes(completed.id)) ids.push(completed.id);
      ids.sort((a, b) => a - b);
      while (ids.length > this.options.retainedPerPlan) {
        const old = ids[0] as CheckpointId;
        const r = await this.delete(old);
        if (!r.ok && r.error.kind !== 'not-found') {
          this.log.warn({ checkpointId: old, plan: planId, error: r.error.message }, 'checkpoint not deleted by retention; tried again at the next completion');
          return;
        }
        if (ids.includes(old)) ids.splice(ids.indexOf(old), 1);
        this.log.info({ checkpointId: old, plan: planId }, 'checkpoint deleted by retention');
      }
    });
    this.retention.set(planId, next);
  }

  private async listCompleted(planId: string): Promise<Result<CheckpointId[]>> {
    const ids: CheckpointId[] = [];
    let token = '';
    do {
      const page = await this.store.checkpoints.list({ planId, states: ['completed'] }, 500, token);
      if (!page.ok) return page;
      ids.push(...page.value.items.map((c) => c.id));
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

  async delete(id: CheckpointId): Promise<Result<void>> {
    if (this.runs.has(id)) return fail('failed-precondition', `checkpoint ${id} is still running; it can be deleted once it completed or aborted`);
    const stored = await this.store.checkpoints.get(id);
    if (!stored.ok) return stored;
    const removed = await this.objects.delete(stored.value.record.tenant, storedObjectNames(stored.value.record));
    if (!removed.ok) return fail('unavailable', `the parts of checkpoint ${id} could not be deleted: ${removed.error.message}`);
    const deleted = await this.store.checkpoints.delete(id);
    if (deleted.ok) {
      const ids = this.completedIds.get(stored.value.record.planId);
      if (ids?.includes(id)) ids.splice(ids.indexOf(id), 1);
    }
    return deleted;
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

  rollback(request: RollbackRequest): Promise<Result<RollbackOutcome>> {
    return this.operations.rollback(request);
  }

  restore(request: RestoreRequest): Promise<Result<{ epoch: number }>> {
    return this.operations.restore(request);
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

function definedOnly<T extends object>(o: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
