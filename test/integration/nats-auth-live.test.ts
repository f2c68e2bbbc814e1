/**
 * The live system on NATS in operator mode (docs/security.md): the coordinator with its
 * credentials, each agent with the credential `enroll` gave it. Enrolled agents complete an app
 * checkpoint whose states lie in the tenant's own account; a revoked agent drops out, so the next
 * checkpoint cannot complete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cyclicPlan, LiveSystem, value, waitUntil } from '../support/live-processes.js';

const plan = cyclicPlan('secured', 'acme', ['s1', 's2', 's3']);

describe('live system on secured NATS (accounts and per-agent credentials)', () => {
  let live: LiveSystem;

  beforeAll(async () => {
    live = await LiveSystem.start({ plan, secured: true });
  }, 60_000);

  afterAll(async () => {
    await live?.stop();
  });

  it('enrolled agents complete an app checkpoint, its states stored in the tenant account and verified', async () => {
    const c = await live.take({ planId: plan.id });
    expect(c.state).toBe('completed');
    const verified = value(await live.client.verify(c.id), 'VerifyCheckpoint');
    expect(verified.problems).toEqual([]);
    const tokens = await live.tokens(c.id);
    expect(tokens.total).toBe(3 * 1_000);
  }, 30_000);

  it('a revoked agent is cut off: the next checkpoint does not complete', async () => {
    const secured = live.secured;
    if (secured === undefined) throw new Error('not secured');
    await secured.revoke('acme', 's3');
    await waitUntil('s3 to log that NATS refuses its credential', () => live.agent('s3').output().includes("NATS refused this agent's credential"), { timeoutMs: 10_000 });
    const cutOff = await live.take({ planId: plan.id, options: { timeoutMs: 3_000 } });
    expect(cutOff.state).toBe('aborted');
    expect(cutOff.failureDetail).toContain('no answer from s3/APP3');
    // The others are still there: only s3 is missing.
    expect(live.deadChildren()).toEqual([]);
  }, 60_000);
});
