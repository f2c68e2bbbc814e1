/**
 * What a schedule policy adds to periodic checkpoints: cron expressions (UTC), a daily window and a
 * jitter (coordinator/policies/cron.ts, coordinator/schedule.ts nextStart), and a PlanSchedule that
 * starts its checkpoints at the cron's times.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TakeSnapshotRequest } from '../../coordinator/api.js';
import { ok } from '../../coordinator/errors.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { nextFire, parseCron, type CronExpression } from '../../coordinator/policies/cron.js';
import { nextStart, PlanSchedule, type ScheduleSpec } from '../../coordinator/schedule.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

function cron(text: string): CronExpression {
  const c = parseCron(text);
  if (!c.ok) throw new Error(c.message);
  return c.cron;
}

const at = (iso: string): number => Date.parse(iso);
const iso = (t: number | undefined): string | undefined => (t === undefined ? undefined : new Date(t).toISOString());

describe('cron expressions', () => {
  it.each([
    ['*/15 * * * *', '2024-01-01T10:07:30Z', '2024-01-01T10:15:00.000Z'],
    ['0 3 * * *', '2024-01-01T03:00:00Z', '2024-01-02T03:00:00.000Z'],
    ['30 2 1 * *', '2024-01-15T00:00:00Z', '2024-02-01T02:30:00.000Z'],
    ['0 0 * * 1-5', '2024-01-05T12:00:00Z', '2024-01-08T00:00:00.000Z'],
    ['0 12 * * 7', '2024-01-01T00:00:00Z', '2024-01-07T12:00:00.000Z'],
    ['0 0 29 2 *', '2024-03-01T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    // Both day fields restricted: either one matches (the 13th, or any Friday).
    ['0 0 13 * 5', '2024-01-01T00:00:00Z', '2024-01-05T00:00:00.000Z'],
    ['5,10 1-2/1 * * *', '2024-01-01T01:05:00Z', '2024-01-01T01:10:00.000Z'],
  ])('%s after %s fires at %s', (text, after, expected) => {
    expect(iso(nextFire(cron(text), at(after)))).toBe(expected);
  });

  it('never fires on 31 February', () => {
    expect(nextFire(cron('0 0 31 2 *'), at('2024-01-01T00:00:00Z'))).toBeUndefined();
  });

  it.each([
    ['* * * *', 'must have 5 fields'],
    ['61 * * * *', 'minute "61" is outside 0-59'],
    ['* 24 * * *', 'hour "24" is outside 0-23'],
    ['* * 0 * *', 'day of month "0" is outside 1-31'],
    ['*/0 * * * *', 'has a step of 0'],
    ['* * * JAN *', 'month "JAN" is not a number'],
    ['5-1 * * * *', 'minute "5-1" is outside'],
  ])('%s is refused: %s', (text, message) => {
    const r = parseCron(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
    if (!r.ok) expect(r.message).toContain(`cron "${text}"`);
  });
});

describe('next start of a schedule', () => {
  const base: ScheduleSpec = { planId: 'p', level: 'app', intervalMs: 60_000, minPauseMs: 0, tolerableFailures: 3 };

  it('an interval start outside the window moves to the window start; inside it stays', () => {
    const window = { startMinute: 22 * 60, endMinute: 2 * 60 };
    expect(iso(nextStart({ ...base, window }, at('2024-01-01T12:00:00Z'), 0))).toBe('2024-01-01T22:00:00.000Z');
    expect(iso(nextStart({ ...base, window }, at('2024-01-01T23:30:00Z'), 0))).toBe('2024-01-01T23:30:00.000Z');
    expect(iso(nextStart({ ...base, window }, at('2024-01-02T01:59:00Z'), 0))).toBe('2024-01-02T01:59:00.000Z');
    expect(iso(nextStart({ ...base, window }, at('2024-01-02T02:00:00Z'), 0))).toBe('2024-01-02T22:00:00.000Z');
  });

  it('a cron fire outside the window waits for the first fire inside it', () => {
    const spec = { ...base, cron: cron('0 * * * *'), window: { startMinute: 3 * 60, endMinute: 4 * 60 } };
    expect(iso(nextStart(spec, at('2024-01-01T05:10:00Z'), 0))).toBe('2024-01-02T03:00:00.000Z');
    expect(nextStart({ ...spec, cron: cron('0 5 * * *') }, at('2024-01-01T00:00:00Z'), 0)).toBeUndefined();
  });

  it('the jitter adds up to jitterMs', () => {
    const spec = { ...base, cron: cron('0 3 * * *'), jitterMs: 10_000 };
    expect(nextStart(spec, at('2024-01-01T00:00:00Z'), 0.5)).toBe(at('2024-01-01T03:00:00Z') + 5_000);
    expect(nextStart(spec, at('2024-01-01T00:00:00Z'), 0.9999)).toBeLessThan(at('2024-01-01T03:00:10Z'));
  });
});

describe('a cron schedule', () => {
  afterEach(() => vi.useRealTimers());

  it('starts checkpoints at the cron times, not at an interval', async () => {
    vi.useFakeTimers({ now: at('2024-01-01T10:00:30Z') });
    const starts: string[] = [];
    const s = new PlanSchedule(
      { planId: 'demo', level: 'crash', intervalMs: 0, minPauseMs: 0, tolerableFailures: 3, cron: cron('*/10 * * * *') },
      {
        take: async (r: TakeSnapshotRequest) => {
          starts.push(`${new Date().toISOString()} ${r.level}`);
          return ok({ ...checkpointRecord(), id: starts.length, state: 'completed' } as CheckpointRecord);
        },
        waitFor: async (n: number): Promise<CheckpointRecord> => ({ ...checkpointRecord(), id: n, state: 'completed' }),
        logger: pino({ level: 'silent' }),
      },
    );
    s.start();
    await vi.advanceTimersByTimeAsync(25 * 60_000);
    s.stop();
    expect(starts).toEqual(['2024-01-01T10:10:00.000Z crash', '2024-01-01T10:20:00.000Z crash']);
  });
});
