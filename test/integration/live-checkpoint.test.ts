import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlSubject, decodeChannelState, decodeEvent, eventSubject } from '../../src/wire/index.js';
import { decodeTokens } from '../../agent/demo-apps/token-app.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { readPartState } from '../../coordinator/checkpoints/part-state.js';
import { demoPlan, INITIAL_TOKENS, startLiveWorld, TENANT, type LiveWorld } from '../support/live-fixture.js';

let world: LiveWorld;

beforeAll(async () => {
  world = await startLiveWorld();
}, 30_000);

afterAll(async () => {
  await world?.stop();
});

async function completed(id: number): Promise<CheckpointRecord> {
  return world.service.waitFor(id);
}

/** Tokens in the apps' states plus tokens in the recorded channel states. */
async function tokensIn(record: CheckpointRecord): Promise<number> {
  let total = 0;
  for (const p of record.parts) {
    const state = await readPartState(TENANT, p, world.objects);
    if (!state.ok) throw new Error(state.message);
    total += decodeTokens(state.value);
    if (p.channelState) {
      const bytes = await world.objects.get(TENANT, p.channelState);
      if (!bytes.ok) throw new Error(bytes.error.message);
      const decoded = decodeChannelState(bytes.value);
      if (!decoded.ok) throw new Error(decoded.error.message);
      for (const msgs of Object.values(decoded.value)) for (const m of msgs) total += decodeTokens(m.payload);
    }
  }
  return total;
}

describe('app-consistent checkpoints over NATS (agents in this process)', () => {
  for (const mode of ['aligned', 'unaligned'] as const) {
    it(`${mode}: checkpoints taken while traffic flows complete, verify, and conserve tokens`, async () => {
      const stop = world.traffic(2);
      try {
        for (let i = 0; i < 3; i++) {
          const taken = await world.service.take({ planId: 'demo', level: 'app', options: { alignmentMode: mode } });
          expect(taken.ok, taken.ok ? '' : taken.error.message).toBe(true);
          if (!taken.ok) return;
          const final = await completed(taken.value.id);
          expect(final.state, final.failureDetail).toBe('completed');
          expect(final.levelAchieved).toBe('app');
          const verified = await world.service.verify(final.id);
          expect(verified.ok && verified.value.problems).toEqual([]);
          expect(await tokensIn(final)).toBe(3 * INITIAL_TOKENS);
        }
      } finally {
        stop();
      }
    }, 60_000);
  }

  it('rollback puts every app back to the checkpoint and traffic goes on', async () => {
    const stop = world.traffic(2);
    const taken = await world.service.take({ planId: 'demo', level: 'app', options: {} });
    if (!taken.ok) throw new Error(taken.error.message);
    const target = await completed(taken.value.id);
    expect(target.state).toBe('completed');
    await new Promise((r) => setTimeout(r, 200));
    const rolled = await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false });
    expect(rolled.ok, rolled.ok ? '' : rolled.error.message).toBe(true);
    if (!rolled.ok) return;
    expect(rolled.value.safetyCheckpointId).toBeGreaterThan(target.id);
    expect(rolled.value.epoch).toBe(1);
    // After the rollback, a new checkpoint at the new epoch completes and still conserves tokens.
    await new Promise((r) => setTimeout(r, 200));
    const after = await world.service.take({ planId: 'demo', level: 'app', options: {} });
    if (!after.ok) throw new Error(after.error.message);
    const final = await completed(after.value.id);
    stop();
    expect(final.state, final.failureDetail).toBe('completed');
    expect(final.epoch).toBe(1);
    expect(await tokensIn(final)).toBe(3 * INITIAL_TOKENS);
  }, 60_000);

  it('bytes that do not decode on a control or event subject are counted and dropped, and the next checkpoint completes', async () => {
    const [first] = [...world.agents.values()];
    if (!first) throw new Error('no agent');
    const agent = first.agent;
    const server = demoPlan.apps.find((a) => a.app === [...world.agents.keys()][0])?.server as string;
    const before = { control: agent.counters.malformedControl, events: world.bus.counters.malformedEvents };
    world.nc.publish(controlSubject(TENANT, server), new Uint8Array([0xff, 0x01, 0x02]));
    world.nc.publish(eventSubject(TENANT, server), new Uint8Array([0x0a, 0x80]));
    await world.nc.flush();
    for (let i = 0; i < 100 && (agent.counters.malformedControl === before.control || world.bus.counters.malformedEvents === before.events); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(agent.counters.malformedControl).toBe(before.control + 1);
    expect(world.bus.counters.malformedEvents).toBe(before.events + 1);
    const taken = await world.service.take({ planId: 'demo', level: 'app', options: {} });
    if (!taken.ok) throw new Error(taken.error.message);
    expect((await completed(taken.value.id)).state).toBe('completed');
  }, 60_000);

  it('an agent busy acking checkpoints sends no heartbeats on top; an idle one heartbeats every interval (500 ms here)', async () => {
    const server = demoPlan.apps[0]?.server as string;
    const heartbeats: number[] = [];
    const sub = world.nc.subscribe(eventSubject(TENANT, server), {
      callback: (_e, m) => {
        const d = decodeEvent(m.data);
        if (d.ok && d.value.type === 'heartbeat') heartbeats.push(Date.now());
      },
    });
    try {
      const busyFrom = Date.now();
      while (Date.now() - busyFrom < 1_500) {
        const taken = await world.service.take({ planId: 'demo', level: 'app', options: {} });
        if (!taken.ok) throw new Error(taken.error.message);
        await completed(taken.value.id);
      }
      const busy = heartbeats.filter((t) => t >= busyFrom + 250).length;
      const idleFrom = Date.now();
      await new Promise((r) => setTimeout(r, 1_600));
      const idle = heartbeats.filter((t) => t >= idleFrom).length;
      expect(busy).toBeLessThanOrEqual(1);
      expect(idle).toBeGreaterThanOrEqual(2);
    } finally {
      sub.unsubscribe();
    }
  }, 60_000);

  it('a manual request outranks a periodic checkpoint in flight: the periodic one is cancelled, the manual one completes', async () => {
    const periodic = await world.service.take({ planId: 'demo', level: 'app', options: {}, periodic: true });
    if (!periodic.ok) throw new Error(periodic.error.message);
    const manual = await world.service.take({ planId: 'demo', level: 'app', options: {} });
    expect(manual.ok, manual.ok ? '' : manual.error.message).toBe(true);
    if (!manual.ok) return;
    const p = await completed(periodic.value.id);
    const m = await completed(manual.value.id);
    expect(m.state, m.failureDetail).toBe('completed');
    // The manual request came a few milliseconds after the periodic one, usually before its acks
    // could, and cancelled it. With agents in this process the periodic one is sometimes already
    // committing: a committing round refuses the cancel and completes (its completed record may be
    // landing). Admission has then given its slot away all the same, which is the open VOPR finding
    // preempt-while-committing (docs/vopr.md); both end states are what the round does today.
    if (p.state === 'completed') return;
    expect(p.state).toBe('aborted');
    expect(p.failureReason).toBe('cancelled');
    expect(p.failureDetail).toContain('manual checkpoint request outranks');
  }, 60_000);

  it('a checkpoint cancelled by a rollback does not fall back to crash level, even with fallback policy downgrade', async () => {
    const target = await world.service.take({ planId: 'demo', level: 'app', options: {} });
    if (!target.ok) throw new Error(target.error.message);
    expect(await completed(target.value.id)).toMatchObject({ state: 'completed' });
    const running = await world.service.take({ planId: 'demo', level: 'app', options: { fallbackPolicy: 'downgrade' } });
    if (!running.ok) throw new Error(running.error.message);
    // The rollback cancels the checkpoint in flight; a fallback would start a crash-level checkpoint
    // (freezing every server) in the middle of the restore.
    const rolled = await world.service.rollback({ checkpointId: target.value.id, skipSafetyCheckpoint: true });
    expect(rolled.ok, rolled.ok ? '' : rolled.error.message).toBe(true);
    // A checkpoint already committing when the cancel came is not cancelled (its completed record
    // may be landing): it completes. Either way nothing falls back.
    const ended = await completed(running.value.id);
    expect(ended.state === 'completed' ? 'completed' : `${ended.state} ${ended.failureReason ?? ''}`).toMatch(/^(completed|aborted cancelled)$/);
    await new Promise((r) => setTimeout(r, 300));
    const page = await world.service.list({ planId: 'demo' }, 5, '');
    if (!page.ok) throw new Error(page.error.message);
    expect(page.value.items.filter((c) => c.id > running.value.id)).toEqual([]);
    const stored = await world.service.get(running.value.id);
    expect(stored.ok).toBe(true);
    expect(stored.ok ? (stored.value.failureDetail ?? '') : '').not.toContain('fell back');
  }, 60_000);
});
