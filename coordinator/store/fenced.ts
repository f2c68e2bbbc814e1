/**
 * Checkpoint records and rollback/restore operation records fenced by the leader's term (docs/ha.md). Every write stamps the writer's term
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
import type { OperationKind } from '../../src/control/operation.js';
import type { ClaimOutcome, OperationRecord, OperationStore, RecentRollback } from './operations.js';

export interface Fence {
  /** The writer's term while its lease is valid; undefined once it is not. */
  term(): number | undefined;
  /** A write was refused for the writer's term: it must step down. */
  refused(reason: string): void;
}

/** A record as stored by a fenced writer: the term of the leader that wrote it last. */
type Termed<T> = T & { readonly leaderTerm?: number };
type TermedRecord = Termed<CheckpointRecord>;

/** The term of the leader that wrote the record last; 0 for a record written without a fence. */
export function leaderTermOf(record: CheckpointRecord | OperationRecord): number {
  const t = (record as Termed<CheckpointRecord | OperationRecord>).leaderTerm;
  return typeof t === 'number' ? t : 0;
}

/** Tells the fence (which steps the coordinator down) and answers UNAVAILABLE. */
function refuse<T>(fence: Fence, reason: string): Result<T> {
  fence.refused(reason);
  return fail('unavailable', `not written, this coordinator no longer leads (${reason})`);
}

function newerTerm(what: string, stored: number, term: number): string {
  return `${what} was written in term ${stored}, newer than this coordinator's term ${term}`;
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
    return refuse(this.fence, reason);
  }

  nextId(above?: CheckpointId): Promise<Result<CheckpointId>> {
    return this.inner.nextId(above);
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
          refusal = newerTerm(`checkpoint ${id}`, stored, term);
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
    if (stored > term.value) return this.refuse(newerTerm(`checkpoint ${id}`, stored, term.value));
    return this.inner.delete(id);
  }
}

/** Operation records fenced the same way: a claim needs a valid lease, a write also a term not older than the record's. */
export class FencedOperationStore implements OperationStore {
  constructor(
    private readonly inner: OperationStore,
    private readonly fence: Fence,
  ) {}

  private refuse<T>(reason: string): Result<T> {
    return refuse(this.fence, reason);
  }

  newId(kind: OperationKind, idempotencyKey: string | undefined): string {
    return this.inner.newId(kind, idempotencyKey);
  }

  async claim(record: OperationRecord): Promise<Result<ClaimOutcome>> {
    const term = this.fence.term();
    if (term === undefined) return this.refuse(`claiming operation ${record.id}: this coordinator's leader lease is not valid`);
    return this.inner.claim({ ...record, leaderTerm: term } as Termed<OperationRecord>);
  }

  async put(record: OperationRecord): Promise<Result<void>> {
    const r = await this.putChecked(record.planId, record.id, () => record);
    return r.ok ? ok(undefined) : r;
  }

  async putChecked(planId: string, id: string, write: (stored: OperationRecord | undefined) => OperationRecord | undefined): Promise<Result<'written' | 'refused'>> {
    let refusal: string | undefined;
    const r = await this.inner.putChecked(planId, id, (stored) => {
      refusal = undefined;
      const term = this.fence.term();
      if (term === undefined) {
        refusal = `writing operation ${id}: this coordinator's leader lease is not valid`;
        return undefined;
      }
      const storedTerm = stored === undefined ? 0 : leaderTermOf(stored);
      if (storedTerm > term) {
        refusal = newerTerm(`operation ${id}`, storedTerm, term);
        return undefined;
      }
      const next = write(stored);
      return next === undefined ? undefined : ({ ...next, leaderTerm: term } as Termed<OperationRecord>);
    });
    return refusal !== undefined ? this.refuse(refusal) : r;
  }

  get(planId: string, id: string): Promise<Result<OperationRecord | undefined>> {
    return this.inner.get(planId, id);
  }

  list(planId: string): Promise<Result<OperationRecord[]>> {
    return this.inner.list(planId);
  }

  unfinished(): Promise<Result<OperationRecord[]>> {
    return this.inner.unfinished();
  }

  recentRollbacks(planId: string, count: number): Promise<Result<readonly RecentRollback[]>> {
    return this.inner.recentRollbacks(planId, count);
  }

  async prune(planId: string, keepMax: number): Promise<Result<number>> {
    if (this.fence.term() === undefined) return this.refuse(`pruning the operations of plan ${planId}: this coordinator's leader lease is not valid`);
    return this.inner.prune(planId, keepMax);
  }
}

/** A store method that answers with a Result (what `leaseChecked` may refuse). */
type ResultMethod = (...args: never[]) => Promise<Result<unknown>>;
type ResultMethodsOf<T> = { [K in keyof T]: T[K] extends ResultMethod ? K : never }[keyof T] & string;

/**
 * The other records (plans, policies, epochs, admission slots, idempotency keys) fenced by the
 * lease alone: each of `writes` is refused unless this coordinator's lease is valid by its own
 * clock, which is what stops a paused leader that wakes up after its lease was taken. These writes
 * carry no term: each is a compare-and-set on its key's revision, and the margin the leader keeps
 * before its lease could be taken (docs/ha.md) covers the write in flight. Reads pass through.
 */
export function leaseChecked<T extends object>(inner: T, what: string, writes: readonly ResultMethodsOf<T>[], fence: Fence): T {
  const guarded = new Map<PropertyKey, unknown>();
  for (const name of writes) {
    const method = (inner[name] as ResultMethod).bind(inner) as (...args: unknown[]) => Promise<Result<unknown>>;
    guarded.set(name, (...args: unknown[]) => {
      if (fence.term() === undefined) return Promise.resolve(refuse(fence, `${what} ${name}: this coordinator's leader lease is not valid`));
      return method(...args);
    });
  }
  return new Proxy(inner, {
    get(target, property) {
      if (guarded.has(property)) return guarded.get(property);
      const v: unknown = Reflect.get(target, property, target);
      return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
    },
  });
}
