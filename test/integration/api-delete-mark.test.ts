/**
 * Over real NATS, the findings of the fault simulator (docs/vopr.md) on the delete side:
 * - pin-races-delete: a delete marks the record `deleting` (compare-and-set) before it deletes any
 *   part, so of a pin and a delete that race, one is refused: never a pinned record without parts;
 * - delete-cut-short: a delete cut short leaves the mark, and a retry or the next coordinator's
 *   recovery finishes it;
 * - volume-snapshots-of-dead-coordinator (recovery side): recovery has the directory backend delete
 *   the snapshots of a left crash-level round that its record does not list.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../coordinator/errors.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { agentlessPlan, startApiWorld, TENANT, type ApiWorld } from '../support/api-world.js';

let world: ApiWorld;

beforeAll(async () => {
  world = await startApiWorld({ withVolumes: true });
  await world.addPlan(agentlessPlan('dm'));
}, 30_000);

afterAll(async () => {
  await world?.stop();
});

function value<T>(r: Result<T> | { ok: true; value: T } | { ok: false; error: { message: string } }, what = 'call'): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.message}`);
  return r.value;
}

const OPTIONS = { timeoutMs: 10_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 10_000 } as const;

/** A completed checkpoint of plan dm with one stored part. */
async function completedWithPart(more: Partial<CheckpointRecord> = {}): Promise<{ record: CheckpointRecord; part: string }> {
  const id = value(await world.store.checkpoints.nextId());
  const part = `cp/${id}/dm-srv1/APP/state`;
  value(await world.objects.put(TENANT, part, new Uint8Array([1, 2, 3])), 'put');
  const record: CheckpointRecord = {
    id,
    planId: 'dm',
    tenant: TENANT,
    levelRequested: 'app',
    levelAchieved: 'app',
    state: 'completed',
    epoch: 0,
    options: OPTIONS,
    createdAtUnixMs: Date.now(),
    finishedAtUnixMs: Date.now(),
    parts: [{ server: 'dm-srv1', app: 'APP', acked: true, state: { name: part, digest: 'SHA-256=x', sizeBytes: 3 } }],
    volumes: [],
    safety: false,
    ...more,
  };
  value(await world.store.checkpoints.create(record), 'create');
  return { record, part };
}

async function partExists(part: string): Promise<boolean> {
  return value(await world.objects.list(TENANT, part)).includes(part);
}

describe('a delete marks the record first (pin-races-delete)', () => {
  it('a pin and a delete sent together: one is refused, and a pinned checkpoint always keeps its parts', async () => {
    for (let i = 0; i < 8; i++) {
      const { record, part } = await completedWithPart();
      const [pinned, deleted] = await Promise.all([world.service.pin(record.id, true), world.service.delete(record.id)]);
      expect(pinned.ok !== deleted.ok, `pin ${pinned.ok}, delete ${deleted.ok}`).toBe(true);
      const stored = await world.store.checkpoints.get(record.id);
      if (pinned.ok) {
        expect(stored.ok && stored.value.record.pinned).toBe(true);
        expect(await partExists(part)).toBe(true);
        value(await world.service.pin(record.id, false), 'unpin');
      } else {
        expect(!stored.ok && stored.error.kind).toBe('not-found');
        expect(await partExists(part)).toBe(false);
      }
    }
  }, 60_000);

  it('a checkpoint being deleted cannot be pinned, and a retried delete finishes it (delete-cut-short)', async () => {
    // What a delete cut short after its mark and some of the parts leaves.
    const { record, part } = await completedWithPart({ deleting: true });
    const pin = await world.service.pin(record.id, true);
    expect(!pin.ok && pin.error.kind).toBe('failed-precondition');
    expect(!pin.ok && pin.error.message).toMatch(/being deleted/);
    const deleted = value(await world.service.delete(record.id), 'retried delete');
    expect(deleted.deletedObjects).toBe(1);
    expect(await partExists(part)).toBe(false);
    const gone = await world.store.checkpoints.get(record.id);
    expect(!gone.ok && gone.error.kind).toBe('not-found');
  }, 30_000);

  it('a refused delete writes nothing: a pinned checkpoint stays unmarked and whole', async () => {
    const { record, part } = await completedWithPart({ pinned: true });
    const refused = await world.service.delete(record.id);
    expect(!refused.ok && refused.error.kind).toBe('failed-precondition');
    const stored = value(await world.store.checkpoints.get(record.id)).record;
    expect(stored.deleting).toBeUndefined();
    expect(await partExists(part)).toBe(true);
  }, 30_000);
});

describe('recovery at start-up', () => {
  it('finishes a delete that a stopped coordinator began (delete-cut-short)', async () => {
    const { record, part } = await completedWithPart({ deleting: true });
    const report = value(await world.startService().recover(), 'recover');
    expect(report.deleted).toContain(record.id);
    expect(await partExists(part)).toBe(false);
    const gone = await world.store.checkpoints.get(record.id);
    expect(!gone.ok && gone.error.kind).toBe('not-found');
  }, 30_000);

  it("deletes the volume snapshots of a left crash-level round that its record does not list (volume-snapshots-of-dead-coordinator)", async () => {
    const volume = join(world.volumeDir as string, 'dm-vol1');
    mkdirSync(volume, { recursive: true });
    writeFileSync(join(volume, 'data'), 'x');
    const id = value(await world.store.checkpoints.nextId());
    // The backend answered, and the coordinator died before the round wrote the snapshot down.
    const taken = value(await (world.volumes as NonNullable<ApiWorld['volumes']>).snapshot([{ id: 'dm-vol1', server: 'dm-srv1', backendRef: volume }], id), 'snapshot');
    const snapshotRef = (taken[0] as { snapshotRef: string }).snapshotRef;
    expect(existsSync(snapshotRef)).toBe(true);
    const record: CheckpointRecord = {
      id,
      planId: 'dm',
      tenant: TENANT,
      levelRequested: 'crash',
      state: 'collecting',
      epoch: 0,
      options: OPTIONS,
      createdAtUnixMs: Date.now(),
      parts: [],
      volumes: [],
      safety: false,
    };
    value(await world.store.checkpoints.create(record), 'create');
    const report = value(await world.startService().recover(), 'recover');
    expect(report.aborted).toContain(id);
    expect(existsSync(snapshotRef)).toBe(false);
    expect(value(await world.store.checkpoints.get(id)).record).toMatchObject({ state: 'aborted', failureReason: 'coordinator-lost' });
  }, 30_000);
});
