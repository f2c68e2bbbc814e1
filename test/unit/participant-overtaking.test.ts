/**
 * A barrier flagged overtaking went out ahead of messages its sender queued for credit (an unaligned
 * checkpoint's): the messages up to its afterSeq come after it and belong to the channel's state.
 */
import { describe, expect, it } from 'vitest';
import { Participant } from '../../src/core/participant.js';
import type { CheckpointAck, Effect, Input, PolicyConfig, Rejection } from '../../src/core/types.js';

const A = 0; // input a->b
const C = 1; // input c->b

function make(policy: PolicyConfig = { kind: 'unaligned' }, inputs = ['a->b', 'c->b']): Participant<string> {
  const r = Participant.create<string>({ id: 'b', inputs, outputs: ['b->d'], policy });
  if (!r.ok) throw new Error(r.error.message);
  return r.participant;
}

interface Stepped {
  readonly types: string[];
  readonly acks: CheckpointAck<string>[];
  readonly delivered: number[];
  readonly snapshotReceived: Record<string, number>[];
  readonly rejected: Rejection | undefined;
}

/** One step and every drain it needs, its effects copied out of the reused records. */
function step(p: Participant<string>, input: Input<string>): Stepped {
  const out: Stepped = { types: [], acks: [], delivered: [], snapshotReceived: [], rejected: undefined };
  const collect = (i: Input<string>): Rejection | undefined => {
    const mark = p.effects.length;
    const rejected = p.step(i);
    for (let k = mark; k < p.effects.length; k++) {
      const e: Effect<string> = p.effects.at(k);
      out.types.push(e.type);
      if (e.type === 'ack') out.acks.push(e.ack);
      if (e.type === 'deliver') out.delivered.push(e.seq);
      if (e.type === 'snapshot') out.snapshotReceived.push({ ...e.counts.received });
    }
    p.effects.release(mark);
    return rejected;
  };
  const rejected = collect(input);
  while (p.backlogSize > 0) collect({ type: 'drain' });
  return { ...out, rejected };
}

const msg = (channel: number, seq: number): Input<string> => ({ type: 'message', channel, seq, epoch: 0, payload: `m${seq}` });
const barrier = (channel: number, checkpointId: number, afterSeq: number, overtaking = false): Input<string> =>
  overtaking ? { type: 'barrier', channel, checkpointId, epoch: 0, afterSeq, overtaking } : { type: 'barrier', channel, checkpointId, epoch: 0, afterSeq };

function seqs(ack: CheckpointAck<string>, channel: string): number[] {
  return (ack.channelStates[channel] ?? []).map((m) => m.seq);
}

describe('unaligned: a barrier that overtook queued messages', () => {
  it('snapshots at once, records the overtaken messages as the channel state and acks only once the last of them arrived', () => {
    const p = make();
    step(p, msg(A, 1));
    step(p, msg(A, 2));
    const b = step(p, barrier(A, 1, 4, true));
    expect(b.rejected).toBeUndefined();
    expect(b.types).toEqual(['snapshot', 'send-barrier']);
    expect(b.snapshotReceived).toEqual([{ 'a->b': 2, 'c->b': 0 }]);
    expect(step(p, barrier(C, 1, 0)).types).toEqual([]);
    expect(step(p, { type: 'snapshot-stored', checkpointId: 1 }).acks).toEqual([]);
    // Delivered to the app as they come, and recorded; the ack waits for seq 4.
    const m3 = step(p, msg(A, 3));
    expect([m3.delivered, m3.acks.length]).toEqual([[3], 0]);
    const m4 = step(p, msg(A, 4));
    expect(m4.types).toEqual(['deliver', 'ack']);
    const ack = m4.acks[0] as CheckpointAck<string>;
    expect(seqs(ack, 'a->b')).toEqual([3, 4]);
    expect(seqs(ack, 'c->b')).toEqual([]);
    expect(ack.stats.channelStateMessages).toBe(2);
    // After the cut's last message, nothing more is recorded, and nothing failed.
    expect(step(p, msg(A, 5)).types).toEqual(['deliver']);
    expect(p.rejections).toEqual({});
    expect(p.inFlight()).toEqual([]);
  });

  it('when it is not the first barrier, the input recorded since the snapshot stays recorded up to afterSeq', () => {
    const p = make();
    step(p, { type: 'trigger', checkpointId: 1 });
    step(p, msg(A, 1));
    step(p, barrier(A, 1, 3, true));
    step(p, barrier(C, 1, 0));
    step(p, { type: 'snapshot-stored', checkpointId: 1 });
    expect(step(p, msg(A, 2)).acks).toEqual([]);
    const done = step(p, msg(A, 3));
    expect(seqs(done.acks[0] as CheckpointAck<string>, 'a->b')).toEqual([1, 2, 3]);
  });

  it('two checkpoints overtaking on one input each close at their own seq', () => {
    const p = make(undefined, ['a->b']);
    step(p, barrier(A, 1, 2, true));
    step(p, barrier(A, 2, 3, true));
    step(p, { type: 'snapshot-stored', checkpointId: 1 });
    step(p, { type: 'snapshot-stored', checkpointId: 2 });
    step(p, msg(A, 1));
    const first = step(p, msg(A, 2));
    expect(first.acks.map((a) => [a.checkpointId, seqs(a, 'a->b')])).toEqual([[1, [1, 2]]]);
    const second = step(p, msg(A, 3));
    expect(second.acks.map((a) => [a.checkpointId, seqs(a, 'a->b')])).toEqual([[2, [1, 2, 3]]]);
  });

  it('a seq skipped after it is still a gap: the channel fails and the checkpoint is declined', () => {
    const p = make();
    step(p, msg(A, 1));
    step(p, barrier(A, 1, 4, true));
    const gap = step(p, msg(A, 3));
    expect(gap.rejected?.reason).toBe('gap');
    expect(gap.types).toEqual(['channel-failed', 'decline']);
    expect(p.inFlight()).toEqual([]);
  });

  it('without the flag the same barrier is a gap, as is a flagged one behind messages it claims not to follow', () => {
    const plain = make();
    step(plain, msg(A, 1));
    expect(step(plain, barrier(A, 1, 4)).rejected?.reason).toBe('gap');
    const behind = make();
    step(behind, msg(A, 1));
    step(behind, msg(A, 2));
    expect(step(behind, barrier(A, 1, 1, true)).rejected?.reason).toBe('gap');
  });

  it('an abort while the overtaken messages are still coming ends the recording: they are delivered, no ack', () => {
    const p = make(undefined, ['a->b']);
    step(p, barrier(A, 1, 2, true));
    step(p, { type: 'snapshot-stored', checkpointId: 1 });
    step(p, { type: 'abort', checkpointId: 1 });
    expect(step(p, msg(A, 1)).types).toEqual(['deliver']);
    expect(step(p, msg(A, 2)).types).toEqual(['deliver']);
    expect(p.rejections).toEqual({});
  });

  it('a restore to the acked checkpoint replays the overtaken messages once, then takes the next seq', () => {
    const p = make(undefined, ['a->b']);
    step(p, msg(A, 1));
    step(p, barrier(A, 1, 3, true));
    step(p, { type: 'snapshot-stored', checkpointId: 1 });
    step(p, msg(A, 2));
    const ack = step(p, msg(A, 3)).acks[0] as CheckpointAck<string>;
    step(p, msg(A, 4));
    const restored = step(p, { type: 'restore', epoch: 1, counts: ack.counts, channelStates: ack.channelStates });
    expect(restored.delivered).toEqual([2, 3]);
    expect(step(p, { type: 'message', channel: A, seq: 4, epoch: 1, payload: 'm4' }).rejected).toBeUndefined();
  });
});

describe.each([{ kind: 'aligned' }, { kind: 'aligned-timeout', alignmentTimeoutMs: 1000 }, { kind: 'sync' }] as const)('$kind: a barrier that overtook queued messages', (policy) => {
  it('is held until the message it follows arrived, then takes effect in its FIFO place', () => {
    const p = make(policy, ['a->b']);
    step(p, msg(A, 1));
    if (policy.kind === 'sync') step(p, { type: 'trigger', checkpointId: 1 });
    const b = step(p, barrier(A, 1, 3, true));
    expect([b.rejected, b.types.includes('snapshot')]).toEqual([undefined, false]);
    expect(step(p, msg(A, 2)).types).toEqual(['deliver']);
    const last = step(p, msg(A, 3));
    expect(last.delivered).toEqual([3]);
    expect(last.snapshotReceived).toEqual([{ 'a->b': 3 }]);
    const stored = step(p, { type: 'snapshot-stored', checkpointId: 1 });
    expect(stored.acks.map((a) => seqs(a, 'a->b'))).toEqual([[]]);
  });
});
