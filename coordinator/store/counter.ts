/**
 * A strictly increasing counter in a KV key, incremented by compare-and-set: concurrent callers (in
 * one process or in several coordinators) each get a distinct value, and no value is ever handed
 * out twice, because a write only lands on the exact revision it read.
 */
import type { KV } from 'nats';
import { fail, ok, type Result } from '../errors.js';
import { decodeCounter, encodeCounter } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';

export interface CasRetry {
  /** Attempts (read, then write at that revision) before giving up with ABORTED. */
  readonly casAttemptsMax: number;
  /** Upper bound of the random pause between attempts; spreads out callers that collided. */
  readonly casRetryDelayMsMax: number;
}

export const casRetryDefault: CasRetry = { casAttemptsMax: 64, casRetryDelayMsMax: 8 };

export function validateCasRetry(retry: CasRetry): string | undefined {
  if (!Number.isInteger(retry.casAttemptsMax) || retry.casAttemptsMax < 1) return `casAttemptsMax must be a positive integer, got ${retry.casAttemptsMax}`;
  if (!Number.isInteger(retry.casRetryDelayMsMax) || retry.casRetryDelayMsMax < 0) {
    return `casRetryDelayMsMax must be a non-negative integer, got ${retry.casRetryDelayMsMax}`;
  }
  return undefined;
}

export function pauseBeforeRetry(retry: CasRetry, attempt: number): Promise<void> {
  // Grows with the attempt so a crowd of colliding callers thins out, capped by the limit.
  const ms = Math.random() * Math.min(retry.casRetryDelayMsMax, attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads a counter; `absent` when the key was never written (or was deleted). */
export async function readCounter(kv: KV, key: string, absent: number): Promise<Result<{ value: number; revision: number }>> {
  let entry;
  try {
    entry = await kv.get(key);
  } catch (error) {
    return { ok: false, error: storeError(error, `reading ${key}`) };
  }
  if (entry === null || entry.operation !== 'PUT') return ok({ value: absent, revision: 0 });
  const value = decodeCounter(entry.value, key);
  return value.ok ? ok({ value: value.value, revision: entry.revision }) : value;
}

/** A counter as last written: its value and the KV revision of that write. */
export interface CounterState {
  readonly value: number;
  readonly revision: number;
}

/**
 * Adds one and returns the new value. `floor` is consulted only when the key does not exist yet:
 * the first value written is floor() + 1 (so a lost meta bucket cannot restart below what exists).
 * `last`: the counter as this caller last wrote it, tried first instead of a read (one round trip
 * instead of two when nobody else wrote since; a conflict falls back to reading). `onWritten`
 * learns each value written, for the next call's `last`. `above`: the value returned is above
 * `above.value` too (the counter jumps to it first), unless that is more than `above.jumpMax` beyond
 * the counter.
 */
export async function incrementCounter(
  kv: KV,
  key: string,
  retry: CasRetry,
  floor: () => Promise<Result<number>>,
  last?: CounterState,
  onWritten?: (written: CounterState) => void,
  above?: { readonly value: number; readonly jumpMax: number },
): Promise<Result<number>> {
  for (let attempt = 1; attempt <= retry.casAttemptsMax; attempt++) {
    const current = attempt === 1 && last !== undefined && last.revision > 0 ? ok(last) : await readCounter(kv, key, -1);
    if (!current.ok) return current;
    let base = current.value.value;
    if (current.value.revision === 0) {
      const f = await floor();
      if (!f.ok) return f;
      base = f.value;
    }
    const jump = above !== undefined && above.value > base && above.value - base <= above.jumpMax;
    const next = (jump ? above.value : base) + 1;
    if (!Number.isSafeInteger(next)) return fail('internal', `counter ${key} would pass the safe integer range`);
    try {
      const revision = current.value.revision === 0 ? await kv.create(key, encodeCounter(next)) : await kv.update(key, encodeCounter(next), current.value.revision);
      onWritten?.({ value: next, revision });
      return ok(next);
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `incrementing ${key}`) };
    }
    await pauseBeforeRetry(retry, attempt);
  }
  return fail('aborted', `gave up incrementing ${key} after ${retry.casAttemptsMax} compare-and-set conflicts; retry the call`);
}
