import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideDeleteMark, decidePin, decideRetention, utcMonthOf, type DeletableRecord } from '../../src/control/retention.js';

const completed = (ids: readonly number[], pinned: readonly number[] = []): { id: number; pinned: boolean }[] => ids.map((id) => ({ id, pinned: pinned.includes(id) }));

describe('retention decision', () => {
  it('keeps the newest N and deletes the rest, oldest first', () => {
    const d = decideRetention({ completed: completed([3, 1, 5, 2, 4]), keepNewest: 2, protectedIds: [] });
    expect(d.delete).toEqual([1, 2, 3]);
    expect(d.kept).toEqual([
      { id: 5, because: 'newest' },
      { id: 4, because: 'newest' },
    ]);
  });

  it('never deletes a pinned checkpoint, and a pinned one does not push a recent one out', () => {
    const d = decideRetention({ completed: completed([1, 2, 3, 4, 5], [1]), keepNewest: 2, protectedIds: [] });
    expect(d.delete).toEqual([2, 3]);
    expect(d.kept).toContainEqual({ id: 1, because: 'pinned' });
    expect(d.kept.filter((k) => k.because === 'newest').map((k) => k.id)).toEqual([5, 4]);
  });

  it('never deletes the target or the safety checkpoint of a recent rollback', () => {
    const d = decideRetention({
      completed: completed([1, 2, 3, 4, 5, 6]),
      keepNewest: 1,
      protectedIds: [
        { id: 2, because: 'rollback-target' },
        { id: 4, because: 'rollback-safety' },
      ],
    });
    expect(d.delete).toEqual([1, 3, 5]);
    expect(d.kept).toEqual([
      { id: 6, because: 'newest' },
      { id: 4, because: 'rollback-safety' },
      { id: 2, because: 'rollback-target' },
    ]);
  });

  it('a protected id that is not among the completed ones changes nothing', () => {
    const d = decideRetention({ completed: completed([1, 2]), keepNewest: 1, protectedIds: [{ id: 99, because: 'rollback-target' }] });
    expect(d.delete).toEqual([1]);
  });

  it('nothing to delete while the plan has no more than N', () => {
    expect(decideRetention({ completed: completed([1, 2]), keepNewest: 2, protectedIds: [] }).delete).toEqual([]);
    expect(decideRetention({ completed: [], keepNewest: 2, protectedIds: [] }).delete).toEqual([]);
  });
});

describe('a delete and a pin on one record (pin-races-delete, delete-cut-short)', () => {
  const completedRecord: DeletableRecord = { state: 'completed' };

  it('a delete marks the record before anything goes; a pinned or running checkpoint is refused, unmarked', () => {
    expect(decideDeleteMark(completedRecord)).toEqual({ type: 'mark' });
    expect(decideDeleteMark({ state: 'aborted' })).toEqual({ type: 'mark' });
    expect(decideDeleteMark({ state: 'completed', pinned: true })).toEqual({ type: 'refused', reason: 'pinned' });
    for (const state of ['pending', 'triggering', 'collecting', 'committing', 'aborting']) expect(decideDeleteMark({ state })).toEqual({ type: 'refused', reason: 'in-flight' });
  });

  it('a record marked already is a delete cut short or retried: it is finished, never refused', () => {
    expect(decideDeleteMark({ state: 'completed', deleting: true })).toEqual({ type: 'finish' });
  });

  it('a pin of a record being deleted is refused: its parts may be gone', () => {
    expect(decidePin({ state: 'completed', deleting: true }, true)).toEqual({ type: 'refused', reason: 'deleting' });
    expect(decidePin({ state: 'completed', deleting: true }, false)).toEqual({ type: 'refused', reason: 'deleting' });
  });

  it('pin: only a completed record, and pinning a pinned one changes nothing', () => {
    expect(decidePin(completedRecord, true)).toEqual({ type: 'write' });
    expect(decidePin({ state: 'completed', pinned: true }, true)).toEqual({ type: 'unchanged' });
    expect(decidePin({ state: 'completed', pinned: true }, false)).toEqual({ type: 'write' });
    expect(decidePin({ state: 'aborted' }, true)).toEqual({ type: 'refused', reason: 'not-completed' });
  });

  it('of a pin and a delete racing on one revision, the one written second is refused whichever goes first', () => {
    // Compare-and-set: the loser reads the winner's record and decides again.
    const pinnedFirst = { ...completedRecord, pinned: true };
    expect(decideDeleteMark(pinnedFirst).type).toBe('refused');
    const markedFirst = { ...completedRecord, deleting: true };
    expect(decidePin(markedFirst, true).type).toBe('refused');
  });
});

describe('UTC months without a Date in src/', () => {
  it('utcMonthOf agrees with Date for any time from 1970 to 2400', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 13_569_465_600_000 }), (ms) => {
        const d = new Date(ms);
        expect(utcMonthOf(ms)).toBe(d.getUTCFullYear() * 12 + d.getUTCMonth());
      }),
      { numRuns: 2_000 },
    );
    for (const iso of ['2024-02-29T23:59:59.999Z', '2024-03-01T00:00:00Z', '2000-02-29T12:00:00Z', '2100-03-01T00:00:00Z', '1970-01-01T00:00:00Z']) {
      const ms = Date.parse(iso);
      expect(utcMonthOf(ms), iso).toBe(new Date(ms).getUTCFullYear() * 12 + new Date(ms).getUTCMonth());
    }
  });
});
