/**
 * The agent's control machine (src/control/agent-control.ts) on its own: epochs per plan, fencing,
 * adoption of a newer epoch, deduplication with remembered answers, event stamping, the trigger
 * broadcast, and the negative control that brings back one epoch per agent (defect 1 of issue 9).
 */
import { describe, expect, it } from 'vitest';
import { AGENT_CONTROL_DEFAULTS, AgentControl, type AgentControlConfig, type AgentControlStep, validateAgentControlConfig } from '../../src/control/agent-control.js';
import { NO_NEGATIVE_CONTROLS, type NegativeControl } from '../../src/control/negative-controls.js';
import type { AgentEvent, Control, ControlCommand, PlanTrigger } from '../../src/wire/index.js';

const T = 'acme';
const S = 's1';

function machine(options: Partial<AgentControlConfig> & { negative?: NegativeControl[] } = {}): AgentControl {
  return new AgentControl({
    tenant: T,
    server: S,
    bootId: 'boot',
    apps: ['a1', 'b1'],
    ...AGENT_CONTROL_DEFAULTS,
    negativeControls: options.negative ? new Set(options.negative) : NO_NEGATIVE_CONTROLS,
    ...options,
  });
}

let ids = 0;
function control(plan: string, epoch: number, command: ControlCommand, requestId = `r${++ids}`): Control {
  return Object.assign({ requestId, tenant: T, server: S, plan, epoch }, command) as Control;
}

function trigger(plan: string, epoch: number, checkpointId: number, apps: string[], requestId?: string): Control {
  return control(plan, epoch, { type: 'trigger', checkpointId, policy: { kind: 'aligned' }, timeoutMs: 1_000, initiatorApps: apps, backEdgeChannels: [], inlineStateBytesMax: 0, apps }, requestId);
}

function restore(plan: string, epoch: number, apps: string[], requestId?: string): Control {
  return control(plan, epoch, { type: 'restore', checkpointId: 1, apps: apps.map((app) => ({ app, state: { kind: 'inline', bytes: new Uint8Array([1]) }, counts: { sent: {}, received: {} }, channelAliases: {} })) }, requestId);
}

function executed(step: AgentControlStep): { type: string; apps: readonly string[] } | undefined {
  const e = step.effects.find((x) => x.type === 'execute');
  return e?.type === 'execute' ? { type: e.control.type, apps: e.apps } : undefined;
}

function published(step: AgentControlStep): AgentEvent[] {
  return step.effects.flatMap((e) => (e.type === 'publish' ? [e.event] : []));
}

/** Feeds a restore and its `restored` answer, as the shell does once the apps took their state. */
function restoreDone(m: AgentControl, plan: string, epoch: number, apps: string[]): AgentEvent {
  const c = restore(plan, epoch, apps);
  expect(executed(m.step({ type: 'control', control: c }))?.type).toBe('restore');
  return published(m.step({ type: 'event', body: { type: 'restored', checkpointId: 1, apps }, inReplyTo: c.requestId }))[0] as AgentEvent;
}

describe('agent control: epochs per plan', () => {
  it('after plan A is restored to epoch 1, plan B on the same server is still triggered at epoch 0', () => {
    const m = machine();
    expect(executed(m.step({ type: 'control', control: trigger('B', 0, 1, ['b1']) }))).toEqual({ type: 'trigger', apps: ['b1'] });
    restoreDone(m, 'A', 1, ['a1']);
    expect(m.epochOf('A')).toBe(1);
    expect(m.epochOf('B')).toBe(0);
    const step = m.step({ type: 'control', control: trigger('B', 0, 2, ['b1']) });
    expect(step.rejected).toBeUndefined();
    expect(executed(step)).toEqual({ type: 'trigger', apps: ['b1'] });
  });

  it('negative control epoch-per-agent: a rollback of plan A makes plan B\'s trigger stale', () => {
    const m = machine({ negative: ['epoch-per-agent'] });
    m.step({ type: 'control', control: trigger('B', 0, 1, ['b1']) });
    restoreDone(m, 'A', 1, ['a1']);
    const step = m.step({ type: 'control', control: trigger('B', 0, 2, ['b1']) });
    expect(step.rejected?.reason).toBe('stale-epoch');
    expect(executed(step)).toBeUndefined();
    expect(published(step).map((e) => e.type === 'decline' && [e.app, e.reason])).toEqual([['b1', 'stale-epoch']]);
  });

  it('a new plan over apps that were restored into is served at once, and their channels keep the restore\'s generation', () => {
    const m = machine();
    restoreDone(m, 'restore-line', 3, ['a1']);
    expect(m.generationOf('a1')).toBe(3);
    expect(m.generationOf('b1')).toBe(0);
    expect(executed(m.step({ type: 'control', control: trigger('new-plan', 0, 7, ['a1']) }))?.type).toBe('trigger');
  });

  it('a command of an older epoch of its plan is fenced; the commands the coordinator waits on are declined', () => {
    const m = machine();
    restoreDone(m, 'A', 2, ['a1']);
    const cases: [Control, string[]][] = [
      [trigger('A', 1, 5, ['a1']), ['a1']],
      [control('A', 1, { type: 'freeze', checkpointId: 5, deadlineMs: 1_000 }), ['']],
      [restore('A', 1, ['a1']), ['']],
      [control('A', 1, { type: 'quiesce', checkpointId: 5, apps: ['a1'], drainTo: {} }), ['a1']],
      [control('A', 1, { type: 'resume', checkpointId: 5, apps: [] }), []],
    ];
    for (const [c, declinedApps] of cases) {
      const step = m.step({ type: 'control', control: c });
      expect(step.rejected?.reason, c.type).toBe('stale-epoch');
      expect(executed(step), c.type).toBeUndefined();
      const declines = published(step);
      expect(declines.map((e) => (e.type === 'decline' ? (e.app ?? '') : e.type)), c.type).toEqual(declinedApps);
      for (const d of declines) expect(d.inReplyTo).toBe(c.requestId);
    }
  });

  it('thaw and abort pass every fence: they only release', () => {
    const m = machine();
    restoreDone(m, 'A', 2, ['a1']);
    expect(executed(m.step({ type: 'control', control: control('A', 0, { type: 'thaw', checkpointId: 5, afterRestore: false }) }))?.type).toBe('thaw');
    expect(executed(m.step({ type: 'control', control: control('A', 0, { type: 'abort', checkpointId: 5, reason: 'x' }) }))?.type).toBe('abort');
    expect(m.epochOf('A')).toBe(2);
  });

  it('a newer epoch of a known plan on a trigger means a missed restore: refused as behind until the restore comes', () => {
    const m = machine();
    m.step({ type: 'control', control: trigger('A', 0, 1, ['a1']) });
    const step = m.step({ type: 'control', control: trigger('A', 1, 2, ['a1']) });
    expect(step.rejected?.reason).toBe('behind');
    expect(published(step).map((e) => e.type === 'decline' && e.reason)).toEqual(['stale-epoch']);
    expect(m.epochOf('A')).toBe(0);
    restoreDone(m, 'A', 1, ['a1']);
    expect(executed(m.step({ type: 'control', control: trigger('A', 1, 3, ['a1']) }))?.type).toBe('trigger');
  });

  it('a restore adopts its epoch only once it succeeded', () => {
    const m = machine();
    m.step({ type: 'control', control: trigger('A', 0, 1, ['a1']) });
    const c = restore('A', 1, ['a1']);
    m.step({ type: 'control', control: c });
    expect(m.epochOf('A')).toBe(0);
    m.step({ type: 'event', body: { type: 'decline', checkpointId: 1, reason: 'restore-failed', detail: 'x' }, inReplyTo: c.requestId });
    expect(m.epochOf('A')).toBe(0);
    expect(m.generationOf('a1')).toBe(0);
  });

  it('a freeze of a newer epoch is adopted: a crash-level rollback announces the plan\'s epoch with it', () => {
    const m = machine();
    m.step({ type: 'control', control: trigger('A', 0, 1, ['a1']) });
    expect(executed(m.step({ type: 'control', control: control('A', 4, { type: 'freeze', checkpointId: 2, deadlineMs: 1_000 }) }))?.type).toBe('freeze');
    expect(m.epochOf('A')).toBe(4);
  });

  it('a plan the agent knows nothing of (it restarted) is served at the epoch its first command brings', () => {
    const m = machine();
    expect(m.epochOf('A')).toBeUndefined();
    expect(executed(m.step({ type: 'control', control: trigger('A', 6, 1, ['a1']) }))?.type).toBe('trigger');
    expect(m.epochOf('A')).toBe(6);
    expect(m.step({ type: 'control', control: trigger('A', 5, 2, ['a1']) }).rejected?.reason).toBe('stale-epoch');
  });
});

describe('agent control: duplicates are answered from memory', () => {
  it('a duplicate restore is not carried out again; its first answer is published again, the same event', () => {
    const m = machine();
    const c = restore('A', 1, ['a1'], 'restore-1');
    m.step({ type: 'control', control: c });
    const answer = published(m.step({ type: 'event', body: { type: 'restored', checkpointId: 1, apps: ['a1'] }, inReplyTo: 'restore-1' }))[0];
    const again = m.step({ type: 'control', control: c });
    expect(again.rejected?.reason).toBe('duplicate');
    expect(executed(again)).toBeUndefined();
    expect(published(again)).toEqual([answer]);
  });

  it('a duplicate that arrives while the first is still being carried out publishes nothing', () => {
    const m = machine();
    const c = restore('A', 1, ['a1']);
    m.step({ type: 'control', control: c });
    const again = m.step({ type: 'control', control: c });
    expect(again.rejected?.reason).toBe('duplicate');
    expect(again.effects).toEqual([]);
  });

  it('a duplicate trigger publishes the acks of its checkpoint again, not its progress', () => {
    const m = machine();
    const c = trigger('A', 0, 9, ['a1']);
    m.step({ type: 'control', control: c });
    m.step({ type: 'event', body: { type: 'progress', checkpointId: 9, app: 'a1', phase: 'started', bytesDone: 0 } });
    const ack = published(
      m.step({
        type: 'event',
        body: {
          type: 'ack',
          checkpointId: 9,
          app: 'a1',
          counts: { sent: {}, received: {} },
          state: { kind: 'inline', bytes: new Uint8Array([1]) },
          stats: { startDelayMs: 0, alignmentMs: 0, syncMs: 0, asyncMs: 0, bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false },
        },
      }),
    )[0] as AgentEvent;
    expect(ack.inReplyTo).toBeUndefined();
    expect(published(m.step({ type: 'control', control: c }))).toEqual([ack]);
  });

  it('the acks of a trigger are remembered only with the newest checkpointsRememberedMax checkpoints (an ack may carry state)', () => {
    const m = machine({ checkpointsRememberedMax: 1 });
    const c = trigger('A', 0, 1, ['a1']);
    m.step({ type: 'control', control: c });
    m.step({ type: 'event', body: { type: 'decline', checkpointId: 1, app: 'a1', reason: 'timeout', detail: 'late' } });
    expect(published(m.step({ type: 'control', control: c }))).toHaveLength(1);
    m.step({ type: 'control', control: trigger('A', 0, 2, ['a1']) });
    expect(published(m.step({ type: 'control', control: c }))).toEqual([]);
  });

  it('a refusal is remembered too: a duplicate of a fenced trigger gets the same declines', () => {
    const m = machine();
    restoreDone(m, 'A', 2, ['a1']);
    const c = trigger('A', 1, 5, ['a1']);
    const declines = published(m.step({ type: 'control', control: c }));
    expect(published(m.step({ type: 'control', control: c }))).toEqual(declines);
  });

  it('past requestsRememberedMax the oldest request is forgotten', () => {
    const m = machine({ requestsRememberedMax: 2 });
    const first = trigger('A', 0, 1, ['a1']);
    m.step({ type: 'control', control: first });
    m.step({ type: 'control', control: trigger('A', 0, 2, ['a1']) });
    m.step({ type: 'control', control: trigger('A', 0, 3, ['a1']) });
    expect(executed(m.step({ type: 'control', control: first }))?.type).toBe('trigger');
  });

  it('ping and hello are answered afresh every time and never remembered', () => {
    const m = machine();
    const ping = control('', 0, { type: 'ping' }, 'p');
    expect(executed(m.step({ type: 'control', control: ping }))?.type).toBe('ping');
    expect(executed(m.step({ type: 'control', control: ping }))?.type).toBe('ping');
    expect(executed(m.step({ type: 'control', control: control('', 0, { type: 'hello' }) }))?.type).toBe('hello');
  });
});

describe('agent control: events, apps and the trigger broadcast', () => {
  it('an ack carries its trigger\'s epoch even after the plan moved on; a heartbeat carries 0; ids never repeat', () => {
    const m = machine();
    m.step({ type: 'control', control: trigger('A', 0, 1, ['a1']) });
    restoreDone(m, 'A', 1, ['a1']);
    const decline = published(m.step({ type: 'event', body: { type: 'decline', checkpointId: 1, app: 'a1', reason: 'timeout', detail: 'late' } }))[0] as AgentEvent;
    expect(decline.epoch).toBe(0);
    const hb = published(m.step({ type: 'event', body: { type: 'heartbeat', frozen: false, checkpointsInFlight: [], highestCheckpointId: 0 } }))[0] as AgentEvent;
    expect(hb.epoch).toBe(0);
    expect(hb.requestId).not.toBe(decline.requestId);
    expect(hb.requestId).toMatch(/^s1:boot:\d+$/);
  });

  it('a trigger without apps reaches every app of the server; a resume without apps releases the apps of the plan\'s restore and no others', () => {
    const m = machine();
    const c = control('A', 0, { type: 'trigger', checkpointId: 1, policy: { kind: 'aligned' }, timeoutMs: 1_000, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 0 });
    expect(executed(m.step({ type: 'control', control: c }))?.apps).toEqual(['a1', 'b1']);
    restoreDone(m, 'A', 1, ['a1']);
    expect(executed(m.step({ type: 'control', control: control('A', 1, { type: 'resume', checkpointId: 1, apps: [] }) }))?.apps).toEqual(['a1']);
    // A plan never restored here (the agent restarted since): nothing of another plan is released.
    expect(executed(m.step({ type: 'control', control: control('B', 0, { type: 'resume', checkpointId: 1, apps: [] }) }))?.apps).toEqual([]);
  });

  it('a command for another server or tenant is refused as foreign', () => {
    const m = machine();
    const c = Object.assign({}, trigger('A', 0, 1, ['a1']), { server: 's2' });
    expect(m.step({ type: 'control', control: c }).rejected?.reason).toBe('foreign');
  });

  it('a plan trigger is carried out as the Trigger that brought its layout, and ignored without it', () => {
    const m = machine();
    const t: PlanTrigger = {
      requestId: 'b1',
      tenant: T,
      plan: 'A',
      epoch: 0,
      checkpointId: 4,
      policy: { kind: 'unaligned' },
      timeoutMs: 1_000,
      inlineStateBytesMax: 0,
      layout: 'L1',
    };
    // No layout held yet: this server may not be in the plan at all.
    expect(m.step({ type: 'plan-trigger', trigger: t }).rejected?.reason).toBe('not-served');
    // The coordinator sends the part under the broadcast's request id; it is carried out once.
    const part = Object.assign({}, trigger('A', 0, 4, ['a1']), { requestId: 'b1', layout: 'L1', apps: ['a1'], backEdgeChannels: ['s0/x->s1/a1'] });
    const first = m.step({ type: 'control', control: part }).effects[0];
    expect(first?.type === 'execute' && first.control.type === 'trigger' && first.control.checkpointId).toBe(4);
    expect(m.step({ type: 'plan-trigger', trigger: t })).toEqual({ effects: [], rejected: { reason: 'duplicate', detail: 'request b1 came as a Trigger first' } });
    // The next checkpoint of the same layout needs the broadcast only.
    const next = m.step({ type: 'plan-trigger', trigger: { ...t, requestId: 'b2', checkpointId: 5, completedCheckpointId: 4 } });
    const e = next.effects[0];
    expect(e?.type === 'execute' && e.control.type === 'trigger' && [e.control.initiatorApps, e.control.backEdgeChannels, e.apps, e.control.requestId, e.control.completedCheckpointId]).toEqual([['a1'], ['s0/x->s1/a1'], ['a1'], 'b2', 4]);
    expect(m.step({ type: 'plan-trigger', trigger: { ...t, requestId: 'b2', checkpointId: 5 } }).rejected?.reason).toBe('duplicate');
    // Another layout (the plan changed) is not guessed at from the old one.
    expect(m.step({ type: 'plan-trigger', trigger: { ...t, requestId: 'b3', checkpointId: 6, layout: 'L2' } }).rejected?.reason).toBe('not-served');
    expect(m.step({ type: 'plan-trigger', trigger: { ...t, requestId: 'b4', plan: 'B', checkpointId: 7 } }).rejected?.reason).toBe('not-served');
    expect(m.step({ type: 'plan-trigger', trigger: { ...t, requestId: 'b5', tenant: 'other' } }).rejected?.reason).toBe('foreign');
  });

  it('limits are checked at construction', () => {
    expect(validateAgentControlConfig({ tenant: T, server: S, bootId: 'b', apps: [], requestsRememberedMax: 0, answersPerRequestMax: 1, checkpointsRememberedMax: 1.5, negativeControls: NO_NEGATIVE_CONTROLS })).toEqual([
      'requestsRememberedMax must be a positive integer, got 0',
      'checkpointsRememberedMax must be a positive integer, got 1.5',
      'apps must name at least one app',
    ]);
    expect(() => machine({ bootId: 'no spaces' })).toThrow(/bootId/);
  });
});
