/**
 * A key listing that stalls is started again (coordinator/store/scan.ts): `kv.keys()` of nats.js
 * sometimes never ends (seen on one loaded nats-server: a retention pass waited 30 s). Here the
 * first listing delivers one key and then nothing, as that one did; the second answers.
 */
import type { KV } from 'nats';
import { describe, expect, it } from 'vitest';
import { listKeys } from '../../coordinator/store/scan.js';

/** An iterator of nats.js's shape: yields `keys`, then ends, or (`hang`) waits until stopped. */
function keysIterator(keys: readonly string[], hang: boolean) {
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  return {
    stop: () => stop(),
    async *[Symbol.asyncIterator]() {
      for (const k of keys) yield k;
      if (hang) await stopped;
    },
  };
}

function kvListing(hangs: number): { kv: KV; calls: () => number } {
  let calls = 0;
  const kv = {
    keys: async () => {
      calls += 1;
      return keysIterator(['op.p.a', 'op.p.b'], calls <= hangs);
    },
  } as unknown as KV;
  return { kv, calls: () => calls };
}

describe('listKeys', () => {
  it('starts a stalled listing again and answers with the keys', async () => {
    const { kv, calls } = kvListing(1);
    const started = performance.now();
    const r = await listKeys(kv, 'op.p.*', 5_000, 200);
    expect(r.ok && r.value).toEqual(['op.p.a', 'op.p.b']);
    expect(calls()).toBe(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('answers UNAVAILABLE at the deadline when every listing stalls', async () => {
    const { kv, calls } = kvListing(Number.POSITIVE_INFINITY);
    const r = await listKeys(kv, 'op.>', 700, 200);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.kind).toBe('unavailable');
      expect(r.error.message).toContain('did not list keys op.> within 700 ms');
    }
    expect(calls()).toBeGreaterThanOrEqual(3);
  });

  it('does not start a listing again that ends at once', async () => {
    const { kv, calls } = kvListing(0);
    const r = await listKeys(kv, 'op.p.*', 5_000, 200);
    expect(r.ok && r.value).toEqual(['op.p.a', 'op.p.b']);
    expect(calls()).toBe(1);
  });
});
