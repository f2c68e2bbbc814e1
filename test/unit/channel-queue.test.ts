/**
 * The credit protocol without NATS: the sender's queue (what may leave, in what order, how long it
 * waited) and the receiver's grant bookkeeping (when a credit is worth sending). Time is an input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChannelConfigError, resolveChannelLimits } from '../../agent/channels/config.js';
import { CreditGrant, IDLE_CREDIT_BYTES_MIN } from '../../agent/channels/credit-grant.js';
import { OutboundQueue } from '../../agent/channels/outbound-queue.js';
import { CHANNEL_LIMITS_DEFAULT } from '../../agent/channels/types.js';
import type { Credit } from '../../src/wire/index.js';

const CH = 's1/a->s2/b';

function credit(receivedSeq: number, window: number, epoch = 0, channel = CH): Credit {
  return { channel, epoch, receivedSeq, window };
}

/** Queue items are labels, so what leaves is easy to compare. */
function queue(max = 100, epoch = 0): OutboundQueue<string> {
  return new OutboundQueue<string>(CH, epoch, max);
}

function sendAll(q: OutboundQueue<string>, seqs: number[], nowMs = 0): void {
  for (const seq of seqs) expect(q.enqueueMessage(seq, `m${seq}`, nowMs)).toBe('queued');
}

describe('outbound queue: bytes in flight', () => {
  /** A queue whose window is wide (100 messages) and whose byte cap is 100. */
  function capped(): OutboundQueue<string> {
    const q = new OutboundQueue<string>(CH, 0, 1_000, 100);
    q.applyCredit(credit(0, 100), 0);
    return q;
  }

  it('within the window, a message waits while the bytes sent and not consumed would pass the cap', () => {
    const q = capped();
    for (const seq of [1, 2, 3]) q.enqueueMessage(seq, `m${seq}`, 0, 40);
    expect(q.takeReady(0)).toEqual(['m1', 'm2']);
    expect(q.inFlightBytes).toBe(80);
    // The receiver consumed m1: 40 bytes are free again, so m3 goes.
    q.applyCredit(credit(1, 100), 0);
    expect(q.inFlightBytes).toBe(40);
    expect(q.takeReady(0)).toEqual(['m3']);
    expect(q.inFlightBytes).toBe(80);
  });

  it('a message larger than the cap still leaves once nothing is in flight, so it cannot stall the channel', () => {
    const q = capped();
    q.enqueueMessage(1, 'small', 0, 10);
    q.enqueueMessage(2, 'huge', 0, 500);
    expect(q.takeReady(0)).toEqual(['small']);
    q.applyCredit(credit(1, 100), 0);
    expect(q.takeReady(0)).toEqual(['huge']);
  });

  it('a barrier behind a message held by the cap waits with it (it never overtakes)', () => {
    const q = capped();
    q.enqueueMessage(1, 'm1', 0, 90);
    q.enqueueMessage(2, 'm2', 0, 20);
    q.enqueueBarrier('b', 0);
    expect(q.takeReady(0)).toEqual(['m1']);
    q.applyCredit(credit(1, 100), 0);
    expect(q.takeReady(0)).toEqual(['m2', 'b']);
  });

  it('a reset forgets what was in flight in the old epoch', () => {
    const q = capped();
    q.enqueueMessage(1, 'm1', 0, 90);
    expect(q.takeReady(0)).toEqual(['m1']);
    q.reset(1, 0);
    expect(q.inFlightBytes).toBe(0);
    q.applyCredit(credit(0, 100, 1), 0);
    q.enqueueMessage(1, 'n1', 0, 90);
    expect(q.takeReady(0)).toEqual(['n1']);
  });

  it('the cap is validated at construction', () => {
    expect(() => new OutboundQueue<string>(CH, 0, 10, 0)).toThrow(/inFlightBytesMax/);
    expect(() => resolveChannelLimits({ inFlightBytesMax: -1 })).toThrow(ChannelConfigError);
  });
});

describe('outbound queue', () => {
  it('before the first credit nothing leaves, not even a barrier', () => {
    const q = queue();
    sendAll(q, [1, 2]);
    q.enqueueBarrier('b1', 0);
    expect(q.takeReady(0)).toEqual([]);
    expect(q.length).toBe(3);
    expect(q.creditLimitSeq).toBeUndefined();
  });

  it('a credit releases messages up to receivedSeq + window, in order', () => {
    const q = queue();
    sendAll(q, [1, 2, 3, 4, 5]);
    expect(q.applyCredit(credit(0, 3), 0)).toBe('accepted');
    expect(q.takeReady(0)).toEqual(['m1', 'm2', 'm3']);
    expect(q.applyCredit(credit(2, 3), 0)).toBe('accepted');
    expect(q.takeReady(0)).toEqual(['m4', 'm5']);
    expect(q.length).toBe(0);
  });

  it('a barrier needs no credit but never overtakes a waiting message', () => {
    const q = queue();
    q.applyCredit(credit(0, 2), 0);
    sendAll(q, [1, 2, 3]);
    q.enqueueBarrier('b1', 0);
    expect(q.takeReady(0)).toEqual(['m1', 'm2']);
    expect(q.takeReady(0)).toEqual([]);
    q.applyCredit(credit(1, 2), 0);
    // m3 is now covered, and the barrier behind it needs nothing more.
    expect(q.takeReady(0)).toEqual(['m3', 'b1']);
  });

  it('an unaligned checkpoint\'s barrier goes ahead of the messages waiting for credit, which follow in order', () => {
    const q = queue();
    q.applyCredit(credit(0, 1), 0);
    sendAll(q, [1, 2, 3]);
    expect(q.takeReady(0)).toEqual(['m1']);
    q.enqueueBarrier('b1', 0, true);
    q.enqueueBarrier('b2', 0, true);
    expect(q.length).toBe(4);
    // Out at once, in the order they came, though m2 and m3 still wait for credit.
    expect(q.takeReady(0)).toEqual(['b1', 'b2']);
    q.applyCredit(credit(1, 2), 0);
    expect(q.takeReady(0)).toEqual(['m2', 'm3']);
  });

  it('counts the bytes of the messages waiting, which an unaligned barrier may overtake up to a cap', () => {
    const q = queue();
    q.enqueueMessage(1, 'm1', 0, 10);
    q.enqueueMessage(2, 'm2', 0, 20);
    q.enqueueMessage(3, 'm3', 0, 40);
    expect(q.queuedBytes).toBe(70);
    q.applyCredit(credit(0, 2), 0);
    expect(q.takeReady(0)).toEqual(['m1', 'm2']);
    expect(q.queuedBytes).toBe(40);
    expect(q.reset(1, 0)).toEqual(['m3']);
    expect(q.queuedBytes).toBe(0);
  });

  it('a barrier going ahead still waits for the first credit of the epoch, and a reset drops it', () => {
    const q = queue();
    sendAll(q, [1]);
    q.enqueueBarrier('b1', 0, true);
    expect(q.takeReady(0)).toEqual([]);
    expect(q.reset(1, 0)).toEqual(['b1', 'm1']);
    expect(q.length).toBe(0);
  });

  it('a barrier at the head leaves at once once any credit of the epoch is in force', () => {
    const q = queue();
    q.applyCredit(credit(0, 1), 0);
    sendAll(q, [1]);
    expect(q.takeReady(0)).toEqual(['m1']);
    q.enqueueBarrier('b1', 0);
    expect(q.takeReady(0)).toEqual(['b1']);
  });

  it('credits of another channel or an older epoch are ignored', () => {
    const q = queue(100, 2);
    sendAll(q, [1]);
    expect(q.applyCredit(credit(0, 5, 2, 's1/a->s3/c'), 0)).toBe('other-channel');
    expect(q.applyCredit(credit(0, 5, 1), 0)).toBe('stale-epoch');
    expect(q.takeReady(0)).toEqual([]);
  });

  it('queue-full beyond the maximum; barriers are not counted and never refused', () => {
    const q = queue(2);
    sendAll(q, [1, 2]);
    expect(q.enqueueMessage(3, 'm3', 0)).toBe('queue-full');
    q.enqueueBarrier('b1', 0);
    expect(q.queuedMessages).toBe(2);
    expect(q.length).toBe(3);
    q.applyCredit(credit(0, 1), 0);
    expect(q.takeReady(0)).toEqual(['m1']);
    expect(q.enqueueMessage(3, 'm3', 0)).toBe('queued');
  });

  it('reset: returns what waited, moves to the new epoch and waits for its credit', () => {
    const q = queue();
    q.applyCredit(credit(0, 1), 0);
    sendAll(q, [1, 2, 3]);
    expect(q.takeReady(0)).toEqual(['m1']);
    // Restored at a checkpoint whose count for this channel is 1 sent.
    expect(q.reset(1, 0, 1)).toEqual(['m2', 'm3']);
    expect(q.epoch).toBe(1);
    expect(q.creditLimitSeq).toBeUndefined();
    sendAll(q, [2]);
    // The old epoch's credit would let seq 2 go if it were still in force.
    expect(q.applyCredit(credit(5, 5, 0), 0)).toBe('stale-epoch');
    expect(q.takeReady(0)).toEqual([]);
    expect(q.applyCredit(credit(1, 1, 1), 0)).toBe('accepted');
    expect(q.takeReady(0)).toEqual(['m2']);
  });

  it('a credit behind the last one (corrupted or forged) is dropped: the limit never goes back and the sender does not stall', () => {
    const q = queue();
    q.applyCredit(credit(0, 2), 0);
    sendAll(q, [1, 2, 3, 4, 5, 6]);
    expect(q.takeReady(0)).toEqual(['m1', 'm2']);
    expect(q.applyCredit(credit(2, 3), 0)).toBe('accepted');
    expect(q.creditLimitSeq).toBe(5);
    // Consumed 0 with a window of 0: taken, it would stop the sender until a credit that never comes.
    expect(q.applyCredit(credit(0, 0), 0)).toBe('behind');
    expect(q.creditLimitSeq).toBe(5);
    // The same consumed seq with a smaller window does not lower the limit either.
    expect(q.applyCredit(credit(2, 1), 0)).toBe('accepted');
    expect(q.creditLimitSeq).toBe(5);
    expect(q.takeReady(0)).toEqual(['m3', 'm4', 'm5']);
    // Consumed beyond what was ever sent: no receiver sends that, and it would put every true credit behind it.
    expect(q.applyCredit(credit(1_000_000_000, 1), 0)).toBe('beyond-sent');
    expect(q.applyCredit(credit(5, 3), 0)).toBe('accepted');
    expect(q.takeReady(0)).toEqual(['m6']);
    // A new epoch starts afresh.
    q.reset(1, 0);
    expect(q.applyCredit(credit(0, 2, 1), 0)).toBe('accepted');
    expect(q.creditLimitSeq).toBe(2);
  });

  it('a credit of the next epoch that arrives before the reset is applied by the reset', () => {
    const q = queue();
    expect(q.applyCredit(credit(4, 2, 1), 0)).toBe('future-epoch');
    expect(q.creditLimitSeq).toBeUndefined();
    q.reset(1, 0, 4);
    expect(q.creditLimitSeq).toBe(6);
    sendAll(q, [5, 6, 7]);
    expect(q.takeReady(0)).toEqual(['m5', 'm6']);
  });

  it('an early credit of a later epoch than the reset target is kept for a later reset', () => {
    const q = queue();
    q.applyCredit(credit(0, 2, 3), 0);
    q.reset(1, 0);
    expect(q.creditLimitSeq).toBeUndefined();
    q.reset(3, 0);
    expect(q.creditLimitSeq).toBe(2);
  });

  it('reset to an older epoch is a bug', () => {
    const q = queue(100, 2);
    expect(() => q.reset(1, 0)).toThrow(RangeError);
  });

  it('credit wait: counts only time with a head blocked for credit, including an ongoing wait', () => {
    const q = queue();
    expect(q.creditWaitMs(100)).toBe(0);
    sendAll(q, [1], 100); // blocked from 100: no credit yet
    expect(q.creditWaitMs(130)).toBe(30);
    q.applyCredit(credit(0, 1), 150);
    expect(q.takeReady(150)).toEqual(['m1']);
    expect(q.creditWaitMs(1_000)).toBe(50);
    sendAll(q, [2], 1_000); // blocked again: seq 2 > limit 1
    q.applyCredit(credit(1, 1), 1_020);
    q.takeReady(1_020);
    expect(q.creditWaitMs(5_000)).toBe(70);
  });

  it('credit wait: a reset ends a wait (nothing is left waiting)', () => {
    const q = queue();
    sendAll(q, [1], 0);
    q.reset(1, 10);
    expect(q.creditWaitMs(100)).toBe(10);
  });

  it('property: whatever the credits, messages leave in queue order and never beyond the credit in force', () => {
    type Step = { kind: 'send' } | { kind: 'barrier' } | { kind: 'credit'; consumedBack: number; window: number };
    const step = fc.oneof(
      fc.constant<Step>({ kind: 'send' }),
      fc.constant<Step>({ kind: 'barrier' }),
      fc.record({ kind: fc.constant('credit' as const), consumedBack: fc.nat(5), window: fc.nat(6) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const q = new OutboundQueue<{ seq: number | undefined; label: string }>(CH, 0, 1_000);
        const sent: string[] = [];
        const queued: string[] = [];
        let nextSeq = 1;
        let published = 0;
        let consumed = 0;
        let barriers = 0;
        for (const s of steps) {
          if (s.kind === 'send') {
            const seq = nextSeq++;
            queued.push(`m${seq}`);
            q.enqueueMessage(seq, { seq, label: `m${seq}` }, 0);
          } else if (s.kind === 'barrier') {
            const label = `b${++barriers}`;
            queued.push(label);
            q.enqueueBarrier({ seq: undefined, label }, 0);
          } else {
            // The receiver consumes some of what was published, then grants.
            consumed = Math.max(consumed, published - s.consumedBack);
            q.applyCredit(credit(consumed, s.window), 0);
          }
          for (const item of q.takeReady(0)) {
            if (item.seq !== undefined) {
              published = item.seq;
              expect(item.seq).toBeLessThanOrEqual(q.creditLimitSeq ?? -1);
              expect(published - consumed).toBeLessThanOrEqual(6);
            }
            sent.push(item.label);
          }
        }
        expect(sent).toEqual(queued.slice(0, sent.length));
        expect(sent.length + q.length).toBe(queued.length);
      }),
    );
  });
});

describe('credit grant', () => {
  it('the first credit grants a window beyond what was delivered before', () => {
    const g = new CreditGrant(CH, 3, 40, 8);
    expect(g.credit()).toEqual({ channel: CH, epoch: 3, receivedSeq: 40, window: 8 });
  });

  it('asks for a grant once consumption moved half a window past the last credit', () => {
    const g = new CreditGrant(CH, 0, 0, 8);
    g.arrived(20);
    g.credit();
    expect(g.grantStepMessages).toBe(4);
    expect(g.consume(1)).toBe('hold');
    expect(g.consume(3)).toBe('hold');
    expect(g.consume(4)).toBe('grant');
    expect(g.credit().receivedSeq).toBe(4);
    expect(g.consume(7)).toBe('hold');
    expect(g.consume(8)).toBe('grant');
  });

  it('a refresh credit moves the reference point for the next grant', () => {
    const g = new CreditGrant(CH, 0, 0, 8);
    g.arrived(20);
    g.consume(3);
    expect(g.credit().receivedSeq).toBe(3);
    expect(g.consume(6)).toBe('hold');
    expect(g.consume(7)).toBe('grant');
  });

  it('a window of one grants after every message', () => {
    const g = new CreditGrant(CH, 0, 0, 1);
    expect(g.consume(1)).toBe('grant');
    g.credit();
    expect(g.consume(2)).toBe('grant');
  });

  it('a trickle of small messages earns no catch-up credit: the refresh carries it', () => {
    const g = new CreditGrant(CH, 0, 0, 1024, 8 * 1024 * 1024);
    // A message of 300 bytes at a time, each consumed as it comes: what the old rule answered with
    // a credit per message.
    for (let seq = 1; seq <= 50; seq++) {
      g.arrived(seq, 300);
      expect(g.consume(seq)).toBe('hold');
      expect(g.owesIdleCredit).toBe(false);
    }
    expect(g.credit().receivedSeq).toBe(50);
  });

  it('says when everything that arrived is consumed with enough bytes ungranted, and owes a credit until one is given', () => {
    const g = new CreditGrant(CH, 0, 0, 8, 1024 * 1024);
    expect(g.idleCreditBytesMin).toBe(IDLE_CREDIT_BYTES_MIN);
    g.arrived(1, 10_000);
    g.arrived(2, 10_000);
    g.arrived(3, 10_000);
    expect(g.owesIdleCredit).toBe(false);
    // 10 KB consumed, more arrived: hold.
    expect(g.consume(1)).toBe('hold');
    // 20 KB consumed and more arrived: hold; 30 KB, all of it: caught up and owed.
    expect(g.consume(2)).toBe('hold');
    expect(g.owesIdleCredit).toBe(false);
    expect(g.consume(3)).toBe('caught-up');
    expect(g.owesIdleCredit).toBe(true);
    // More arrived before the credit went out: not owed any more; the next catch-up owes it again.
    g.arrived(4, 10_000);
    expect(g.owesIdleCredit).toBe(false);
    expect(g.consume(4)).toBe('grant');
    expect(g.credit().receivedSeq).toBe(4);
    expect(g.owesIdleCredit).toBe(false);
    // Below the byte threshold since the last credit: caught up, but nothing owed.
    g.arrived(5, 10_000);
    expect(g.consume(5)).toBe('hold');
    g.arrived(6, 10_000);
    expect(g.consume(6)).toBe('caught-up');
    g.credit();
    expect(g.owesIdleCredit).toBe(false);
  });

  it('grants at half the bytes cap, consumed (not arrived) bytes counted', () => {
    const g = new CreditGrant(CH, 0, 0, 1024, 1_000_000);
    expect(g.grantStepBytes).toBe(500_000);
    for (let seq = 1; seq <= 10; seq++) g.arrived(seq, 100_000);
    // 400 KB consumed of 1 MB arrived: hold, though more than half the cap arrived.
    expect(g.consume(4)).toBe('hold');
    expect(g.consume(5)).toBe('grant');
    expect(g.credit().receivedSeq).toBe(5);
    expect(g.consume(9)).toBe('hold');
    expect(g.consume(10)).toBe('grant');
  });

  it('a small cap lowers the catch-up threshold to half of it', () => {
    const g = new CreditGrant(CH, 0, 0, 1024, 4096);
    expect(g.idleCreditBytesMin).toBe(2048);
    g.arrived(1, 1500);
    expect(g.consume(1)).toBe('hold');
    g.arrived(2, 1500);
    expect(g.consume(2)).toBe('grant');
  });

  it('a reset starts the arrivals of the new epoch from its first seq', () => {
    const g = new CreditGrant(CH, 0, 0, 8);
    g.arrived(7);
    g.reset(1, 2);
    g.arrived(3, IDLE_CREDIT_BYTES_MIN);
    expect(g.consume(3)).toBe('caught-up');
  });

  it('a repeated or older seq changes nothing', () => {
    const g = new CreditGrant(CH, 0, 0, 8);
    g.consume(5);
    expect(g.consume(5)).toBe('not-advanced');
    expect(g.consume(2)).toBe('not-advanced');
    expect(g.consumed).toBe(5);
  });

  it('reset: new epoch, consumption restarts after deliveredSeq', () => {
    const g = new CreditGrant(CH, 0, 0, 8);
    g.consume(20);
    g.reset(1, 12);
    expect(g.credit()).toEqual({ channel: CH, epoch: 1, receivedSeq: 12, window: 8 });
    g.arrived(16);
    expect(g.consume(15)).toBe('hold');
    expect(() => g.reset(0, 0)).toThrow(RangeError);
  });
});

describe('channel limits', () => {
  it('defaults apply where nothing is given', () => {
    expect(resolveChannelLimits(undefined)).toEqual(CHANNEL_LIMITS_DEFAULT);
    expect(resolveChannelLimits({ creditWindowMessages: 4 }).creditWindowMessages).toBe(4);
  });

  it.each([
    ['creditWindowMessages', 0],
    ['creditWindowMessages', 2 ** 32],
    ['outboundQueueMessagesMax', -1],
    ['creditRefreshMs', 1.5],
    ['creditRefreshMs', 2 ** 31],
  ])('%s = %s is refused at open', (field, value) => {
    expect(() => resolveChannelLimits({ [field]: value })).toThrow(ChannelConfigError);
  });
});
