/**
 * Plan policies in the `snap-plans` bucket, one key `policy.<plan id>` each, beside the plans they
 * belong to (history 5 there, so `nats kv history snap-plans policy.<id>` shows the last changes).
 * As for plans, the KV revision is the compare-and-set token, read from the entry, never stored.
 */
import type { KV, KvEntry } from 'nats';
import type { Page } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { Policy } from '../policies/model.js';
import { decodeJsonObject, encodeJson } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';
import { getLive, listPrefixed } from './scan.js';

export type PolicyValue = Omit<Policy, 'revision'>;

export interface PolicyStore {
  /** ALREADY_EXISTS when the plan has a policy. */
  create(policy: PolicyValue): Promise<Result<Policy>>;
  /** expectedRevision 0: whatever the revision; otherwise FAILED_PRECONDITION if it moved on. NOT_FOUND if absent. */
  update(policy: PolicyValue, expectedRevision: number): Promise<Result<Policy>>;
  get(planId: string): Promise<Result<Policy>>;
  /** Sorted by plan id. */
  list(filter: { readonly tenant?: string }, pageSize: number, pageToken: string): Promise<Result<Page<Policy>>>;
  delete(planId: string): Promise<Result<void>>;
}

const KEY_PREFIX = 'policy.';

export function policyKey(planId: string): string {
  return `${KEY_PREFIX}${planId}`;
}

function decodePolicy(entry: KvEntry): Result<Policy> {
  const json = decodeJsonObject(entry.value, entry.key);
  if (!json.ok) return json;
  const v = json.value;
  if (typeof v.planId !== 'string' || policyKey(v.planId) !== entry.key || typeof v.tenant !== 'string') {
    return fail('internal', `stored policy ${entry.key} does not carry its own plan id and tenant`);
  }
  return ok({ ...(v as unknown as PolicyValue), revision: entry.revision });
}

export class JetStreamPolicyStore implements PolicyStore {
  constructor(
    private readonly kv: KV,
    private readonly pageSizeMax: number,
  ) {}

  async create(policy: PolicyValue): Promise<Result<Policy>> {
    try {
      const revision = await this.kv.create(policyKey(policy.planId), encodeJson(policy));
      return ok({ ...policy, revision });
    } catch (error) {
      if (isWrongLastSequence(error)) return fail('already-exists', `plan ${policy.planId} has a policy already; update it (UpdatePolicy) or delete it first`);
      return { ok: false, error: storeError(error, `creating the policy of plan ${policy.planId}`) };
    }
  }

  async update(policy: PolicyValue, expectedRevision: number): Promise<Result<Policy>> {
    const current = await this.live(policy.planId);
    if (!current.ok) return current;
    const revision = expectedRevision === 0 ? current.value.revision : expectedRevision;
    if (current.value.revision !== revision) return this.moved(policy.planId, revision, current.value.revision);
    try {
      const next = await this.kv.update(policyKey(policy.planId), encodeJson(policy), revision);
      return ok({ ...policy, revision: next });
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `updating the policy of plan ${policy.planId}`) };
      const now = await this.live(policy.planId);
      return now.ok ? this.moved(policy.planId, revision, now.value.revision) : now;
    }
  }

  async get(planId: string): Promise<Result<Policy>> {
    const entry = await this.live(planId);
    return entry.ok ? decodePolicy(entry.value) : entry;
  }

  list(filter: { readonly tenant?: string }, pageSize: number, pageToken: string): Promise<Result<Page<Policy>>> {
    return listPrefixed(this.kv, KEY_PREFIX, { filter: { kind: 'policies', tenant: filter.tenant ?? null }, pageSize, pageSizeMax: this.pageSizeMax, pageToken }, (entry) => {
      const policy = decodePolicy(entry);
      if (!policy.ok) return policy;
      return ok(filter.tenant === undefined || policy.value.tenant === filter.tenant ? policy.value : undefined);
    });
  }

  async delete(planId: string): Promise<Result<void>> {
    const current = await this.live(planId);
    if (!current.ok) return current;
    try {
      await this.kv.delete(policyKey(planId), { previousSeq: current.value.revision });
      return ok(undefined);
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `deleting the policy of plan ${planId}`) };
      return fail('aborted', `the policy of plan ${planId} changed while it was deleted; retry`);
    }
  }

  private async live(planId: string): Promise<Result<KvEntry>> {
    const entry = await getLive(this.kv, policyKey(planId));
    if (!entry.ok) return entry;
    return entry.value === undefined ? fail('not-found', `plan ${planId} has no policy`) : ok(entry.value);
  }

  private moved<T>(planId: string, expected: number, actual: number): Result<T> {
    return fail('failed-precondition', `the policy of plan ${planId} is at revision ${actual}, not ${expected}: it was changed since you read it; get it again and retry`);
  }
}
