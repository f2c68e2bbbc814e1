/**
 * Retention rules of a plan's policy (src/control/retention.ts): keep last N, GFS daily/weekly/
 * monthly, keep within a duration; pinned and rollback checkpoints kept whatever the rules say.
 */
import { describe, expect, it } from 'vitest';
import { decideRetention, type RetentionRules } from '../../src/control/retention.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
/** Monday 2024-01-01 00:00 UTC. */
const MONDAY = Date.UTC(2024, 0, 1);
const NONE: RetentionRules = { keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 };

/** One checkpoint every 6 hours over `days` days from MONDAY; ids rise with time. */
function sixHourly(days: number, pinned: readonly number[] = []): { id: number; pinned: boolean; finishedAtUnixMs: number }[] {
  return Array.from({ length: days * 4 }, (_, i) => ({ id: i + 1, pinned: pinned.includes(i + 1), finishedAtUnixMs: MONDAY + i * 6 * HOUR + HOUR }));
}

const keptIds = (d: ReturnType<typeof decideRetention>, because?: string): number[] => d.kept.filter((k) => because === undefined || k.because === because).map((k) => k.id).sort((a, b) => a - b);

describe('retention rules', () => {
  it('keepDaily keeps the newest checkpoint of each of the last N days', () => {
    const d = decideRetention({ completed: sixHourly(5), keepNewest: 20, protectedIds: [], rules: { ...NONE, keepDaily: 3 } });
    // Days 3, 4, 5: their last checkpoints are ids 12, 16, 20.
    expect(keptIds(d)).toEqual([12, 16, 20]);
    expect(d.delete).toHaveLength(17);
  });

  it('keepWeekly counts weeks from Monday, keepMonthly calendar months', () => {
    // 21 days from Monday Jan 1: weeks of Jan 1, Jan 8, Jan 15.
    const w = decideRetention({ completed: sixHourly(21), keepNewest: 1, protectedIds: [], rules: { ...NONE, keepWeekly: 2 } });
    expect(keptIds(w)).toEqual([56, 84]);
    const completed = [Date.UTC(2024, 0, 31, 23), Date.UTC(2024, 1, 1, 1), Date.UTC(2024, 1, 20), Date.UTC(2024, 2, 3)].map((t, i) => ({ id: i + 1, pinned: false, finishedAtUnixMs: t }));
    const m = decideRetention({ completed, keepNewest: 1, protectedIds: [], rules: { ...NONE, keepMonthly: 3 } });
    expect(keptIds(m, 'monthly')).toEqual([1, 3, 4]);
  });

  it('keepWithinMs keeps what finished within the duration of now; keepLast adds the newest N', () => {
    const all = sixHourly(4);
    const now = (all.at(-1)?.finishedAtUnixMs ?? 0) + HOUR;
    const d = decideRetention({ completed: all, keepNewest: 1, protectedIds: [], nowUnixMs: now, rules: { ...NONE, keepWithinMs: DAY, keepLast: 6 } });
    // Within a day: finished at now-1h, -7h, -13h, -19h (ids 16..13); keepLast 6 adds 12 and 11.
    expect(keptIds(d, 'newest')).toEqual([11, 12, 13, 14, 15, 16]);
    const within = decideRetention({ completed: all, keepNewest: 1, protectedIds: [], nowUnixMs: now, rules: { ...NONE, keepWithinMs: DAY } });
    expect(keptIds(within)).toEqual([13, 14, 15, 16]);
  });

  it('rules never delete a pinned checkpoint or a rollback safety checkpoint or target', () => {
    const d = decideRetention({
      completed: sixHourly(3, [2]),
      keepNewest: 20,
      protectedIds: [
        { id: 3, because: 'rollback-safety' },
        { id: 4, because: 'rollback-target' },
      ],
      rules: { ...NONE, keepLast: 1 },
    });
    expect(d.kept).toContainEqual({ id: 2, because: 'pinned' });
    expect(d.kept).toContainEqual({ id: 3, because: 'rollback-safety' });
    expect(d.kept).toContainEqual({ id: 4, because: 'rollback-target' });
    expect(d.delete).not.toContain(2);
    expect(d.delete).not.toContain(3);
    expect(d.delete).not.toContain(4);
    expect(keptIds(d, 'newest')).toEqual([12]);
  });

  it('the rules replace keepNewest: with rules, the coordinator default does not add to them', () => {
    const d = decideRetention({ completed: sixHourly(2), keepNewest: 20, protectedIds: [], rules: { ...NONE, keepLast: 2 } });
    expect(keptIds(d)).toEqual([7, 8]);
  });
});
