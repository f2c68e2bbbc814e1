/**
 * Plans in the `snap-plans` bucket, one key `plan.<id>` each. The KV revision is the plan's
 * compare-and-set token: it is not stored in the value but read from the entry, so it can never
 * disagree with what the store enforces.
 *
 * This store checks nothing about a plan's content (coordinator/plans.ts does); it only keeps the
 * create/replace/delete races honest.
 */
import type { KV, KvEntry } from 'nats';
import type { Page } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { Plan } from '../model.js';
import { decodeJsonObject, encodeJson } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';
import { getLive, listPrefixed } from './scan.js';

/** A plan as written: everything but the revision, which the store assigns. */
export type PlanValue = Omit<Plan, 'revision'>;

export interface PlanFilter {
  /** Only this tenant's plans; undefined: all. */
  readonly tenant?: string;
}

export interface PlanStore {
  /** ALREADY_EXISTS when a plan with this id exists. */
  create(plan: PlanValue): Promise<Result<Plan>>;
  /** Replaces the plan only at `expectedRevision`: FAILED_PRECONDITION if it moved on, NOT_FOUND if gone. */
  update(plan: PlanValue, expectedRevision: number): Promise<Result<Plan>>;
  get(planId: string): Promise<Result<Plan>>;
  /** Sorted by id; `pageToken` from the previous page ('' for the first). */
  list(filter: PlanFilter, pageSize: number, pageToken: string): Promise<Result<Page<Plan>>>;
  /** NOT_FOUND when absent; with `expectedRevision`, FAILED_PRECONDITION if the plan moved on. */
  delete(planId: string, expectedRevision?: number): Promise<Result<void>>;
}

const KEY_PREFIX = 'plan.';
/** Plan ids are `[A-Za-z0-9_-]{1,64}`, all of which are legal in a KV key token. */
const PLAN_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function planKey(planId: string): string {
  return `${KEY_PREFIX}${planId}`;
}

export function checkPlanId(planId: string): Result<string> {
  return PLAN_ID.test(planId) ? ok(planId) : fail('invalid-argument', `plan id ${JSON.stringify(planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
}

export function decodePlan(entry: KvEntry): Result<Plan> {
  const json = decodeJsonObject(entry.value, entry.key);
  if (!json.ok) return json;
  const v = json.value;
  if (typeof v.id !== 'string' || `${KEY_PREFIX}${v.id}` !== entry.key || typeof v.tenant !== 'string') {
    return fail('internal', `stored plan ${entry.key} does not carry its own id and tenant`);
  }
  return ok({ ...(v as unknown as PlanValue), revision: entry.revision });
}

export class JetStreamPlanStore implements PlanStore {
  constructor(
    private readonly kv: KV,
    private readonly pageSizeMax: number,
  ) {
    if (!Number.isInteger(pageSizeMax) || pageSizeMax < 1) throw new Error(`pageSizeMax must be a positive integer, got ${pageSizeMax}`);
  }

  async create(plan: PlanValue): Promise<Result<Plan>> {
    const id = checkPlanId(plan.id);
    if (!id.ok) return id;
    try {
      const revision = await this.kv.create(planKey(plan.id), encodeJson(plan));
      return ok({ ...plan, revision });
    } catch (error) {
      if (isWrongLastSequence(error)) return fail('already-exists', `plan ${plan.id} already exists; register it with its current revision to replace it`);
      return { ok: false, error: storeError(error, `creating plan ${plan.id}`) };
    }
  }

  async update(plan: PlanValue, expectedRevision: number): Promise<Result<Plan>> {
    const id = checkPlanId(plan.id);
    if (!id.ok) return id;
    // Read first: a deleted plan keeps a delete marker with a revision of its own, and a caller
    // holding that number must get NOT_FOUND, not a resurrected plan.
    const current = await this.live(plan.id);
    if (!current.ok) return current;
    if (current.value.revision !== expectedRevision) return this.moved(plan.id, expectedRevision, current.value.revision);
    try {
      const revision = await this.kv.update(planKey(plan.id), encodeJson(plan), expectedRevision);
      return ok({ ...plan, revision });
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `updating plan ${plan.id}`) };
      const now = await this.live(plan.id);
      return now.ok ? this.moved(plan.id, expectedRevision, now.value.revision) : now;
    }
  }

  async get(planId: string): Promise<Result<Plan>> {
    const id = checkPlanId(planId);
    if (!id.ok) return id;
    const entry = await this.live(planId);
    return entry.ok ? decodePlan(entry.value) : entry;
  }

  list(filter: PlanFilter, pageSize: number, pageToken: string): Promise<Result<Page<Plan>>> {
    return listPrefixed(this.kv, KEY_PREFIX, { filter: { kind: 'plans', tenant: filter.tenant ?? null }, pageSize, pageSizeMax: this.pageSizeMax, pageToken }, (entry) => {
      const plan = decodePlan(entry);
      if (!plan.ok) return plan;
      return ok(filter.tenant === undefined || plan.value.tenant === filter.tenant ? plan.value : undefined);
    });
  }

  async delete(planId: string, expectedRevision?: number): Promise<Result<void>> {
    const id = checkPlanId(planId);
    if (!id.ok) return id;
    const current = await this.live(planId);
    if (!current.ok) return current;
    const revision = expectedRevision ?? current.value.revision;
    if (current.value.revision !== revision) return this.moved(planId, revision, current.value.revision);
    try {
      // Delete, not purge: the history stays for an operator to inspect, and the plan's key keeps
      // its sequence so a concurrent writer holding the old revision still loses.
      await this.kv.delete(planKey(planId), { previousSeq: revision });
      return ok(undefined);
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `deleting plan ${planId}`) };
      const now = await this.live(planId);
      return now.ok ? this.moved(planId, revision, now.value.revision) : now;
    }
  }

  private async live(planId: string): Promise<Result<KvEntry>> {
    const entry = await getLive(this.kv, planKey(planId));
    if (!entry.ok) return entry;
    return entry.value === undefined ? fail('not-found', `plan ${planId} does not exist`) : ok(entry.value);
  }

  private moved<T>(planId: string, expected: number, actual: number): Result<T> {
    return fail('failed-precondition', `plan ${planId} is at revision ${actual}, not ${expected}: it was changed since you read it; get it again and retry`);
  }
}
