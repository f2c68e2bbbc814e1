/**
 * The 3-node cluster harness (examples/nats-cluster.ts) and the store on it: the coordinator's
 * buckets get 3 replicas, and when the node that leads a bucket's stream is killed, the store's
 * calls ride out the election's 503 window (about 4.6 s on nats-server 2.9.10) instead of failing.
 */
import { existsSync } from 'node:fs';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsClusterHandle } from '../../examples/nats-cluster.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import type { CheckpointRecord } from '../../coordinator/model.js';

let cluster: NatsClusterHandle;
let nc: NatsConnection;
let store: CoordinatorStore;

function record(id: number): CheckpointRecord {
  return {
    id,
    planId: 'cluster',
    tenant: 't1',
    epoch: 1,
    state: 'pending',
    levelRequested: 'app',
    createdAtUnixMs: Date.now(),
    parts: [],
    volumes: [],
  } as unknown as CheckpointRecord;
}

beforeAll(async () => {
  cluster = await startNatsCluster();
  // Pings find a paused server (its socket stays open) in seconds instead of nats.js's 2 minutes.
  nc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1, reconnectTimeWait: 100, pingInterval: 1_000, maxPingOut: 2 });
  store = await openCoordinatorStore(nc, { replicas: 3 });
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
});

describe('a 3-node NATS cluster', () => {
  it('runs three nodes on their own loopback ports with one JetStream', async () => {
    expect(cluster.nodes.map((n) => n.name)).toEqual(['n1', 'n2', 'n3']);
    expect(new Set(cluster.nodes.flatMap((n) => [n.port, n.clusterPort])).size).toBe(6);
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info('KV_snap-checkpoints');
    expect(info.config.num_replicas).toBe(3);
    // Two followers beside the leader: every node holds a copy.
    expect(info.cluster?.replicas?.length).toBe(2);
  });

  it("the store keeps working after the node leading the records' stream is killed, and the node rejoins", async () => {
    const first = await store.checkpoints.nextId();
    if (!first.ok) throw new Error(first.error.message);
    const created = await store.checkpoints.create(record(first.value));
    expect(created.ok).toBe(true);

    const jsm = await nc.jetstreamManager();
    const leaderName = (await jsm.streams.info('KV_snap-checkpoints')).cluster?.leader;
    const leader = cluster.nodes.find((n) => n.name === leaderName);
    if (leader === undefined) throw new Error(`no node named ${String(leaderName)} leads the stream`);
    await leader.kill();
    expect(leader.running()).toBe(false);
    try {
      const started = performance.now();
      // Without the retry of the 503 window this update fails at once (the stream has no leader).
      const updated = await store.checkpoints.update(first.value, (r) => ({ ...r, state: 'triggering' }));
      const tookMs = performance.now() - started;
      if (!updated.ok) throw new Error(updated.error.message);
      expect(updated.value.record.state).toBe('triggering');
      const next = await store.checkpoints.nextId();
      expect(next.ok && next.value).toBe(first.value + 1);
      const after = await jsm.streams.info('KV_snap-checkpoints');
      expect(after.cluster?.leader).not.toBe(leaderName);
      console.log(`store update across the stream leader's death: ${Math.round(tookMs)} ms`);
    } finally {
      // Back in any case: the next test needs a quorum without this node's help.
      await leader.start();
      await cluster.waitForJetStream();
    }
    const got = await store.checkpoints.get(first.value);
    expect(got.ok && got.value.record.state).toBe('triggering');
  }, 60_000);

  it('a paused stream leader (SIGSTOP) is voted out: the store works again without it, and after SIGCONT', async () => {
    const jsm = await nc.jetstreamManager();
    const leaderName = (await jsm.streams.info('KV_snap-meta')).cluster?.leader;
    const node = cluster.nodes.find((n) => n.name === leaderName);
    if (node === undefined) throw new Error(`no node named ${String(leaderName)} leads the stream`);
    console.log(`pausing ${node.name}; the test's connection is to ${nc.getServer()}`);
    node.pause();
    const started = performance.now();
    try {
      // A paused node does not answer 503: its requests time out until the others elect a new
      // leader, and a timed-out write may have landed, so the caller retries (as it would UNAVAILABLE).
      for (;;) {
        const id = await store.checkpoints.nextId();
        if (id.ok) break;
        expect(id.error.kind).toBe('unavailable');
        expect(performance.now() - started).toBeLessThan(45_000);
      }
      console.log(`store usable again ${Math.round(performance.now() - started)} ms after pausing the stream leader`);
    } finally {
      node.resume();
    }
    expect(node.running()).toBe(true);
    const id = await store.checkpoints.nextId();
    expect(id.ok).toBe(true);
  }, 90_000);
});

describe('stopping the cluster harness', () => {
  it('stops every node, a paused one too, and removes every store directory', async () => {
    const other = await startNatsCluster();
    const pids = other.nodes.map((n) => n.pid());
    const dirs = other.nodes.map((n) => n.storeDir);
    expect(dirs.every((d) => existsSync(d))).toBe(true);
    other.nodes[1]?.pause();
    await other.stop();
    expect(other.nodes.every((n) => !n.running())).toBe(true);
    for (const pid of pids) expect(() => process.kill(pid as number, 0)).toThrow();
    expect(dirs.some((d) => existsSync(d))).toBe(false);
  }, 60_000);
});
