import { describe, expect, it } from 'vitest';
import { decideRetention } from '../../src/control/retention.js';

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
