/**
 * Plans and epochs as every checkpoint reads them, from memory kept current by KV watches
 * (coordinator/store/watched-keys.ts) instead of a JetStream round trip and a decode of the whole
 * plan per checkpoint. Writes go to the store and are noted at once, so this process reads its own
 * writes; another coordinator's writes arrive with the watch. While a watch is not ready, reads go
 * to the store as before.
 */
import type { KV } from 'nats';
import type { Logger } from 'pino';
import type { Page } from '../api.js';
import type { Epoch } from '../../src/ids.js';
import { fail, ok, type Result } from '../errors.js';
import type { Plan } from '../model.js';
import type { EpochStore } from './epochs.js';
import { epochKey } from './epochs.js';
import { decodeCounter } from './json.js';
import { checkPlanId, decodePlan, planKey, type PlanFilter, type PlanStore, type PlanValue } from './plans.js';
import { WatchedKeys } from './watched-keys.js';

export class CachedPlanStore implements PlanStore {
  private readonly watched: WatchedKeys<Plan>;

  constructor(
    private readonly inner: PlanStore,
    kv: KV,
    log: Logger | undefined,
  ) {
    // An entry that does not decode is dropped: a read of it goes to the store, which reports it.
    this.watched = new WatchedKeys(kv, planKey('*'), (e) => {
      const plan = decodePlan(e);
      return plan.ok ? plan.value : undefined;
    }, log);
  }

  async create(plan: PlanValue): Promise<Result<Plan>> {
    const r = await this.inner.create(plan);
    if (r.ok) this.watched.noteWritten(planKey(plan.id), r.value.revision, r.value);
    return r;
  }

  async update(plan: PlanValue, expectedRevision: number): Promise<Result<Plan>> {
    const r = await this.inner.update(plan, expectedRevision);
    if (r.ok) this.watched.noteWritten(planKey(plan.id), r.value.revision, r.value);
    return r;
  }

  get(planId: string): Promise<Result<Plan>> {
    const id = checkPlanId(planId);
    if (!id.ok) return Promise.resolve(id);
    if (!this.watched.ready) return this.inner.get(planId);
    const held = this.watched.get(planKey(planId));
    if (typeof held === 'object') return Promise.resolve(ok(held.value));
    // Deleted, or never seen by a ready watch: the store would say the same.
    return Promise.resolve(fail('not-found', `plan ${planId} does not exist`));
  }

  list(filter: PlanFilter, pageSize: number, pageToken: string): Promise<Result<Page<Plan>>> {
    return this.inner.list(filter, pageSize, pageToken);
  }

  async delete(planId: string, expectedRevision?: number): Promise<Result<void>> {
    const r = await this.inner.delete(planId, expectedRevision);
    if (r.ok) this.watched.noteDeleted(planKey(planId));
    return r;
  }

  stop(): void {
    this.watched.stop();
  }
}

export class CachedEpochStore implements EpochStore {
  private readonly watched: WatchedKeys<Epoch>;

  constructor(
    private readonly inner: EpochStore,
    meta: KV,
    log: Logger | undefined,
  ) {
    this.watched = new WatchedKeys(meta, epochKey('*'), (e) => {
      const n = decodeCounter(e.value, e.key);
      return n.ok ? n.value : undefined;
    }, log, (epoch) => epoch);
  }

  get(planId: string): Promise<Result<Epoch>> {
    if (!this.watched.ready || !/^[A-Za-z0-9_-]{1,64}$/.test(planId)) return this.inner.get(planId);
    const held = this.watched.get(epochKey(planId));
    // Never bumped: epoch 0, as the store reads an absent counter.
    return Promise.resolve(ok(typeof held === 'object' ? held.value : 0));
  }

  async bump(planId: string): Promise<Result<Epoch>> {
    const r = await this.inner.bump(planId);
    // Epochs only grow, so they are ranked by value: the new one stands until the watch brings a later one.
    if (r.ok) this.watched.noteWritten(epochKey(planId), r.value, r.value);
    return r;
  }

  stop(): void {
    this.watched.stop();
  }
}
