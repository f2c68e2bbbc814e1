/**
 * Acceptance of issue 12 item 6 with real processes: a policy created through one snapcoord
 * process survives that process being killed; the next snapcoord serves it unchanged and runs its
 * schedule (checkpoints of the plan start again with nobody asking for them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { agentlessPlan } from '../support/api-world.js';
import { spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

let nats: NatsServerHandle;
const children: Child[] = [];

async function coordinator(): Promise<{ child: Child; client: CoordinatorClient }> {
  // Checkpoints of the agentless plan time out after 1 s: the schedule's next one follows soon.
  const child = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn', '--timeout-ms', '1000']);
  children.push(child);
  const listening = await child.waitForOutput(/listening on (\S+)/);
  return { child, client: new CoordinatorClient(listening[1] as string, { callTimeoutMs: 20_000 }) };
}

async function newestId(client: CoordinatorClient): Promise<number> {
  const page = value(await client.listCheckpoints({ filter: { planId: 'scheduled' }, pageSize: 1, pageToken: '' }));
  return page.items[0]?.id ?? 0;
}

beforeAll(async () => {
  nats = await startNatsServer();
}, 30_000);

afterAll(async () => {
  for (const c of children) await c.stop();
  await nats?.stop();
});

describe('a policy across a coordinator restart', () => {
  it('is served unchanged by the next coordinator, which runs its schedule', async () => {
    const first = await coordinator();
    value(await first.client.registerPlan(agentlessPlan('scheduled'), 0));
    const created = value(
      await first.client.createPolicy({
        planId: 'scheduled',
        schedule: { intervalMs: 500, cron: '', level: 'app', windowStart: '', windowEnd: '', jitterMs: 0, minPauseMs: 0, tolerableFailures: 1000 },
        retention: { keepLast: 2, keepDaily: 3, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 },
      }),
    );
    // The schedule runs on the first coordinator already.
    await waitUntil('a scheduled checkpoint on the first coordinator', async () => ((await newestId(first.client)) > 0 ? true : undefined), { timeoutMs: 20_000 });
    first.client.close();
    first.child.process.kill('SIGKILL');
    await first.child.exited;

    const second = await coordinator();
    try {
      expect(value(await second.client.getPolicy('scheduled'))).toEqual(created);
      const before = await newestId(second.client);
      const next = await waitUntil('a scheduled checkpoint on the restarted coordinator', async () => {
        const id = await newestId(second.client);
        return id > before ? id : undefined;
      }, { timeoutMs: 20_000 });
      expect(next).toBeGreaterThan(before);
    } finally {
      second.client.close();
    }
  }, 90_000);
});
