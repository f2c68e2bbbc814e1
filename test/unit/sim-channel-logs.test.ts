/**
 * The simulator's sent-payload logs (simulations/channel-logs.ts) journal sends and write them into
 * per-channel logs in batches. The final legality check sums them and a recovery truncates them, so
 * what they give must be what a plain array per channel gives, written at once, whatever the batch
 * boundaries: here against exactly that reference, with runs longer than a batch.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChannelLogs } from '../../simulations/channel-logs.js';

const CHANNELS = 3;

type Op = { record: { channel: number; payload: number } } | { truncate: { channel: number; length: number } } | { sum: { channel: number; count: number } };

/** The reference: `log[seq - 1] = payload` into a plain array, `length =` to truncate. */
function referenceSum(log: number[], count: number, from: number): number {
  let total = from;
  for (let i = 0; i < count; i++) total += log[i] ?? Number.NaN;
  return total;
}

const channel = fc.integer({ min: 0, max: CHANNELS - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 20, arbitrary: fc.record({ channel, payload: fc.integer({ min: -5, max: 10 }) }).map((record) => ({ record })) },
  { weight: 1, arbitrary: fc.record({ channel, length: fc.integer({ min: 0, max: 40 }) }).map((truncate) => ({ truncate })) },
  { weight: 2, arbitrary: fc.record({ channel, count: fc.integer({ min: 0, max: 50 }) }).map((sum) => ({ sum })) },
);

describe('ChannelLogs', () => {
  it('sums and truncates as plain per-channel arrays would', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const logs = new ChannelLogs(CHANNELS);
        const reference: number[][] = Array.from({ length: CHANNELS }, () => []);
        // Sequence numbers continue from the log's length, as a sender's do after a recovery.
        const sent = new Array<number>(CHANNELS).fill(0);
        for (const o of ops) {
          if ('record' in o) {
            const { channel: c, payload } = o.record;
            sent[c] = (sent[c] as number) + 1;
            logs.record(c, sent[c] as number, payload);
            (reference[c] as number[])[(sent[c] as number) - 1] = payload;
          } else if ('truncate' in o) {
            const { channel: c, length } = o.truncate;
            logs.truncate(c, length);
            (reference[c] as number[]).length = length;
            sent[c] = length;
          } else {
            const { channel: c, count } = o.sum;
            expect(logs.sum(c, count, 0.5)).toEqual(referenceSum(reference[c] as number[], count, 0.5));
          }
        }
        for (let c = 0; c < CHANNELS; c++) {
          const count = (reference[c] as number[]).length;
          expect(logs.sum(c, count, 0)).toEqual(referenceSum(reference[c] as number[], count, 0));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps every payload of runs far longer than one batch', () => {
    const logs = new ChannelLogs(2);
    let expected0 = 0;
    let expected1 = 0;
    for (let seq = 1; seq <= 20_000; seq++) {
      logs.record(0, seq, seq % 7);
      expected0 += seq % 7;
      if (seq % 3 === 0) {
        logs.record(1, seq / 3, 2);
        expected1 += 2;
      }
    }
    expect(logs.sum(0, 20_000, 0)).toBe(expected0);
    expect(logs.sum(1, Math.floor(20_000 / 3), 0)).toBe(expected1);
  });

  it('reads messages never logged as NaN: beyond the end, and in what a longer truncation uncovers', () => {
    const logs = new ChannelLogs(1);
    logs.record(0, 1, 4);
    logs.record(0, 2, 5);
    expect(logs.sum(0, 2, 0)).toBe(9);
    expect(logs.sum(0, 3, 0)).toBeNaN();
    logs.truncate(0, 1);
    expect(logs.sum(0, 1, 0)).toBe(4);
    expect(logs.sum(0, 2, 0)).toBeNaN();
    logs.truncate(0, 3);
    expect(logs.sum(0, 3, 0)).toBeNaN();
    logs.record(0, 2, 1);
    logs.record(0, 3, 1);
    expect(logs.sum(0, 3, 0)).toBe(6);
  });
});
