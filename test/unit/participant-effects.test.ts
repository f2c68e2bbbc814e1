import { describe, expect, it } from 'vitest';
import { EffectBuffer } from '../../src/core/effects.js';
import { Participant } from '../../src/core/participant.js';
import type { PolicyConfig } from '../../src/core/types.js';

function make(policy: PolicyConfig = { kind: 'unaligned' }): Participant<string> {
  const r = Participant.create<string>({ id: 'b', inputs: ['a->b', 'c->b'], outputs: ['b->d', 'b->e'], policy });
  if (!r.ok) throw new Error(r.error.message);
  return r.participant;
}

function types(p: Participant<string>, from = 0): string[] {
  const out: string[] = [];
  for (let i = from; i < p.effects.length; i++) out.push(p.effects.at(i).type);
  return out;
}

describe('the step API: handles and the effect buffer', () => {
  it('a handle is the position in the configuration; an id that is not a channel of that side has none', () => {
    const p = make();
    expect([p.inputHandle('a->b'), p.inputHandle('c->b'), p.outputHandle('b->d'), p.outputHandle('b->e')]).toEqual([0, 1, 0, 1]);
    expect([p.inputHandle('b->d'), p.outputHandle('a->b'), p.inputHandle('x->b')]).toEqual([undefined, undefined, undefined]);
    expect([p.inputId(1), p.outputId(0)]).toEqual(['c->b', 'b->d']);
    expect(() => p.inputId(2)).toThrow(RangeError);
  });

  it.each([-1, 2, 0.5, Number.NaN])('a handle %s that is no channel is refused as unknown-channel, for a send, a message and a barrier', (h) => {
    const p = make();
    expect(p.step({ type: 'send', channel: h, payload: 'x' })?.reason).toBe('unknown-channel');
    expect(p.step({ type: 'message', channel: h, seq: 1, epoch: 0, payload: 'x' })?.reason).toBe('unknown-channel');
    expect(p.step({ type: 'barrier', channel: h, checkpointId: 1, epoch: 0 })?.reason).toBe('unknown-channel');
    expect(p.effects.length).toBe(0);
    expect(p.inFlight()).toEqual([]);
    expect(p.rejections).toEqual({ 'unknown-channel': 3 });
  });

  it.each([0, -3, 1.5, Number.NaN])('checkpoint id %s is refused as invalid-checkpoint-id, for a trigger and a barrier, and changes nothing', (id) => {
    const p = make();
    const trigger = p.step({ type: 'trigger', checkpointId: id });
    expect(trigger?.reason).toBe('invalid-checkpoint-id');
    expect(trigger?.detail).toMatch(/checkpoint ids are positive integers/);
    expect(p.step({ type: 'barrier', channel: 0, checkpointId: id, epoch: 0 })?.reason).toBe('invalid-checkpoint-id');
    expect(p.effects.length).toBe(0);
    expect(p.inFlight()).toEqual([]);
    // And the first real checkpoint is not taken for stale.
    expect(p.step({ type: 'trigger', checkpointId: 1 })).toBeUndefined();
  });

  it('a step appends after the effects not yet released, so a step fed while carrying out another nests inside it', () => {
    const p = make();
    expect(p.step({ type: 'trigger', checkpointId: 1 })).toBeUndefined();
    expect(types(p)).toEqual(['snapshot', 'send-barrier', 'send-barrier']);
    // The app sends while the shell is still carrying out the trigger's effects.
    const mark = p.effects.length;
    p.step({ type: 'send', channel: 1, payload: 'm1' });
    expect(types(p, mark)).toEqual(['transmit']);
    const t = p.effects.at(mark);
    expect(t.type === 'transmit' && [p.outputId(t.channel), t.seq, t.payload]).toEqual(['b->e', 1, 'm1']);
    p.effects.release(mark);
    // The outer step's effects are untouched by the nested one.
    expect(types(p)).toEqual(['snapshot', 'send-barrier', 'send-barrier']);
    const b = p.effects.at(2);
    expect(b.type === 'send-barrier' && [p.outputId(b.channel), b.checkpointId]).toEqual(['b->e', 1]);
    p.effects.release(0);
    expect(p.effects.length).toBe(0);
  });

  it('released records are written again by the next step (no object per effect), and let go of their payloads', () => {
    const p = make();
    p.step({ type: 'send', channel: 0, payload: 'first' });
    const record = p.effects.at(0);
    p.effects.release(0);
    expect(record.type === 'transmit' && record.payload).toBeUndefined();
    p.step({ type: 'message', channel: 1, seq: 1, epoch: 0, payload: 'second' });
    expect(p.effects.at(0)).toBe(record);
    expect(record.type === 'deliver' && [p.inputId(record.channel), record.seq, record.payload]).toEqual(['c->b', 1, 'second']);
    p.effects.release(0);
  });

  it('reading or releasing past the written effects throws: that is a bug in the shell', () => {
    const p = make();
    p.step({ type: 'send', channel: 0, payload: 'x' });
    expect(() => p.effects.at(1)).toThrow(RangeError);
    expect(() => p.effects.at(-1)).toThrow(RangeError);
    expect(() => p.effects.release(2)).toThrow(RangeError);
    expect(() => p.effects.release(-1)).toThrow(RangeError);
    expect(p.effects.length).toBe(1);
  });

  it.each(['unaligned', 'sync'] as const)('%s: a barrier says how many messages its output carried before it', (kind) => {
    const p = make({ kind });
    p.step({ type: 'send', channel: 1, payload: 'm1' });
    p.step({ type: 'send', channel: 1, payload: 'm2' });
    p.effects.release(0);
    p.step({ type: 'trigger', checkpointId: 1 });
    const barriers: [string, number][] = [];
    for (let i = 0; i < p.effects.length; i++) {
      const e = p.effects.at(i);
      if (e.type === 'send-barrier') barriers.push([p.outputId(e.channel), e.afterSeq]);
    }
    expect(barriers).toEqual([
      ['b->d', 0],
      ['b->e', 2],
    ]);
  });

  it('an ack is a value of its own, kept whole after its record is released', () => {
    const p = make();
    p.step({ type: 'trigger', checkpointId: 1 });
    p.step({ type: 'message', channel: 0, seq: 1, epoch: 0, payload: 'in flight' });
    p.step({ type: 'barrier', channel: 0, checkpointId: 1, epoch: 0 });
    p.step({ type: 'barrier', channel: 1, checkpointId: 1, epoch: 0 });
    p.effects.release(0);
    p.step({ type: 'snapshot-stored', checkpointId: 1 });
    const e = p.effects.at(0);
    if (e.type !== 'ack') throw new Error(`expected an ack, got ${e.type}`);
    const ack = e.ack;
    p.effects.release(0);
    p.step({ type: 'send', channel: 0, payload: 'overwrites the record' });
    expect(ack).toEqual({
      checkpointId: 1,
      counts: { sent: { 'b->d': 0, 'b->e': 0 }, received: { 'a->b': 0, 'c->b': 0 } },
      channelStates: { 'a->b': [{ seq: 1, payload: 'in flight' }], 'c->b': [] },
      stats: { bufferedMessages: 0, channelStateMessages: 1, finishedUnaligned: false },
    });
  });
});

describe('a buffer shared by participants one synchronous shell drives', () => {
  it('a step of another participant appends after the unreleased effects and is released first', () => {
    const shared = new EffectBuffer<string>();
    const made = [
      Participant.create<string>({ id: 'a', inputs: [], outputs: ['a->b'], policy: { kind: 'unaligned' } }, { effects: shared }),
      Participant.create<string>({ id: 'b', inputs: ['a->b'], outputs: [], policy: { kind: 'unaligned' } }, { effects: shared }),
    ];
    const [a, b] = made.map((m) => {
      if (!m.ok) throw new Error(m.error.message);
      return m.participant;
    }) as [Participant<string>, Participant<string>];
    expect(a.effects).toBe(shared);
    a.step({ type: 'send', channel: 0, payload: 'm1' });
    const sent = shared.at(0);
    if (sent.type !== 'transmit') throw new Error(sent.type);
    // While a's transmit is carried out, the message reaches b.
    b.step({ type: 'message', channel: 0, seq: sent.seq, epoch: sent.epoch, payload: sent.payload });
    expect([shared.length, shared.at(1).type]).toEqual([2, 'deliver']);
    shared.release(1);
    expect(sent.type === 'transmit' && sent.payload).toBe('m1');
    shared.release(0);
    expect(shared.length).toBe(0);
  });
});
