import { describe, expect, it } from 'vitest';
import { envelopeMemory, SLAB_BYTES_MIN, SLAB_GROW_WITHIN_MS } from '../../agent/channels/envelope-memory.js';

/** A clock and two sources: which one served each envelope, and the slab sizes asked for. */
function harness() {
  let now = 0;
  let lastSource: 'shared' | 'slab' = 'slab';
  const slabs: number[] = [];
  const allocate = envelopeMemory({
    nowMs: () => now,
    shared: (size) => {
      lastSource = 'shared';
      return new Uint8Array(size);
    },
    slab: (size) => {
      slabs.push(size);
      return new Uint8Array(size);
    },
  });
  /** `count` envelopes of `size` bytes, one every `everyMs`: where each came from. */
  const track = (count: number, size: number, everyMs: number): ('shared' | 'slab')[] =>
    Array.from({ length: count }, () => {
      now += everyMs;
      lastSource = 'slab';
      expect(allocate(size).byteLength).toBe(size);
      return lastSource;
    });
  return { track, slabs };
}

describe('envelope memory', () => {
  it("takes a quiet channel's envelopes from the shared pool, whatever their count", () => {
    const h = harness();
    // 256-byte envelopes ten a second: 8 KiB take about 3 s to send.
    expect(new Set(h.track(200, 256, 100))).toEqual(new Set(['shared']));
    expect(h.slabs).toEqual([]);
  });

  it('cuts a busy channel\'s envelopes from slabs of its own once it sent 8 KiB within a second, and doubles them while each fills within a second', () => {
    const h = harness();
    // 1 KiB envelopes, a thousand a second: until 8 KiB have been asked for, the pool serves them.
    const first = h.track(SLAB_BYTES_MIN / 1024 - 1, 1024, 1);
    expect(first.every((s) => s === 'shared')).toBe(true);
    const later = h.track(200, 1024, 1);
    expect(later.every((s) => s === 'slab')).toBe(true);
    expect(h.slabs.slice(0, 4)).toEqual([8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024]);
    expect(Math.max(...h.slabs)).toBe(64 * 1024);
  });

  it('goes back to the shared pool when the channel slows down', () => {
    const h = harness();
    h.track(100, 1024, 1);
    // 8 KiB taking longer than SLAB_GROW_WITHIN_MS: the next choice is the pool.
    const slowed = h.track(40, 1024, SLAB_GROW_WITHIN_MS / 4);
    expect(slowed.slice(-20).every((s) => s === 'shared')).toBe(true);
  });
});
