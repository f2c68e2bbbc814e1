/**
 * What every kind of checkpoint run shares about its record: the fields a lifecycle state sets,
 * writes to the store one after another in the order the lifecycle asked for them, and the
 * progress event a watcher receives.
 */
import type { Logger } from 'pino';
import type { CheckpointRecord, ConsistencyLevel, FailureReason, ProgressEvent } from '../model.js';
import type { CheckpointStore } from '../store/index.js';

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

export class RecordWriter {
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: CheckpointStore,
    private readonly id: number,
    private readonly log: Logger,
  ) {}

  /** Queues a compare-and-set update of the stored record behind every earlier one. */
  persist(fn: (r: CheckpointRecord) => CheckpointRecord): void {
    this.writes = this.writes
      .then(async () => {
        const r = await this.store.update(this.id, fn);
        if (!r.ok) this.log.error({ error: r.error.message }, 'checkpoint record not written');
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
