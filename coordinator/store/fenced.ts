/**
 * Checkpoint records fenced by the leader's term (docs/ha.md). Every write stamps the writer's term
 * on the record (`leaderTerm`) and is refused when the record as read carries a newer term, or when
 * the writer's lease is no longer valid by its own clock. The check runs on the record at the exact
 * revision the compare-and-set write then names, so "the term is not stale" and "nothing changed
 * since" hold together: a deposed leader whose write races the new leader's either finds the new
 * term on its re-read, or loses the compare-and-set.
 *
 * A refused write answers UNAVAILABLE (this coordinator no longer leads: ask the leader) and tells
 * the fence, which steps the coordinator down.
 */
import type { CheckpointId } from '../../src/ids.js';
import type { Page } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import type { CheckpointFilter, CheckpointStore, CreateOutcome, IdempotencyClaim, StoredCheckpoint } from './checkpoints.js';

export interface Fence {
  /** The writer's term while its lease is valid; undefined once it is not. */
  term(): number | undefined;
  /** A write was refused for the writer's term: it must step down. */
  refused(reason: string): void;
}

/** A record as stored by a fenced writer: the term of the leader that wrote it last. */
type TermedRecord = CheckpointRecord & { readonly leaderTerm?: number };

export function leaderTermOf(record: CheckpointRecord): number {
  const t = (record as TermedRecord).leaderTerm;
  return typeof t === 'number' ? t : 0;
}

export class FencedCheckpointStore implements CheckpointStore {
  constructor(
    private readonly inner: CheckpointStore,
    private readonly fence: Fence,
  ) {}

  /** The writer's term, or the refusal (already told to the fence). */
  private termOrRefuse(what: string): Result<number> {
    const term = this.fence.term();
    if (term !== undefined) return ok(term);
    return this.refuse(`${what}: this coordinator's leader lease is not valid`);
  }

  private refuse<T>(reason: string): Result<T> {
    this.fence.refused(reason);
    return fail('unavailable', `not written, this coordinator no longer leads (${reason})`);
  }

  nextId(): Promise<Result<CheckpointId>> {
    return this.inner.nextId();
  }

  async create(record: CheckpointRecord): Promise<Result<CreateOutcome>> {
    const term = this.termOrRefuse(`creating checkpoint ${record.id}`);
    if (!term.ok) return term;
    return this.inner.create({ ...record, leaderTerm: term.value } as TermedRecord);
  }

  get(id: CheckpointId): Promise<Result<StoredCheckpoint>> {
    return this.inner.get(id);
  }

  async update(id: CheckpointId, fn: (current: CheckpointRecord) => CheckpointRecord | undefined, known?: StoredCheckpoint): Promise<Result<StoredCheckpoint>> {
    let refusal: string | undefined;
    const r = await this.inner.update(
      id,
      (current) => {
        refusal = undefined;
        const term = this.fence.term();
        if (term === undefined) {
          refusal = `updating checkpoint ${id}: this coordinator's leader lease is not valid`;
          return undefined;
        }
        const stored = leaderTermOf(current);
        if (stored > term) {
          refusal = `checkpoint ${id} was written in term ${stored}, newer than this coordinator's term ${term}`;
          return undefined;
        }
        const next = fn(current);
        return next === undefined ? undefined : ({ ...next, leaderTerm: term } as TermedRecord);
      },
      known,
    );
    return refusal !== undefined ? this.refuse(refusal) : r;
  }

  list(filter: CheckpointFilter, pageSize: number, pageToken: string): Promise<Result<Page<CheckpointRecord>>> {
    return this.inner.list(filter, pageSize, pageToken);
  }

  findByIdempotencyKey(planId: string, key: string): Promise<Result<CheckpointRecord | undefined>> {
    return this.inner.findByIdempotencyKey(planId, key);
  }

  async claimIdempotencyKey(planId: string, key: string, checkpointId: CheckpointId): Promise<Result<IdempotencyClaim>> {
    const term = this.termOrRefuse(`claiming an idempotency key of plan ${planId}`);
    if (!term.ok) return term;
    return this.inner.claimIdempotencyKey(planId, key, checkpointId);
  }

  releaseIdempotencyKey(planId: string, key: string, checkpointId: CheckpointId): Promise<void> {
    return this.inner.releaseIdempotencyKey(planId, key, checkpointId);
  }

  async delete(id: CheckpointId): Promise<Result<void>> {
    const term = this.termOrRefuse(`deleting checkpoint ${id}`);
    if (!term.ok) return term;
    const current = await this.inner.get(id);
    if (!current.ok) return current;
    const stored = leaderTermOf(current.value.record);
    if (stored > term.value) return this.refuse(`checkpoint ${id} was written in term ${stored}, newer than this coordinator's term ${term.value}`);
    return this.inner.delete(id);
  }
}
