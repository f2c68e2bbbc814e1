/**
 * LogOffsets keeps the stream position of each message the core took, so a checkpoint can record
 * where a log input's consumer restarts. A message refused by the core (an abandoned repeat of a seq
 * already taken) must not move that position.
 */
import { describe, expect, it } from 'vitest';
import { LogOffsets } from '../../agent/channels/log-offsets.js';

describe('LogOffsets', () => {
  it('a message taken and consumed in the same step gives its position to its seq', () => {
    const o = new LogOffsets(0, 0);
    o.offer(1, 11);
    o.consumed(1); // delivered inside the step that fed it
    o.settle(true);
    expect(o.offsetOf(1)).toBe(11);
  });

  it('a message held back (accepted, consumed later) keeps its position until then', () => {
    const o = new LogOffsets(0, 0);
    o.offer(1, 5);
    o.settle(true);
    o.offer(2, 9);
    o.settle(true);
    expect(o.offsetOf(2)).toBe(9);
    o.consumed(2);
    expect(o.offsetOf(2)).toBe(9);
    expect(o.offsetOf(1)).toBeUndefined();
  });

  it('a refused repeat of a seq already taken does not replace its position', () => {
    const o = new LogOffsets(0, 0);
    o.offer(1, 5);
    o.settle(true);
    o.offer(1, 40); // the same seq of an abandoned epoch, further on in the stream
    o.consumed(1); // a delivery of the held message 1 in the same step
    o.settle(false);
    expect(o.offsetOf(1)).toBe(5);
  });

  it('reset starts again from the restored position', () => {
    const o = new LogOffsets(0, 0);
    o.offer(1, 5);
    o.settle(true);
    o.reset(7, 70);
    expect(o.offsetOf(7)).toBe(70);
    expect(o.offsetOf(1)).toBeUndefined();
  });
});
