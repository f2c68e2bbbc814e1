/**
 * A key listing is bounded (coordinator/store/scan.ts): nats.js's `kv.keys()` ends only when NATS
 * says nothing is pending, and has no deadline of its own; a listing that never ended held a
 * rollback's call and its plan (docs/RELIABILITY.md F10). Here a real nats-server is paused
 * (SIGSTOP) before a listing: it answers UNAVAILABLE at its deadline (without one it took 20 s, the
 * store's retry budget for a read that timed out), and lists again once the server runs. A pause in
 * the middle of a listing did not reproduce a listing that never ends: the keys already sent were
 * enough to end it.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { listKeys } from '../../coordinator/store/scan.js';
import { type NatsServerHandle, pauseProcess, startNatsServer } from '../support/nats-server.js';

describe('key listing', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let store: CoordinatorStore;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    store = await openCoordinatorStore(nc);
    for (const k of ['op.p.a', 'op.p.b', 'op.q.c']) await store.buckets.meta.put(k, '{}');
  }, 60_000);

  afterAll(async () => {
    if (server) process.kill(server.pid, 'SIGCONT');
    await nc?.close();
    await server?.stop();
  });

  it('lists the keys under a filter', async () => {
    const r = await listKeys(store.buckets.meta, 'op.p.*');
    expect(r.ok && r.value.sort()).toEqual(['op.p.a', 'op.p.b']);
  });

  it('NATS paused before a listing: UNAVAILABLE at the deadline; it lists again once NATS runs', async () => {
    await pauseProcess(server.pid);
    const started = performance.now();
    const r = await listKeys(store.buckets.meta, 'op.>', 1_500);
    const tookMs = performance.now() - started;
    process.kill(server.pid, 'SIGCONT');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe('unavailable');
    expect(r.error.message).toContain('did not list keys op.> within 1500 ms');
    expect(tookMs).toBeGreaterThanOrEqual(1_400);
    expect(tookMs).toBeLessThan(4_000);
    const again = await listKeys(store.buckets.meta, 'op.>');
    expect(again.ok && again.value.sort()).toEqual(['op.p.a', 'op.p.b', 'op.q.c']);
  }, 60_000);
});
