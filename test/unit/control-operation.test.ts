/**
 * The rollback/restore machine (src/control/operation.ts): check first, then act; every failure after
 * the epoch moved ends in needs-repair; commands are resent with the same request id until
 * answered; a crash-level operation freezes at the epoch it read, and thaws everyone back when it
 * cannot go on. Each negative control is shown to bring its defect back.
 */
import { describe, expect, it } from 'vitest';
import { NO_NEGATIVE_CONTROLS, type NegativeControl } from '../../src/control/negative-controls.js';
import {
  OperationMachine,
  operationRequestId,
  type OperationConfig,
  type OperationEffect,
  type OperationInput,
} from '../../src/control/operation.js';

function config(overrides: Partial<OperationConfig> = {}): OperationConfig {
  return {
    kind: 'rollback',
    level: 'app',
    id: 'op1',
    title: 'rollback to checkpoint 7',
    servers: ['s1', 's2'],
    takeSafetyCheckpoint: true,
    hasVolumes: false,
    phaseTimeoutMs: 30_000,
    resendIntervalMs: 1_000,
    negativeControls: NO_NEGATIVE_CONTROLS,
    ...overrides,
  };
}

function withControl(name: NegativeControl): Partial<OperationConfig> {
  return { negativeControls: new Set([name]) };
}

/** An input without its time: the driver adds it. */
type Input = OperationInput extends infer T ? (T extends OperationInput ? Omit<T, 'nowMs'> : never) : never;

function messageOf(e: Extract<OperationEffect, { type: 'finished' }> | undefined): string {
  return e === undefined || e.outcome.ok ? '' : e.outcome.message;
}

/** The machine with every effect it produced, in order. */
class Driver {
  readonly machine: OperationMachine;
  readonly effects: OperationEffect[] = [];
  nowMs = 0;

  constructor(c: OperationConfig) {
    this.machine = new OperationMachine(c);
  }

  step(input: Input): OperationEffect[] {
    const r = this.machine.step({ nowMs: this.nowMs, ...input } as OperationInput);
    if (r.rejected) throw new Error(`rejected ${r.rejected.reason}: ${r.rejected.detail}`);
    this.effects.push(...r.effects);
    return [...r.effects];
  }

  types(): string[] {
    return this.effects.map((e) => e.type);
  }

  sends(command?: string): Extract<OperationEffect, { type: 'send' }>[] {
    return this.effects.filter((e): e is Extract<OperationEffect, { type: 'send' }> => e.type === 'send' && (command === undefined || e.command === command));
  }

  /** Every server answers the last phase's commands. */
  answerAll(event: 'restored' | 'resumed' | 'frozen' | 'thawed', seq: number, servers = ['s1', 's2']): OperationEffect[] {
    const out: OperationEffect[] = [];
    for (const server of servers) out.push(...this.step({ type: 'answer', server, requestId: operationRequestId('op1', seq, server), event }));
    return out;
  }

  finished(): Extract<OperationEffect, { type: 'finished' }> | undefined {
    return this.effects.find((e): e is Extract<OperationEffect, { type: 'finished' }> => e.type === 'finished');
  }
}

describe('operation machine: check first, then act', () => {
  it('app-level rollback: validate, safety checkpoint, bump, restore all, resume all, completed', () => {
    const d = new Driver(config());
    expect(d.step({ type: 'start' }).map((e) => e.type)).toEqual(['persist', 'validate']);
    expect(d.step({ type: 'validated' }).map((e) => e.type)).toEqual(['persist', 'take-safety-checkpoint']);
    expect(d.step({ type: 'safety-completed', checkpointId: 9 }).map((e) => e.type)).toEqual(['persist', 'cancel-checkpoints', 'set-epoch']);
    const restore = d.step({ type: 'epoch-set', epoch: 4 });
    expect(restore.map((e) => e.type)).toEqual(['persist', 'send', 'send', 'start-timer', 'start-timer']);
    expect(d.sends('restore').map((s) => [s.server, s.epoch, s.requestId])).toEqual([
      ['s1', 4, 'op:op1:1:s1'],
      ['s2', 4, 'op:op1:1:s2'],
    ]);
    d.answerAll('restored', 1);
    expect(d.sends('resume').map((s) => [s.server, s.epoch])).toEqual([
      ['s1', 4],
      ['s2', 4],
    ]);
    d.answerAll('resumed', 2);
    expect(d.finished()).toEqual({ type: 'finished', state: 'completed', outcome: { ok: true, epoch: 4, safetyCheckpointId: 9 } });
    expect(d.machine.state).toBe('completed');
  });

  it('the epoch is set only after validation passed and the safety checkpoint completed', () => {
    const d = new Driver(config());
    d.step({ type: 'start' });
    d.step({ type: 'validated' });
    d.step({ type: 'safety-completed', checkpointId: 9 });
    const types = d.types();
    expect(types.indexOf('validate')).toBeLessThan(types.indexOf('take-safety-checkpoint'));
    expect(types.indexOf('take-safety-checkpoint')).toBeLessThan(types.indexOf('set-epoch'));
  });

  it('a refused validation (a tampered part) ends refused with its kind, and nothing is changed: no epoch, no safety checkpoint, no command', () => {
    const d = new Driver(config());
    d.step({ type: 'start' });
    d.step({ type: 'invalid', kind: 'failed-precondition', message: 'part s1/APP1: digest mismatch' });
    expect(d.types()).not.toContain('set-epoch');
    expect(d.types()).not.toContain('take-safety-checkpoint');
    expect(d.sends()).toEqual([]);
    expect(d.finished()).toEqual({ type: 'finished', state: 'refused', outcome: { ok: false, kind: 'failed-precondition', message: 'part s1/APP1: digest mismatch' } });
  });

  it('negative control bump-before-validate: the epoch is set before the parts are checked, so a refusal comes after the epoch moved', () => {
    const d = new Driver(config({ takeSafetyCheckpoint: false, ...withControl('bump-before-validate') }));
    d.step({ type: 'start' });
    d.step({ type: 'epoch-set', epoch: 1 });
    d.step({ type: 'invalid', kind: 'failed-precondition', message: 'tampered' });
    const types = d.types();
    expect(types.indexOf('set-epoch')).toBeLessThan(types.indexOf('validate'));
    expect(d.machine.state).toBe('refused');
  });

  it('a failed safety checkpoint ends failed before the epoch moves', () => {
    const d = new Driver(config());
    d.step({ type: 'start' });
    d.step({ type: 'validated' });
    d.step({ type: 'safety-failed', detail: 'aborted: timeout' });
    expect(d.types()).not.toContain('set-epoch');
    const f = d.finished();
    expect(f?.state).toBe('failed');
    expect(f?.outcome).toMatchObject({ ok: false, kind: 'failed-precondition' });
  });

  it('a failed epoch bump ends failed, nothing sent', () => {
    const d = new Driver(config({ takeSafetyCheckpoint: false }));
    d.step({ type: 'start' });
    d.step({ type: 'validated' });
    d.step({ type: 'epoch-failed', detail: 'NATS unavailable' });
    expect(d.sends()).toEqual([]);
    expect(d.finished()?.outcome).toMatchObject({ ok: false, kind: 'unavailable' });
  });
});

describe('operation machine: failures after the epoch moved end in needs-repair', () => {
  function restoring(c: Partial<OperationConfig> = {}): Driver {
    const d = new Driver(config({ takeSafetyCheckpoint: false, ...c }));
    d.step({ type: 'start' });
    d.step({ type: 'validated' });
    d.step({ type: 'epoch-set', epoch: 3 });
    return d;
  }

  it('a decline during restore: needs-repair naming the server, and the ones that restored stay paused', () => {
    const d = restoring();
    d.step({ type: 'answer', server: 's1', requestId: 'op:op1:1:s1', event: 'restored' });
    d.step({ type: 'answer', server: 's2', requestId: 'op:op1:1:s2', event: 'declined', detail: 'restore-failed: object gone' });
    const f = d.finished();
    expect(f?.state).toBe('needs-repair');
    expect(f?.outcome).toMatchObject({ ok: false, kind: 'failed-precondition' });
    expect(messageOf(f)).toContain('s2: restore-failed: object gone');
    expect(messageOf(f)).toContain('s1 restored and stay paused at epoch 3');
    expect(d.sends('resume')).toEqual([]);
    expect(d.effects.filter((e) => e.type === 'cancel-timer').map((e) => (e as { name: string }).name)).toEqual(['resend', 'deadline']);
  });

  it('no answer by the deadline: needs-repair, unavailable, naming the silent server', () => {
    const d = restoring();
    d.step({ type: 'answer', server: 's1', requestId: 'op:op1:1:s1', event: 'restored' });
    d.step({ type: 'timer-fired', name: 'deadline', seq: 1 });
    expect(d.finished()?.outcome).toEqual({
      ok: false,
      kind: 'unavailable',
      message: 'rollback to checkpoint 7 incomplete after the epoch moved to 3 (s2: no answer within 30000 ms); s1 restored and stay paused at epoch 3: roll back again (to this or another checkpoint) to repair',
    });
  });

  it('a server that does not confirm resuming: needs-repair', () => {
    const d = restoring();
    d.answerAll('restored', 1);
    d.step({ type: 'answer', server: 's1', requestId: 'op:op1:2:s1', event: 'resumed' });
    d.step({ type: 'timer-fired', name: 'deadline', seq: 2 });
    expect(d.finished()?.state).toBe('needs-repair');
  });
});

describe('operation machine: commands are resent until answered', () => {
  function restoring(c: Partial<OperationConfig> = {}): Driver {
    const d = new Driver(config({ takeSafetyCheckpoint: false, ...c }));
    d.step({ type: 'start' });
    d.step({ type: 'validated' });
    d.step({ type: 'epoch-set', epoch: 1 });
    return d;
  }

  it('the resend timer resends every unanswered command with its own request id, and starts again', () => {
    const d = restoring();
    d.step({ type: 'answer', server: 's1', requestId: 'op:op1:1:s1', event: 'restored' });
    const resent = d.step({ type: 'timer-fired', name: 'resend', seq: 1 });
    expect(resent).toEqual([
      { type: 'send', server: 's2', requestId: 'op:op1:1:s2', command: 'restore', epoch: 1, resend: true },
      { type: 'start-timer', name: 'resend', seq: 1, ms: 1_000 },
    ]);
    // A restarted agent that subscribed late answers the resend: the operation goes on.
    d.step({ type: 'answer', server: 's2', requestId: 'op:op1:1:s2', event: 'restored' });
    expect(d.sends('resume')).toHaveLength(2);
  });

  it('a duplicate answer (the agent re-publishes its first answer for a resend) is rejected as duplicate, and changes nothing', () => {
    const d = restoring();
    d.step({ type: 'answer', server: 's1', requestId: 'op:op1:1:s1', event: 'restored' });
    const r = d.machine.step({ type: 'answer', nowMs: 0, server: 's1', requestId: 'op:op1:1:s1', event: 'restored' });
    expect(r).toEqual({ effects: [], rejected: { reason: 'duplicate', detail: 's1 already answered op:op1:1:s1' } });
  });

  it('an answer to another phase\'s request and a timer of an earlier phase are rejected', () => {
    const d = restoring();
    d.answerAll('restored', 1);
    expect(d.machine.step({ type: 'answer', nowMs: 0, server: 's1', requestId: 'op:op1:1:s1', event: 'restored' }).rejected?.reason).toBe('unknown-request');
    expect(d.machine.step({ type: 'timer-fired', nowMs: 0, name: 'deadline', seq: 1 }).rejected?.reason).toBe('stale-timer');
    expect(d.machine.step({ type: 'answer', nowMs: 0, server: 's9', requestId: 'op:op1:2:s9', event: 'resumed' }).rejected?.reason).toBe('unknown-request');
  });

  it('negative control send-once: no resend timer, so a lost command is never answered and the operation ends needs-repair', () => {
    const d = restoring(withControl('send-once'));
    expect(d.effects.filter((e) => e.type === 'start-timer').map((e) => (e as { name: string }).name)).toEqual(['deadline']);
    d.step({ type: 'timer-fired', name: 'deadline', seq: 1 });
    expect(d.finished()?.state).toBe('needs-repair');
  });

  it('inputs after the end are rejected as finished', () => {
    const d = restoring();
    d.step({ type: 'timer-fired', name: 'deadline', seq: 1 });
    expect(d.machine.step({ type: 'timer-fired', nowMs: 0, name: 'resend', seq: 1 }).rejected?.reason).toBe('finished');
  });
});

describe('operation machine: crash level', () => {
  function crash(c: Partial<OperationConfig> = {}): Driver {
    const d = new Driver(config({ level: 'crash', hasVolumes: true, takeSafetyCheckpoint: false, ...c }));
    d.step({ type: 'start' });
    d.step({ type: 'validated' });
    return d;
  }

  it('reads the epoch (no bump) and freezes at it, the plan\'s current epoch; then volumes, then thaw with the restore hooks', () => {
    const d = crash();
    expect(d.effects).toContainEqual({ type: 'set-epoch', bump: false });
    d.step({ type: 'epoch-set', epoch: 5 });
    expect(d.sends('freeze').map((s) => s.epoch)).toEqual([5, 5]);
    expect(d.answerAll('frozen', 1).map((e) => e.type)).toEqual(['cancel-timer', 'cancel-timer', 'persist', 'volumes']);
    d.step({ type: 'volumes-done' });
    expect(d.sends('thaw').map((s) => s.afterRestore)).toEqual([true, true]);
    d.answerAll('thawed', 2);
    expect(d.finished()).toEqual({ type: 'finished', state: 'completed', outcome: { ok: true, epoch: 5, safetyCheckpointId: 0 } });
  });

  it('a server that declines the freeze: every server thawed back without restore hooks, then failed (nothing changed)', () => {
    const d = crash();
    d.step({ type: 'epoch-set', epoch: 5 });
    d.step({ type: 'answer', server: 's1', requestId: 'op:op1:1:s1', event: 'frozen' });
    d.step({ type: 'answer', server: 's2', requestId: 'op:op1:1:s2', event: 'declined', detail: 'stale-epoch' });
    expect(d.sends('thaw').map((s) => [s.server, s.afterRestore])).toEqual([
      ['s1', false],
      ['s2', false],
    ]);
    expect(d.types()).not.toContain('volumes');
    d.answerAll('thawed', 2);
    expect(d.finished()?.state).toBe('failed');
    expect(d.finished()?.outcome).toMatchObject({ ok: false, kind: 'failed-precondition' });
  });

  it('volumes that fail to go back: thawed back, then needs-repair', () => {
    const d = crash();
    d.step({ type: 'epoch-set', epoch: 0 });
    d.answerAll('frozen', 1);
    d.step({ type: 'volumes-failed', detail: 'rbd: no such snapshot' });
    d.answerAll('thawed', 2);
    expect(d.finished()?.state).toBe('needs-repair');
  });

  it('resends of a thaw keep afterRestore', () => {
    const d = crash();
    d.step({ type: 'epoch-set', epoch: 0 });
    d.answerAll('frozen', 1);
    d.step({ type: 'volumes-done' });
    const resent = d.step({ type: 'timer-fired', name: 'resend', seq: 2 });
    expect(resent.filter((e) => e.type === 'send').map((e) => (e as { afterRestore?: boolean }).afterRestore)).toEqual([true, true]);
  });
});

describe('operation machine: configuration', () => {
  it('refuses a bad configuration at construction', () => {
    expect(() => new OperationMachine(config({ servers: [] }))).toThrow(/at least one server/);
    expect(() => new OperationMachine(config({ servers: ['s1', 's1'] }))).toThrow(/repeat/);
    expect(() => new OperationMachine(config({ phaseTimeoutMs: 0 }))).toThrow(/phaseTimeoutMs/);
    expect(() => new OperationMachine(config({ id: 'a b' }))).toThrow(/operation id/);
  });
});
