/**
 * The live system in separate processes across a nats-server restart: the one server is killed
 * (SIGKILL) under in-band channel traffic between three agents and started again on its port and
 * store. What it had in flight is lost; the channels repair it by a resend, so no input channel
 * fails, nothing is rolled back, and the next checkpoint completes, verifies and conserves every
 * token. (The cluster case, a node killed: live-channel-cluster-node.test.ts, and at the transport
 * level channel-broker-faults.test.ts.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CheckpointView } from '../../coordinator/checkpoint-view.js';
import { exited } from '../../examples/nats-server.js';
import { cyclicPlan, LiveSystem, value, waitUntil } from '../support/live-processes.js';

const TENANT = 'restart';
const PLAN = cyclicPlan('demo', TENANT, ['s1', 's2', 's3']);
const TOKENS = 100_000;
const TOTAL = 3 * TOKENS;

let live: LiveSystem;
let replacement: ChildProcess | undefined;

beforeAll(async () => {
  live = await LiveSystem.start({ plan: PLAN, agents: { initialTokens: TOKENS, transferIntervalMs: 2 } });
}, 60_000);

afterAll(async () => {
  await live?.stop();
  if (replacement !== undefined) {
    replacement.kill('SIGKILL');
    await exited(replacement);
  }
});

async function expectConsistent(c: CheckpointView): Promise<void> {
  expect(c.state, `checkpoint ${c.id}: ${c.failureReason ?? ''} ${c.failureDetail ?? ''}`).toBe('completed');
  expect(value(await live.client.verify(c.id)).problems).toEqual([]);
  expect((await live.tokens(c.id)).total).toBe(TOTAL);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it('a nats-server restart under channel traffic costs a pause: no channel fails, no rollback, the next checkpoint completes', async () => {
  const before = await live.take({ planId: 'demo', options: { timeoutMs: 15_000 } });
  await expectConsistent(before);

  const { pid, port, storeDir, url } = live.nats;
  process.kill(pid, 'SIGKILL');
  await waitUntil('the killed nats-server to be gone', () => !alive(pid));
  replacement = spawn(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
  await waitUntil(
    'the nats-server to accept connections again',
    async () => {
      try {
        await (await connect({ servers: url, reconnect: false, timeout: 500 })).close();
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  // The agents and the coordinator reconnect on their own (the agents log at warn, so there is no
  // line to wait for): a checkpoint taken before they have may be declined for that, never for a
  // failed channel.
  const declined: string[] = [];
  // The store (JetStream) may refuse for a while after the restart (docs/RELIABILITY.md, F8: up to
  // minutes on a cluster): that is the store, not the channels, so the wait is long and says why.
  const refused: string[] = [];
  const after = await waitUntil(
    'a checkpoint to complete after the restart',
    async () => {
      const taken = await live.client.takeSnapshot({ level: 'app', options: { timeoutMs: 15_000 }, planId: 'demo' });
      if (!taken.ok) {
        refused.push(`${taken.error.codeName}: ${taken.error.message}`);
        return undefined;
      }
      const c = await live.final(taken.value.id);
      if (c.state === 'completed') return c;
      declined.push(`${c.failureReason ?? ''}: ${c.failureDetail ?? ''}`);
      return undefined;
    },
    { timeoutMs: 150_000, intervalMs: 500 },
  );
  console.log(`after the restart: ${refused.length} take(s) refused (${[...new Set(refused)].slice(0, 3).join('; ')}), ${declined.length} checkpoint(s) declined before one completed${declined.length > 0 ? `: ${declined.join('; ')}` : ''}`);
  expect(declined.filter((d) => d.startsWith('channel-failed'))).toEqual([]);
  await expectConsistent(after);
  expect(after.epoch).toBe(before.epoch);
  // The restart may depose the leader (docs/ha.md, F1): it exits with code 3 and is started again, as systemd does.
  console.log(`coordinator started again ${live.coordinator.restarts} time(s)`);
  for (const s of ['s1', 's2', 's3']) expect(live.agent(s).output()).not.toMatch(/input channel failed|gap not repaired/);
  expect(live.deadChildren()).toEqual([]);
}, 240_000);
