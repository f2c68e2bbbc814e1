/**
 * Retention: a plan keeps its newest `retainedPerPlan` completed checkpoints; older ones go with
 * their parts. The service lists a plan's completed checkpoints once and then keeps the list itself,
 * so these tests also pin down that the list stays right across deletes made through the API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { startLiveWorld, type LiveWorld } from '../support/live-fixture.js';

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
