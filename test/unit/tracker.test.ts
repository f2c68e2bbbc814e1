import { describe, expect, it } from 'vitest';
import { CheckpointTracker } from '../../src/core/tracker.js';

function tracker(participants = ['a', 'b', 'c'], inFlightMax = 2) {
  const t = CheckpointTracker.create<string>({ participants, checkpointTimeoutMs: 1000, checkpointsInFlightMax: inFlightMax });
  if (!t.ok) throw new Error(t.error.message);
  return t.tracker;
}

describe('checkpoint tracker', () => {
  it('start: triggers the initiators and starts the checkpoint timer', () => {
    const r = tracker().step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    expect(r.rejected).toBeUndefined();
    expect(r.effects).toEqual([
      { type: 'start-timer', checkpointId: 1, afterMs: 1000 },
      { type: 'trigger', checkpointId: 1, process: 'a' },
    ]);
  });

  it('ids must strictly increase', () => {
    const t = tracker();
    t.step({ type: 'start', checkpointId: 5, initiators: ['a'] });
    expect(t.step({ type: 'start', checkpointId: 5, initiators: ['a'] }).rejected?.reason).toBe('id-not-increasing');
    expect(t.step({ type: 'start', checkpointId: 3, initiators: ['a'] }).rejected?.reason).toBe('id-not-increasing');
  });

  it('the in-flight maximum is enforced', () => {
    const t = tracker(['a'], 1);
    t.step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    const r = t.step({ type: 'start', checkpointId: 2, initiators: ['a'] });
    expect(r.rejected?.reason).toBe('too-many-in-flight');
    expect(r.effects).toEqual([]);
  });

  it('completes once every participant acked, and notifies all', () => {
    const t = tracker(['a', 'b']);
    t.step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    expect(t.step({ type: 'ack', checkpointId: 1, process: 'a', ack: 'A' }).effects).toEqual([]);
    const r = t.step({ type: 'ack', checkpointId: 1, process: 'b', ack: 'B' });
    const completed = r.effects.find((e) => e.type === 'completed');
    expect(completed && completed.type === 'completed' && [...completed.acks]).toEqual([
      ['a', 'A'],
      ['b', 'B'],
    ]);
    expect(r.effects.filter((e) => e.type === 'notify').map((e) => e.type === 'notify' && e.process)).toEqual(['a', 'b']);
    expect(t.lastCompletedId).toBe(1);
  });

  it('duplicate, unknown and foreign acks are rejected with a reason', () => {
    const t = tracker(['a', 'b']);
    t.step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    t.step({ type: 'ack', checkpointId: 1, process: 'a', ack: 'A' });
    expect(t.step({ type: 'ack', checkpointId: 1, process: 'a', ack: 'A' }).rejected?.reason).toBe('duplicate-ack');
    expect(t.step({ type: 'ack', checkpointId: 9, process: 'a', ack: 'A' }).rejected?.reason).toBe('unknown-checkpoint');
    expect(t.step({ type: 'ack', checkpointId: 1, process: 'zz', ack: 'Z' }).rejected?.reason).toBe('unknown-participant');
  });

  it('a decline aborts with the decliner named, and abort notices go to everyone', () => {
    const t = tracker(['a', 'b']);
    t.step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    const r = t.step({ type: 'decline', checkpointId: 1, process: 'b', reason: 'channel-failed' });
    const aborted = r.effects.find((e) => e.type === 'aborted');
    expect(aborted).toMatchObject({ reason: 'declined', detail: 'b declined: channel-failed', missing: ['a', 'b'] });
    expect(r.effects.filter((e) => e.type === 'notify')).toHaveLength(2);
    expect(t.inFlightIds()).toEqual([]);
  });

  it('a timeout names the participants that never answered', () => {
    const t = tracker(['a', 'b', 'c']);
    t.step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    t.step({ type: 'ack', checkpointId: 1, process: 'b', ack: 'B' });
    const aborted = t.step({ type: 'timeout', checkpointId: 1 }).effects.find((e) => e.type === 'aborted');
    expect(aborted).toMatchObject({ reason: 'timeout', missing: ['a', 'c'] });
    expect(aborted && aborted.type === 'aborted' && aborted.detail).toContain('a, c');
  });

  it('a later completed checkpoint does not abort an earlier one still in flight', () => {
    const t = tracker(['a'], 2);
    t.step({ type: 'start', checkpointId: 1, initiators: ['a'] });
    t.step({ type: 'start', checkpointId: 2, initiators: ['a'] });
    t.step({ type: 'ack', checkpointId: 2, process: 'a', ack: 'x' });
    expect(t.inFlightIds()).toEqual([1]);
    expect(t.step({ type: 'ack', checkpointId: 1, process: 'a', ack: 'y' }).effects.some((e) => e.type === 'completed')).toBe(true);
  });

  it('an invalid configuration is a value listing every problem', () => {
    const r = CheckpointTracker.create({ participants: [], checkpointTimeoutMs: 0, checkpointsInFlightMax: 0 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.message).toContain('at least one participant');
      expect(r.error.message).toContain('checkpointTimeoutMs');
      expect(r.error.message).toContain('checkpointsInFlightMax');
    }
  });
});
