/**
 * Each plan's epoch in `snap-meta` under `epoch.<planId>`. A plan starts in epoch 0 (what every
 * participant of the core starts in); each rollback or restore bumps it by compare-and-set, so two
 * coordinators racing on one plan get two distinct epochs, never the same one twice.
 *
 * Deleting a plan keeps its epoch on purpose: a plan re-registered under the same id continues
 * from there, and messages still in flight from the old plan's apps stay fenced off.
 */
import type { KV } from 'nats';
import type { Epoch } from '../../src/ids.js';
import { fail, ok, type Result } from '../errors.js';
import { incrementCounter, readCounter, type CasRetry } from './counter.js';

export interface EpochStore {
  /** 0 for a plan that was never rolled back or restored. */
  get(planId: string): Promise<Result<Epoch>>;
  /** Increments and returns the new epoch. */
  bump(planId: string): Promise<Result<Epoch>>;
}

const PLAN_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function epochKey(planId: string): string {
  return `epoch.${planId}`;
}

export class JetStreamEpochStore implements EpochStore {
  constructor(
    private readonly meta: KV,
    private readonly retry: CasRetry,
  ) {}

  async get(planId: string): Promise<Result<Epoch>> {
    if (!PLAN_ID.test(planId)) return fail('invalid-argument', `plan id ${JSON.stringify(planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
    const counter = await readCounter(this.meta, epochKey(planId), 0);
    return counter.ok ? ok(counter.value.value) : counter;
  }

  bump(planId: string): Promise<Result<Epoch>> {
    if (!PLAN_ID.test(planId)) return Promise.resolve(fail('invalid-argument', `plan id ${JSON.stringify(planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`));
    return incrementCounter(this.meta, epochKey(planId), this.retry, async () => ok(0));
  }
}
