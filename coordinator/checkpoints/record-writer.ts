/**
 * What every kind of checkpoint run shares about its record: the fields a lifecycle state sets,
 * writes to the store one after another in the order the lifecycle asked for them, and the
 * progress event a watcher receives.
 */
import type { Logger } from 'pino';
import type { CheckpointRecord, ConsistencyLevel, FailureReason, ProgressEvent } from '../model.js';
import { fail, type Result } from '../errors.js';
import type { CheckpointStore, StoredCheckpoint } from '../store/index.js';

export type Failure = { readonly reason: FailureReason; readonly detail: string } | null;

/** The fields a state sets on the record: timestamps, the level achieved, the failure. */
export function stateFields(state: CheckpointRecord['state'], failure: Failure, nowUnixMs: number, levelAchieved: ConsistencyLevel): Partial<CheckpointRecord> {
  switch (state) {
    case 'triggering':
      return { triggeredAtUnixMs: nowUnixMs };
    case 'completed':
      return { finishedAtUnixMs: nowUnixMs, levelAchieved };
    case 'aborted':
      return { finishedAtUnixMs: nowUnixMs, ...(failure ? { failureReason: failure.reason, failureDetail: failure.detail } : {}) };
    case 'aborting':
      return failure ? { failureReason: failure.reason, failureDetail: failure.detail } : {};
    default:
      return {};
  }
}

type Update = (r: CheckpointRecord) => CheckpointRecord;

/** Why a commit failed before its write: the reason the checkpoint is aborted with. */
export class CommitError extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Writes a run's record changes in the order they were asked for, coalescing: the updates that
 * queue up while a write is in flight go out together in the next one. A round of a thousand acks
 * is then a handful of writes, not a thousand read-modify-write cycles of a growing record.
 */
export class RecordWriter {
  private writes: Promise<void> = Promise.resolve();
  private pending: { readonly fn: Update; readonly key: string | undefined }[] = [];
  /** The outcome of the latest write. */
  private last: Result<StoredCheckpoint> | undefined;
  private written: ((r: Result<StoredCheckpoint>) => void) | undefined;

  /** `stored`: the record as created, so that the first write needs no read. */
  constructor(
    private readonly store: CheckpointStore,
    private readonly id: number,
    private readonly log: Logger,
    private stored?: StoredCheckpoint,
  ) {}

  /** Called with the outcome of every write (the round retries a failed refresh). */
  onWritten(listener: (r: Result<StoredCheckpoint>) => void): void {
    this.written = listener;
  }

  /**
   * The commit point (invariant 6): stores `current()` as completed and resolves with the fields the
   * completed state added. A failed write may still have landed (a timeout, a lost reply): the error
   * says so, and the round reads the record back (`readBack`) rather than guess.
   */
  async commitCompleted(current: () => CheckpointRecord, levelAchieved: ConsistencyLevel, nowUnixMs: number): Promise<Result<Partial<CheckpointRecord>>> {
    const fields = stateFields('completed', null, nowUnixMs, levelAchieved);
    const written = await this.write((r) => ({ ...r, ...current(), ...fields, state: 'completed' }));
    return written.ok ? { ok: true, value: fields } : written;
  }

  /**
   * The record as stored, read after every write queued before it. A record that is not completed is
   * written back unchanged (compare-and-set): that moves its revision, so a commit write still in
   * flight somewhere can no longer land after this answer. A completed one is left as it is.
   */
  readBack(): Promise<Result<CheckpointRecord>> {
    return new Promise((resolve) => {
      this.writes = this.writes
        .then(async () => {
          const r = await this.store.update(this.id, (record) => (record.state === 'completed' ? undefined : record));
          this.stored = r.ok ? r.value : undefined;
          resolve(r.ok ? { ok: true, value: r.value.record } : r);
        })
        .catch((error: unknown) => resolve(fail('internal', `the checkpoint record could not be read back: ${String(error)}`)));
    });
  }

  /**
   * Queues an update like `persist` and resolves with its outcome: for the writes a decision rests
   * on (the commit), where a failure must be seen rather than logged.
   */
  write(fn: Update): Promise<Result<StoredCheckpoint>> {
    return new Promise((resolve) => {
      this.persist(fn);
      // The batch that takes this update is the last one queued: its outcome is this write's.
      this.writes = this.writes.then(() => {
        resolve(this.last ?? fail('internal', 'the checkpoint record write failed (see the log)'));
      });
    });
  }

  /**
   * Queues a compare-and-set update of the stored record behind every earlier one. An update with a
   * `key` reads live state when it is applied, so one of each key waiting is enough: later ones
   * with the same key are dropped.
   */
  persist(fn: Update, key?: string): void {
    if (key !== undefined && this.pending.some((p) => p.key === key)) return;
    this.pending.push({ fn, key });
    // A write is already queued that has not started: it takes this update too.
    if (this.pending.length > 1) return;
    this.writes = this.writes
      .then(async () => {
        const batch = this.pending;
        this.pending = [];
        this.last = undefined;
        const r = await this.store.update(this.id, (record) => batch.reduce((acc, u) => u.fn(acc), record), this.stored);
        this.stored = r.ok ? r.value : undefined;
        this.last = r;
        if (!r.ok) this.log.error({ error: r.error.message }, 'checkpoint record not written');
        this.written?.(r);
      })
      .catch((error: unknown) => this.log.error({ err: error }, 'checkpoint record write failed'));
  }

  /** Resolves once every update queued so far is written (or logged as failed). */
  flushed(): Promise<void> {
    return this.writes;
  }
}

export function progressEvent(
  kind: ProgressEvent['kind'],
  atUnixMs: number,
  checkpoint: CheckpointRecord,
  where: { server?: string | undefined; app?: string | undefined; detail?: string | undefined },
): ProgressEvent {
  return {
    kind,
    atUnixMs,
    ...(where.server !== undefined ? { server: where.server } : {}),
    ...(where.app !== undefined ? { app: where.app } : {}),
    ...(where.detail !== undefined ? { detail: where.detail } : {}),
    checkpoint,
  };
}
