/**
 * Coordinators with a leader lease, as real processes on a real 3-node NATS cluster (3 replicas):
 * a standby answers UNAVAILABLE naming the leader and reports NOT_SERVING; when the leader is
 * killed, the standby takes over within 10 s, ends the round the dead leader left, and the next
 * checkpoint completes; and a leader paused (SIGSTOP) past its lease, whose round the new leader
 * has since ended, writes nothing when it runs again: it steps down, says so, and exits.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsClusterHandle } from '../../examples/nats-cluster.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { healthGrpc } from '../../coordinator/grpc/health.js';
import { leaderTermOf } from '../../coordinator/store/fenced.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { agentlessPlan } from '../support/api-world.js';
import { agentConfigFor, cyclicPlan, spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';

const TAKEOVER_MS_MAX = 10_000;

let cluster: NatsClusterHandle;
let nc: NatsConnection;
let store: CoordinatorStore;
let dir: string;
const children: Child[] = [];
const clients: CoordinatorClient[] = [];
const healthClients: Client[] = [];

interface Coordinator {
  readonly child: Child;
  readonly address: string;
  readonly client: CoordinatorClient;
  health(): Promise<string>;
}

async function coordinator(name: string): Promise<Coordinator> {
  const child = spawnTsx(name, 'coordinator/main.ts', ['--nats', cluster.urls.join(','), '--replicas', '3', '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  children.push(child);
  const address = (await child.waitForOutput(/listening on (\S+)/, 30_000))[1] as string;
  const client = new CoordinatorClient(address, { callTimeoutMs: 20_000 });
  clients.push(client);
  const health = new (healthGrpc().Client)(address, credentials.createInsecure());
  healthClients.push(health);
  return {
    child,
    address,
    client,
    health: () =>
      new Promise((resolve) => {
        (health as unknown as { Check(r: object, cb: (e: ServiceError | null, r: { status: string }) => void): void }).Check({ service: 'snapshot.v1.Coordinator' }, (error, response) =>
          resolve(error ? `error ${error.code}` : response.status),
        );
      }),
  };
}

async function leading(c: Coordinator, timeoutMs: number): Promise<void> {
  await waitUntil(`${c.child.name} to serve as leader`, async () => (await c.health()) === 'SERVING', { timeoutMs, intervalMs: 50 });
}

const plan = cyclicPlan('ha', 'tenant-ha', ['ha-1', 'ha-2', 'ha-3']);

beforeAll(async () => {
  cluster = await startNatsCluster();
  nc = await connect({ servers: [...cluster.urls] });
  store = await openCoordinatorStore(nc, { replicas: 3 });
  dir = mkdtempSync(join(tmpdir(), 'ha-coordinators-'));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const h of healthClients) h.close();
  for (const c of children) await c.stop();
  await nc?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('coordinators with a leader lease on a 3-node NATS cluster', () => {
  let a: Coordinator;
  let b: Coordinator;

  it('the first leads; a second stands by: UNAVAILABLE naming the leader, health NOT_SERVING', async () => {
    a = await coordinator('coordinator a');
    b = await coordinator('coordinator b');
    expect(await a.health()).toBe('SERVING');
    expect(await b.health()).toBe('NOT_SERVING');
    value(await a.client.registerPlan(plan, 0));
    const refused = await b.client.registerPlan(agentlessPlan('ha-refused'), 0);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.codeName).toBe('UNAVAILABLE');
      expect(refused.error.reason).toBe('NOT_LEADER');
      expect(refused.error.message).toContain(`the leader is at ${a.address}`);
    }
    // Reads come from the shared store.
    expect(value(await b.client.getPlan('ha')).id).toBe('ha');
    const verifyMissing = await b.client.verify(999_999);
    expect(!verifyMissing.ok && verifyMissing.error.codeName).toBe('NOT_FOUND');
    for (const server of plan.servers) {
      const file = join(dir, `${server}.json`);
      // The agents use one node: this test kills coordinators, not NATS nodes.
      writeFileSync(file, JSON.stringify(agentConfigFor(plan, server, cluster.urls[0] as string)));
      children.push(spawnTsx(`agent ${server}`, 'agent/main.ts', ['--config', file, '--demo-app', 'tokens', '--initial-tokens', '100', '--transfer-interval-ms', '5']));
    }
    await waitUntil('the agents to be online', async () => {
      const agents = await a.client.listAgents(plan.tenant);
      return agents.ok && plan.servers.every((s) => agents.value.some((x) => x.server === s && x.status === 'online'));
    }, { timeoutMs: 30_000, intervalMs: 100 });
  }, 90_000);

  it('the leader killed: the standby takes over within 10 s, ends the left round, and a checkpoint then completes', async () => {
    value(await a.client.registerPlan(agentlessPlan('ha-left'), 0));
    // No agent serves this plan: its round stays in flight until someone ends it.
    const left = value(await a.client.takeSnapshot({ planId: 'ha-left', level: 'app', options: { timeoutMs: 120_000 } }));
    const killedAt = performance.now();
    a.child.process.kill('SIGKILL');
    await a.child.exited;
    await leading(b, TAKEOVER_MS_MAX + 5_000);
    const takeoverMs = performance.now() - killedAt;
    console.log(`takeover after the leader's SIGKILL: ${Math.round(takeoverMs)} ms`);
    expect(takeoverMs).toBeLessThan(TAKEOVER_MS_MAX);
    const ended = await store.checkpoints.get(left.id);
    if (!ended.ok) throw new Error(ended.error.message);
    expect(ended.value.record).toMatchObject({ state: 'aborted', failureReason: 'coordinator-lost' });
    expect(leaderTermOf(ended.value.record)).toBeGreaterThan(1);
    const taken = value(await b.client.takeSnapshot({ planId: 'ha', level: 'app', options: {} }));
    const done = await waitUntil('the checkpoint to end', async () => {
      const got = await b.client.getCheckpoint(taken.id);
      return got.ok && (got.value.state === 'completed' || got.value.state === 'aborted') ? got.value : undefined;
    }, { timeoutMs: 30_000 });
    expect(done.state).toBe('completed');
  }, 90_000);

  it('a leader paused past its lease writes nothing after the takeover: it steps down, logs it, exits 3', async () => {
    const c = await coordinator('coordinator c');
    expect(await c.health()).toBe('NOT_SERVING');
    value(await b.client.registerPlan(agentlessPlan('ha-paused'), 0));
    // Times out while b is paused: on resume, b's round would write its abort at once.
    const inFlight = value(await b.client.takeSnapshot({ planId: 'ha-paused', level: 'app', options: { timeoutMs: 3_000 } }));
    const before = await store.checkpoints.get(inFlight.id);
    if (!before.ok) throw new Error(before.error.message);
    const oldTerm = leaderTermOf(before.value.record);
    b.child.process.kill('SIGSTOP');
    try {
      await leading(c, TAKEOVER_MS_MAX + 5_000);
    } finally {
      b.child.process.kill('SIGCONT');
    }
    // c's recovery ended b's round in c's term: the record as c left it.
    const taken = await store.checkpoints.get(inFlight.id);
    if (!taken.ok) throw new Error(taken.error.message);
    expect(taken.value.record).toMatchObject({ state: 'aborted', failureReason: 'coordinator-lost' });
    expect(leaderTermOf(taken.value.record)).toBeGreaterThan(oldTerm);

    const exit = await Promise.race([b.child.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 15_000))]);
    expect(exit?.code).toBe(3);
    expect(b.child.output()).toMatch(/stepping down: this coordinator no longer leads/);
    expect(b.child.output()).toMatch(/deposed: exiting with code 3/);
    // Its round's timeout fired on resume: that write was refused, not applied.
    expect(b.child.output()).toMatch(/"error":"not written, this coordinator no longer leads[^"]*","msg":"checkpoint record not written"/);
    const after = await store.checkpoints.get(inFlight.id);
    if (!after.ok) throw new Error(after.error.message);
    expect(after.value.revision).toBe(taken.value.revision);
    expect(await c.health()).toBe('SERVING');
  }, 90_000);
});
