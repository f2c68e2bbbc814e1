/**
 * NATS quorum lost under two coordinators (real processes, a real 3-node cluster): two of the three
 * nodes are killed. Health is NOT_SERVING on both and their logs say why; the leader's lease runs
 * out and it steps down (exit 3) rather than lead blind. Once the nodes are back, the standby takes
 * the lease and serves.
 */
import { credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsClusterHandle } from '../../examples/nats-cluster.js';
import { healthGrpc } from '../../coordinator/grpc/health.js';
import { spawnTsx, waitUntil, type Child } from '../support/live-processes.js';

let cluster: NatsClusterHandle;
const children: Child[] = [];
const healthClients: Client[] = [];

async function coordinator(name: string): Promise<{ child: Child; health: () => Promise<string> }> {
  const child = spawnTsx(name, 'coordinator/main.ts', ['--nats', cluster.urls.join(','), '--replicas', '3', '--listen', '127.0.0.1:0', '--log-level', 'info']);
  children.push(child);
  const address = (await child.waitForOutput(/listening on (\S+)/, 30_000))[1] as string;
  const client = new (healthGrpc().Client)(address, credentials.createInsecure());
  healthClients.push(client);
  return {
    child,
    health: () =>
      new Promise((resolve) => {
        (client as unknown as { Check(r: object, cb: (e: ServiceError | null, r: { status: string }) => void): void }).Check({ service: 'snapshot.v1.Coordinator' }, (error, response) =>
          resolve(error ? `error ${error.code}` : response.status),
        );
      }),
  };
}

beforeAll(async () => {
  cluster = await startNatsCluster();
}, 60_000);

afterAll(async () => {
  for (const h of healthClients) h.close();
  for (const c of children) await c.stop();
  await cluster?.stop();
});

describe('NATS quorum lost under two coordinators', () => {
  it('both report NOT_SERVING and say why, the leader steps down, and the standby leads once the quorum is back', async () => {
    const a = await coordinator('coordinator a');
    const b = await coordinator('coordinator b');
    expect(await a.health()).toBe('SERVING');
    expect(await b.health()).toBe('NOT_SERVING');
    const [n1, n2] = cluster.nodes;
    if (n1 === undefined || n2 === undefined) throw new Error('three nodes expected');
    await n1.kill();
    await n2.kill();
    try {
      const exit = await Promise.race([a.child.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000))]);
      expect(exit?.code).toBe(3);
      expect(a.child.output()).toMatch(/stepping down: this coordinator no longer leads/);
      expect(b.child.alive()).toBe(true);
      expect(await b.health()).toBe('NOT_SERVING');
      await b.child.waitForOutput(/the leader lease cannot be read or taken \(NATS or its quorum is down\)/, 20_000);
    } finally {
      await n1.start();
      await n2.start();
    }
    await cluster.waitForJetStream();
    await waitUntil('the standby to lead and serve', async () => (await b.health()) === 'SERVING', { timeoutMs: 30_000, intervalMs: 100 });
    expect(b.child.output()).toMatch(/leader lease taken: this coordinator leads/);
  }, 120_000);
});
