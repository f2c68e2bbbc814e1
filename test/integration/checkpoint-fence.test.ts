/**
 * Checkpoint ids the coordinator never issued (docs/security.md, "the checkpoint after the fuzz"):
 * a plan trigger republished with a far-future id makes the apps begin it and raises their fence,
 * which refuses every lower id as stale. The agents' heartbeats carry that fence, and the coordinator
 * issues the plan's next id above it, so the next checkpoint completes instead of being refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { decodePlanTrigger, encodePlanTrigger, planTriggerSubject, type PlanTrigger } from '../../src/wire/index.js';
import { startLiveWorld, TENANT, type LiveWorld } from '../support/live-fixture.js';
import { waitUntil } from '../support/live-processes.js';

const MADE_UP_ID = 1_000_000_000;

let world: LiveWorld;

beforeAll(async () => {
  world = await startLiveWorld({ timeoutMs: 5_000 });
}, 30_000);

afterAll(async () => {
  await world?.stop();
});

async function take(): Promise<CheckpointRecord> {
  const taken = await world.service.take({ planId: 'demo', level: 'app', options: {} });
  if (!taken.ok) throw new Error(taken.error.message);
  return world.service.waitFor(taken.value.id);
}

describe('checkpoint ids an agent has begun that the coordinator never issued', () => {
  it('a republished trigger with a far-future id: the heartbeats report the fence, the next id goes above it and the checkpoint completes', async () => {
    const triggers: PlanTrigger[] = [];
    const sub = world.nc.subscribe(planTriggerSubject(TENANT, 'demo'), {
      callback: (_e, m) => {
        const t = decodePlanTrigger(m.data);
        if (t.ok) triggers.push(t.value);
      },
    });
    await world.nc.flush();
    const first = await take();
    expect(first.state, first.failureDetail).toBe('completed');
    const real = triggers.find((t) => t.checkpointId === first.id);
    if (real === undefined) throw new Error(`no trigger of checkpoint ${first.id} seen`);
    sub.unsubscribe();

    // The same trigger under an id no coordinator handed out, as a broken sender would publish it.
    const forged = encodePlanTrigger({ ...real, requestId: 'forged-1', checkpointId: MADE_UP_ID, timeoutMs: 600_000 });
    if (!forged.ok) throw new Error(forged.error.message);
    world.nc.publish(planTriggerSubject(TENANT, 'demo'), forged.value);
    await world.nc.flush();

    // The fence is real: the apps began the made-up checkpoint and their heartbeats say so.
    await waitUntil('a heartbeat to report the made-up id as a fence', () => world.registry.highestCheckpointId(TENANT, ['s1', 's2', 's3']) >= MADE_UP_ID || undefined, {
      timeoutMs: 10_000,
      intervalMs: 100,
    });

    const next = await take();
    expect(next.id).toBeGreaterThan(MADE_UP_ID);
    expect(next.state, `${next.failureReason ?? ''} ${next.failureDetail ?? ''}`).toBe('completed');
    const verified = await world.service.verify(next.id);
    expect(verified.ok && verified.value.problems).toEqual([]);
    // And the plan goes on from there.
    const after = await take();
    expect(after.state, `${after.failureReason ?? ''} ${after.failureDetail ?? ''}`).toBe('completed');
    expect(after.id).toBeGreaterThan(next.id);
  }, 60_000);
});
