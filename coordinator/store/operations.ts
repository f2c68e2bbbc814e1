/**
 * Rollback and restore operations in `snap-meta`, one key per operation: `op.<planId>.<id>`, where
 * the plan is the one whose checkpoint the operation uses. The record is what an operator sees of
 * an operation (its state, epoch, safety checkpoint, and what to do next) and what a retry with the
 * same idempotency key finds: a keyed operation's id is derived from its key, so claiming the key
 * is one atomic create, and a second coordinator racing on the same key finds the first one's claim.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KV } from 'nats';
import type { OperationKind, OperationLevel, OperationOutcome, OperationState } from '../../src/control/operation.js';
import { OPERATION_FINAL_STATES } from '../../src/control/operation.js';
import { fail, ok, type Result } from '../errors.js';
import type { AppRef } from '../model.js';
import { decodeJsonObject, encodeJson } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';
import { KEY_LISTING_MS_MAX, listKeys } from './scan.js';

export interface OperationRecord {
  readonly id: string;
  readonly kind: OperationKind;
  readonly level: OperationLevel;
  /** The plan of the checkpoint used (rolled back, or restored from). */
  readonly planId: string;
  readonly tenant: string;
  readonly checkpointId: number;
  /** The plan (or a restore's own line) whose epoch the operation sets. */
  readonly epochLine: string;
  /** The call in words; a key reused for other words is refused naming both. */
  readonly request: string;
  /** The servers that get its commands: a coordinator that takes the operation over sends to them. */
  readonly servers?: readonly string[];
  /** Restore: where each of the checkpoint's apps (`server/app`) goes, so its restore can be sent again. */
  readonly mapping?: Readonly<Record<string, AppRef>>;
  readonly idempotencyKey?: string;
  readonly state: OperationState;
  readonly detail: string;
  readonly epoch?: number;
  /** 0 when none was taken. */
  readonly safetyCheckpointId: number;
  /** Present once the operation ended. */
  readonly outcome?: OperationOutcome;
  readonly createdAtUnixMs: number;
  readonly updatedAtUnixMs: number;
}

export interface RecentRollback {
  readonly targetId: number;
  readonly safetyId: number | 0;
  readonly atUnixMs: number;
}

export type ClaimOutcome = { readonly created: true } | { readonly created: false; readonly existing: OperationRecord };

export interface OperationStore {
  /** The id of a new operation: derived from the idempotency key when there is one, else fresh. */
  newId(kind: OperationKind, idempotencyKey: string | undefined): string;
  /** Creates the record unless one with its id exists; then returns that one instead. */
  claim(record: OperationRecord): Promise<Result<ClaimOutcome>>;
  /** Writes the record as it is now (the operation's runner is its only writer). */
  put(record: OperationRecord): Promise<Result<void>>;
  /**
   * Writes `write(stored)` by compare-and-set on the revision `stored` was read at, unless
   * `write` answers undefined ('refused': nothing written); on a conflict, reads and asks again.
   */
  putChecked(planId: string, id: string, write: (stored: OperationRecord | undefined) => OperationRecord | undefined): Promise<Result<'written' | 'refused'>>;
  get(planId: string, id: string): Promise<Result<OperationRecord | undefined>>;
  /** Every operation on checkpoints of the plan, newest first. */
  list(planId: string): Promise<Result<OperationRecord[]>>;
  /** Every operation of every plan whose state is not final, oldest first: what a starting coordinator takes over. */
  unfinished(): Promise<Result<OperationRecord[]>>;
  /**
   * The plan's last `count` rollbacks that went past validation, newest first: their targets and
   * safety checkpoints, which retention must keep.
   */
  recentRollbacks(planId: string, count: number): Promise<Result<readonly RecentRollback[]>>;
  /** Deletes the plan's ended operations beyond the newest `keepMax`; returns how many went. */
  prune(planId: string, keepMax: number): Promise<Result<number>>;
}

/**
 * Operations kept per plan: enough for retention's last rollbacks and for retries of recent keys;
 * older ones are deleted when an operation of the plan ends, so the records do not grow for ever.
 */
export const OPERATIONS_KEPT_PER_PLAN = 100;

const PLAN_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The runner is an operation's only writer: a conflict means another coordinator wrote it. */
const PUT_CHECKED_ATTEMPTS_MAX = 8;

export function operationKey(planId: string, id: string): string {
  return `op.${planId}.${id}`;
}

export class JetStreamOperationStore implements OperationStore {
  constructor(
    private readonly meta: KV,
    /** How long listing the operations' keys may take (scan.ts). */
    private readonly listingMsMax = KEY_LISTING_MS_MAX,
  ) {}

  newId(kind: OperationKind, idempotencyKey: string | undefined): string {
    // The key is hashed: it may hold characters a KV key may not, and its length is the caller's.
    // Rollback and restore share a plan's key space, so a key reused across them is a conflict.
    if (idempotencyKey !== undefined) return `k-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 40)}`;
    return `${kind === 'rollback' ? 'rb' : 'rs'}-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  }

  async claim(record: OperationRecord): Promise<Result<ClaimOutcome>> {
    const key = operationKey(record.planId, record.id);
    if (!PLAN_ID.test(record.planId)) return fail('invalid-argument', `plan id ${JSON.stringify(record.planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
    try {
      await this.meta.create(key, encodeJson(record));
      return ok({ created: true });
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `claiming ${key}`) };
    }
    const existing = await this.get(record.planId, record.id);
    if (!existing.ok) return existing;
    if (existing.value === undefined) return fail('unavailable', `operation ${key} was deleted while it was being claimed; retry the call`);
    return ok({ created: false, existing: existing.value });
  }

  async put(record: OperationRecord): Promise<Result<void>> {
    const key = operationKey(record.planId, record.id);
    try {
      await this.meta.put(key, encodeJson(record));
      return ok(undefined);
    } catch (error) {
      return { ok: false, error: storeError(error, `writing ${key}`) };
    }
  }

  async putChecked(planId: string, id: string, write: (stored: OperationRecord | undefined) => OperationRecord | undefined): Promise<Result<'written' | 'refused'>> {
    const key = operationKey(planId, id);
    for (let attempt = 1; attempt <= PUT_CHECKED_ATTEMPTS_MAX; attempt++) {
      const stored = await this.read(planId, id);
      if (!stored.ok) return stored;
      const next = write(stored.value.record);
      if (next === undefined) return ok('refused');
      if (next.id !== id || next.planId !== planId) return fail('internal', `a write of ${key} tried to change its id or plan`);
      try {
        if (stored.value.revision === 0) await this.meta.create(key, encodeJson(next));
        else await this.meta.update(key, encodeJson(next), stored.value.revision);
        return ok('written');
      } catch (error) {
        if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `writing ${key}`) };
      }
    }
    return fail('aborted', `gave up writing ${key} after ${PUT_CHECKED_ATTEMPTS_MAX} compare-and-set conflicts`);
  }

  async get(planId: string, id: string): Promise<Result<OperationRecord | undefined>> {
    const r = await this.read(planId, id);
    return r.ok ? ok(r.value.record) : r;
  }

  /** The record and its revision; revision 0 (create) when there is none. */
  private async read(planId: string, id: string): Promise<Result<{ record: OperationRecord | undefined; revision: number }>> {
    const key = operationKey(planId, id);
    let entry;
    try {
      entry = await this.meta.get(key);
    } catch (error) {
      return { ok: false, error: storeError(error, `reading ${key}`) };
    }
    if (entry === null) return ok({ record: undefined, revision: 0 });
    if (entry.operation !== 'PUT') return ok({ record: undefined, revision: entry.revision });
    const decoded = decodeJsonObject(entry.value, key);
    if (!decoded.ok) return decoded;
    const r = decoded.value;
    if (r['id'] !== id || r['planId'] !== planId || typeof r['state'] !== 'string' || typeof r['request'] !== 'string') {
      return fail('internal', `stored value of ${key} is not an operation record of plan ${planId}`);
    }
    return ok({ record: r as unknown as OperationRecord, revision: entry.revision });
  }

  async list(planId: string): Promise<Result<OperationRecord[]>> {
    if (!PLAN_ID.test(planId)) return fail('invalid-argument', `plan id ${JSON.stringify(planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
    const prefix = `op.${planId}.`;
    const keys = await listKeys(this.meta, `${prefix}*`, this.listingMsMax);
    if (!keys.ok) return keys;
    const ids = keys.value.map((key) => key.slice(prefix.length));
    const records: OperationRecord[] = [];
    for (const r of await Promise.all(ids.map((id) => this.get(planId, id)))) {
      if (!r.ok) return r;
      if (r.value !== undefined) records.push(r.value);
    }
    return ok(records.sort((a, b) => b.createdAtUnixMs - a.createdAtUnixMs || (a.id < b.id ? 1 : -1)));
  }

  async unfinished(): Promise<Result<OperationRecord[]>> {
    const listed = await listKeys(this.meta, 'op.>', this.listingMsMax);
    if (!listed.ok) return listed;
    const keys: { planId: string; id: string }[] = [];
    for (const key of listed.value) {
      // op.<planId>.<id>: a plan id holds no dot.
      const [, planId, ...rest] = key.split('.');
      if (planId !== undefined && rest.length > 0) keys.push({ planId, id: rest.join('.') });
    }
    const records: OperationRecord[] = [];
    for (const r of await Promise.all(keys.map((k) => this.get(k.planId, k.id)))) {
      if (!r.ok) return r;
      if (r.value !== undefined && !operationEnded(r.value)) records.push(r.value);
    }
    return ok(records.sort((a, b) => a.createdAtUnixMs - b.createdAtUnixMs || (a.id < b.id ? -1 : 1)));
  }

  async recentRollbacks(planId: string, count: number): Promise<Result<readonly RecentRollback[]>> {
    if (!Number.isSafeInteger(count) || count < 0) return fail('invalid-argument', `count must be a non-negative integer, got ${count}`);
    const all = await this.list(planId);
    if (!all.ok) return all;
    // A refused rollback changed nothing; any other (even one that failed later) may have taken a
    // safety checkpoint or be what a repair goes back to.
    return ok(
      all.value
        .filter((r) => r.kind === 'rollback' && r.state !== 'refused')
        .slice(0, count)
        .map((r) => ({ targetId: r.checkpointId, safetyId: r.safetyCheckpointId, atUnixMs: r.createdAtUnixMs })),
    );
  }

  async prune(planId: string, keepMax: number): Promise<Result<number>> {
    if (!Number.isSafeInteger(keepMax) || keepMax < 1) return fail('invalid-argument', `keepMax must be a positive integer, got ${keepMax}`);
    const all = await this.list(planId);
    if (!all.ok) return all;
    const old = all.value.slice(keepMax).filter(operationEnded);
    try {
      for (const r of old) await this.meta.purge(operationKey(planId, r.id));
    } catch (error) {
      return { ok: false, error: storeError(error, `deleting old operations of plan ${planId}`) };
    }
    return ok(old.length);
  }
}

/** True when the record's operation has ended (its outcome is final). */
export function operationEnded(r: Pick<OperationRecord, 'state'>): boolean {
  return OPERATION_FINAL_STATES.includes(r.state);
}
