/**
 * The coordinator's JetStream stores against a real nats-server: compare-and-set conflicts are
 * refused, checkpoint ids strictly increase under concurrent callers (two coordinators included),
 * listing pages through everything exactly once in the documented order, and idempotency keys
 * deduplicate creation.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import type { Result } from '../../coordinator/errors.js';
import { checkpointRecord, planInput } from '../support/coordinator-fixtures.js';
import { type NatsServerHandle, startNatsServer } from '../support/nats-server.js';

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.kind}: ${result.error.message}`);
  return result.value;
}

function errorKind(result: Result<unknown>): string {
  return result.ok ? 'ok' : result.error.kind;
}

const now = 1_700_000_000_000;

describe('coordinator store on JetStream', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let nc2: NatsConnection;
  let store: CoordinatorStore;
  /** A second coordinator on its own connection, over the same buckets. */
  let other: CoordinatorStore;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    nc2 = await connect({ servers: server.url });
    store = await openCoordinatorStore(nc, { pageSizeMax: 50 });
    other = await openCoordinatorStore(nc2, { pageSizeMax: 50 });
  });

  afterAll(async () => {
    await nc?.close();
    await nc2?.close();
    await server?.stop();
  });

  describe('plans', () => {
    it('a created plan reads back with its KV revision, and creating it again is ALREADY_EXISTS', async () => {
      const plan = { ...planInput({ id: 'p-create' }), createdAtUnixMs: now, updatedAtUnixMs: now };
      const created = value(await store.plans.create(plan));
      expect(created.revision).toBeGreaterThan(0);
      expect(value(await store.plans.get('p-create'))).toEqual(created);
      const again = await store.plans.create(plan);
      expect(errorKind(again)).toBe('already-exists');
      expect(again.ok ? '' : again.error.message).toContain('p-create');
    });

    it('an update at a stale revision is FAILED_PRECONDITION and leaves the plan as the winner wrote it', async () => {
      const base = { ...planInput({ id: 'p-cas' }), createdAtUnixMs: now, updatedAtUnixMs: now };
      const v1 = value(await store.plans.create(base));
      const v2 = value(await other.plans.update({ ...base, servers: ['srv1', 'srv2', 'srv3', 'srv4'] }, v1.revision));
      const stale = await store.plans.update({ ...base, servers: ['srvX'] }, v1.revision);
      expect(errorKind(stale)).toBe('failed-precondition');
      expect(stale.ok ? '' : stale.error.message).toContain(`revision ${v2.revision}`);
      expect(value(await store.plans.get('p-cas')).servers).toEqual(['srv1', 'srv2', 'srv3', 'srv4']);
    });

    it('two concurrent updates at the same revision: exactly one wins', async () => {
      const base = { ...planInput({ id: 'p-race' }), createdAtUnixMs: now, updatedAtUnixMs: now };
      const v1 = value(await store.plans.create(base));
      const results = await Promise.all([store.plans.update({ ...base, volumes: [] }, v1.revision), other.plans.update(base, v1.revision)]);
      expect(results.map(errorKind).sort()).toEqual(['failed-precondition', 'ok']);
    });

    it('a deleted plan is NOT_FOUND for get, update (even at the delete marker revision) and delete', async () => {
      const base = { ...planInput({ id: 'p-delete' }), createdAtUnixMs: now, updatedAtUnixMs: now };
      value(await store.plans.create(base));
      value(await store.plans.delete('p-delete'));
      expect(errorKind(await store.plans.get('p-delete'))).toBe('not-found');
      expect(errorKind(await store.plans.delete('p-delete'))).toBe('not-found');
      const marker = await store.buckets.plans.get('plan.p-delete');
      expect(errorKind(await store.plans.update(base, marker?.revision ?? 1))).toBe('not-found');
      // And the id can be used again.
      expect(value(await store.plans.create(base)).id).toBe('p-delete');
    });

    it('list pages through one tenant sorted by id, each plan exactly once', async () => {
      const ids = ['t-c', 't-a', 't-e', 't-b', 't-d'];
      for (const id of ids) value(await store.plans.create({ ...planInput({ id, tenant: 'paging' }), createdAtUnixMs: now, updatedAtUnixMs: now }));
      value(await store.plans.create({ ...planInput({ id: 't-other', tenant: 'someone-else' }), createdAtUnixMs: now, updatedAtUnixMs: now }));
      const seen: string[] = [];
      let token = '';
      let pages = 0;
      do {
        const page = value(await store.plans.list({ tenant: 'paging' }, 2, token));
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((p) => p.id));
        token = page.nextPageToken;
        pages++;
      } while (token !== '' && pages < 10);
      expect(seen).toEqual([...ids].sort());
      expect(pages).toBe(3);
    });

    it('a page token is refused for another filter and when it is not one the store issued', async () => {
      const first = value(await store.plans.list({ tenant: 'paging' }, 1, ''));
      const reused = await store.plans.list({ tenant: 'someone-else' }, 1, first.nextPageToken);
      expect(errorKind(reused)).toBe('invalid-argument');
      expect(reused.ok ? '' : reused.error.message).toMatch(/different filter/);
      expect(errorKind(await store.plans.list({}, 1, 'garbage!'))).toBe('invalid-argument');
      expect(errorKind(await store.plans.list({}, 51, ''))).toBe('invalid-argument');
    });
  });

  describe('checkpoints', () => {
    it('nextId strictly increases across 40 concurrent callers on two connections, with no duplicate', async () => {
      const calls = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? store : other).checkpoints.nextId());
      const ids = (await Promise.all(calls)).map(value);
      expect(new Set(ids).size).toBe(ids.length);
      const later = value(await store.checkpoints.nextId());
      expect(later).toBeGreaterThan(Math.max(...ids));
    });

    it('nextId goes above an agent fence ahead of the counter, on every connection after, unless the fence is more than 2^40 ahead', async () => {
      const start = value(await store.checkpoints.nextId());
      const fence = start + 1_000_000;
      expect(value(await store.checkpoints.nextId(fence))).toBe(fence + 1);
      expect(value(await other.checkpoints.nextId())).toBe(fence + 2);
      // A fence below the counter changes nothing.
      expect(value(await store.checkpoints.nextId(5))).toBe(fence + 3);
      // Too far ahead: ids are shared by every tenant, so one agent's claim cannot use them up.
      expect(value(await store.checkpoints.nextId(fence + 3 + 2 ** 40 + 1))).toBe(fence + 4);
      expect(value(await store.checkpoints.nextId(fence + 4 + 2 ** 40))).toBe(fence + 4 + 2 ** 40 + 1);
    });

    it('ids each caller sees in sequence strictly increase', async () => {
      const seen: number[] = [];
      for (let i = 0; i < 5; i++) seen.push(value(await (i % 2 === 0 ? store : other).checkpoints.nextId()));
      expect([...seen].sort((a, b) => a - b)).toEqual(seen);
      expect(new Set(seen).size).toBe(5);
    });

    it('create then get returns the record and its revision; creating the same id again is ALREADY_EXISTS', async () => {
      const id = value(await store.checkpoints.nextId());
      const record = checkpointRecord({ id, planId: 'cp-basic' });
      const created = value(await store.checkpoints.create(record));
      expect(created.created).toBe(true);
      const got = value(await store.checkpoints.get(id));
      expect(got.record).toEqual(record);
      expect(errorKind(await store.checkpoints.create(record))).toBe('already-exists');
      expect(errorKind(await store.checkpoints.get(id + 1_000_000))).toBe('not-found');
    });

    it('update re-applies its function after a conflicting write instead of overwriting it', async () => {
      const id = value(await store.checkpoints.nextId());
      value(await store.checkpoints.create(checkpointRecord({ id, planId: 'cp-update' })));
      // Both writers read the same revision; each acks a different app. Neither ack may be lost.
      const ack = (app: string) => (r: CheckpointRecord) => ({
        ...r,
        parts: r.parts.map((p) => (p.app === app ? { ...p, acked: true } : p)),
      });
      await Promise.all([store.checkpoints.update(id, ack('APP1')), other.checkpoints.update(id, ack('APP2'))]);
      const after = value(await store.checkpoints.get(id)).record;
      expect(after.parts.map((p) => p.acked)).toEqual([true, true]);
    });

    it('update with a function returning undefined writes nothing', async () => {
      const id = value(await store.checkpoints.nextId());
      const created = value(await store.checkpoints.create(checkpointRecord({ id, planId: 'cp-noop' })));
      const stored = created.created ? created.stored : created.existing;
      const same = value(await store.checkpoints.update(id, () => undefined));
      expect(same.revision).toBe(stored.revision);
    });

    it('list is newest first, filters by plan and state, and pages through each record exactly once', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 7; i++) {
        const id = value(await store.checkpoints.nextId());
        ids.push(id);
        value(await store.checkpoints.create(checkpointRecord({ id, planId: 'cp-list', state: i % 2 === 0 ? 'completed' : 'aborted' })));
      }
      value(await store.checkpoints.create(checkpointRecord({ id: value(await store.checkpoints.nextId()), planId: 'cp-list-other' })));
      const seen: number[] = [];
      let token = '';
      do {
        const page = value(await store.checkpoints.list({ planId: 'cp-list' }, 3, token));
        seen.push(...page.items.map((r) => r.id));
        token = page.nextPageToken;
      } while (token !== '');
      expect(seen).toEqual([...ids].reverse());
      const completed = value(await store.checkpoints.list({ planId: 'cp-list', states: ['completed'] }, 50, ''));
      expect(completed.items.map((r) => r.id)).toEqual(ids.filter((_, i) => i % 2 === 0).reverse());
      expect(completed.nextPageToken).toBe('');
    });

    it('a second create with the same idempotency key returns the first checkpoint and writes nothing', async () => {
      const first = checkpointRecord({ id: value(await store.checkpoints.nextId()), planId: 'cp-idem', idempotencyKey: 'karbor-op-42' });
      const second = checkpointRecord({ id: value(await store.checkpoints.nextId()), planId: 'cp-idem', idempotencyKey: 'karbor-op-42' });
      expect(value(await store.checkpoints.create(first)).created).toBe(true);
      const dup = value(await other.checkpoints.create(second));
      expect(dup.created).toBe(false);
      if (!dup.created) expect(dup.existing.record.id).toBe(first.id);
      expect(errorKind(await store.checkpoints.get(second.id))).toBe('not-found');
      expect(value(await store.checkpoints.findByIdempotencyKey('cp-idem', 'karbor-op-42'))?.id).toBe(first.id);
      expect(value(await store.checkpoints.findByIdempotencyKey('cp-idem', 'another-key'))).toBeUndefined();
      // The same key on another plan is another request.
      const elsewhere = checkpointRecord({ id: value(await store.checkpoints.nextId()), planId: 'cp-idem-2', idempotencyKey: 'karbor-op-42' });
      expect(value(await store.checkpoints.create(elsewhere)).created).toBe(true);
    });

    it('concurrent creates with one idempotency key make exactly one checkpoint', async () => {
      const records = await Promise.all(
        Array.from({ length: 6 }, async () => checkpointRecord({ id: value(await store.checkpoints.nextId()), planId: 'cp-idem-race', idempotencyKey: 'k' })),
      );
      const outcomes = await Promise.all(records.map((r, i) => (i % 2 === 0 ? store : other).checkpoints.create(r)));
      const created = outcomes.filter((o) => o.ok && o.value.created);
      expect(created).toHaveLength(1);
      // The others either saw the winner or were told to retry while it was being written.
      for (const o of outcomes) if (!o.ok) expect(o.error.kind).toBe('aborted');
      const listed = value(await store.checkpoints.list({ planId: 'cp-idem-race' }, 50, ''));
      expect(listed.items).toHaveLength(1);
    });

    it('delete removes the record and releases its idempotency key; the id is never handed out again', async () => {
      const id = value(await store.checkpoints.nextId());
      value(await store.checkpoints.create(checkpointRecord({ id, planId: 'cp-del', idempotencyKey: 'once' })));
      value(await store.checkpoints.delete(id));
      expect(errorKind(await store.checkpoints.get(id))).toBe('not-found');
      expect(errorKind(await store.checkpoints.delete(id))).toBe('not-found');
      expect(value(await store.checkpoints.findByIdempotencyKey('cp-del', 'once'))).toBeUndefined();
      const next = value(await store.checkpoints.nextId());
      expect(next).toBeGreaterThan(id);
      expect(value(await store.checkpoints.create(checkpointRecord({ id: next, planId: 'cp-del', idempotencyKey: 'once' }))).created).toBe(true);
    });

    it('a lost id counter restarts above the highest stored checkpoint', async () => {
      const id = value(await store.checkpoints.nextId());
      value(await store.checkpoints.create(checkpointRecord({ id, planId: 'cp-counter' })));
      await store.buckets.meta.purge('checkpoint-id');
      expect(value(await store.checkpoints.nextId())).toBeGreaterThan(id);
    });
  });

  describe('epochs', () => {
    it('a plan starts in epoch 0 and every bump, even concurrent ones, gives a new higher epoch', async () => {
      expect(value(await store.epochs.get('e-plan'))).toBe(0);
      const bumps = (await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? store : other).epochs.bump('e-plan')))).map(value);
      expect([...bumps].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      // The other store's bumps reach this one's cached epoch with the KV watch (store/cached.ts).
      for (let i = 0; i < 100 && value(await store.epochs.get('e-plan')) !== 10; i++) await new Promise((r) => setTimeout(r, 20));
      expect(value(await store.epochs.get('e-plan'))).toBe(10);
      expect(value(await store.epochs.get('e-plan-other'))).toBe(0);
    });
  });
});
