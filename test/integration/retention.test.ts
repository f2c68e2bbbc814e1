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
    const taken = [await take(), await take(), await take()];
    // One beyond RETAINED: that completion already deletes the oldest.
    expect(await storedCompleted(RETAINED)).toEqual(taken.slice(-RETAINED).map((c) => c.id).reverse());
    taken.push(await take());
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

describe('objects no checkpoint owns (F11: the round that should have deleted them ended with its coordinator)', () => {
  it('the orphan sweep deletes those of a long-aborted checkpoint, of a deleted or never-created record and of another tenant; it keeps the rest', async () => {
    const template = await take();
    const [oldAborted, recentAborted, inFlight, ghost, foreign] = [
      value(await world.store.checkpoints.nextId()),
      value(await world.store.checkpoints.nextId()),
      value(await world.store.checkpoints.nextId()),
      value(await world.store.checkpoints.nextId()),
      value(await world.store.checkpoints.nextId()),
    ];
    const now = Date.now();
    const record = (id: number, fields: Partial<CheckpointRecord>): CheckpointRecord => ({
      ...template,
      id,
      options: { ...template.options, timeoutMs: 1_000 },
      parts: template.parts.map((p) => ({ server: p.server, app: p.app, acked: false })),
      ...fields,
    });
    const created = [
      record(oldAborted, { state: 'aborted', failureReason: 'timeout', finishedAtUnixMs: now - 10 * 60_000 }),
      record(recentAborted, { state: 'aborted', failureReason: 'timeout', finishedAtUnixMs: now }),
      record(inFlight, { state: 'collecting', createdAtUnixMs: now }),
      record(foreign, { state: 'completed', tenant: 'someone-else' }),
    ];
    for (const r of created) expect(value(await world.store.checkpoints.create(r)).created).toBe(true);
    // `ghost` was issued and never got a record (or lost it): nothing owns what is stored under it.
    const stored = [
      `cp/${oldAborted}/s1/APP1/state`,
      `cp/${oldAborted}/s1/APP1/channels`,
      `cp/${recentAborted}/s1/APP1/state`,
      `cp/${inFlight}/s1/APP1/state`,
      `cp/${ghost}/s2/APP2/state`,
      `cp/${foreign}/s3/APP3/state`,
      `cp/${template.id}/s9/LATE/state`,
      `copy/elsewhere/${ghost}/cp/${ghost}/s2/APP2/state`,
    ];
    for (const name of stored) expect((await world.objects.put(TENANT, name, new Uint8Array([1]))).ok).toBe(true);

    const swept = value(await world.service.sweepOrphans());
    expect(swept.problems).toEqual([]);
    expect(swept.deleted.map((o) => [o.checkpointId, o.reason, o.names.length])).toEqual([
      [oldAborted, 'ended-incomplete', 2],
      [ghost, 'no-record', 1],
      [foreign, 'other-tenant', 1],
    ]);
    const left = await world.objects.list(TENANT, '');
    expect(left.ok && left.value.filter((n) => stored.includes(n))).toEqual(
      [`cp/${recentAborted}/s1/APP1/state`, `cp/${inFlight}/s1/APP1/state`, `cp/${template.id}/s9/LATE/state`, `copy/elsewhere/${ghost}/cp/${ghost}/s2/APP2/state`].sort(),
    );
    // Once done, done: a second sweep finds nothing.
    expect(value(await world.service.sweepOrphans()).deleted).toEqual([]);
  }, 60_000);
});
