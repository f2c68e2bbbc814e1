/**
 * Rollback and restore of opaque apps in the operation machine (src/control/operation.ts): the plan
 * of waves over the opaque graph (restores downstream first, a strongly connected component as one
 * wave, one restore per server; resumes upstream first), the order the machine sends them in, and
 * every failure path resuming every app the operation quiesced.
 */
import { describe, expect, it } from 'vitest';
import { validateGraph, type AppGraph } from '../../src/graph/index.js';
import { AGENT_CONTROL_DEFAULTS, AgentControl } from '../../src/control/agent-control.js';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';
import {
  OperationMachine,
  operationRequestId,
  planOpaqueSteps,
  type OpaqueSteps,
  type OperationConfig,
  type OperationEffect,
  type OperationInput,
} from '../../src/control/operation.js';
import type { Control, ControlCommand } from '../../src/wire/index.js';

function graph(processes: string[], channels: [string, string][]): AppGraph {
  const v = validateGraph({ processes, channels: channels.map(([from, to]) => ({ from, to })) });
  if (!v.ok) throw new Error(v.errors.map((e) => e.message).join('; '));
  return v.graph;
}

/** A -> B -> C, one app per server. */
const CHAIN = graph(['s1/A', 's2/B', 's3/C'], [
  ['s1/A', 's2/B'],
  ['s2/B', 's3/C'],
]);

/** A -> (B <-> C) -> D: B and C form one strongly connected component across two servers. */
const WITH_CYCLE = graph(['s1/A', 's2/B', 's3/C', 's4/D'], [
  ['s1/A', 's2/B'],
  ['s2/B', 's3/C'],
  ['s3/C', 's2/B'],
  ['s3/C', 's4/D'],
]);

const flat = (waves: OpaqueSteps['restore']): string[][] => waves.map((w) => w.flatMap((s) => s.apps.map((a) => `${s.server}/${a}`)));

describe('planOpaqueSteps', () => {
  it('a chain restores downstream first and resumes upstream first', () => {
    const p = planOpaqueSteps(CHAIN);
    expect(flat(p.restore)).toEqual([['s3/C'], ['s2/B'], ['s1/A']]);
    expect(flat(p.resume)).toEqual([['s1/A'], ['s2/B'], ['s3/C']]);
    expect(p.quiesce.map((q) => q.server).sort()).toEqual(['s1', 's2', 's3']);
  });

  it('a strongly connected component is one wave, after everything downstream of it and before everything upstream', () => {
    const p = planOpaqueSteps(WITH_CYCLE);
    expect(flat(p.restore)).toEqual([['s4/D'], ['s2/B', 's3/C'], ['s1/A']]);
    expect(flat(p.resume)).toEqual([['s1/A'], ['s2/B', 's3/C'], ['s4/D']]);
  });

  it('a server is restored once: its apps ride in the wave of its most downstream app, downstream first', () => {
    // A (s1) -> B (s2) -> C (s1): s1 is restored with C, then A, in the first wave.
    const p = planOpaqueSteps(graph(['s1/A', 's2/B', 's1/C'], [
      ['s1/A', 's2/B'],
      ['s2/B', 's1/C'],
    ]));
    expect(p.restore).toEqual([[{ server: 's1', apps: ['C', 'A'] }], [{ server: 's2', apps: ['B'] }]]);
    const servers = p.restore.flat().map((s) => s.server);
    expect(new Set(servers).size).toBe(servers.length);
    expect(flat(p.resume)).toEqual([['s1/A'], ['s2/B'], ['s1/C']]);
  });
});

type Input = OperationInput extends infer T ? (T extends OperationInput ? Omit<T, 'nowMs'> : never) : never;
type SendApps = Extract<OperationEffect, { type: 'send-apps' }>;

function config(g: AppGraph, overrides: Partial<OperationConfig> = {}): OperationConfig {
  const opaque = planOpaqueSteps(g);
  return {
    kind: 'rollback',
    level: 'app',
    id: 'op1',
    title: 'rollback to checkpoint 7',
    servers: opaque.quiesce.map((q) => q.server),
    takeSafetyCheckpoint: false,
    hasVolumes: false,
    phaseTimeoutMs: 30_000,
    resendIntervalMs: 1_000,
    negativeControls: NO_NEGATIVE_CONTROLS,
    opaque,
    ...overrides,
  };
}

class Driver {
  readonly machine: OperationMachine;
  readonly effects: OperationEffect[] = [];

  constructor(c: OperationConfig) {
    this.machine = new OperationMachine(c);
  }

  step(input: Input): OperationEffect[] {
    const r = this.machine.step({ nowMs: 0, ...input } as OperationInput);
    if (r.rejected) throw new Error(`rejected ${r.rejected.reason}: ${r.rejected.detail}`);
    this.effects.push(...r.effects);
    return [...r.effects];
  }

  /** Starts and gets to the first fan-out at epoch 5. */
  begin(): void {
    this.step({ type: 'start' });
    this.step({ type: 'validated' });
    this.step({ type: 'epoch-set', epoch: 5 });
  }

  /** Answers every command of the phase under way with `event`, one at a time; returns the commands answered. */
  answerPhase(event: 'quiesced' | 'restored' | 'resumed'): SendApps[] {
    const sent = this.lastPhase();
    for (const s of sent) this.step({ type: 'answer', server: s.server, requestId: s.requestId, event });
    return sent;
  }

  lastPhase(): SendApps[] {
    const sends = this.effects.filter((e): e is SendApps => e.type === 'send-apps' && !e.resend);
    const last = sends[sends.length - 1];
    if (last === undefined) return [];
    const seq = last.requestId.split(':')[2];
    return sends.filter((s) => s.requestId.split(':')[2] === seq);
  }

  finished(): Extract<OperationEffect, { type: 'finished' }> | undefined {
    return this.effects.find((e): e is Extract<OperationEffect, { type: 'finished' }> => e.type === 'finished');
  }
}

const names = (sent: SendApps[]): string[] => sent.flatMap((s) => s.apps.map((a) => `${s.server}/${a}`));

describe('operation machine: opaque rollback', () => {
  it('quiesces every app, restores downstream first one wave at a time, resumes upstream first, completes', () => {
    const d = new Driver(config(CHAIN));
    d.begin();
    const quiesce = d.lastPhase();
    expect(quiesce.map((s) => s.command)).toEqual(['quiesce', 'quiesce', 'quiesce']);
    expect(quiesce.map((s) => s.epoch)).toEqual([5, 5, 5]);
    expect(names(quiesce).sort()).toEqual(['s1/A', 's2/B', 's3/C']);
    expect(d.machine.state).toBe('quiescing');
    d.answerPhase('quiesced');
    const restored: string[][] = [];
    while (d.machine.state === 'restoring') {
      const wave = d.answerPhase('restored');
      expect(wave.every((s) => s.command === 'restore' && s.epoch === 5)).toBe(true);
      restored.push(names(wave));
    }
    expect(restored).toEqual([['s3/C'], ['s2/B'], ['s1/A']]);
    const resumed: string[][] = [];
    while (d.machine.state === 'resuming') {
      const wave = d.answerPhase('resumed');
      expect(wave.every((s) => s.command === 'resume' && s.epoch === 5)).toBe(true);
      resumed.push(names(wave));
    }
    expect(resumed).toEqual([['s1/A'], ['s2/B'], ['s3/C']]);
    expect(d.finished()).toEqual({ type: 'finished', state: 'completed', outcome: { ok: true, epoch: 5, safetyCheckpointId: 0 } });
  });

  it('no restore is sent before every app answered its quiesce', () => {
    const d = new Driver(config(CHAIN));
    d.begin();
    const [first, second] = d.lastPhase();
    d.step({ type: 'answer', server: first?.server as string, requestId: first?.requestId as string, event: 'quiesced' });
    d.step({ type: 'answer', server: second?.server as string, requestId: second?.requestId as string, event: 'quiesced' });
    expect(d.effects.filter((e) => e.type === 'send-apps' && e.command === 'restore')).toEqual([]);
    expect(d.machine.state).toBe('quiescing');
  });

  it('the members of a component are restored in one wave, and none is resumed before all are restored', () => {
    const d = new Driver(config(WITH_CYCLE));
    d.begin();
    d.answerPhase('quiesced');
    expect(names(d.answerPhase('restored'))).toEqual(['s4/D']);
    const component = d.lastPhase();
    expect(names(component)).toEqual(['s2/B', 's3/C']);
    // One member restored: the machine waits for the other, sending nothing new.
    const before = d.effects.length;
    d.step({ type: 'answer', server: 's2', requestId: component[0]?.requestId as string, event: 'restored' });
    expect(d.effects.slice(before).filter((e) => e.type === 'send-apps')).toEqual([]);
    d.step({ type: 'answer', server: 's3', requestId: component[1]?.requestId as string, event: 'restored' });
    expect(names(d.answerPhase('restored'))).toEqual(['s1/A']);
    expect(d.machine.state).toBe('resuming');
    expect(names(d.lastPhase())).toEqual(['s1/A']);
  });

  it('resends go to the silent servers with the same request id, apps and epoch', () => {
    const d = new Driver(config(CHAIN));
    d.begin();
    const [first] = d.lastPhase();
    d.step({ type: 'answer', server: 's1', requestId: operationRequestId('op1', 1, 's1'), event: 'quiesced' });
    const resent = d.step({ type: 'timer-fired', name: 'resend', seq: 1 }).filter((e): e is SendApps => e.type === 'send-apps');
    expect(resent.map((s) => [s.server, s.resend, s.epoch, s.command])).toEqual([
      ['s2', true, 5, 'quiesce'],
      ['s3', true, 5, 'quiesce'],
    ]);
    expect(first?.server).toBe('s1');
  });

  it('a failing restore hook: every app is resumed, then needs-repair naming the app and the hook', () => {
    const d = new Driver(config(CHAIN));
    d.begin();
    d.answerPhase('quiesced');
    d.answerPhase('restored'); // s3/C
    const wave = d.lastPhase();
    expect(names(wave)).toEqual(['s2/B']);
    d.step({ type: 'answer', server: 's2', requestId: wave[0]?.requestId as string, event: 'declined', detail: 'hook-failed: 10-app (app B) restore: exit 1: disk full' });
    expect(d.machine.state).toBe('resuming-back');
    const back = d.lastPhase();
    expect(back.map((s) => [s.server, s.command, s.epoch]).sort()).toEqual([
      ['s1', 'resume', 5],
      ['s2', 'resume', 5],
      ['s3', 'resume', 5],
    ]);
    expect(names(back).sort()).toEqual(['s1/A', 's2/B', 's3/C']);
    expect(d.finished()).toBeUndefined();
    d.answerPhase('resumed');
    const f = d.finished();
    expect(f?.state).toBe('needs-repair');
    const message = f?.outcome.ok === false ? f.outcome.message : '';
    expect(message).toContain('10-app (app B) restore: exit 1: disk full');
    expect(message).toContain('s3 restored');
    expect(message).toContain('every app quiesced was resumed');
    expect(d.effects.some((e) => e.type === 'send-apps' && e.command === 'restore' && e.server === 's1')).toBe(false);
  });

  it('a quiesce that fails or stays silent: nothing is restored, every app is resumed', () => {
    const d = new Driver(config(CHAIN));
    d.begin();
    d.step({ type: 'answer', server: 's1', requestId: operationRequestId('op1', 1, 's1'), event: 'quiesced' });
    d.step({ type: 'timer-fired', name: 'deadline', seq: 1 });
    const back = d.lastPhase();
    expect(back.map((s) => [s.server, s.command]).sort()).toEqual([
      ['s1', 'resume'],
      ['s2', 'resume'],
      ['s3', 'resume'],
    ]);
    d.answerPhase('resumed');
    const f = d.finished();
    expect(f?.state).toBe('needs-repair');
    expect(f?.outcome.ok === false ? f.outcome.message : '').toContain('s2: no answer within 30000 ms');
    expect(d.effects.some((e) => e.type === 'send-apps' && e.command === 'restore')).toBe(false);
  });

  it('a resume back that is not confirmed still ends the operation, saying so', () => {
    const d = new Driver(config(CHAIN));
    d.begin();
    d.step({ type: 'answer', server: 's1', requestId: operationRequestId('op1', 1, 's1'), event: 'declined', detail: 'hook-failed: cannot stop A' });
    const seq = Number(d.lastPhase()[0]?.requestId.split(':')[2]);
    d.step({ type: 'timer-fired', name: 'deadline', seq });
    const f = d.finished();
    expect(f?.state).toBe('needs-repair');
    const message = f?.outcome.ok === false ? f.outcome.message : '';
    expect(message).toContain('cannot stop A');
    expect(message).toContain('not every server confirmed the resume');
  });

  it('a config whose steps miss a server is refused', () => {
    const c = config(CHAIN);
    expect(() => new OperationMachine({ ...c, servers: ['s1', 's2'] })).toThrow(/opaque steps/);
  });
});

describe('agent control: the commands of an opaque rollback at its new epoch', () => {
  const m = (): AgentControl =>
    new AgentControl({ tenant: 't', server: 's1', bootId: 'boot', apps: ['A'], ...AGENT_CONTROL_DEFAULTS, negativeControls: NO_NEGATIVE_CONTROLS });
  let ids = 0;
  const control = (epoch: number, command: ControlCommand): Control => Object.assign({ requestId: `r${++ids}`, tenant: 't', server: 's1', plan: 'P', epoch }, command) as Control;
  const kept = (agent: AgentControl, c: Control): string => {
    const step = agent.step({ type: 'control', control: c });
    return step.rejected?.reason ?? 'executed';
  };

  it('a quiesce and a resume naming apps of a newer epoch are carried out; the capture and the trigger stay fenced until the restore', () => {
    const agent = m();
    expect(kept(agent, control(2, { type: 'quiesce', checkpointId: 4, apps: ['A'], drainTo: {} }))).toBe('executed');
    // Known at epoch 2 now (first command of the plan); a later rollback moved the plan to 3.
    expect(kept(agent, control(3, { type: 'quiesce', checkpointId: 4, apps: ['A'], drainTo: {} }))).toBe('executed');
    expect(kept(agent, control(3, { type: 'resume', checkpointId: 4, apps: ['A'] }))).toBe('executed');
    expect(agent.epochOf('P')).toBe(2);
    // Storing a state of the abandoned future is what the epoch fences.
    expect(kept(agent, control(3, { type: 'capture', checkpointId: 9, apps: ['A'] }))).toBe('behind');
    expect(kept(agent, control(3, { type: 'resume', checkpointId: 4, apps: [] }))).toBe('behind');
    expect(kept(agent, control(2, { type: 'quiesce', checkpointId: 4, apps: ['A'], drainTo: {} }))).toBe('executed');
    expect(kept(agent, control(1, { type: 'quiesce', checkpointId: 4, apps: ['A'], drainTo: {} }))).toBe('stale-epoch');
  });
});
