/**
 * The leader lease (coordinator/lease.ts) and the fenced checkpoint records (store/fenced.ts) on a
 * real nats-server: one lease holder at a time with a term that only grows, a released lease taken
 * at once, a lease that ran out by the leader's own clock deposes it, and a record written in a
 * newer term refuses the older leader's writes, which steps it down.
 */
import { connect, type KV, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEASE_KEY, LeaderLease, type LeaseOptions } from '../../coordinator/lease.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { FencedCheckpointStore, FencedOperationStore, leaderTermOf, leaseChecked } from '../../coordinator/store/fenced.js';
import type { OperationRecord } from '../../coordinator/store/operations.js';
import { openCoordinatorStore, openLeaderBucket, type CoordinatorStore } from '../../coordinator/store/index.js';
import { waitUntil } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const logger = pino({ level: 'silent' });
const fast: LeaseOptions = { leaseMs: 900, renewMs: 150, marginMs: 200 };

let nats: NatsServerHandle;
let nc: NatsConnection;
let store: CoordinatorStore;
let kv: KV;
const leases: LeaderLease[] = [];

function lease(holder: string, now?: () => number): LeaderLease {
  const l = new LeaderLease(kv, { holder, address: `${holder}:1` }, fast, logger, now);
  leases.push(l);
  return l;
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  kv = await openLeaderBucket(nc);
}, 30_000);

afterAll(async () => {
  for (const l of leases) await l.stop();
  await nc?.close();
  await nats?.stop();
});

describe('the leader lease', () => {
  it('one leads, the other stands by naming it; a released lease is taken at once with the next term', async () => {
    await kv.purge(LEASE_KEY);
    const a = lease('a');
    expect(await a.start()).toBe('leader');
    const firstTerm = a.term() as number;
    expect(firstTerm).toBeGreaterThanOrEqual(1);
    const b = lease('b');
    expect(await b.start()).toBe('standby');
    expect(b.term()).toBeUndefined();
    expect(b.leaderAddress()).toBe('a:1');
    const elected = new Promise<number>((resolve) => b.onElected(resolve));
    const started = performance.now();
    await a.stop();
    expect(a.term()).toBeUndefined();
    expect(await elected).toBe(firstTerm + 1);
    // Released: no wait for the lease to run out.
    expect(performance.now() - started).toBeLessThan(fast.leaseMs);
    expect(b.term()).toBe(firstTerm + 1);
    await b.stop();
  });

  it('a leader whose lease ran out by its own clock is deposed, and a standby takes over once it saw no renewal for the lease', async () => {
    await kv.purge(LEASE_KEY);
    let skewMs = 0;
    const a = lease('a', () => performance.now() + skewMs);
    expect(await a.start()).toBe('leader');
    const deposed = new Promise<string>((resolve) => a.onDeposed(resolve));
    const b = lease('b');
    expect(await b.start()).toBe('standby');
    // As if the process had been paused past its lease: its clock moved on, its timers did not run.
    skewMs = fast.leaseMs;
    expect(a.term()).toBeUndefined();
    expect(await deposed).toMatch(/lease expired/);
    const term = await waitUntil('b to take over', () => b.term(), { timeoutMs: 5_000, intervalMs: 20 });
    expect(term).toBeGreaterThan(1);
  });
});

describe('fenced checkpoint records', () => {
  function record(id: number): CheckpointRecord {
    return { id, planId: 'fence', tenant: 't1', epoch: 1, state: 'pending', levelRequested: 'app', createdAtUnixMs: Date.now(), options: {}, parts: [], volumes: [] } as unknown as CheckpointRecord;
  }

  it("a write in an older term is refused once a newer leader wrote the record, and the older one is told to step down", async () => {
    const refusals: string[] = [];
    let oldTerm: number | undefined = 4;
    const old = new FencedCheckpointStore(store.checkpoints, { term: () => oldTerm, refused: (r) => refusals.push(r) });
    const next = new FencedCheckpointStore(store.checkpoints, { term: () => 5, refused: () => undefined });
    const id = await store.checkpoints.nextId();
    if (!id.ok) throw new Error(id.error.message);
    const created = await old.create(record(id.value));
    if (!created.ok || !created.value.created) throw new Error('not created');
    expect(leaderTermOf(created.value.stored.record)).toBe(4);

    const taken = await next.update(id.value, (r) => ({ ...r, state: 'aborted' }));
    if (!taken.ok) throw new Error(taken.error.message);
    expect(leaderTermOf(taken.value.record)).toBe(5);

    // The old leader's write goes out on the revision it knew: the compare-and-set fails, the
    // re-read shows term 5, and the write is refused rather than applied on top.
    const stale = await old.update(id.value, (r) => ({ ...r, state: 'completed' }), created.value.stored);
    expect(stale.ok).toBe(false);
    if (!stale.ok) expect(stale.error.kind).toBe('unavailable');
    expect(refusals).toEqual([expect.stringMatching(/written in term 5, newer than this coordinator's term 4/)]);
    const deleted = await old.delete(id.value);
    expect(deleted.ok).toBe(false);
    const stored = await store.checkpoints.get(id.value);
    expect(stored.ok && stored.value.revision).toBe(taken.value.revision);
    expect(stored.ok && stored.value.record.state).toBe('aborted');

    // Without a valid lease nothing is written at all, not even a new record.
    oldTerm = undefined;
    const other = await store.checkpoints.nextId();
    if (!other.ok) throw new Error(other.error.message);
    const refusedCreate = await old.create(record(other.value));
    expect(refusedCreate.ok).toBe(false);
    expect((await store.checkpoints.get(other.value)).ok).toBe(false);
    expect(refusals.at(-1)).toMatch(/leader lease is not valid/);
  });

  it('rollback and restore operation records are fenced the same way', async () => {
    const refusals: string[] = [];
    let oldTerm: number | undefined = 7;
    const old = new FencedOperationStore(store.operations, { term: () => oldTerm, refused: (r) => refusals.push(r) });
    const next = new FencedOperationStore(store.operations, { term: () => 8, refused: () => undefined });
    const op: OperationRecord = {
      id: store.operations.newId('rollback', undefined),
      kind: 'rollback',
      level: 'app',
      planId: 'fence',
      tenant: 't1',
      checkpointId: 1,
      epochLine: 'fence',
      request: 'rollback to 1',
      state: 'restoring',
      detail: '',
      safetyCheckpointId: 0,
      createdAtUnixMs: Date.now(),
      updatedAtUnixMs: Date.now(),
    } as OperationRecord;
    const claimed = await old.claim(op);
    expect(claimed.ok && claimed.value.created).toBe(true);
    expect((await old.put({ ...op, detail: 'old leader, before the takeover' })).ok).toBe(true);
    expect((await next.put({ ...op, state: 'needs-repair', detail: 'ended by the new leader' } as OperationRecord)).ok).toBe(true);

    const stale = await old.put({ ...op, state: 'completed', detail: 'old leader, after the takeover' } as OperationRecord);
    expect(stale.ok).toBe(false);
    if (!stale.ok) expect(stale.error.kind).toBe('unavailable');
    expect(refusals).toEqual([expect.stringMatching(/operation .* was written in term 8, newer than this coordinator's term 7/)]);
    const stored = await store.operations.get(op.planId, op.id);
    expect(stored.ok && stored.value).toMatchObject({ state: 'needs-repair', detail: 'ended by the new leader' });
    expect(stored.ok && stored.value !== undefined && leaderTermOf(stored.value)).toBe(8);

    // A record written without a claim first (no revision yet) is created.
    const fresh = { ...op, id: store.operations.newId('rollback', undefined) };
    expect((await next.put(fresh)).ok).toBe(true);
    const freshStored = await store.operations.get(fresh.planId, fresh.id);
    expect(freshStored.ok && freshStored.value !== undefined && leaderTermOf(freshStored.value)).toBe(8);

    oldTerm = undefined;
    const other = { ...op, id: store.operations.newId('rollback', undefined) };
    expect((await old.claim(other)).ok).toBe(false);
    const absent = await store.operations.get(other.planId, other.id);
    expect(absent.ok && absent.value).toBeUndefined();
  });
});

describe('records fenced by the lease alone', () => {
  it('plan and epoch writes are refused without a valid lease and pass with one; reads always pass', async () => {
    const refusals: string[] = [];
    let term: number | undefined = 3;
    const fence = { term: () => term, refused: (r: string) => refusals.push(r) };
    const plans = leaseChecked(store.plans, 'plans', ['create', 'update', 'delete'], fence);
    const epochs = leaseChecked(store.epochs, 'epochs', ['bump'], fence);
    const at = Date.now();
    const plan = { id: 'lease-only', tenant: 't1', servers: ['s1'], apps: [{ server: 's1', app: 'a' }], channels: [], volumes: [], createdAtUnixMs: at, updatedAtUnixMs: at };

    // With a valid lease (the control): written.
    expect((await plans.create(plan)).ok).toBe(true);
    const bumped = await epochs.bump('lease-only');
    expect(bumped.ok).toBe(true);
    const epochBefore = await store.epochs.get('lease-only');

    term = undefined;
    const refusedPlan = await plans.create({ ...plan, id: 'lease-only-2' });
    expect(refusedPlan.ok).toBe(false);
    if (!refusedPlan.ok) expect(refusedPlan.error.kind).toBe('unavailable');
    const refusedDelete = await plans.delete('lease-only');
    expect(refusedDelete.ok).toBe(false);
    expect((await epochs.bump('lease-only')).ok).toBe(false);
    expect(refusals).toEqual([
      expect.stringMatching(/plans create: this coordinator's leader lease is not valid/),
      expect.stringMatching(/plans delete/),
      expect.stringMatching(/epochs bump/),
    ]);
    // Nothing changed in the store, and reads through the wrappers still answer.
    expect((await store.plans.get('lease-only-2')).ok).toBe(false);
    const read = await plans.get('lease-only');
    expect(read.ok && read.value.id).toBe('lease-only');
    expect(await epochs.get('lease-only')).toEqual(epochBefore);
  });
});
