/**
 * Housekeeping. Retention: a plan keeps its newest `retainedPerPlan` completed checkpoints; older
 * ones go with their parts. The service lists a plan's completed checkpoints once and then keeps the
 * list itself, so these tests also pin down that the list stays right across deletes made through
 * the API. Stale checkpoints: a record a stopped coordinator left in flight is aborted, with its
 * parts deleted, once its timeouts are long past; a recent one is left alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointRecord } from '../../coordinator/model.js';
import type { Result } from '../../coordinator/errors.js';
import { startLiveWorld, TENANT, type LiveWorld } from '../support/live-fixture.js';

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

const RETAINED = 2;
let world: LiveWorld;

beforeAll(async () => {
  world = await startLiveWorld({ retainedPerPlan: RETAINED });
}, 30_000);

afterAll(async () => {
  await world?.stop();
});

async function take(): Promise<CheckpointRecord> {
  const taken = await world.service.take({ planId: 'demo', level: 'app', options: {} });
  if (!taken.ok) throw new Error(taken.error.message);
  const final = await world.service.waitFor(taken.value.id);
  expect(final.state, final.failureDetail).toBe('completed');
  return final;
}

/** Ids of the plan's completed checkpoints in the store, newest first, once retention has settled. */
async function storedCompleted(expected: number): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const page = await world.service.list({ planId: 'demo', states: ['completed'] }, 100, '');
    if (!page.ok) throw new Error(page.error.message);
    const ids = page.value.items.map((c) => c.id);
    if (ids.length === expected) return ids;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the plan never settled at ${expected} completed checkpoints`);
}

describe('retention of completed checkpoints', () => {
  it('keeps the newest checkpoints of the plan and deletes the older ones with their records', async () => {
    const taken = [await take(), await take(), await take(), await take()];
    const newest = taken.slice(-RETAINED).map((c) => c.id).reverse();
    expect(await storedCompleted(RETAINED)).toEqual(newest);
    const gone = await world.service.get((taken[0] as CheckpointRecord).id);
    expect(gone.ok ? 'still there' : gone.error.kind).toBe('not-found');
  }, 60_000);

  it('a checkpoint deleted through the API leaves room: the next completion deletes nothing it should keep', async () => {
    const before = await storedCompleted(RETAINED);
    const deleted = await world.service.delete(before[0] as number);
    expect(deleted.ok).toBe(true);
    const next = await take();
    // Retained: the survivor of the delete and the new one; nothing older came back, nothing extra went.
    expect(await storedCompleted(RETAINED)).toEqual([next.id, before[1]]);
  }, 60_000);
});

describe('checkpoints a stopped coordinator left in flight', () => {
  it('are aborted with their parts deleted once their timeouts are long past; a recent one is left alone', async () => {
    const template = await take();
    const nextIds = [value(await world.store.checkpoints.nextId()), value(await world.store.checkpoints.nextId())];
    const [staleId, recentId] = nextIds as [number, number];
    const inFlight = (id: number, createdAtUnixMs: number): CheckpointRecord => ({
      ...template,
      id,
      state: 'collecting',
      createdAtUnixMs,
      options: { ...template.options, timeoutMs: 1_000 },
      parts: template.parts.map((p) => ({ server: p.server, app: p.app, acked: false })),
    });
    expect(value(await world.store.checkpoints.create(inFlight(staleId, Date.now() - 10 * 60_000))).created).toBe(true);
    expect(value(await world.store.checkpoints.create(inFlight(recentId, Date.now()))).created).toBe(true);
    // What an app of the stale checkpoint had stored before its coordinator went away.
    const put = await world.objects.put(TENANT, `cp/${staleId}/s1/APP1/state`, new Uint8Array([1, 2, 3]));
    expect(put.ok).toBe(true);

    expect(value(await world.service.sweepStale())).toEqual([staleId]);
    const stale = value(await world.store.checkpoints.get(staleId)).record;
    expect(stale).toMatchObject({ state: 'aborted', failureReason: 'timeout' });
    expect(stale.failureDetail).toMatch(/no coordinator running it/);
    const left = await world.objects.list(TENANT, `cp/${staleId}/`);
    expect(left.ok && left.value).toEqual([]);
    expect(value(await world.store.checkpoints.get(recentId)).record.state).toBe('collecting');
    // Sweeping again finds nothing new.
    expect(value(await world.service.sweepStale())).toEqual([]);
  }, 60_000);
});
