/**
 * Operations a stopped coordinator left under way (src/control/operation-recovery.ts and the
 * machine's `recover` input): the next coordinator finishes each one from its phase under the
 * request ids the dead one used, or ends its record at once in a final state naming the call that
 * repairs it. Before, the record stayed in its phase and the restored apps stayed paused for ever
 * (VOPR finding operation-orphaned-by-crash, seed 101).
 */
import { describe, expect, it } from 'vitest';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';
import { decideOperationRecovery, type LeftOperation } from '../../src/control/operation-recovery.js';
import {
  OPERATION_FINAL_STATES,
  OperationMachine,
  operationRequestId,
  type OperationConfig,
  type OperationEffect,
  type OperationInput,
  type OperationState,
} from '../../src/control/operation.js';

function config(overrides: Partial<OperationConfig> = {}): OperationConfig {
  return {
    kind: 'rollback',
    level: 'app',
    id: 'op1',
    title: 'rollback to checkpoint 7',
    servers: ['s1', 's2'],
    takeSafetyCheckpoint: false,
    hasVolumes: false,
    phaseTimeoutMs: 30_000,
    resendIntervalMs: 1_000,
    negativeControls: NO_NEGATIVE_CONTROLS,
    ...overrides,
  };
}

function left(overrides: Partial<LeftOperation>): LeftOperation {
  return { id: 'op1', kind: 'rollback', level: 'app', checkpointId: 7, state: 'restoring', epoch: 4, serversKnown: true, restoreCommandsKnown: true, ...overrides };
}

type Send = Extract<OperationEffect, { type: 'send' }>;
type Persist = Extract<OperationEffect, { type: 'persist' }>;
type Finished = Extract<OperationEffect, { type: 'finished' }>;

function step(m: OperationMachine, input: OperationInput): OperationEffect[] {
  const r = m.step(input);
  if (r.rejected) throw new Error(`rejected ${r.rejected.reason}: ${r.rejected.detail}`);
  return [...r.effects];
}

const sends = (effects: readonly OperationEffect[]): Send[] => effects.filter((e): e is Send => e.type === 'send');
const persists = (effects: readonly OperationEffect[]): Persist[] => effects.filter((e): e is Persist => e.type === 'persist');
const finishedOf = (effects: readonly OperationEffect[]): Finished | undefined => effects.find((e): e is Finished => e.type === 'finished');

/** Runs an app-level rollback up to `until`, as the coordinator that then dies: its sends and its last persisted record. */
function runUntil(until: 'restoring' | 'resuming'): { sends: Send[]; record: Persist } {
  const m = new OperationMachine(config());
  const out = [...step(m, { type: 'start', nowMs: 0 }), ...step(m, { type: 'validated', nowMs: 1 })];
  out.push(...step(m, { type: 'epoch-set', nowMs: 2, epoch: 4 }));
  // s1 restored, s2's answer never came: the coordinator dies in restoring.
  out.push(...step(m, { type: 'answer', nowMs: 3, server: 's1', requestId: operationRequestId('op1', 1, 's1'), event: 'restored' }));
  if (until === 'resuming') out.push(...step(m, { type: 'answer', nowMs: 4, server: 's2', requestId: operationRequestId('op1', 1, 's2'), event: 'restored' }));
  const record = persists(out).at(-1) as Persist;
  expect(record.state).toBe(until);
  return { sends: sends(out), record };
}

describe('operation recovery: what the next coordinator decides for each left phase', () => {
  it('a final record is left alone', () => {
    for (const state of OPERATION_FINAL_STATES) expect(decideOperationRecovery(left({ state }))).toEqual({ type: 'none' });
  });

  it('app level before the epoch moved (validating, safety checkpoint): failed, nothing changed, call again', () => {
    for (const state of ['validating', 'safety-checkpoint'] as const) {
      const d = decideOperationRecovery(left({ state, epoch: undefined }));
      expect(d.type === 'end' && d.state).toBe('failed');
      expect(d.type === 'end' && d.detail).toMatch(/nothing was changed: call again/);
    }
  });

  it('app level while bumping the epoch: the bump may have landed, so needs-repair naming the rollback that repairs it', () => {
    const d = decideOperationRecovery(left({ state: 'setting-epoch', epoch: undefined }));
    expect(d.type).toBe('end');
    if (d.type !== 'end') return;
    expect(d.state).toBe('needs-repair');
    expect(d.outcome.message).toBe(d.detail);
    expect(d.detail).toMatch(/RollbackSnapshot to checkpoint 7 \(snapctl rollback 7\)/);
  });

  it('restoring with its commands known: redone at its epoch; without them: needs-repair saying who may stay paused and naming the call', () => {
    expect(decideOperationRecovery(left({ state: 'restoring' }))).toEqual({ type: 'redo', phase: 'restoring', epoch: 4 });
    const d = decideOperationRecovery(left({ state: 'restoring', kind: 'restore', restoreCommandsKnown: false }));
    expect(d.type === 'end' && d.state).toBe('needs-repair');
    expect(d.type === 'end' && d.detail).toMatch(/stay paused at epoch 4.*restore again: RestoreSnapshot of checkpoint 7 onto the same targets/);
  });

  it('resuming: redone (every server had restored); without its servers: needs-repair naming the call', () => {
    expect(decideOperationRecovery(left({ state: 'resuming', restoreCommandsKnown: false }))).toEqual({ type: 'redo', phase: 'resuming', epoch: 4 });
    const d = decideOperationRecovery(left({ state: 'resuming', serversKnown: false }));
    expect(d.type === 'end' && d.state).toBe('needs-repair');
    expect(d.type === 'end' && d.detail).toMatch(/paused until resumed.*roll back again/);
  });

  it('a record whose epoch the line left (a later operation moved it; this one\'s end was not recorded) is never resumed: needs-repair, saying so', () => {
    for (const state of ['restoring', 'resuming'] as const) {
      const d = decideOperationRecovery(left({ state, epoch: 4, lineEpoch: 5 }));
      expect(d.type === 'end' && d.state).toBe('needs-repair');
      expect(d.type === 'end' && d.detail).toMatch(/epoch has moved to 5 since: a later operation superseded it/);
    }
    expect(decideOperationRecovery(left({ level: 'crash', state: 'thawing', epoch: 3, lineEpoch: 4 })).type).toBe('end');
    expect(decideOperationRecovery(left({ state: 'restoring', epoch: 4, lineEpoch: 4 }))).toEqual({ type: 'redo', phase: 'restoring', epoch: 4 });
  });

  it('crash level: freezing thaws back and fails, reverting and thawing-back thaw back and need repair, thawing is redone', () => {
    const crash = (state: OperationState): LeftOperation => left({ level: 'crash', state, epoch: 3 });
    expect(decideOperationRecovery(crash('freezing'))).toMatchObject({ type: 'redo', phase: 'thawing-back', epoch: 3, thenState: 'failed' });
    expect(decideOperationRecovery(crash('reverting'))).toMatchObject({ type: 'redo', phase: 'thawing-back', thenState: 'needs-repair' });
    expect(decideOperationRecovery(crash('thawing-back'))).toMatchObject({ type: 'redo', phase: 'thawing-back', thenState: 'needs-repair' });
    expect(decideOperationRecovery(crash('thawing'))).toEqual({ type: 'redo', phase: 'thawing', epoch: 3 });
    for (const state of ['validating', 'safety-checkpoint', 'setting-epoch'] as const) {
      expect(decideOperationRecovery(left({ level: 'crash', state, epoch: undefined }))).toMatchObject({ type: 'end', state: 'failed' });
    }
  });
});

describe('operation recovery: the machine goes on from the left phase under the old request ids', () => {
  it('left in restoring (one server restored, one not): the restore goes out again under the same ids, then resume, then completed: no app stays paused', () => {
    const dead = runUntil('restoring');
    const d = decideOperationRecovery(left({ state: dead.record.state, ...(dead.record.epoch !== undefined ? { epoch: dead.record.epoch } : {}) }));
    expect(d.type).toBe('redo');
    if (d.type !== 'redo') return;
    const m = new OperationMachine(config());
    const first = step(m, { type: 'recover', nowMs: 100, phase: d.phase, epoch: d.epoch, safetyCheckpointId: 0 });
    expect(persists(first)[0]).toMatchObject({ state: 'restoring', epoch: 4, detail: expect.stringMatching(/^taken over from a coordinator that stopped/) });
    // The agents know these ids: s1 answers from memory without restoring twice.
    expect(sends(first).map((s) => [s.command, s.requestId, s.epoch])).toEqual(dead.sends.map((s) => [s.command, s.requestId, s.epoch]));
    step(m, { type: 'answer', nowMs: 101, server: 's1', requestId: operationRequestId('op1', 1, 's1'), event: 'restored' });
    const resume = step(m, { type: 'answer', nowMs: 102, server: 's2', requestId: operationRequestId('op1', 1, 's2'), event: 'restored' });
    expect(sends(resume).map((s) => [s.command, s.server, s.requestId])).toEqual([
      ['resume', 's1', 'op:op1:2:s1'],
      ['resume', 's2', 'op:op1:2:s2'],
    ]);
    step(m, { type: 'answer', nowMs: 103, server: 's1', requestId: 'op:op1:2:s1', event: 'resumed' });
    const end = step(m, { type: 'answer', nowMs: 104, server: 's2', requestId: 'op:op1:2:s2', event: 'resumed' });
    expect(finishedOf(end)).toEqual({ type: 'finished', state: 'completed', outcome: { ok: true, epoch: 4, safetyCheckpointId: 0 } });
    expect(persists(end).at(-1)?.detail).toMatch(/complete at epoch 4, finished by the coordinator that started after/);
  });

  it('left in resuming: the resume goes out again under the ids the dead coordinator used', () => {
    const m = new OperationMachine(config());
    const first = step(m, { type: 'recover', nowMs: 0, phase: 'resuming', epoch: 4, safetyCheckpointId: 9 });
    expect(sends(first).map((s) => [s.command, s.requestId])).toEqual([
      ['resume', 'op:op1:2:s1'],
      ['resume', 'op:op1:2:s2'],
    ]);
    step(m, { type: 'answer', nowMs: 1, server: 's1', requestId: 'op:op1:2:s1', event: 'resumed' });
    const end = step(m, { type: 'answer', nowMs: 2, server: 's2', requestId: 'op:op1:2:s2', event: 'resumed' });
    expect(finishedOf(end)?.outcome).toEqual({ ok: true, epoch: 4, safetyCheckpointId: 9 });
  });

  it('a taken-over phase nobody answers still ends, in needs-repair (never a record left in its phase)', () => {
    const m = new OperationMachine(config());
    step(m, { type: 'recover', nowMs: 0, phase: 'resuming', epoch: 4, safetyCheckpointId: 0 });
    const end = step(m, { type: 'timer-fired', nowMs: 30_000, name: 'deadline', seq: 2 });
    expect(finishedOf(end)?.state).toBe('needs-repair');
  });

  it('crash level, thawing-back: every server is thawed without the restore hooks, then it ends as decided', () => {
    const m = new OperationMachine(config({ level: 'crash' }));
    const first = step(m, { type: 'recover', nowMs: 0, phase: 'thawing-back', epoch: 3, safetyCheckpointId: 0, thenState: 'needs-repair', thenDetail: 'volumes may be partly put back' });
    expect(sends(first).map((s) => [s.command, s.requestId, s.afterRestore])).toEqual([
      ['thaw', 'op:op1:2:s1', false],
      ['thaw', 'op:op1:2:s2', false],
    ]);
    step(m, { type: 'answer', nowMs: 1, server: 's1', requestId: 'op:op1:2:s1', event: 'thawed' });
    const end = step(m, { type: 'answer', nowMs: 2, server: 's2', requestId: 'op:op1:2:s2', event: 'thawed' });
    expect(finishedOf(end)).toEqual({ type: 'finished', state: 'needs-repair', outcome: { ok: false, kind: 'internal', message: 'volumes may be partly put back' } });
  });

  it('crash level, thawing: thawed with the restore hooks, then completed', () => {
    const m = new OperationMachine(config({ level: 'crash' }));
    const first = step(m, { type: 'recover', nowMs: 0, phase: 'thawing', epoch: 3, safetyCheckpointId: 0 });
    expect(sends(first).every((s) => s.command === 'thaw' && s.afterRestore === true)).toBe(true);
  });

  it('recover is refused once started, and a phase of the other level is a bug', () => {
    const m = new OperationMachine(config());
    step(m, { type: 'start', nowMs: 0 });
    expect(m.step({ type: 'recover', nowMs: 1, phase: 'resuming', epoch: 4, safetyCheckpointId: 0 }).rejected?.reason).toBe('already-started');
    expect(() => new OperationMachine(config()).step({ type: 'recover', nowMs: 0, phase: 'thawing', epoch: 4, safetyCheckpointId: 0 })).toThrow(/app-level/);
    expect(() => new OperationMachine(config({ level: 'crash' })).step({ type: 'recover', nowMs: 0, phase: 'thawing-back', epoch: 4, safetyCheckpointId: 0 })).toThrow(/thawing-back/);
  });
});
