/**
 * Log inputs: the messages sit in a durable log and the barrier travels apart from them, carrying
 * the seq of the sender's last message before its cut. The receiver cuts right behind that message,
 * records the range (received, afterSeq] instead of copies of the messages, and on a restore takes
 * the range again from the log, of the epochs that sent it, while it fences the abandoned messages.
 */
import { describe, expect, it } from 'vitest';
import { Participant } from '../../src/core/participant.js';
import type { CheckpointAck, Effect, Input, LogRange, PolicyConfig, Rejection } from '../../src/core/types.js';

const A = 0; // input a->b, a log channel
const C = 1; // input c->b, in-band

function make(policy: PolicyConfig = { kind: 'unaligned' }): Participant<string> {
  const r = Participant.create<string>({ id: 'b', inputs: ['a->b', 'c->b'], outputs: ['b->d'], policy, logInputs: ['a->b'] });
  if (!r.ok) throw new Error(r.error.message);
  return r.participant;
}

interface Stepped {
  readonly types: string[];
  readonly acks: CheckpointAck<string>[];
  readonly delivered: string[];
  readonly rejected: Rejection | undefined;
}

function step(p: Participant<string>, input: Input<string>): Stepped {
  const out: Stepped = { types: [], acks: [], delivered: [], rejected: undefined };
  const collect = (i: Input<string>): Rejection | undefined => {
    const mark = p.effects.length;
    const rejected = p.step(i);
    for (let k = mark; k < p.effects.length; k++) {
      const e: Effect<string> = p.effects.at(k);
      out.types.push(e.type);
      if (e.type === 'ack') out.acks.push(e.ack);
      if (e.type === 'deliver') out.delivered.push(e.payload);
    }
    p.effects.release(mark);
    return rejected;
  };
  const rejected = collect(input);
  while (p.backlogSize > 0) collect({ type: 'drain' });
  return { ...out, rejected };
}

const msg = (channel: number, seq: number, epoch = 0, payload = `m${seq}`): Input<string> => ({ type: 'message', channel, seq, epoch, payload });
const barrier = (channel: number, checkpointId: number, afterSeq: number, epoch = 0): Input<string> => ({ type: 'barrier', channel, checkpointId, epoch, afterSeq });

describe('log input: the barrier waits for the message it names', () => {
  for (const kind of ['unaligned', 'aligned'] as const) {
    it(`${kind}: a barrier ahead of its messages snapshots right behind message afterSeq, not before`, () => {
      const p = make({ kind });
      step(p, msg(A, 1));
      const early = step(p, barrier(A, 1, 3));
      expect(early.rejected).toBeUndefined();
      expect(early.types).not.toContain('snapshot');
      expect(step(p, msg(A, 2)).types).toEqual(['deliver']);
      const third = step(p, msg(A, 3));
      expect(third.delivered).toEqual(['m3']);
      if (kind === 'unaligned') expect(third.types.slice(0, 2)).toEqual(['deliver', 'snapshot']);
      else {
        // Aligned: the input blocks behind message 3 and waits for the in-band input's barrier.
        expect(p.isBlocked(A)).toBe(true);
        expect(step(p, msg(A, 4)).delivered).toEqual([]);
      }
    });
  }

  it('a barrier that names fewer messages than arrived is a broken order: the input fails', () => {
    const p = make();
    step(p, msg(A, 1));
    step(p, msg(A, 2));
    const r = step(p, barrier(A, 1, 1));
    expect(r.rejected?.reason).toBe('gap');
    expect(r.types).toContain('channel-failed');
  });
});

describe('log input: the channel state is a range, not copies', () => {
  it('unaligned, snapshot at the in-band barrier: the log input records the range up to its barrier, with no payloads', () => {
    const p = make();
    step(p, msg(A, 1));
    step(p, barrier(C, 1, 0)); // snapshot: a->b received 1
    step(p, { type: 'snapshot-stored', checkpointId: 1 });
    step(p, msg(A, 2));
    step(p, msg(A, 3));
    expect(step(p, barrier(A, 1, 4)).acks).toEqual([]); // early: waits for seq 4
    // Behind message 4 the barrier closes the range (in the drain that follows the delivery).
    const done = step(p, msg(A, 4));
    expect(done.delivered).toEqual(['m4']);
    expect(done.acks).toHaveLength(1);
    const ack = done.acks[0] as CheckpointAck<string>;
    expect(ack.channelStates['a->b']).toEqual([]);
    expect(ack.logRanges?.['a->b']).toEqual({ afterSeq: 1, throughSeq: 4, epochs: [{ epoch: 0, fromSeq: 1 }] });
    expect(ack.counts.received['a->b']).toBe(1);
  });

  it('aligned: the range of a forward log input is empty (the cut is at its barrier)', () => {
    const p = make({ kind: 'aligned' });
    step(p, msg(A, 1));
    step(p, barrier(A, 1, 1));
    step(p, barrier(C, 1, 0));
    const r = step(p, { type: 'snapshot-stored', checkpointId: 1 });
    expect(r.acks[0]?.logRanges?.['a->b']).toEqual({ afterSeq: 1, throughSeq: 1, epochs: [] });
  });

  it('an in-band-only participant acks without logRanges', () => {
    const r = Participant.create<string>({ id: 'b', inputs: [], outputs: ['b->d'], policy: { kind: 'unaligned' } });
    if (!r.ok) throw new Error(r.error.message);
    const done = step(r.participant, { type: 'trigger', checkpointId: 1 });
    expect(done.types).toContain('snapshot');
    const acked = step(r.participant, { type: 'snapshot-stored', checkpointId: 1 });
    expect(acked.acks[0]).not.toHaveProperty('logRanges');
  });
});

describe('log input: restore replays the range from the log and fences what was abandoned', () => {
  const restore = (epoch: number, received: number, range: LogRange): Input<string> => ({
    type: 'restore',
    epoch,
    counts: { sent: {}, received: { 'a->b': received, 'c->b': 0 } },
    channelStates: {},
    logRanges: { 'a->b': range },
  });

  it('takes the range of the old epoch, drops the old epoch past it, then takes the new epoch', () => {
    const p = make();
    for (let s = 1; s <= 6; s++) step(p, msg(A, s));
    // Checkpoint: b had consumed 2, a had sent 4. The log holds 1..6 of epoch 0; 5 and 6 are abandoned.
    expect(step(p, restore(1, 2, { afterSeq: 2, throughSeq: 4, epochs: [{ epoch: 0, fromSeq: 1 }] })).rejected).toBeUndefined();
    // The shell restarts its consumer after message 2: 3..6 of epoch 0, then a's new messages of epoch 1.
    const replay = [3, 4, 5, 6].map((s) => step(p, msg(A, s, 0)));
    expect(replay.flatMap((r) => r.delivered)).toEqual(['m3', 'm4']);
    expect(replay.slice(2).map((r) => r.rejected?.reason)).toEqual(['stale-epoch', 'stale-epoch']);
    const fresh = step(p, msg(A, 5, 1, 'n5'));
    expect(fresh.delivered).toEqual(['n5']);
  });

  it('a second rollback keeps to each seq the epoch that sent it, skipping messages abandoned in between', () => {
    const p = make();
    for (let s = 1; s <= 20; s++) step(p, msg(A, s));
    // Rollback 1 to C0 (received 5, sent 10): epoch 1; the log keeps 6..20 of epoch 0 (11..20 abandoned).
    step(p, restore(1, 5, { afterSeq: 5, throughSeq: 10, epochs: [{ epoch: 0, fromSeq: 1 }] }));
    for (let s = 6; s <= 20; s++) step(p, msg(A, s, 0));
    for (let s = 11; s <= 15; s++) step(p, msg(A, s, 1, `n${s}`));
    // Checkpoint D at epoch 1: received 7, a had sent 15. Its range spans both epochs.
    const ack = (() => {
      const q = make();
      for (let s = 1; s <= 20; s++) step(q, msg(A, s));
      step(q, restore(1, 5, { afterSeq: 5, throughSeq: 10, epochs: [{ epoch: 0, fromSeq: 1 }] }));
      step(q, msg(A, 6, 0));
      step(q, msg(A, 7, 0));
      step(q, { type: 'trigger', checkpointId: 1 });
      step(q, { type: 'snapshot-stored', checkpointId: 1 });
      for (let s = 8; s <= 10; s++) step(q, msg(A, s, 0));
      for (let s = 11; s <= 15; s++) step(q, msg(A, s, 1, `n${s}`));
      step(q, barrier(C, 1, 0, 1));
      return step(q, barrier(A, 1, 15, 1)).acks[0] as CheckpointAck<string>;
    })();
    const range = ack.logRanges?.['a->b'] as LogRange;
    expect(range).toEqual({ afterSeq: 7, throughSeq: 15, epochs: [{ epoch: 0, fromSeq: 1 }, { epoch: 1, fromSeq: 11 }] });
    // Rollback 2 to D: the consumer restarts after message 7 (epoch 0): 8..20 of epoch 0, then 11..15 of epoch 1.
    step(p, restore(2, 7, range));
    const delivered: string[] = [];
    for (let s = 8; s <= 20; s++) delivered.push(...step(p, msg(A, s, 0)).delivered);
    for (let s = 11; s <= 15; s++) delivered.push(...step(p, msg(A, s, 1, `n${s}`)).delivered);
    expect(delivered).toEqual(['m8', 'm9', 'm10', 'n11', 'n12', 'n13', 'n14', 'n15']);
    expect(step(p, msg(A, 16, 2, 'x16')).delivered).toEqual(['x16']);
  });

  it('a restore without the range of a log input is refused and changes nothing', () => {
    const p = make();
    step(p, msg(A, 1));
    const r = step(p, { type: 'restore', epoch: 1, counts: { sent: {}, received: {} }, channelStates: {} });
    expect(r.rejected?.reason).toBe('invalid-log-range');
    expect(p.epoch).toBe(0);
    const wrong = step(p, restore(1, 1, { afterSeq: 0, throughSeq: 2, epochs: [{ epoch: 0, fromSeq: 1 }] }));
    expect(wrong.rejected?.reason).toBe('invalid-log-range');
  });

  it('a log input needs fifo-checked order', () => {
    const r = Participant.create<string>({ id: 'b', inputs: ['a->b'], outputs: [], policy: { kind: 'unaligned' }, logInputs: ['a->b'], channelOrder: 'unchecked' });
    expect(r.ok).toBe(false);
  });
});
