/**
 * Checkpoint records in the `snap-checkpoints` bucket, and the coordinator-wide id sequence in
 * `snap-meta`.
 *
 * Keys:
 * - `cp.<id, zero-padded to 16 digits>`: the record. Padding makes key order id order, and 16
 *   digits hold every safe integer.
 * - `idem.<planId>.<sha-256 of the idempotency key, hex>`: the claim of an idempotency key, holding
 *   the id of the checkpoint that owns it. Claimed (compare-and-set create) before the record is
 *   written, so two concurrent takes with one key cannot both create a checkpoint.
 *
 * Every write is compare-and-set on the KV revision; `update` re-reads and re-applies its function
 * on a conflict, so callers write "what the record should become", never a blind overwrite.
 */
import { createHash } from 'node:crypto';
import type { KV, KvEntry } from 'nats';
import type { CheckpointId } from '../../src/ids.js';
import { isCheckpointId } from '../../src/ids.js';
import type { Page } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointRecord, CheckpointState } from '../model.js';
import { incrementCounter, pauseBeforeRetry, type CasRetry, type CounterState } from './counter.js';
import { decodeJsonObject, encodeJson } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';
import { decodePageToken, filterFingerprint, validatePageSize } from './page-token.js';
import { getLive, listKeys, scanPage } from './scan.js';

export interface StoredCheckpoint {
  readonly record: CheckpointRecord;
  /** KV revision of the record: what the next compare-and-set write must match. */
  readonly revision: number;
}

export interface CheckpointFilter {
  readonly planId?: string;
  /** Only records in one of these states; undefined or empty: any state. */
  readonly states?: readonly CheckpointState[];
  /** Only records marked `deleting` (deletes begun and not finished). */
  readonly deleting?: boolean;
}

/**
 * `created: false` when the record carried an idempotency key that an existing checkpoint of the
 * plan already owns: that checkpoint is returned and nothing was written (the caller's id is
 * simply never used; ids may have gaps, they are never reused).
 */
export type CreateOutcome =
  | { readonly created: true; readonly stored: StoredCheckpoint }
  | { readonly created: false; readonly existing: StoredCheckpoint };

export type IdempotencyClaim = { readonly key: string; readonly revision: number } | { readonly existing: StoredCheckpoint };

export interface CheckpointStore {
  /**
   * The next id: strictly greater than every id handed out before, by any coordinator, and than
   * `above`, which the agents' fences give (an id an app has begun that this store never issued,
   * from a store that lost its counter or a broken sender: the ids go on past it), unless `above`
   * is more than CHECKPOINT_ID_JUMP_MAX beyond them: ids are shared by every tenant, and one
   * tenant's agent must not use them up.
   */
  nextId(above?: CheckpointId): Promise<Result<CheckpointId>>;
  /**
   * ALREADY_EXISTS when the id is taken; ABORTED when another request with the same idempotency
   * key is being created right now (retry it and get that one's checkpoint).
   */
  create(record: CheckpointRecord): Promise<Result<CreateOutcome>>;
  get(id: CheckpointId): Promise<Result<StoredCheckpoint>>;
  /**
   * Reads the record, applies `fn`, and writes the result if the record is still at the revision
   * read; on a conflict, reads and applies again (so `fn` must be pure: it may run several times).
   * `fn` returning undefined leaves the record as it is. Resolves with the record as stored.
   * `known`: the record as the caller last stored it, tried first instead of a read (a sole writer
   * saves a round trip per write); a conflict falls back to reading.
   */
  update(id: CheckpointId, fn: (current: CheckpointRecord) => CheckpointRecord | undefined, known?: StoredCheckpoint): Promise<Result<StoredCheckpoint>>;
  /** Newest first. */
  list(filter: CheckpointFilter, pageSize: number, pageToken: string): Promise<Result<Page<CheckpointRecord>>>;
  findByIdempotencyKey(planId: string, key: string): Promise<Result<CheckpointRecord | undefined>>;
  /**
   * Claims the key for a checkpoint about to be created under `checkpointId` (whose `create` then
   * finds the claim its own), or finds the checkpoint that owns it; ABORTED while another request
   * with the key is being processed. Lets a caller hold the key across admission, so a concurrent
   * retry is told to retry rather than that the plan is busy with its own first call.
   */
  claimIdempotencyKey(planId: string, key: string, checkpointId: CheckpointId): Promise<Result<IdempotencyClaim>>;
  /** Gives the key back if `checkpointId` still holds it (the checkpoint was never created). */
  releaseIdempotencyKey(planId: string, key: string, checkpointId: CheckpointId): Promise<void>;
  /** Deletes the record and its idempotency claim; NOT_FOUND when absent. Stored parts are the caller's. */
  delete(id: CheckpointId): Promise<Result<void>>;
}

export interface CheckpointStoreLimits extends CasRetry {
  readonly pageSizeMax: number;
  /**
   * An idempotency claim whose checkpoint record is still missing after this long is taken over:
   * the coordinator that claimed it died between claim and record. Younger claims answer ABORTED
   * (retry), since their record is probably being written right now.
   */
  readonly idempotencyClaimStaleMs: number;
}

const RECORD_PREFIX = 'cp.';
const CLAIM_PREFIX = 'idem.';
const ID_DIGITS = 16;
export const CHECKPOINT_ID_COUNTER_KEY = 'checkpoint-id';

export function checkpointKey(id: CheckpointId): string {
  return `${RECORD_PREFIX}${String(id).padStart(ID_DIGITS, '0')}`;
}

function idFromKey(key: string): number | undefined {
  if (!key.startsWith(RECORD_PREFIX)) return undefined;
  const digits = key.slice(RECORD_PREFIX.length);
  if (!/^[0-9]{16}$/.test(digits)) return undefined;
  const id = Number(digits);
  return isCheckpointId(id) ? id : undefined;
}

function claimKey(planId: string, idempotencyKey: string): string {
  return `${CLAIM_PREFIX}${planId}.${createHash('sha256').update(idempotencyKey, 'utf8').digest('hex')}`;
}

function notFound<T>(id: CheckpointId): Result<T> {
  return fail('not-found', `checkpoint ${id} does not exist`);
}

function decodeRecord(entry: KvEntry): Result<CheckpointRecord> {
  const json = decodeJsonObject(entry.value, entry.key);
  if (!json.ok) return json;
  const v = json.value;
  if (typeof v.id !== 'number' || checkpointKey(v.id) !== entry.key || typeof v.planId !== 'string' || typeof v.state !== 'string' || !Array.isArray(v.parts)) {
    return fail('internal', `stored checkpoint ${entry.key} is not a checkpoint record`);
  }
  return ok(v as unknown as CheckpointRecord);
}

function checkRecord(record: CheckpointRecord): Result<CheckpointRecord> {
  if (!isCheckpointId(record.id)) return fail('internal', `checkpoint id ${record.id} is not a positive safe integer`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(record.planId)) return fail('internal', `checkpoint ${record.id} has an invalid plan id`);
  return ok(record);
}

interface Claim {
  readonly checkpointId: number;
  readonly revision: number;
  readonly createdAtUnixMs: number;
}

/** How far an agent's fence may move the id counter in one step (2^40: the 53-bit ids take 8,192 such steps). */
export const CHECKPOINT_ID_JUMP_MAX = 2 ** 40;

export class JetStreamCheckpointStore implements CheckpointStore {
  /** The id counter as this store last wrote it: the next increment tries it before reading. */
  private lastId: CounterState | undefined;
  /** The id allocations of this process, one after another (see nextId). */
  private idQueue: Promise<void> = Promise.resolve();
  private readonly idRetry: CasRetry;

  constructor(
    private readonly records: KV,
    private readonly meta: KV,
    private readonly limits: CheckpointStoreLimits,
    private readonly now: () => number = Date.now,
  ) {
    for (const [name, value, min] of [
      ['pageSizeMax', limits.pageSizeMax, 1],
      ['casAttemptsMax', limits.casAttemptsMax, 1],
      ['casRetryDelayMsMax', limits.casRetryDelayMsMax, 0],
      ['idempotencyClaimStaleMs', limits.idempotencyClaimStaleMs, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got ${value}`);
    }
    this.idRetry = { casAttemptsMax: Number.MAX_SAFE_INTEGER, casRetryDelayMsMax: Math.max(1, limits.casRetryDelayMsMax) };
  }

  /**
   * Never fails for contention (issue 9, defect 5: 47 of 200 concurrent calls gave up after a few
   * compare-and-set conflicts). The calls of this process go one at a time, so the store's own
   * cached revision wins at the first attempt and conflicts come only from other coordinators; those
   * are retried without a limit, since each conflict means another caller got its id.
   */
  nextId(above: CheckpointId = 0): Promise<Result<CheckpointId>> {
    const next = this.idQueue.then(() =>
      incrementCounter(
        this.meta,
        CHECKPOINT_ID_COUNTER_KEY,
        this.idRetry,
        () => this.highestStoredId(),
        this.lastId,
        (written) => {
          this.lastId = written;
        },
        above > 0 ? { value: above, jumpMax: CHECKPOINT_ID_JUMP_MAX } : undefined,
      ),
    );
    this.idQueue = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  async create(record: CheckpointRecord): Promise<Result<CreateOutcome>> {
    const checked = checkRecord(record);
    if (!checked.ok) return checked;
    let claim: { key: string; revision: number } | undefined;
    if (record.idempotencyKey !== undefined && record.idempotencyKey !== '') {
      const claimed = await this.claim(record);
      if (!claimed.ok) return claimed;
      if ('existing' in claimed.value) return ok({ created: false, existing: claimed.value.existing });
      claim = claimed.value;
    }
    try {
      const revision = await this.records.create(checkpointKey(record.id), encodeJson(record));
      return ok({ created: true, stored: { record, revision } });
    } catch (error) {
      // Give the key back so a retry is not told "being created" until the claim goes stale.
      if (claim !== undefined) await this.records.delete(claim.key, { previousSeq: claim.revision }).catch(() => undefined);
      if (isWrongLastSequence(error)) return fail('already-exists', `checkpoint ${record.id} already exists`);
      return { ok: false, error: storeError(error, `creating checkpoint ${record.id}`) };
    }
  }

  async get(id: CheckpointId): Promise<Result<StoredCheckpoint>> {
    if (!isCheckpointId(id)) return fail('invalid-argument', `checkpoint id must be a positive integer, got ${id}`);
    const entry = await getLive(this.records, checkpointKey(id));
    if (!entry.ok) return entry;
    if (entry.value === undefined) return notFound(id);
    const record = decodeRecord(entry.value);
    return record.ok ? ok({ record: record.value, revision: entry.value.revision }) : record;
  }

  async update(id: CheckpointId, fn: (current: CheckpointRecord) => CheckpointRecord | undefined, known?: StoredCheckpoint): Promise<Result<StoredCheckpoint>> {
    for (let attempt = 1; attempt <= this.limits.casAttemptsMax; attempt++) {
      const current = attempt === 1 && known !== undefined && known.record.id === id ? ok(known) : await this.get(id);
      if (!current.ok) return current;
      const next = fn(current.value.record);
      if (next === undefined) return current;
      if (next.id !== id || next.planId !== current.value.record.planId) {
        return fail('internal', `an update of checkpoint ${id} tried to change its id or plan`);
      }
      try {
        const revision = await this.records.update(checkpointKey(id), encodeJson(next), current.value.revision);
        return ok({ record: next, revision });
      } catch (error) {
        if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `updating checkpoint ${id}`) };
      }
      await pauseBeforeRetry(this.limits, attempt);
    }
    return fail('aborted', `gave up updating checkpoint ${id} after ${this.limits.casAttemptsMax} compare-and-set conflicts`);
  }

  async list(filter: CheckpointFilter, pageSize: number, pageToken: string): Promise<Result<Page<CheckpointRecord>>> {
    const size = validatePageSize(pageSize, this.limits.pageSizeMax);
    if (!size.ok) return size;
    const states = filter.states !== undefined && filter.states.length > 0 ? [...new Set(filter.states)].sort() : undefined;
    const deleting = filter.deleting === true;
    const fingerprint = filterFingerprint({ kind: 'checkpoints', planId: filter.planId ?? null, states: states ?? null, ...(deleting ? { deleting } : {}) });
    const after = decodePageToken(pageToken, fingerprint);
    if (!after.ok) return after;
    const keys = await listKeys(this.records, `${RECORD_PREFIX}*`);
    if (!keys.ok) return keys;
    // Newest first: padded keys sort like their ids, so reverse code-unit order is descending id.
    const sorted = keys.value
      .filter((key) => idFromKey(key) !== undefined && (after.value === undefined || key < after.value))
      .sort()
      .reverse();
    return scanPage(this.records, {
      keys: sorted,
      pageSize,
      fingerprint,
      decode: (entry) => {
        const record = decodeRecord(entry);
        if (!record.ok) return record;
        const r = record.value;
        const keep = (filter.planId === undefined || r.planId === filter.planId) && (states === undefined || states.includes(r.state)) && (!deleting || r.deleting === true);
        return ok(keep ? r : undefined);
      },
    });
  }

  async findByIdempotencyKey(planId: string, key: string): Promise<Result<CheckpointRecord | undefined>> {
    const claim = await this.readClaim(claimKey(planId, key));
    if (!claim.ok) return claim;
    if (claim.value === undefined) return ok(undefined);
    const stored = await this.get(claim.value.checkpointId);
    if (!stored.ok) return stored.error.kind === 'not-found' ? ok(undefined) : stored;
    const r = stored.value.record;
    return ok(r.planId === planId && r.idempotencyKey === key ? r : undefined);
  }

  async delete(id: CheckpointId): Promise<Result<void>> {
    const current = await this.get(id);
    if (!current.ok) return current;
    const { record, revision } = current.value;
    try {
      await this.records.delete(checkpointKey(id), { previousSeq: revision });
    } catch (error) {
      if (isWrongLastSequence(error)) return fail('aborted', `checkpoint ${id} changed while it was being deleted; retry`);
      return { ok: false, error: storeError(error, `deleting checkpoint ${id}`) };
    }
    if (record.idempotencyKey !== undefined && record.idempotencyKey !== '') {
      const key = claimKey(record.planId, record.idempotencyKey);
      const claim = await this.readClaim(key);
      // Only our own claim: the key may have been taken over since (see idempotencyClaimStaleMs).
      if (claim.ok && claim.value?.checkpointId === id) {
        await this.records.delete(key, { previousSeq: claim.value.revision }).catch(() => undefined);
      }
    }
    return ok(undefined);
  }

  /** The highest id with a record; 0 when there is none. Seeds the counter if snap-meta was lost. */
  private async highestStoredId(): Promise<Result<number>> {
    const keys = await listKeys(this.records, `${RECORD_PREFIX}*`);
    if (!keys.ok) return keys;
    return ok(keys.value.reduce((max, key) => Math.max(max, idFromKey(key) ?? 0), 0));
  }

  private async readClaim(key: string): Promise<Result<Claim | undefined>> {
    const entry = await getLive(this.records, key);
    if (!entry.ok) return entry;
    if (entry.value === undefined) return ok(undefined);
    const json = decodeJsonObject(entry.value.value, key);
    if (!json.ok) return json;
    const checkpointId = json.value.checkpointId;
    if (typeof checkpointId !== 'number' || !isCheckpointId(checkpointId)) return fail('internal', `idempotency claim ${key} holds no checkpoint id`);
    return ok({ checkpointId, revision: entry.value.revision, createdAtUnixMs: entry.value.created.getTime() });
  }

  /** Claims the record's idempotency key, or finds the checkpoint that owns it. */
  claimIdempotencyKey(planId: string, key: string, checkpointId: CheckpointId): Promise<Result<IdempotencyClaim>> {
    return this.claim({ planId, idempotencyKey: key, id: checkpointId });
  }

  async releaseIdempotencyKey(planId: string, key: string, checkpointId: CheckpointId): Promise<void> {
    const k = claimKey(planId, key);
    const claim = await this.readClaim(k);
    if (claim.ok && claim.value?.checkpointId === checkpointId) await this.records.delete(k, { previousSeq: claim.value.revision }).catch(() => undefined);
  }

  private async claim(record: Pick<CheckpointRecord, 'planId' | 'idempotencyKey' | 'id'>): Promise<Result<IdempotencyClaim>> {
    const key = claimKey(record.planId, record.idempotencyKey ?? '');
    const value = encodeJson({ checkpointId: record.id });
    for (let attempt = 1; attempt <= this.limits.casAttemptsMax; attempt++) {
      try {
        return ok({ key, revision: await this.records.create(key, value) });
      } catch (error) {
        if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `claiming an idempotency key of plan ${record.planId}`) };
      }
      const claim = await this.readClaim(key);
      if (!claim.ok) return claim;
      if (claim.value === undefined) continue; // released in between: try to create it again
      // Claimed by this very checkpoint beforehand (claimIdempotencyKey, before admission): ours.
      if (claim.value.checkpointId === record.id) return ok({ key, revision: claim.value.revision });
      const owner = await this.get(claim.value.checkpointId);
      if (owner.ok) return ok({ existing: owner.value });
      if (owner.error.kind !== 'not-found') return owner;
      if (this.now() - claim.value.createdAtUnixMs < this.limits.idempotencyClaimStaleMs) {
        return fail('aborted', `a request with the same idempotency key for plan ${record.planId} is being processed; retry to get its checkpoint`);
      }
      try {
        return ok({ key, revision: await this.records.update(key, value, claim.value.revision) });
      } catch (error) {
        if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `taking over an idempotency key of plan ${record.planId}`) };
      }
      await pauseBeforeRetry(this.limits, attempt);
    }
    return fail('aborted', `gave up claiming an idempotency key of plan ${record.planId} after ${this.limits.casAttemptsMax} conflicts`);
  }
}
