/** adapters/not-ready-retry.ts: what is sent again through a JetStream election, and what is not. */
import { describe, expect, it } from 'vitest';
import { retryNotReady } from '../../adapters/not-ready-retry.js';

const fast = { notReadyRetryMs: 200, notReadyPauseMs: 1 };

/** A call that fails with each of `errors` in turn, then answers 'done'. */
function flaky(errors: unknown[]): { call: () => Promise<string>; calls: () => number } {
  let n = 0;
  return {
    call: () => {
      const e = errors[n];
      n += 1;
      return e === undefined ? Promise.resolve('done') : Promise.reject(e);
    },
    calls: () => n,
  };
}

describe('sending again through the 503 window', () => {
  it('503 answers (no responders, JetStream not ready) and "no suitable peers" are sent again until the call succeeds', async () => {
    const f = flaky([{ code: '503' }, { api_error: { code: 503 } }, { api_error: { code: 500, err_code: 10005, description: 'no suitable peers for placement' } }]);
    expect(await retryNotReady(fast, f.call)).toBe('done');
    expect(f.calls()).toBe(4);
  });

  it('a timeout is sent again for a read only: a write that timed out may have landed', async () => {
    const read = flaky([{ code: 'TIMEOUT' }]);
    expect(await retryNotReady(fast, read.call, true)).toBe('done');
    const write = flaky([{ code: 'TIMEOUT' }]);
    await expect(retryNotReady(fast, write.call)).rejects.toEqual({ code: 'TIMEOUT' });
    expect(write.calls()).toBe(1);
  });

  it('any other error goes to the caller at once; past the budget the last 503 does', async () => {
    const other = flaky([{ code: '404' }]);
    await expect(retryNotReady(fast, other.call)).rejects.toEqual({ code: '404' });
    expect(other.calls()).toBe(1);
    const always = { call: () => Promise.reject({ code: '503' }) };
    await expect(retryNotReady({ notReadyRetryMs: 30, notReadyPauseMs: 5 }, always.call)).rejects.toEqual({ code: '503' });
  });
});
