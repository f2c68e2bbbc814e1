import { describe, expect, it } from 'vitest';
import { decideRecovery, decideUnfinishedDeletes, type RecoveryInput } from '../../src/control/recovery.js';

const slot = (checkpointId: number) => ({ checkpointId, periodic: false, owner: 'dead', admittedAtUnixMs: 0 });
const rec = (checkpointId: number, planId = 'p1', state = 'collecting') => ({ checkpointId, planId, state, createdAtUnixMs: 10_000 });

function decide(over: Partial<RecoveryInput>) {
  return decideRecovery({ inFlight: [], slots: [], runningHere: [], nowMs: 40_000, ...over });
}

describe('recovery at coordinator start', () => {
  it("aborts a dead coordinator's round at once, then releases its slot: admission counts it until it is over", () => {
    const actions = decide({ inFlight: [rec(7)], slots: [{ planId: 'p1', slots: [slot(7)] }] });
    expect(actions.map((a) => a.type)).toEqual(['abort', 'release-slot']);
    expect(actions[0]).toMatchObject({ checkpointId: 7, planId: 'p1' });
    expect(actions[0]?.type === 'abort' && actions[0].detail).toMatch(/collecting 30 s after it was created/);
    expect(actions[1]).toEqual({ type: 'release-slot', checkpointId: 7, planId: 'p1', reason: 'aborted-now' });
  });

  it('every abort comes before every release, across plans', () => {
    const actions = decide({
      inFlight: [rec(9, 'p2'), rec(3, 'p1')],
      slots: [
        { planId: 'p1', slots: [slot(3)] },
        { planId: 'p2', slots: [slot(9)] },
      ],
    });
    expect(actions.map((a) => `${a.type}:${a.checkpointId}`)).toEqual(['abort:3', 'abort:9', 'release-slot:3', 'release-slot:9']);
  });

  it('a slot whose checkpoint is not in flight any more (record final, or never written) is released', () => {
    expect(decide({ slots: [{ planId: 'p1', slots: [slot(4)] }] })).toEqual([{ type: 'release-slot', checkpointId: 4, planId: 'p1', reason: 'not-in-flight' }]);
  });

  it('a record in flight without a slot (written before slots existed) is still aborted', () => {
    expect(decide({ inFlight: [rec(5, 'p1', 'aborting')] }).map((a) => a.type)).toEqual(['abort']);
  });

  it('what this coordinator runs itself is left alone', () => {
    expect(decide({ inFlight: [rec(7)], slots: [{ planId: 'p1', slots: [slot(7)] }], runningHere: [7] })).toEqual([]);
  });

  it('nothing left behind, nothing to do', () => {
    expect(decide({})).toEqual([]);
  });
});

describe('recovery: what no record lists, and deletes cut short', () => {
  it('an aborted round that may have taken volume snapshots has the backend sweep them by its name (volume-snapshots-of-dead-coordinator)', () => {
    const actions = decide({ inFlight: [{ ...rec(7), hasVolumes: true }, rec(8)] });
    expect(actions.map((a) => a.type === 'abort' && [a.checkpointId, a.sweepVolumes])).toEqual([
      [7, true],
      [8, false],
    ]);
  });

  it('a final record marked deleting is a delete cut short: it is finished, oldest first (delete-cut-short)', () => {
    const marked = [
      { checkpointId: 9, planId: 'p2', state: 'completed' },
      { checkpointId: 4, planId: 'p1', state: 'aborted' },
    ];
    expect(decideUnfinishedDeletes(marked, [])).toEqual([
      { type: 'finish-delete', checkpointId: 4, planId: 'p1' },
      { type: 'finish-delete', checkpointId: 9, planId: 'p2' },
    ]);
  });

  it('a delete this coordinator is running itself is left to it', () => {
    expect(decideUnfinishedDeletes([{ checkpointId: 4, planId: 'p1', state: 'completed' }], [4])).toEqual([]);
  });
});
