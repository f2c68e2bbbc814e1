import { describe, expect, it } from 'vitest';
import { Participant } from '../../src/core/participant.js';
import { createPolicy } from '../../src/core/policy.js';
import { FinishedIds } from '../../src/core/finished-ids.js';
import type { ChannelId } from '../../src/ids.js';
import { stepById as step } from '../support/core-driver.js';

function make(over: Partial<Parameters<typeof Participant.create>[0]> = {}) {
  const r = Participant.create<string>({ id: 'b', inputs: ['a->b'], outputs: ['b->c'], policy: { kind: 'aligned' }, ...over });
  if (!r.ok) throw new Error(r.error.message);
  return r.participant;
}

function input(p: Participant<string>, id: ChannelId): number {
  const h = p.inputHandle(id);
  if (h === undefined) throw new Error(`${id} is not an input of ${p.id}`);
  return h;
}

describe('participant configuration', () => {
  it('rejects a negative alignment timeout, a channel listed twice and a back edge that is not an input', () => {
    const r = Participant.create({
      id: 'b',
      inputs: ['a->b', 'a->b'],
      outputs: [],
      backEdgeInputs: ['x->b'],
      policy: { kind: 'aligned-timeout', alignmentTimeoutMs: -1 },
    });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.message).toContain('alignmentTimeoutMs');
      expect(r.error.message).toContain('a->b is listed twice');
      expect(r.error.message).toContain('back edge x->b');
    }
  });
});

describe('policy factory', () => {
  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('aligned-timeout: an alignment timeout of %s ms is refused with a typed error', (ms) => {
    const r = createPolicy({ kind: 'aligned-timeout', alignmentTimeoutMs: ms });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.kind).toBe('invalid-policy');
      expect(r.error.message).toContain('alignmentTimeoutMs must be a finite number > 0');
    }
  });

  it('aligned-timeout: a participant refuses an alignment timeout of 0 at creation and at configure', () => {
    const created = Participant.create({ id: 'b', inputs: ['a->b'], outputs: [], policy: { kind: 'aligned-timeout', alignmentTimeoutMs: 0 } });
    expect(created.ok).toBe(false);
    const p = make();
    expect(step(p, { type: 'configure', policy: { kind: 'aligned-timeout', alignmentTimeoutMs: 0 }, backEdgeInputs: [] }).rejected?.reason).toBe('invalid-config');
    expect(p.policyKind).toBe('aligned');
    expect(createPolicy({ kind: 'aligned-timeout', alignmentTimeoutMs: 0.5 }).ok).toBe(true);
  });
});

describe('participant rules', () => {
  it('none: a barrier is refused as unexpected and starts no checkpoint', () => {
    const p = make({ policy: { kind: 'none' } });
    const r = step(p, { type: 'barrier', channel: 'a->b', checkpointId: 1, epoch: 0 });
    expect(r.rejected?.reason).toBe('unexpected-barrier');
    expect(r.effects).toEqual([]);
    expect(p.inFlight()).toEqual([]);
    // The refused barrier left no trace: a trigger of the same id still snapshots.
    expect(step(p, { type: 'trigger', checkpointId: 1 }).effects.map((e) => e.type)).toEqual(['snapshot']);
  });

  it('sending on an unknown channel is rejected, not thrown', () => {
    expect(step(make(), { type: 'send', channel: 'b->z', payload: 'x' }).rejected?.reason).toBe('unknown-channel');
  });

  it('snapshot-stored before the snapshot, twice, or for an unknown checkpoint is rejected', () => {
    const p = make({ inputs: ['a->b', 'x->b'] });
    step(p, { type: 'barrier', channel: 'a->b', checkpointId: 1, epoch: 0 });
    expect(step(p, { type: 'snapshot-stored', checkpointId: 1 }).rejected?.reason).toBe('not-snapshotted');
    expect(step(p, { type: 'snapshot-stored', checkpointId: 7 }).rejected?.reason).toBe('unknown-checkpoint');
    step(p, { type: 'barrier', channel: 'x->b', checkpointId: 1, epoch: 0 });
    // Stored once completes the checkpoint (no input is recorded), so a second store finds nothing.
    expect(step(p, { type: 'snapshot-stored', checkpointId: 1 }).effects.map((e) => e.type)).toEqual(['ack']);
    expect(step(p, { type: 'snapshot-stored', checkpointId: 1 }).rejected?.reason).toBe('unknown-checkpoint');
  });

  it('an abort releases blocked inputs in order and forgets the checkpoint', () => {
    const p = make({ inputs: ['a->b', 'x->b'] });
    step(p, { type: 'barrier', channel: 'a->b', checkpointId: 1, epoch: 0 });
    expect(p.isBlocked(input(p, 'a->b'))).toBe(true);
    expect(step(p, { type: 'message', channel: 'a->b', seq: 1, epoch: 0, payload: 'm1' }).effects).toEqual([]);
    expect(step(p, { type: 'message', channel: 'a->b', seq: 2, epoch: 0, payload: 'm2' }).effects).toEqual([]);
    const r = step(p, { type: 'abort', checkpointId: 1 });
    expect(r.effects.map((e) => (e.type === 'deliver' ? e.payload : e.type))).toEqual(['m1', 'm2']);
    expect(p.isBlocked(input(p, 'a->b'))).toBe(false);
    expect(p.inFlight()).toEqual([]);
    expect(step(p, { type: 'barrier', channel: 'x->b', checkpointId: 1, epoch: 0 }).rejected?.reason).toBe('stale-barrier');
  });

  it('a restore with a bad channel state leaves the participant untouched', () => {
    const p = make();
    step(p, { type: 'message', channel: 'a->b', seq: 1, epoch: 0, payload: 'm1' });
    const r = step(p, {
      type: 'restore',
      epoch: 1,
      counts: { sent: {}, received: { 'a->b': 0 } },
      channelStates: { 'a->b': [{ seq: 2, payload: 'skips 1' }] },
    });
    expect(r.rejected?.reason).toBe('gap');
    expect(p.epoch).toBe(0);
    expect(p.deliveredFrom(input(p, 'a->b'))).toBe(1);
  });

  it('a restore must move the epoch forward', () => {
    const p = make();
    const counts = { sent: {}, received: {} };
    expect(step(p, { type: 'restore', epoch: 0, counts, channelStates: {} }).rejected?.reason).toBe('epoch-not-increasing');
    expect(step(p, { type: 'restore', epoch: 2, counts, channelStates: {} }).rejected).toBeUndefined();
    expect(p.epoch).toBe(2);
  });

  it('rejections are counted by reason', () => {
    const p = make();
    step(p, { type: 'barrier', channel: 'q->b', checkpointId: 1, epoch: 0 });
    step(p, { type: 'barrier', channel: 'q->b', checkpointId: 1, epoch: 0 });
    step(p, { type: 'message', channel: 'a->b', seq: 1, epoch: 3, payload: 'x' });
    expect(p.rejections).toEqual({ 'unknown-channel': 2, 'future-epoch': 1 });
  });
});

describe('duplicate barriers', () => {
  const barrier = (channel: string, checkpointId = 1) => ({ type: 'barrier', channel, checkpointId, epoch: 0 }) as const;

  it('unaligned: a second barrier of a checkpoint on the same input is rejected, counted, and changes nothing', () => {
    const p = make({ inputs: ['a->b', 'x->b'], policy: { kind: 'unaligned' } });
    expect(step(p, barrier('a->b')).effects.map((e) => e.type)).toEqual(['snapshot', 'send-barrier']);
    const again = step(p, barrier('a->b'));
    expect(again.rejected?.reason).toBe('duplicate-barrier');
    expect(again.effects).toEqual([]);
    expect(p.rejections).toEqual({ 'duplicate-barrier': 1 });
    // x->b is still recorded: the duplicate did not stand in for its barrier.
    step(p, { type: 'message', channel: 'x->b', seq: 1, epoch: 0, payload: 'late' });
    step(p, barrier('x->b'));
    const ack = step(p, { type: 'snapshot-stored', checkpointId: 1 }).effects.find((e) => e.type === 'ack');
    expect(ack?.type === 'ack' && ack.ack.channelStates).toEqual({ 'a->b': [], 'x->b': [{ seq: 1, payload: 'late' }] });
  });

  it('aligned: a duplicate held behind its blocked input is rejected when released, and still counted', () => {
    const p = make({ inputs: ['a->b', 'x->b'] });
    step(p, barrier('a->b'));
    const held = step(p, barrier('a->b'));
    expect([held.effects, held.rejected]).toEqual([[], undefined]);
    step(p, { type: 'message', channel: 'a->b', seq: 1, epoch: 0, payload: 'm1' });
    // Alignment needs x->b's barrier, not a second one from a->b.
    expect(p.isBlocked(input(p, 'a->b'))).toBe(true);
    const aligned = step(p, barrier('x->b'));
    expect(aligned.effects.map((e) => (e.type === 'deliver' ? e.payload : e.type))).toEqual(['snapshot', 'send-barrier', 'm1']);
    expect(p.rejections).toEqual({ 'duplicate-barrier': 1 });
  });
});

describe('finished ids', () => {
  it('remembers up to its maximum, then treats everything at or below the forgotten id as finished', () => {
    const f = new FinishedIds(2);
    f.add(5);
    f.add(3);
    expect(f.has(4)).toBe(false);
    f.add(9);
    // 5 was forgotten first: every id <= 5 now counts as finished.
    expect(f.has(4)).toBe(true);
    expect(f.has(7)).toBe(false);
    expect(f.has(9)).toBe(true);
  });
});

describe('configure', () => {
  it('changes policy and back edges between checkpoints, and refuses while one is in flight', () => {
    const p = make({ inputs: ['a->b', 'c->b'] });
    expect(step(p, { type: 'configure', policy: { kind: 'unaligned' }, backEdgeInputs: [] }).rejected).toBeUndefined();
    expect(p.policyKind).toBe('unaligned');
    // Unaligned now: the first barrier snapshots at once.
    expect(step(p, { type: 'barrier', channel: 'a->b', checkpointId: 1, epoch: 0 }).effects.map((e) => e.type)).toEqual(['snapshot', 'send-barrier']);
    expect(step(p, { type: 'configure', policy: { kind: 'aligned' }, backEdgeInputs: ['c->b'] }).rejected?.reason).toBe('busy');
    step(p, { type: 'barrier', channel: 'c->b', checkpointId: 1, epoch: 0 });
    step(p, { type: 'snapshot-stored', checkpointId: 1 });
    expect(step(p, { type: 'configure', policy: { kind: 'aligned' }, backEdgeInputs: ['c->b'] }).rejected).toBeUndefined();
    // Aligned with c->b a back edge: a->b's barrier alone aligns.
    expect(step(p, { type: 'barrier', channel: 'a->b', checkpointId: 2, epoch: 0 }).effects.map((e) => e.type)).toEqual(['snapshot', 'send-barrier']);
  });

  it('rejects an unknown back edge and an invalid policy without changing anything', () => {
    const p = make();
    expect(step(p, { type: 'configure', policy: { kind: 'unaligned' }, backEdgeInputs: ['x->b'] }).rejected?.reason).toBe('unknown-channel');
    expect(step(p, { type: 'configure', policy: { kind: 'aligned-timeout', alignmentTimeoutMs: -5 }, backEdgeInputs: [] }).rejected?.reason).toBe('invalid-config');
    expect(p.policyKind).toBe('aligned');
  });
});
