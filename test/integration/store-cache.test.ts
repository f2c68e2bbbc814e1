/**
 * Plans and epochs read from memory kept current by KV watches (coordinator/store/cached.ts): a
 * read after this process's write sees it at once, another writer's change arrives with the watch,
 * and a stale watch delivery never takes a newer value back.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { startNatsServer, type NatsServerHandle } from '../../examples/nats-server.js';

let nats: NatsServerHandle;
let nc: NatsConnection;
let other: NatsConnection;
let store: CoordinatorStore;
/** A second coordinator's store on its own connection: its writes reach `store` only through the watch. */
let writer: CoordinatorStore;

const plan = (id: string, apps: number) => ({
  id,
  tenant: 't',
  servers: ['s1'],
  apps: Array.from({ length: apps }, (_, i) => ({ server: 's1', app: `a${i}` })),
  channels: [],
  volumes: [],
  createdAtUnixMs: 1,
  updatedAtUnixMs: 1,
});

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  other = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  writer = await openCoordinatorStore(other);
}, 30_000);

afterAll(async () => {
  await nc?.drain();
  await other?.drain();
  await nats?.stop();
});

describe('plans and epochs from the watched cache', () => {
  it('this process reads its own writes at once: create, update, delete, bump', async () => {
    const created = await store.plans.create(plan('own', 1));
    expect(created.ok).toBe(true);
    expect(await store.plans.get('own')).toMatchObject({ ok: true, value: { apps: [{ app: 'a0' }] } });
    const updated = await store.plans.update(plan('own', 2), created.ok ? created.value.revision : 0);
    expect(updated.ok).toBe(true);
    const now = await store.plans.get('own');
    expect(now.ok && now.value.apps).toHaveLength(2);
    expect((await store.plans.delete('own')).ok).toBe(true);
    expect(await store.plans.get('own')).toMatchObject({ ok: false, error: { kind: 'not-found' } });
    expect(await store.epochs.get('own')).toEqual({ ok: true, value: 0 });
    expect(await store.epochs.bump('own')).toEqual({ ok: true, value: 1 });
    expect(await store.epochs.get('own')).toEqual({ ok: true, value: 1 });
  });

  it("another coordinator's writes arrive with the watch", async () => {
    expect((await writer.plans.create(plan('theirs', 3))).ok).toBe(true);
    const seen = await until('the plan through the watch', async () => {
      const r = await store.plans.get('theirs');
      return r.ok ? r.value : undefined;
    });
    expect(seen.apps).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect((await writer.epochs.bump('theirs')).ok).toBe(true);
    await until('epoch 3 through the watch', async () => {
      const e = await store.epochs.get('theirs');
      return e.ok && e.value === 3 ? true : undefined;
    });
    expect((await writer.plans.delete('theirs')).ok).toBe(true);
    await until('the delete through the watch', async () => ((await store.plans.get('theirs')).ok ? undefined : true));
  });

  it('once the watches are up, a read costs no request to JetStream', async () => {
    expect((await store.plans.create(plan('quiet', 1))).ok).toBe(true);
    const kv = store.buckets.plans as unknown as { get: (...a: unknown[]) => Promise<unknown> };
    const meta = store.buckets.meta as unknown as { get: (...a: unknown[]) => Promise<unknown> };
    const [plansGet, metaGet] = [kv.get, meta.get];
    let reads = 0;
    kv.get = (...a) => ((reads += 1), plansGet.apply(kv, a));
    meta.get = (...a) => ((reads += 1), metaGet.apply(meta, a));
    try {
      for (let i = 0; i < 20; i++) {
        expect((await store.plans.get('quiet')).ok).toBe(true);
        expect((await store.epochs.get('quiet')).ok).toBe(true);
      }
      expect(reads).toBe(0);
    } finally {
      kv.get = plansGet;
      meta.get = metaGet;
    }
  });

  it('an epoch bumped here is not taken back by an older value the watch delivers late', async () => {
    // Bumped twice in a row here: the watch delivers 1, then 2, possibly after the second bump returned.
    expect(await store.epochs.bump('late')).toEqual({ ok: true, value: 1 });
    expect(await store.epochs.bump('late')).toEqual({ ok: true, value: 2 });
    for (let i = 0; i < 10; i++) {
      expect(await store.epochs.get('late')).toEqual({ ok: true, value: 2 });
      await new Promise((r) => setTimeout(r, 10));
    }
  });
});
