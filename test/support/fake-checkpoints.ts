/**
 * An in-memory CheckpointsApi for tests of the gRPC edge and snapctl: no NATS, no agents. A taken
 * checkpoint completes on its own through a scripted sequence of progress events (plan `aborts`:
 * the last app declines and it aborts; plan `corrupt`: verify finds a problem), except for the
 * plan `stuck`, whose checkpoints never end (for cancellation tests). Checkpoint id 666 makes
 * `get` throw, standing in for a bug behind the API.
 */
import type { BeginCheckpointRequest, CheckpointsApi, DeleteOutcome, FinishCheckpointRequest, Page, TakeSnapshotRequest, VerifyReport } from '../../coordinator/api.js';
import { fail, ok, type Result } from '../../coordinator/errors.js';
import type { CheckpointRecord, CheckpointState, ProgressEvent } from '../../coordinator/model.js';
import type { CheckpointId } from '../../src/ids.js';

export const THROWING_CHECKPOINT_ID = 666;
export const STUCK_PLAN = 'stuck';
/** An unwatched checkpoint starts its script after this long. */
const UNWATCHED_START_MS = 10_000;

export class FakeCheckpoints implements CheckpointsApi {
  readonly records = new Map<number, CheckpointRecord>();
  /** Ids whose watch was stopped (by a cancel or the end of the stream). */
  readonly stopped: number[] = [];
  private nextId = 1;
  private readonly listeners = new Map<number, Set<(e: ProgressEvent) => void>>();
  private readonly enders = new Map<number, Set<() => void>>();
  private readonly starters = new Map<number, () => void>();

  constructor(
    /** Apps of every taken checkpoint. */
    private readonly apps: readonly { server: string; app: string }[] = [
      { server: 'srv1', app: 'APP1' },
      { server: 'srv2', app: 'APP2' },
    ],
    /** Pause between scripted events, in ms. */
    private readonly stepMs = 5,
  ) {}

  async take(request: TakeSnapshotRequest): Promise<Result<CheckpointRecord>> {
    if (request.planId === 'missing') return fail('not-found', `plan ${request.planId} does not exist`);
    const existing = [...this.records.values()].find((r) => r.planId === request.planId && request.idempotencyKey !== undefined && r.idempotencyKey === request.idempotencyKey);
    if (existing !== undefined) return ok(existing);
    const id = this.nextId++;
    const record: CheckpointRecord = {
      id,
      planId: request.planId,
      tenant: 'acme',
      levelRequested: request.level,
      state: 'pending',
      epoch: 0,
      options: {
        timeoutMs: request.options.timeoutMs ?? 60_000,
        alignmentMode: request.options.alignmentMode ?? 'aligned',
        alignmentTimeoutMs: request.options.alignmentTimeoutMs ?? 0,
        fallbackPolicy: request.options.fallbackPolicy ?? 'fail',
        freezeDeadlineMs: request.options.freezeDeadlineMs ?? 30_000,
      },
      ...(request.idempotencyKey !== undefined ? { idempotencyKey: request.idempotencyKey } : {}),
      createdAtUnixMs: 1_700_000_000_000,
      parts: this.apps.map((a) => ({ ...a, acked: false })),
      volumes: [],
      safety: false,
    };
    this.records.set(id, record);
    if (request.planId !== STUCK_PLAN) {
      // The script starts with the first watcher, so a watch sees every event whatever the
      // scheduling; unwatched checkpoints still finish, a little later.
      const timer = setTimeout(() => this.start(id), UNWATCHED_START_MS);
      timer.unref();
      this.starters.set(id, () => {
        clearTimeout(timer);
        void this.script(id, request.planId === 'aborts');
      });
    }
    return ok(record);
  }

  /** Staged: held at once (no agents here); finished with the volumes given, completed. */
  async begin(request: BeginCheckpointRequest): Promise<Result<CheckpointRecord>> {
    const taken = await this.take({ planId: request.planId, level: request.level, options: request.options, ...(request.idempotencyKey !== undefined ? { idempotencyKey: request.idempotencyKey } : {}) });
    if (!taken.ok) return taken;
    // No script: a staged checkpoint waits for its finish.
    this.starters.delete(taken.value.id);
    const held: CheckpointRecord = { ...taken.value, state: 'held', holdMs: request.holdMs };
    this.records.set(held.id, held);
    return ok(held);
  }

  async finish(request: FinishCheckpointRequest): Promise<Result<CheckpointRecord>> {
    const r = this.records.get(request.checkpointId);
    if (r === undefined) return fail('not-found', `checkpoint ${request.checkpointId} does not exist`);
    if (r.state !== 'held') return fail('failed-precondition', `checkpoint ${r.id} is ${r.state}, not held`);
    const done: CheckpointRecord = {
      ...r,
      state: 'completed',
      levelAchieved: r.levelRequested,
      callerVolumes: request.volumes.map((v) => ({ volumeId: v.volumeId, server: v.server, snapshotRef: v.snapshotRef, frozenAtUnixMs: 0, snapshotAtUnixMs: v.startedAtUnixMs, thawedAtUnixMs: v.endedAtUnixMs })),
    };
    this.records.set(r.id, done);
    return ok(done);
  }

  private emit(id: number, event: Omit<ProgressEvent, 'checkpoint' | 'atUnixMs'>, change: (r: CheckpointRecord) => CheckpointRecord): void {
    const record = this.records.get(id);
    if (record === undefined) return;
    const next = change(record);
    this.records.set(id, next);
    for (const l of this.listeners.get(id) ?? []) l({ ...event, atUnixMs: 1_700_000_000_000, checkpoint: next });
  }

  private async script(id: number, aborts: boolean): Promise<void> {
    const pause = (): Promise<void> => new Promise((r) => setTimeout(r, this.stepMs));
    await pause();
    this.emit(id, { kind: 'state-changed' }, (r) => ({ ...r, state: 'collecting', triggeredAtUnixMs: 1_700_000_000_010 }));
    for (const [i, app] of this.apps.entries()) {
      await pause();
      if (aborts && i === this.apps.length - 1) {
        this.emit(id, { kind: 'app-declined', server: app.server, app: app.app, detail: 'hook-failed' }, (r) => r);
        this.emit(id, { kind: 'state-changed' }, (r) => ({ ...r, state: 'aborted', failureReason: 'declined', failureDetail: `${app.server}/${app.app} declined`, finishedAtUnixMs: 1_700_000_000_100 }));
        return this.end(id);
      }
      this.emit(id, { kind: 'app-acked', server: app.server, app: app.app }, (r) => ({
        ...r,
        parts: r.parts.map((p) =>
          p.server === app.server && p.app === app.app
            ? { ...p, acked: true, ackedAtUnixMs: 1_700_000_000_050 + i, syncMs: 3, asyncMs: 4, state: { name: `cp/x/${id}/${app.server}/${app.app}/state`, digest: 'SHA-256=x', sizeBytes: 100 } }
            : p,
        ),
      }));
    }
    await pause();
    this.emit(id, { kind: 'state-changed' }, (r) => ({ ...r, state: 'completed', levelAchieved: r.levelRequested, finishedAtUnixMs: 1_700_000_000_100 }));
    this.end(id);
  }

  private start(id: number): void {
    const starter = this.starters.get(id);
    this.starters.delete(id);
    starter?.();
  }

  private end(id: number): void {
    for (const e of this.enders.get(id) ?? []) e();
  }

  async get(id: CheckpointId): Promise<Result<CheckpointRecord>> {
    if (id === THROWING_CHECKPOINT_ID) throw new Error('a bug behind the API');
    const record = this.records.get(id);
    return record === undefined ? fail('not-found', `checkpoint ${id} does not exist`) : ok(record);
  }

  async list(filter: { planId?: string; states?: readonly CheckpointState[] }, pageSize: number, pageToken: string): Promise<Result<Page<CheckpointRecord>>> {
    const after = pageToken === '' ? Infinity : Number(pageToken);
    const all = [...this.records.values()]
      .filter((r) => (filter.planId === undefined || r.planId === filter.planId) && (filter.states === undefined || filter.states.includes(r.state)) && r.id < after)
      .sort((a, b) => b.id - a.id);
    const items = all.slice(0, pageSize);
    return ok({ items, nextPageToken: all.length > pageSize ? String(items[items.length - 1]?.id ?? '') : '' });
  }

  async watch(id: CheckpointId, onEvent: (e: ProgressEvent) => void, onEnd: () => void): Promise<Result<() => void>> {
    const record = this.records.get(id);
    if (record === undefined) return fail('not-found', `checkpoint ${id} does not exist`);
    onEvent({ kind: 'state-changed', atUnixMs: 1_700_000_000_000, checkpoint: record });
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      this.listeners.get(id)?.delete(onEvent);
      this.enders.get(id)?.delete(end);
      this.stopped.push(id);
    };
    const end = (): void => {
      stop();
      onEnd();
    };
    if (record.state === 'completed' || record.state === 'aborted') {
      queueMicrotask(end);
      return ok(stop);
    }
    if (!this.listeners.has(id)) this.listeners.set(id, new Set());
    if (!this.enders.has(id)) this.enders.set(id, new Set());
    this.listeners.get(id)?.add(onEvent);
    this.enders.get(id)?.add(end);
    this.start(id);
    return ok(stop);
  }

  async rollback(request: { checkpointId: CheckpointId; skipSafetyCheckpoint: boolean }): Promise<Result<{ safetyCheckpointId: CheckpointId | 0; epoch: number }>> {
    const record = this.records.get(request.checkpointId);
    if (record === undefined) return fail('not-found', `checkpoint ${request.checkpointId} does not exist`);
    if (record.state !== 'completed') return fail('failed-precondition', `checkpoint ${request.checkpointId} is ${record.state}, not completed`);
    return ok({ safetyCheckpointId: request.skipSafetyCheckpoint ? 0 : 1000 + request.checkpointId, epoch: 1 });
  }

  async restore(request: { checkpointId: CheckpointId }): Promise<Result<{ epoch: number }>> {
    return this.records.has(request.checkpointId) ? ok({ epoch: 2 }) : fail('not-found', `checkpoint ${request.checkpointId} does not exist`);
  }

  async verify(id: CheckpointId): Promise<Result<VerifyReport>> {
    const record = this.records.get(id);
    if (record === undefined) return fail('not-found', `checkpoint ${id} does not exist`);
    if (record.planId === 'corrupt') return ok({ ok: false, problems: [{ part: 'srv1/APP1 state', detail: 'digest mismatch' }] });
    return ok({ ok: true, problems: [] });
  }

  async delete(id: CheckpointId): Promise<Result<DeleteOutcome>> {
    const r = this.records.get(id);
    if (r === undefined) return fail('not-found', `checkpoint ${id} does not exist`);
    this.records.delete(id);
    return ok({ deletedObjects: r.parts.length, deletedVolumeSnapshots: r.volumes.map((v) => v.snapshotRef) });
  }

  async cancel(id: CheckpointId): Promise<Result<CheckpointRecord>> {
    const r = this.records.get(id);
    if (r === undefined) return fail('not-found', `checkpoint ${id} does not exist`);
    if (r.state === 'completed') return fail('failed-precondition', `checkpoint ${id} already completed`);
    const aborted: CheckpointRecord = { ...r, state: 'aborted', failureReason: 'cancelled' };
    this.records.set(id, aborted);
    return ok(aborted);
  }

  async pin(id: CheckpointId, pinned: boolean): Promise<Result<CheckpointRecord>> {
    const r = this.records.get(id);
    if (r === undefined) return fail('not-found', `checkpoint ${id} does not exist`);
    if (r.state !== 'completed') return fail('failed-precondition', `checkpoint ${id} is ${r.state}`);
    const next: CheckpointRecord = { ...r, pinned };
    this.records.set(id, next);
    return ok(next);
  }

  /** For PlanRegistry's callbacks. */
  hasCheckpoints = async (planId: string): Promise<Result<boolean>> => ok([...this.records.values()].some((r) => r.planId === planId));

  deleteCheckpoints = async (planId: string): Promise<Result<void>> => {
    for (const [id, r] of this.records) if (r.planId === planId) this.records.delete(id);
    return ok(undefined);
  };
}
