/** agent/timers.ts: every app's deadlines of an agent on one Node timer. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentTimers } from '../../agent/timers.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function timers(): AgentTimers {
  return new AgentTimers({ nowMs: () => Date.now() });
}

describe('one timer for an agent', () => {
  it('deadlines fire at their time, in deadline order, and the same time in the order set', () => {
    const t = timers();
    const fired: string[] = [];
    t.set(30, () => fired.push('c'));
    t.set(10, () => fired.push('a'));
    t.set(20, () => fired.push('b1'));
    t.set(20, () => fired.push('b2'));
    vi.advanceTimersByTime(9);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['a']);
    vi.advanceTimersByTime(20);
    expect(fired).toEqual(['a', 'b1', 'b2', 'c']);
    expect(t.size).toBe(0);
  });

  it('a cancelled deadline never fires, and the ones after it still do', () => {
    const t = timers();
    const fired: number[] = [];
    const cancels = [10, 20, 30, 40].map((ms) => t.set(ms, () => fired.push(ms)));
    cancels[0]?.();
    cancels[2]?.();
    vi.advanceTimersByTime(100);
    expect(fired).toEqual([20, 40]);
  });

  it('a later deadline arms no Node timer; an earlier one re-arms it', () => {
    const t = timers();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    t.set(1_000, () => undefined);
    expect(spy).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 50; i++) t.set(2_000 + i, () => undefined);
    expect(spy).toHaveBeenCalledTimes(1);
    const fired: string[] = [];
    t.set(5, () => fired.push('soon'));
    expect(spy).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(5);
    expect(fired).toEqual(['soon']);
    spy.mockRestore();
  });

  it('a deadline set by a firing callback fires too', () => {
    const t = timers();
    const fired: string[] = [];
    t.set(10, () => {
      fired.push('first');
      t.set(0, () => fired.push('chained'));
    });
    vi.advanceTimersByTime(10);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['first', 'chained']);
  });

  it('stop drops every deadline', () => {
    const t = timers();
    const fired: string[] = [];
    t.set(10, () => fired.push('x'));
    t.stop();
    vi.advanceTimersByTime(100);
    expect(fired).toEqual([]);
  });
});
