/**
 * The repair of lost channel messages, without NATS: the receiver's InboundOrder (hold behind a gap,
 * ask for a resend, drop repeats, pass an unrepaired gap on) and the sender's OutboundQueue keeping
 * what it sent until consumed (retransmitFrom).
 */
import { describe, expect, it } from 'vitest';
import { InboundOrder } from '../../agent/channels/inbound-order.js';
import { OutboundQueue } from '../../agent/channels/outbound-queue.js';
import type { ChannelItem } from '../../src/wire/index.js';

const CH = 's1/a->s2/b';

function msg(seq: number, epoch = 0): ChannelItem {
  return { type: 'message', channel: CH, epoch, seq, payload: new Uint8Array([seq & 0xff]) };
}

function barrier(checkpointId: number, afterSeq: number, overtaking = false): ChannelItem {
  return overtaking
    ? { type: 'barrier', channel: CH, epoch: 0, afterSeq, checkpointId, overtaking: true }
    : { type: 'barrier', channel: CH, epoch: 0, afterSeq, checkpointId };
}

function names(items: readonly ChannelItem[]): string[] {
  return items.map((i) => (i.type === 'message' ? String(i.seq) : `b${i.checkpointId}@${i.afterSeq}`));
}

describe('InboundOrder', () => {
  it('holds what follows a gap, asks for a resend from the missing seq, and releases it in order, barriers in place', () => {
    const order = new InboundOrder(0, 0, 1_000, 100);
    expect(names(order.accept(msg(1), 0).deliver)).toEqual(['1']);
    const after = order.accept(msg(4), 1);
    expect(after.deliver).toEqual([]);
    expect(after.requestFrom).toBe(2);
    expect(order.accept(barrier(7, 4), 2)).toEqual({ deliver: [] });
    // A second item behind the same gap does not ask again (the repeat is the shell's timer's).
    expect(order.accept(msg(5), 3).requestFrom).toBeUndefined();
    expect(order.gapFrom).toBe(2);
    // The resend: the lost messages with a barrier between them, then again what was held, which
    // replaces the held copies one by one.
    expect(names(order.accept(msg(2), 4).deliver)).toEqual(['2']);
    expect(names(order.accept(barrier(6, 2), 5).deliver)).toEqual(['b6@2']);
    expect(names(order.accept(msg(3), 6).deliver)).toEqual(['3']);
    expect(order.gapFrom).toBe(4);
    expect(names(order.accept(msg(4), 7).deliver)).toEqual(['4']);
    expect(names(order.accept(barrier(7, 4), 8).deliver)).toEqual(['b7@4']);
    expect(order.stats.held).toBe(1);
    expect(names(order.accept(msg(5), 9).deliver)).toEqual(['5']);
    expect(order.gapFrom).toBeUndefined();
    // A second answer to the repeated request: all repeats.
    expect(order.accept(msg(4), 10).deliver).toEqual([]);
    expect(order.accept(barrier(7, 4), 11).deliver).toEqual([]);
    expect(order.stats).toEqual({ duplicates: 2, gapsRepaired: 1, gapsPassedOn: 0, barriersMisordered: 0, held: 0 });
  });

  it('a barrier lost with the last messages of a gap keeps its place before the held messages (a killed cluster node)', () => {
    // Sent: 1 2 3 b1@3 4 5; lost: 2 3 b1@3. Releasing 4 and 5 when 3 came back put b1@3 behind them.
    const order = new InboundOrder(0, 0, 1_000, 100);
    const seen: string[] = [];
    const feed = (item: ChannelItem, at: number): void => {
      seen.push(...names(order.accept(item, at).deliver));
    };
    feed(msg(1), 0);
    feed(msg(4), 1);
    feed(msg(5), 2);
    // The resend from 2: everything kept from there, in the original order.
    for (const [i, item] of [msg(2), msg(3), barrier(1, 3), msg(4), msg(5)].entries()) feed(item, 3 + i);
    expect(seen).toEqual(['1', '2', '3', 'b1@3', '4', '5']);
    expect(order.stats).toEqual({ duplicates: 0, gapsRepaired: 1, gapsPassedOn: 0, barriersMisordered: 0, held: 0 });
  });

  it('passes a gap on once gapRepairMs has gone by since it opened, even while ordinary traffic fills part of it', () => {
    const order = new InboundOrder(0, 0, 1_000, 100);
    order.accept(msg(1), 0);
    order.accept(msg(10), 100);
    expect(names(order.accept(msg(2), 500).deliver)).toEqual(['2']);
    expect(order.expire(1_099)).toEqual([]);
    expect(names(order.expire(1_100))).toEqual(['10']);
    // The core now sees 10 after 2 and fails the channel; what the sender still had is a repeat.
    expect(order.accept(msg(3), 1_200).deliver).toEqual([]);
    expect(names(order.accept(msg(11), 1_300).deliver)).toEqual(['11']);
    expect(order.stats.gapsPassedOn).toBe(1);
  });

  it('passes a gap on at once when more than heldMessagesMax messages wait behind it', () => {
    const order = new InboundOrder(0, 0, 60_000, 2);
    order.accept(msg(3), 0);
    order.accept(msg(4), 0);
    expect(names(order.accept(msg(5), 0).deliver)).toEqual(['3', '4', '5']);
  });

  it('drops a barrier placed behind an earlier barrier; one behind messages but not behind the last barrier still goes in', () => {
    const order = new InboundOrder(0, 0, 1_000, 100);
    for (const seq of [1, 2, 3]) order.accept(msg(seq), 0);
    expect(names(order.accept(barrier(7, 3), 1).deliver)).toEqual(['b7@3']);
    order.accept(msg(4), 1);
    // Behind barrier 7: no sender does that (a truncated or flipped envelope).
    expect(order.accept(barrier(1_000_000_000, 0), 2)).toEqual({ deliver: [], refused: 'barrier-misordered' });
    expect(order.stats.barriersMisordered).toBe(1);
    // Behind message 4 but not behind barrier 7: handed over, for the core to judge (and fail the
    // channel: a message the sender did not send there may have been taken).
    expect(names(order.accept(barrier(8, 3), 3).deliver)).toEqual(['b8@3']);
    // A new epoch starts afresh.
    order.reset(1, 0);
    expect(names(order.accept(barrier(9, 0), 4).deliver)).toEqual(['b9@0']);
  });

  it('hands an overtaking barrier over at once, and only once', () => {
    const order = new InboundOrder(0, 0, 1_000, 100);
    expect(names(order.accept(barrier(3, 9, true), 0).deliver)).toEqual(['b3@9']);
    expect(order.accept(barrier(3, 9, true), 0).deliver).toEqual([]);
    expect(order.gapFrom).toBeUndefined();
  });

  it('starts afresh after a reset: the new epoch continues after deliveredSeq', () => {
    const order = new InboundOrder(0, 0, 1_000, 100);
    order.accept(msg(5), 0);
    order.reset(1, 20);
    expect(order.gapFrom).toBeUndefined();
    expect(order.accept(msg(20, 1), 0).deliver).toEqual([]);
    expect(names(order.accept(msg(21, 1), 0).deliver)).toEqual(['21']);
  });
});

describe('OutboundQueue keeps what it sent until consumed', () => {
  function sentQueue(): OutboundQueue<string> {
    const q = new OutboundQueue<string>(CH, 0, 100);
    for (let seq = 1; seq <= 4; seq++) {
      q.enqueueMessage(seq, `m${seq}`, 0, 10);
      if (seq === 2) q.enqueueBarrier('b@2', 0, false, 2);
    }
    q.applyCredit({ channel: CH, epoch: 0, receivedSeq: 0, window: 10 }, 0);
    expect(q.takeReady(0)).toEqual(['m1', 'm2', 'b@2', 'm3', 'm4']);
    return q;
  }

  it('republishes from the missing seq, with the barrier that follows the message before it', () => {
    const q = sentQueue();
    expect(q.retransmitFrom(3)).toEqual(['b@2', 'm3', 'm4']);
    expect(q.retransmitFrom(5)).toEqual([]);
  });

  it('resends a barrier after the last message sent to a receiver that has every message (a probe after a reconnect)', () => {
    const q = sentQueue();
    q.enqueueBarrier('b@4', 0, false, 4);
    expect(q.takeReady(0)).toEqual(['b@4']);
    expect(q.retransmitFrom(5)).toEqual(['b@4']);
  });

  it('forgets what a credit reports consumed, and says so when asked for it', () => {
    const q = sentQueue();
    q.applyCredit({ channel: CH, epoch: 0, receivedSeq: 3, window: 10 }, 0);
    expect(q.keptForResend).toBe(1);
    expect(q.retransmitFrom(4)).toEqual(['m4']);
    expect(q.retransmitFrom(2)).toBeUndefined();
  });

  it('cannot resend a seq it never sent below what it did send (refused after numbering, or a restart)', () => {
    // Opened after 7 messages sent (an agent restarted at its count), none of them kept.
    const q = new OutboundQueue<string>(CH, 0, 100, Number.MAX_SAFE_INTEGER, 7);
    q.enqueueMessage(8, 'm8', 0);
    q.applyCredit({ channel: CH, epoch: 0, receivedSeq: 5, window: 10 }, 0);
    q.takeReady(0);
    expect(q.retransmitFrom(6)).toBeUndefined();
  });

  it('keeps nothing across a reset', () => {
    const q = sentQueue();
    q.reset(1, 0);
    expect(q.keptForResend).toBe(0);
    expect(q.retransmitFrom(1)).toEqual([]);
  });
});
