/**
 * Defect 9 of issue 9, coordinator side, with real processes: a coordinator killed mid-checkpoint
 * left its record `collecting` for 109-129 s, and meanwhile new checkpoints of the plan were
 * accepted. Now the coordinator started next aborts it before it serves its first call, and the
 * plan's next checkpoint is accepted at once.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { agentlessPlan } from '../support/api-world.js';
import { spawnTsx, value, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

let nats: NatsServerHandle;
let nc: NatsConnection;
let store: CoordinatorStore;
const children: Child[] = [];

async function coordinator(): Promise<{ child: Child; client: CoordinatorClient }> {
  const child = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  children.push(child);
  const listening = await child.waitForOutput(/listening on (\S+)/);
  return { child, client: new CoordinatorClient(listening[1] as string, { callTimeoutMs: 20_000 }) };
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
}, 30_000);

afterAll(async () => {
  for (const c of children) await c.stop();
  await nc?.close();
  await nats?.stop();
});

describe('a coordinator started over a dead one', () => {
  it("aborts the dead one's round before serving, and the plan's next checkpoint is accepted at once", async () => {
    const first = await coordinator();
    value(await first.client.registerPlan(agentlessPlan('restart'), 0));
    // No agent answers: the checkpoint stays in flight for its minute.
    const taken = value(await first.client.takeSnapshot({ planId: 'restart', level: 'app', options: { timeoutMs: 60_000 } }));
    first.client.close();
    first.child.process.kill('SIGKILL');
    await first.child.exited;
    const left = await store.checkpoints.get(taken.id);
    expect(left.ok && left.value.record.state).toMatch(/^(pending|triggering|collecting)$/);

    const started = Date.now();
    const second = await coordinator();
    try {
      // Recovery runs before the server listens: the record is final by the time it answers.
      const after = value(await second.client.getCheckpoint(taken.id));
      expect(after).toMatchObject({ state: 'aborted', failureReason: 'coordinator-lost' });
      expect(after.failureDetail).toMatch(/no coordinator running it/);
      const next = value(await second.client.takeSnapshot({ planId: 'restart', level: 'app', options: { timeoutMs: 60_000 } }));
      expect(next.id).toBeGreaterThan(taken.id);
      expect(Date.now() - started).toBeLessThan(30_000);
      value(await second.client.cancelCheckpoint(next.id));
    } finally {
      second.client.close();
    }
  }, 90_000);
});
