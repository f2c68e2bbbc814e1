/**
 * Regression tests over real NATS for the checkpoint calls of issue 9 around admission:
 * - defect 7: retention never deletes a pinned checkpoint, nor the target or the safety checkpoint
 *   of a recent rollback;
 * - defect 9 (coordinator side): a coordinator started over a dead one's in-flight record aborts it
 *   at once (parts deleted, reason COORDINATOR_LOST), admission counts it until then, and the plan's
 *   next checkpoint is accepted after;
 * - defect 6 (delete side): DeleteCheckpoint deletes the checkpoint's volume snapshots and says so;
 * - CancelCheckpoint, idempotent Delete/Cancel/Pin, and bad input refused at once with nothing changed.
 * The tests share one world and run in order.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../coordinator/errors.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { agentlessPlan, startApiWorld, TENANT, type ApiWorld } from '../support/api-world.js';

let world: ApiWorld;

beforeAll(async () => {
  world = await startApiWorld({ retainedPerPlan: 1, withVolumes: true });
  for (const id of ['idle1', 'idle2', 'idle3']) await world.addPlan(agentlessPlan(id));
}, 30_000);

afterAll(async () => {
  await world?.stop();
});

function value<T>(r: Result<T> | { ok: true; value: T } | { ok: false; error: { message: string } }, what = 'call'): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.message}`);
  return r.value;
}

async function completed(): Promise<CheckpointRecord> {
  const taken = value(await world.service.take({ planId: 'demo', level: 'app', options: {} }), 'take');
  const final = await world.service.waitFor(taken.id);
  expect(final.state, final.failureDetail).toBe('completed');
  return final;
}

async function exists(id: number): Promise<boolean> {
  const r = await world.store.checkpoints.get(id);
  if (!r.ok && r.error.kind !== 'not-found') throw new Error(r.error.message);
  return r.ok;
}

/**
 * Retention runs after a completion, in the background: wait until `id` is gone (or give up). A
 * pass may wait out a stalled key listing (coordinator/store/scan.ts), so the wait is generous.
 */
async function settleUntilGone(id: number): Promise<void> {
  for (let i = 0; i < 400 && (await exists(id)); i++) await new Promise((r) => setTimeout(r, 50));
}

describe('retention keeps what must stay (defect 7)', () => {
  it('a pinned checkpoint survives retention, and a pinned one does not push a newer one out', async () => {
    const a = await completed();
    expect(value(await world.service.pin(a.id, true), 'pin').pinned).toBe(true);
    const b = await completed();
    const c = await completed();
    await settleUntilGone(b.id);
    expect(await exists(a.id)).toBe(true);
    expect(await exists(b.id)).toBe(false);
    expect(await exists(c.id)).toBe(true);
    const shown = value(await world.service.get(a.id), 'get');
    expect(shown.pinned).toBe(true);
    // Unpinned, it goes at the next completion like any old checkpoint.
    expect(value(await world.service.pin(a.id, false), 'unpin').pinned).toBeUndefined();
    await completed();
    await settleUntilGone(a.id);
    expect(await exists(a.id)).toBe(false);
  }, 60_000);

  it('the target and the safety checkpoint of a recent rollback survive retention', async () => {
    const target = await completed();
    const rolled = value(await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false }), 'rollback');
    expect(rolled.safetyCheckpointId).toBeGreaterThan(0);
    const later = [await completed(), await completed()];
    await settleUntilGone((later[0] as CheckpointRecord).id);
    expect(await exists(target.id)).toBe(true);
    expect(await exists(rolled.safetyCheckpointId)).toBe(true);
    expect(await exists((later[0] as CheckpointRecord).id)).toBe(false);
  }, 90_000);

  it('pinning is refused at once for an unknown id, and a pinned checkpoint cannot be deleted until unpinned', async () => {
    expect((await world.service.pin(999_999, true)).ok ? 'pinned' : 'refused').toBe('refused');
    const c = await completed();
    value(await world.service.pin(c.id, true), 'pin');
    const refused = await world.service.delete(c.id);
    expect(!refused.ok && refused.error.kind).toBe('failed-precondition');
    expect(await exists(c.id)).toBe(true);
    value(await world.service.pin(c.id, false), 'unpin');
  }, 60_000);
});

describe('delete (defect 6, delete side) and its idempotency key', () => {
  it("deletes the checkpoint's volume snapshots through the backend, and the answer names them", async () => {
    const dir = world.volumeDir as string;
    const volume = join(dir, 'vol1');
    mkdirSync(volume, { recursive: true });
    writeFileSync(join(volume, 'data'), 'x');
    const id = value(await world.store.checkpoints.nextId());
    const taken = value(await (world.volumes as NonNullable<ApiWorld['volumes']>).snapshot([{ id: 'vol1', server: 's1', backendRef: volume }], id), 'snapshot');
    const snapshotRef = (taken[0] as { snapshotRef: string }).snapshotRef;
    expect(existsSync(snapshotRef)).toBe(true);
    const record: CheckpointRecord = {
      id,
      planId: 'idle3',
      tenant: TENANT,
      levelRequested: 'crash',
      levelAchieved: 'crash',
      state: 'completed',
      epoch: 0,
      options: { timeoutMs: 10_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 10_000 },
      createdAtUnixMs: Date.now(),
      finishedAtUnixMs: Date.now(),
      parts: [],
      volumes: [{ volumeId: 'vol1', server: 's1', snapshotRef, frozenAtUnixMs: 1, snapshotAtUnixMs: 2, thawedAtUnixMs: 3 }],
      safety: false,
    };
    value(await world.store.checkpoints.create(record), 'create');
    const deleted = value(await world.service.delete(id, 'karbor-delete-1'), 'delete');
    expect(deleted.deletedVolumeSnapshots).toEqual([snapshotRef]);
    expect(existsSync(snapshotRef)).toBe(false);
    expect(await exists(id)).toBe(false);
    // The retry returns the first answer although the checkpoint is gone by now.
    expect(value(await world.service.delete(id, 'karbor-delete-1'), 'retried delete')).toEqual(deleted);
    // Without the key, the same call finds nothing.
    const again = await world.service.delete(id);
    expect(!again.ok && again.error.kind).toBe('not-found');
  }, 30_000);

  it('a delete key reused for another checkpoint is INVALID_ARGUMENT naming both requests', async () => {
    const other = await world.service.delete(123_456, 'karbor-delete-1');
    expect(other.ok).toBe(false);
    if (other.ok) return;
    expect(other.error.kind).toBe('invalid-argument');
    expect(other.error.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(other.error.message).toMatch(/DeleteCheckpoint \d+".*DeleteCheckpoint 123456/);
  });
});

describe('cancel', () => {
  it('aborts a checkpoint in flight at once and frees its slot: the next checkpoint of the plan is accepted', async () => {
    const first = value(await world.service.take({ planId: 'idle1', level: 'app', options: { timeoutMs: 60_000 } }), 'take');
    const busy = await world.service.take({ planId: 'idle1', level: 'app', options: { timeoutMs: 60_000 } });
    expect(!busy.ok && busy.error.reason).toBe('PLAN_BUSY');
    value(await world.service.cancel(first.id, 'karbor-cancel-1'), 'cancel');
    const final = await world.service.waitFor(first.id);
    expect(final).toMatchObject({ state: 'aborted', failureReason: 'cancelled' });
    const next = value(await world.service.take({ planId: 'idle1', level: 'app', options: { timeoutMs: 60_000 } }), 'next take');
    value(await world.service.cancel(next.id), 'cancel next');
    await world.service.waitFor(next.id);
  }, 30_000);

  it('cancelling a completed checkpoint is refused, an unknown one is NOT_FOUND', async () => {
    const c = await completed();
    const refused = await world.service.cancel(c.id);
    expect(!refused.ok && refused.error.kind).toBe('failed-precondition');
    const unknown = await world.service.cancel(987_654);
    expect(!unknown.ok && unknown.error.kind).toBe('not-found');
  }, 30_000);
});

describe('bad input is refused at once and changes nothing', () => {
  async function count(): Promise<number> {
    return value(await world.service.list({ planId: 'idle2' }, 1_000, ''), 'list').items.length;
  }

  it('a freeze_deadline of 4294967295 ms is INVALID_ARGUMENT naming the field; so are other out-of-range durations', async () => {
    const before = await count();
    for (const options of [{ freezeDeadlineMs: 4_294_967_295 }, { timeoutMs: 4_294_967_295 }, { alignmentTimeoutMs: 60_000, timeoutMs: 1_000 }, { maxConcurrent: 1_000 }]) {
      const r = await world.service.take({ planId: 'idle2', level: 'crash', options });
      expect(r.ok ? 'accepted' : r.error.kind, JSON.stringify(options)).toBe('invalid-argument');
    }
    const r = await world.service.take({ planId: 'idle2', level: 'crash', options: { freezeDeadlineMs: 4_294_967_295 } });
    expect(!r.ok && r.error.message).toMatch(/options\.freeze_deadline 4294967295 ms is out of range/);
    expect(await count()).toBe(before);
  });

  it('a take key reused with other arguments is INVALID_ARGUMENT naming both; the same arguments get the first checkpoint', async () => {
    const first = value(await world.service.take({ planId: 'idle2', level: 'app', options: { timeoutMs: 60_000 }, idempotencyKey: 'op-7' }), 'take');
    const retry = value(await world.service.take({ planId: 'idle2', level: 'app', options: { timeoutMs: 60_000 }, idempotencyKey: 'op-7' }), 'retry');
    expect(retry.id).toBe(first.id);
    const other = await world.service.take({ planId: 'idle2', level: 'crash', options: { timeoutMs: 60_000 }, idempotencyKey: 'op-7' });
    expect(!other.ok && other.error.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(!other.ok && other.error.message).toMatch(new RegExp(`checkpoint ${first.id} \\(plan idle2, level app,.*\\); this call asks for \\(plan idle2, level crash,`));
    value(await world.service.cancel(first.id), 'cancel');
    await world.service.waitFor(first.id);
  }, 30_000);
});

describe('a take retried while the first call is under way', () => {
  it('concurrent takes with one key make one checkpoint; the others get it or are told to retry, never that the plan is busy', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => world.service.take({ planId: 'idle1', level: 'app', options: { timeoutMs: 60_000 }, idempotencyKey: 'op-race' })));
    const ids = new Set(results.flatMap((r) => (r.ok ? [r.value.id] : [])));
    expect(ids.size).toBe(1);
    expect(results.flatMap((r) => (r.ok ? [] : [r.error.kind]))).not.toContain('resource-exhausted');
    expect(results.flatMap((r) => (r.ok ? [] : [r.error.kind])).every((k) => k === 'aborted')).toBe(true);
    const retried = value(await world.service.take({ planId: 'idle1', level: 'app', options: { timeoutMs: 60_000 }, idempotencyKey: 'op-race' }), 'retry');
    expect(ids.has(retried.id)).toBe(true);
    value(await world.service.cancel(retried.id), 'cancel');
    await world.service.waitFor(retried.id);
  }, 30_000);
});

describe('a coordinator started over a dead one (defect 9, coordinator side)', () => {
  it("aborts the dead coordinator's round at once, with its parts, and then admits the plan's next checkpoint", async () => {
    // What a coordinator that died mid-round leaves: a fresh record in flight, its slot, a stored part.
    const id = value(await world.store.checkpoints.nextId());
    const record: CheckpointRecord = {
      id,
      planId: 'idle3',
      tenant: TENANT,
      levelRequested: 'app',
      state: 'collecting',
      epoch: 0,
      options: { timeoutMs: 60_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 10_000 },
      createdAtUnixMs: Date.now(),
      parts: [{ server: 'idle3-srv1', app: 'APP', acked: true, state: { name: `cp/${id}/idle3-srv1/APP/state`, digest: 'SHA-256=x', sizeBytes: 3 } }],
      volumes: [],
      safety: false,
    };
    value(await world.store.checkpoints.create(record), 'create');
    value(await world.store.slots.transact('idle3', (cur) => ({ next: { slots: [...cur.slots, { checkpointId: id, periodic: false, owner: 'dead-coordinator', admittedAtUnixMs: Date.now() }] }, out: undefined })), 'slot');
    value(await world.objects.put(TENANT, `cp/${id}/idle3-srv1/APP/state`, new Uint8Array([1, 2, 3])), 'put');

    const restarted = world.startService();
    // Until it is recovered, the left round counts: the plan is busy.
    const early = await restarted.take({ planId: 'idle3', level: 'app', options: { timeoutMs: 60_000 } });
    expect(!early.ok && early.error.reason).toBe('PLAN_BUSY');

    const started = Date.now();
    const report = value(await restarted.recover(), 'recover');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(report.aborted).toEqual([id]);
    const after = value(await world.store.checkpoints.get(id), 'get').record;
    expect(after).toMatchObject({ state: 'aborted', failureReason: 'coordinator-lost' });
    const left = value(await world.objects.list(TENANT, `cp/${id}/`), 'list');
    expect(left).toEqual([]);

    const next = value(await restarted.take({ planId: 'idle3', level: 'app', options: { timeoutMs: 60_000 } }), 'next take');
    expect(next.id).toBeGreaterThan(id);
    value(await restarted.cancel(next.id), 'cancel');
    await restarted.waitFor(next.id);
  }, 30_000);
});
