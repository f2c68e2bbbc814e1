/**
 * The simulator's agenda (simulations/event-queue.ts) must give exactly the order of a sort by
 * (time, push order) for any interleaving of pushes and pops and any bucket width: a run's
 * determinism rests on it, and the bucket width is only a speed setting. The reference here is a
 * plain array kept in that order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventHeap } from '../../simulations/event-heap.js';
import { agendaBucketMs, EventQueue } from '../../simulations/event-queue.js';

type Op = { push: number } | { pop: true };

interface Ref {
  readonly id: number;
  readonly at: number;
}

/** Replays `ops` on the agenda and on the reference; returns both pop sequences as `id@time`. */
function replay(ops: readonly Op[], bucketMs: number): { got: string[]; want: string[] } {
  const queue = new EventQueue<Ref>(bucketMs);
  const reference: Ref[] = [];
  const got: string[] = [];
  const want: string[] = [];
  let next = 0;
  // Times are relative to the last pop, as the engine schedules: nothing earlier than "now".
  let now = 0;
  for (const op of ops) {
    if ('push' in op) {
      const item = { id: next++, at: now + op.push };
      queue.push(item, item.at);
      // After every item due at or before it, so equal times keep push order.
      let i = reference.length;
      while (i > 0 && (reference[i - 1] as Ref).at > item.at) i -= 1;
      reference.splice(i, 0, item);
    } else {
      const item = queue.pop();
      const expected = reference.shift();
      got.push(item ? `${item.id}@${queue.lastAt}` : 'empty');
      want.push(expected ? `${expected.id}@${expected.at}` : 'empty');
      if (expected) now = expected.at;
    }
    expect(queue.size).toBe(reference.length);
  }
  return { got, want };
}

/**
 * Delays like a run's: mostly a few ms, some zero, ties, and a few far beyond the ring; and, which
 * the engine never asks for, a few in the past.
 */
const delay = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: 0, max: 8, noNaN: true }) },
  { weight: 1, arbitrary: fc.double({ min: -2, max: 0, noNaN: true }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 0.5, 1, 2) },
  { weight: 1, arbitrary: fc.double({ min: 8, max: 100_000, noNaN: true }) },
);
const op: fc.Arbitrary<Op> = fc.oneof({ weight: 3, arbitrary: delay.map((d) => ({ push: d })) }, { weight: 2, arbitrary: fc.constant({ pop: true as const }) });
const bucketMs = fc.constantFrom(0.001, 0.016, 0.25, 1, 1000);

describe('EventQueue', () => {
  it('pops in (time, push order) order for any pushes, pops and bucket width', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), bucketMs, (ops, width) => {
        const { got, want } = replay(ops, width);
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps push order among events at the same instant, whether due now, soon or far ahead', () => {
    const ops: Op[] = [];
    for (const d of [0, 3, 50_000]) for (let i = 0; i < 5; i++) ops.push({ push: d });
    for (let i = 0; i < 16; i++) ops.push({ pop: true });
    const { got, want } = replay(ops, 0.016);
    expect(got).toEqual(want);
    expect(got.slice(0, 5)).toEqual(['0@0', '1@0', '2@0', '3@0', '4@0']);
    expect(got[15]).toBe('empty');
  });

  it('takes thousands of events spread over many laps of the ring', () => {
    const ops: Op[] = [];
    for (let i = 0; i < 5000; i++) {
      ops.push({ push: (i * 7919) % 37 }, { push: ((i * 104_729) % 1000) / 10 });
      if (i % 3 !== 0) ops.push({ pop: true });
    }
    for (let i = 0; i < 5000; i++) ops.push({ pop: true });
    const { got, want } = replay(ops, 0.01);
    expect(got).toEqual(want);
  });

  it('refuses a bucket width that is not a positive number', () => {
    expect(() => new EventQueue(0)).toThrow(RangeError);
    expect(() => new EventQueue(Number.NaN)).toThrow(RangeError);
    expect(() => new EventQueue(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('agendaBucketMs', () => {
  it('aims at the asked events per bucket, widened until the ring reaches the horizon', () => {
    expect(agendaBucketMs(1000, 16, 5)).toBeCloseTo(0.016);
    expect(agendaBucketMs(100_000, 16, 5)).toBeCloseTo(5 / 1024);
  });

  it('falls back to 1 ms when the inputs give no positive width', () => {
    expect(agendaBucketMs(0, 16, 0)).toBe(1);
    expect(agendaBucketMs(Number.NaN, 16, 5)).toBe(1);
    expect(agendaBucketMs(1000, 16, Number.POSITIVE_INFINITY)).toBe(1);
  });
});

describe('EventHeap', () => {
  it('pops by time, then order, whatever the push order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 300 }), (keys) => {
        const heap = new EventHeap<number>();
        const unique = [...new Map(keys.map(([at, order]) => [order, at])).entries()].map(([order, at]) => ({ at, order }));
        unique.forEach((k, i) => heap.push(i, k.at, k.order));
        const sorted = unique.map((k, i) => ({ ...k, i })).sort((a, b) => a.at - b.at || a.order - b.order);
        const popped: number[] = [];
        while (heap.size > 0) {
          const at = heap.minAt;
          const order = heap.minOrder;
          const i = heap.pop() as number;
          expect([at, order]).toEqual([(unique[i] as { at: number }).at, (unique[i] as { order: number }).order]);
          popped.push(i);
        }
        expect(popped).toEqual(sorted.map((s) => s.i));
        expect(heap.pop()).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });
});
