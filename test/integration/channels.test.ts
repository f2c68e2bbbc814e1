/**
 * In-band channels against a real nats-server: order and sequence numbers survive a large burst, the
 * credit window holds a fast sender back from a slow consumer without losing anything, barriers stay
 * behind the messages queued before them, malformed bytes on either subject are dropped and counted,
 * a reset moves both ends to a new epoch, and a closed channel stops its timer and subscriptions.
 *
 * Sender and receiver use separate connections, as two agents would. Waits are bounded polls on a
 * condition, never fixed sleeps, except where the test proves that something does NOT happen.
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppSendError } from '../../agent/app.js';
import {
  CHANNEL_LIMITS_DEFAULT,
  type InboundChannelHandle,
  type OutboundChannelHandle,
  openInbound,
  openOutbound,
} from '../../agent/channels/index.js';
import type { ChannelLimits } from '../../agent/channels/types.js';
import {
  channelSubject,
  creditSubject,
  encodeCredit,
  encodeEnvelope,
  type ChannelItem,
  type Credit,
} from '../../src/wire/index.js';
import { type NatsServerHandle, startNatsServer } from '../support/nats-server.js';

const TENANT = 't1';
const WAIT_TIMEOUT_MS = 20_000;
const POLL_EVERY_MS = 5;

let channelCount = 0;
/** A fresh channel per test, so one test's stragglers never reach another. */
function freshChannel(): string {
  channelCount += 1;
  return `s1/a${channelCount}->s2/b${channelCount}`;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS));
  }
}

function mustEncode(result: { ok: true; value: Uint8Array } | { ok: false; error: { message: string } }): Uint8Array {
  if (!result.ok) throw new Error(result.error.message);
  return result.value;
}

/** A payload of `size` bytes that names its seq, so a mix-up would show. */
function payloadFor(seq: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  new DataView(bytes.buffer).setUint32(0, seq);
  return bytes;
}

function seqOf(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0);
}

interface LogLine {
  level: number;
  msg: string;
  channel?: string;
  component?: string;
  error?: { kind: string; message: string };
  [key: string]: unknown;
}

/** A pino logger whose lines are kept, parsed, for assertions. */
function capturingLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}

describe('in-band channels over a real nats-server', () => {
  let server: NatsServerHandle;
  /** The sending agent's connection, the receiving agent's, and a third party's (raw bytes). */
  let senderNc: NatsConnection;
  let receiverNc: NatsConnection;
  let otherNc: NatsConnection;
  const opened: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    senderNc = await connect({ servers: server.url, name: 'sender' });
    receiverNc = await connect({ servers: server.url, name: 'receiver' });
    otherNc = await connect({ servers: server.url, name: 'other' });
  });

  afterEach(async () => {
    for (const channel of opened.splice(0)) await channel.close();
  });

  afterAll(async () => {
    await senderNc?.close();
    await receiverNc?.close();
    await otherNc?.close();
    await server?.stop();
  });

  async function openPair(
    channel: string,
    limits: Partial<ChannelLimits>,
    onEnvelope: (envelope: ChannelItem) => void,
    extra: { logger?: pino.Logger; senderLimits?: Partial<ChannelLimits> } = {},
  ): Promise<{ out: OutboundChannelHandle; inb: InboundChannelHandle }> {
    const { senderLimits, ...options } = extra;
    // Sender first, so the receiver's first credit finds it subscribed.
    const out = await openOutbound(senderNc, { tenant: TENANT, channel, epoch: 0, limits: { ...limits, ...senderLimits }, ...options });
    opened.push(out);
    const inb = await openInbound(receiverNc, { tenant: TENANT, channel, epoch: 0, limits, onEnvelope, ...options });
    opened.push(inb);
    return { out, inb };
  }

  it('10,000 1-KiB messages arrive in order with seqs 1..N, and the sender never exceeds the window', async () => {
    const total = 10_000;
    const windowMessages = CHANNEL_LIMITS_DEFAULT.creditWindowMessages;
    const seqs: number[] = [];
    let consumed = 0;
    let maxInFlight = 0;
    let payloadMixUps = 0;
    const pair = await openPair(freshChannel(), { creditWindowMessages: windowMessages }, (envelope) => {
      if (envelope.type !== 'message') return;
      // Published but not yet consumed, seen at the moment the next one arrives.
      maxInFlight = Math.max(maxInFlight, pair.out.stats.published - consumed);
      if (seqOf(envelope.payload) !== envelope.seq || envelope.payload.byteLength !== 1024) payloadMixUps += 1;
      seqs.push(envelope.seq);
      consumed = envelope.seq;
      pair.inb.consumed(envelope.seq);
    });

    const sends: Promise<void>[] = [];
    for (let seq = 1; seq <= total; seq++) {
      sends.push(
        pair.out.sendMessage(seq, 0, payloadFor(seq, 1024)).then(() => {
          maxInFlight = Math.max(maxInFlight, pair.out.stats.published - consumed);
        }),
      );
    }
    await Promise.all(sends);
    await waitFor(`${total} messages`, () => seqs.length === total);

    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(payloadMixUps).toBe(0);
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(windowMessages);
    expect(pair.out.stats).toMatchObject({ published: total, queued: 0, lastPublishedSeq: total, malformedCredits: 0 });
    expect(pair.inb.stats).toMatchObject({ received: total, malformed: 0, misrouted: 0, handlerErrors: 0 });
    // Sent all at once, they went out in runs: fewer NATS messages than app messages.
    expect(pair.out.stats.envelopesPublished).toBeLessThan(total / 2);
    // 10,000 messages through a 256 window: the sender needed many credits.
    expect(pair.out.stats.creditsReceived).toBeGreaterThan(total / windowMessages);
  });

  it('a consumer slowed on purpose holds the sender back by the credit window, and nothing is lost', async () => {
    const total = 200;
    const windowMessages = 8;
    const consumeEveryMs = 2;
    const arrived: number[] = [];
    const consumedSeqs: number[] = [];
    let maxInFlight = 0;
    let maxUnconsumed = 0;
    const pair = await openPair(freshChannel(), { creditWindowMessages: windowMessages }, (envelope) => {
      if (envelope.type !== 'message') return;
      arrived.push(envelope.seq);
      maxUnconsumed = Math.max(maxUnconsumed, arrived.length - consumedSeqs.length);
    });
    // The slow app: takes one message off its input every few ms.
    const consumer = setInterval(() => {
      const next = arrived[consumedSeqs.length];
      if (next === undefined) return;
      consumedSeqs.push(next);
      pair.inb.consumed(next);
    }, consumeEveryMs);

    try {
      const started = performance.now();
      for (let seq = 1; seq <= total; seq++) {
        // How an app feels backpressure: awaiting the send.
        await pair.out.sendMessage(seq, 0, payloadFor(seq, 64));
        maxInFlight = Math.max(maxInFlight, pair.out.stats.published - consumedSeqs.length);
      }
      await waitFor('the slow consumer to finish', () => consumedSeqs.length === total);
      const elapsedMs = performance.now() - started;
      const { creditWaitMs } = pair.out.stats;
      console.info(
        `slow consumer: ${total} messages, window ${windowMessages}: sender waited ${creditWaitMs.toFixed(1)} ms ` +
          `for credit out of ${elapsedMs.toFixed(1)} ms`,
      );

      expect(consumedSeqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(arrived).toHaveLength(total);
      expect(maxInFlight).toBeLessThanOrEqual(windowMessages);
      expect(maxUnconsumed).toBeLessThanOrEqual(windowMessages);
      expect(creditWaitMs).toBeGreaterThan(0);
    } finally {
      clearInterval(consumer);
    }
  });

  it('a barrier queued behind messages waiting for credit arrives after them', async () => {
    const windowMessages = 4;
    const arrivals: string[] = [];
    let consuming = false;
    const pair = await openPair(freshChannel(), { creditWindowMessages: windowMessages }, (envelope) => {
      arrivals.push(envelope.type === 'message' ? `m${envelope.seq}` : `barrier${envelope.checkpointId}@${envelope.afterSeq}`);
      if (consuming && envelope.type === 'message') pair.inb.consumed(envelope.seq);
    });

    const resolved: string[] = [];
    const sends: Promise<void>[] = [];
    for (let seq = 1; seq <= 10; seq++) {
      sends.push(pair.out.sendMessage(seq, 0, payloadFor(seq, 16)).then(() => void resolved.push(`m${seq}`)));
    }
    sends.push(pair.out.sendBarrier(7, 0, 10).then(() => void resolved.push('barrier7')));

    await waitFor('the first window', () => arrivals.length === windowMessages);
    // Credit for 4: the other 6 messages wait, and the barrier waits behind them although it needs none.
    expect(pair.out.stats.queued).toBe(7);
    expect(resolved).toEqual(['m1', 'm2', 'm3', 'm4']);

    consuming = true;
    pair.inb.consumed(windowMessages);
    await Promise.all(sends);
    await waitFor('the barrier', () => arrivals.length === 11);

    const messages = Array.from({ length: 10 }, (_, i) => `m${i + 1}`);
    expect(arrivals).toEqual([...messages, 'barrier7@10']);
    expect(resolved).toEqual([...messages, 'barrier7']);
  });

  /** A pair with a window of 8 whose receiver consumes each message at once; the seqs it got, and the log lines. */
  async function consumingPair() {
    const channel = freshChannel();
    const { logger, lines } = capturingLogger();
    const seqs: number[] = [];
    const pair = await openPair(
      channel,
      { creditWindowMessages: 8 },
      (envelope) => {
        if (envelope.type !== 'message') return;
        seqs.push(envelope.seq);
        pair.inb.consumed(envelope.seq);
      },
      { logger },
    );
    return { channel, lines, seqs, pair };
  }

  it('malformed bytes on the channel and credit subjects are counted, logged and dropped; the channel keeps working', async () => {
    const { channel, lines, seqs, pair } = await consumingPair();
    const dataSubject = channelSubject(TENANT, channel) as string;
    const credSubject = creditSubject(TENANT, channel) as string;
    const otherChannel = 's9/x->s9/y';

    otherNc.publish(dataSubject, new Uint8Array([0xff, 0xff, 0xff, 0x0f, 0x01]));
    otherNc.publish(dataSubject, new TextEncoder().encode('not a protobuf at all'));
    otherNc.publish(
      dataSubject,
      mustEncode(encodeEnvelope({ type: 'message', channel: otherChannel, epoch: 0, seq: 1, payload: new Uint8Array(4) })),
    );
    otherNc.publish(credSubject, new Uint8Array([0x0a, 0x80]));
    const foreignCredit: Credit = { channel: otherChannel, epoch: 0, receivedSeq: 1_000, window: 1_000 };
    otherNc.publish(credSubject, mustEncode(encodeCredit(foreignCredit)));
    await otherNc.flush();

    await waitFor('the receiver to drop the bad envelopes', () => pair.inb.stats.malformed + pair.inb.stats.misrouted === 3);
    await waitFor('the sender to drop the bad credits', () => pair.out.stats.malformedCredits + pair.out.stats.ignoredCredits === 2);
    expect(pair.inb.stats).toMatchObject({ malformed: 2, misrouted: 1, received: 0 });
    expect(pair.out.stats).toMatchObject({ malformedCredits: 1, ignoredCredits: 1 });
    // The foreign credit's huge window was not taken: the limit is still the receiver's own.
    expect(pair.out.stats.creditLimitSeq).toBe(8);

    const malformedLines = lines.filter((l) => l.msg === 'malformed envelope dropped');
    expect(malformedLines).toHaveLength(2);
    for (const line of malformedLines) {
      expect(line).toMatchObject({ channel, component: 'channel-in', error: { kind: 'malformed' } });
    }
    expect(lines.find((l) => l.msg === 'misrouted envelope dropped')).toMatchObject({ channel, envelopeChannel: otherChannel });
    expect(lines.find((l) => l.msg === 'malformed credit dropped')).toMatchObject({ channel, component: 'channel-out' });

    for (let seq = 1; seq <= 20; seq++) await pair.out.sendMessage(seq, 0, payloadFor(seq, 32));
    await waitFor('20 messages after the garbage', () => seqs.length === 20);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('an envelope of the current epoch beyond the credit granted (a flipped seq) is dropped and counted: no gap opens, the channel keeps working', async () => {
    const { channel, lines, seqs, pair } = await consumingPair();
    const dataSubject = channelSubject(TENANT, channel) as string;
    otherNc.publish(dataSubject, mustEncode(encodeEnvelope({ type: 'message', channel, epoch: 0, seq: 999_868_928, payload: new Uint8Array(4) })));
    otherNc.publish(dataSubject, mustEncode(encodeEnvelope({ type: 'barrier', channel, epoch: 0, checkpointId: 7, afterSeq: 5_000 })));
    await otherNc.flush();
    await waitFor('the receiver to drop both', () => pair.inb.stats.beyondCredit === 2);
    expect(pair.inb.stats).toMatchObject({ held: 0, gapsPassedOn: 0, received: 0 });
    expect(lines.filter((l) => l.msg === 'envelope beyond the credit granted dropped')).toHaveLength(2);

    for (let seq = 1; seq <= 20; seq++) await pair.out.sendMessage(seq, 0, payloadFor(seq, 32));
    await waitFor('20 messages after the forged ones', () => seqs.length === 20);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(pair.inb.stats).toMatchObject({ gapsPassedOn: 0, beyondCredit: 2 });
  });

  it('reset to epoch 1 drops the queued messages, ignores old-epoch credit, and later envelopes carry epoch 1', async () => {
    const channel = freshChannel();
    const windowMessages = 4;
    const arrivals: { seq: number; epoch: number }[] = [];
    const pair = await openPair(channel, { creditWindowMessages: windowMessages }, (envelope) => {
      if (envelope.type === 'message') arrivals.push({ seq: envelope.seq, epoch: envelope.epoch });
    });

    const outcomes: Promise<unknown>[] = [];
    for (let seq = 1; seq <= 10; seq++) {
      outcomes.push(pair.out.sendMessage(seq, 0, payloadFor(seq, 16)).then(() => 'sent', (error: unknown) => error));
    }
    await waitFor('the first window', () => arrivals.length === windowMessages);

    // The restore: both ends move to epoch 1, with 4 messages delivered and sent.
    pair.out.reset(1, 4);
    const settled = await Promise.all(outcomes);
    expect(settled.slice(0, 4)).toEqual(['sent', 'sent', 'sent', 'sent']);
    for (const dropped of settled.slice(4)) {
      expect(dropped).toBeInstanceOf(AppSendError);
      expect(dropped).toMatchObject({ kind: 'channel-failed', message: expect.stringMatching(/dropped by a restore/) });
    }
    expect(pair.out.stats).toMatchObject({ queued: 0, epoch: 1, lastPublishedSeq: 4, creditLimitSeq: undefined });

    let firstOfEpoch1Sent = false;
    const firstOfEpoch1 = pair.out.sendMessage(5, 1, payloadFor(5, 16)).then(() => {
      firstOfEpoch1Sent = true;
    });
    // An epoch-0 credit (the abandoned run's receiver) must not release it.
    const ignoredBefore = pair.out.stats.ignoredCredits;
    const staleCredit: Credit = { channel, epoch: 0, receivedSeq: 100, window: 100 };
    otherNc.publish(creditSubject(TENANT, channel) as string, mustEncode(encodeCredit(staleCredit)));
    await otherNc.flush();
    await waitFor('the stale credit to be ignored', () => pair.out.stats.ignoredCredits > ignoredBefore);
    expect(firstOfEpoch1Sent).toBe(false);
    expect(pair.out.stats.published).toBe(4);

    pair.inb.reset(1, 4);
    await firstOfEpoch1;
    for (let seq = 6; seq <= 8; seq++) await pair.out.sendMessage(seq, 1, payloadFor(seq, 16));
    await waitFor('epoch 1 messages', () => arrivals.length === 8);

    expect(arrivals).toEqual([
      ...[1, 2, 3, 4].map((seq) => ({ seq, epoch: 0 })),
      ...[5, 6, 7, 8].map((seq) => ({ seq, epoch: 1 })),
    ]);
    expect(pair.inb.stats).toMatchObject({ epoch: 1, consumedSeq: 4 });
  });

  it('a credit lost before the sender subscribed is repaired by the refresh timer', async () => {
    const channel = freshChannel();
    const limits = { creditWindowMessages: 8, creditRefreshMs: 50 };
    const seqs: number[] = [];
    // Receiver first: its first credit reaches nobody.
    const inb = await openInbound(receiverNc, {
      tenant: TENANT,
      channel,
      epoch: 0,
      limits,
      onEnvelope: (envelope) => {
        if (envelope.type === 'message') seqs.push(envelope.seq);
      },
    });
    opened.push(inb);
    const out = await openOutbound(senderNc, { tenant: TENANT, channel, epoch: 0, limits });
    opened.push(out);

    await out.sendMessage(1, 0, payloadFor(1, 16));
    await waitFor('the message', () => seqs.length === 1);
    expect(inb.stats.creditsSent).toBeGreaterThanOrEqual(2);
    expect(out.stats.creditWaitMs).toBeGreaterThan(0);
  });

  it('a sender held by its cap on bytes in flight, far short of half the window, gets its credit without waiting for the refresh', async () => {
    // 64 KiB messages, 256 KiB in flight at most: 4 messages, where half the window is 512. Before the
    // receiver granted on catching up, every 4 messages waited for the refresh (here an hour).
    const total = 40;
    const limits = { creditWindowMessages: 1024, inFlightBytesMax: 256 * 1024, creditRefreshMs: 3_600_000 };
    const seqs: number[] = [];
    const pair = await openPair(freshChannel(), limits, (envelope) => {
      if (envelope.type !== 'message') return;
      seqs.push(envelope.seq);
      pair.inb.consumed(envelope.seq);
    });
    const sent = Promise.all(Array.from({ length: total }, (_, i) => pair.out.sendMessage(i + 1, 0, payloadFor(i + 1, 64 * 1024))));
    await waitFor(`${total} messages`, () => seqs.length === total, 10_000);
    await sent;
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // It did run into the cap: it needed credits beyond the first one.
    expect(pair.out.stats.creditsReceived).toBeGreaterThan(total / 4 - 1);
  });

  it('a sender whose bytes cap is smaller than the receiver\'s is credited as it catches up, not at the refresh', async () => {
    // The sender lets 128 KiB be in flight (two 64 KiB messages); the receiver's own cap is the
    // default 8 MiB, so its half-cap grant never comes: the catch-up credit (16 KiB or more
    // consumed and not granted) must carry the channel, with the refresh an hour away.
    const total = 30;
    const seqs: number[] = [];
    const pair = await openPair(
      freshChannel(),
      { creditRefreshMs: 3_600_000 },
      (envelope) => {
        if (envelope.type !== 'message') return;
        seqs.push(envelope.seq);
        pair.inb.consumed(envelope.seq);
      },
      { senderLimits: { inFlightBytesMax: 128 * 1024 } },
    );
    const sent = Promise.all(Array.from({ length: total }, (_, i) => pair.out.sendMessage(i + 1, 0, payloadFor(i + 1, 64 * 1024))));
    await waitFor(`${total} messages`, () => seqs.length === total, 10_000);
    await sent;
    expect(pair.out.stats.creditsReceived).toBeGreaterThan(total / 2 - 1);
  });

  it('messages sent together go out as runs, and a gap in their seqs (a send refused after the core numbered it) still reaches the receiver', async () => {
    const seqs: number[] = [];
    // The receiver first waits for a resend of 4, which the sender never had: keep that wait short.
    const pair = await openPair(freshChannel(), { gapRepairMs: 100 }, (envelope) => {
      if (envelope.type === 'message') seqs.push(envelope.seq);
    });
    const sent = [1, 2, 3, 5, 6, 7];
    await Promise.all(sent.map((seq) => pair.out.sendMessage(seq, 0, payloadFor(seq, 32))));
    await waitFor('the messages', () => seqs.length === sent.length);
    expect(seqs).toEqual(sent);
    // Two runs (1-3 and 5-7), not one that would have numbered 5 as 4.
    expect(pair.out.stats.envelopesPublished).toBe(2);
  });

  it('a trickle of messages, each consumed at once, does not bring a credit per message', async () => {
    const total = 60;
    const seqs: number[] = [];
    const pair = await openPair(freshChannel(), { creditWindowMessages: 1024 }, (envelope) => {
      if (envelope.type !== 'message') return;
      seqs.push(envelope.seq);
      pair.inb.consumed(envelope.seq);
    });
    const sentBefore = pair.inb.stats.creditsSent;
    for (let seq = 1; seq <= total; seq++) {
      await pair.out.sendMessage(seq, 0, payloadFor(seq, 16));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await waitFor(`${total} messages`, () => seqs.length === total);
    // Small messages far from the window and the bytes cap: no catch-up credits at all, only the
    // refresh (every second; the sends take a fraction of that).
    expect(pair.inb.stats.creditsSent - sentBefore).toBeLessThanOrEqual(2);
  });

  it('while messages keep arriving the refresh credit goes out every fifth time; a silent sender gets every one', async () => {
    const refreshMs = 40;
    const seqs: number[] = [];
    const pair = await openPair(freshChannel(), { creditWindowMessages: 1024, creditRefreshMs: refreshMs }, (envelope) => {
      if (envelope.type !== 'message') return;
      seqs.push(envelope.seq);
      pair.inb.consumed(envelope.seq);
    });
    // A trickle: a message every 10 ms for 40 refresh periods.
    const sentBefore = pair.inb.stats.creditsSent;
    const t0 = performance.now();
    let seq = 0;
    while (performance.now() - t0 < refreshMs * 40) {
      seq += 1;
      await pair.out.sendMessage(seq, 0, payloadFor(seq, 16));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const trickle = pair.inb.stats.creditsSent - sentBefore;
    await waitFor(`${seq} messages`, () => seqs.length === seq);
    // One credit a refresh would be about 40; every fifth is about 8 (timers drift: a margin).
    expect(trickle).toBeGreaterThanOrEqual(4);
    expect(trickle).toBeLessThanOrEqual(14);
    // Silent: every refresh repeats the credit (it may have been lost, or the sender came late).
    const quietBefore = pair.inb.stats.creditsSent;
    await new Promise((resolve) => setTimeout(resolve, refreshMs * 10 + refreshMs / 2));
    expect(pair.inb.stats.creditsSent - quietBefore).toBeGreaterThanOrEqual(8);
  });

  it('sends are refused with typed errors: queue full, payload too large, closed', async () => {
    // No receiver: nothing is ever granted, so everything queues.
    const out = await openOutbound(senderNc, {
      tenant: TENANT,
      channel: freshChannel(),
      epoch: 0,
      limits: { outboundQueueMessagesMax: 3 },
      wireLimits: { wireMessageBytesMax: 4_096 },
    });
    opened.push(out);
    const waiting = [1, 2, 3].map((seq) => out.sendMessage(seq, 0, payloadFor(seq, 16)).catch((error: unknown) => error));

    await expect(out.sendMessage(4, 0, payloadFor(4, 16))).rejects.toMatchObject({ kind: 'queue-full' });
    await expect(out.sendMessage(4, 0, new Uint8Array(5_000))).rejects.toMatchObject({ kind: 'payload-too-large' });
    // A barrier is never refused for a full queue.
    const barrier = out.sendBarrier(1, 0, 3).catch((error: unknown) => error);
    expect(out.stats.queued).toBe(4);

    await out.close();
    for (const error of [...(await Promise.all(waiting)), await barrier]) {
      expect(error).toBeInstanceOf(AppSendError);
      expect(error).toMatchObject({ kind: 'closed' });
    }
    await expect(out.sendMessage(4, 0, payloadFor(4, 16))).rejects.toMatchObject({ kind: 'closed' });
  });

  it('an envelope above the server max_payload is refused as payload-too-large, before it is sent', async () => {
    const maxPayloadBytes = senderNc.info?.max_payload ?? 1024 * 1024;
    const out = await openOutbound(senderNc, {
      tenant: TENANT,
      channel: freshChannel(),
      epoch: 0,
      wireLimits: { wireMessageBytesMax: maxPayloadBytes * 2 },
    });
    opened.push(out);
    await expect(out.sendMessage(1, 0, new Uint8Array(maxPayloadBytes))).rejects.toMatchObject({
      kind: 'payload-too-large',
      message: expect.stringMatching(/max_payload/),
    });
  });

  it('closing a channel ends its watch of the connection\'s status at once, not at the next status event', async () => {
    // nats.js keeps a status listener per status() iterator (a private list; read here on purpose):
    // a channel that kept its own after closing would hold it, and itself, until the next event.
    const listeners = (nc: NatsConnection): number => (nc as unknown as { listeners: unknown[] }).listeners.length;
    const before = [listeners(senderNc), listeners(receiverNc)];
    const pairs = [];
    for (let i = 0; i < 10; i++) pairs.push(await openPair(freshChannel(), {}, () => {}));
    expect([listeners(senderNc), listeners(receiverNc)]).toEqual([before[0]! + 10, before[1]! + 10]);
    for (const pair of pairs) {
      await pair.inb.close();
      await pair.out.close();
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect([listeners(senderNc), listeners(receiverNc)]).toEqual(before);
  });

  it('close stops the refresh timer and both subscriptions', async () => {
    const channel = freshChannel();
    const refreshMs = 20;
    let received = 0;
    const pair = await openPair(channel, { creditWindowMessages: 8, creditRefreshMs: refreshMs }, () => {
      received += 1;
    });
    await waitFor('a few refreshes', () => pair.inb.stats.creditsSent >= 3);
    const creditsBefore = pair.out.stats.creditsReceived;

    await pair.inb.close();
    await pair.out.close();
    const sentAtClose = pair.inb.stats.creditsSent;
    const receivedAtClose = pair.out.stats.creditsReceived;
    expect(receivedAtClose).toBeGreaterThanOrEqual(creditsBefore);

    // Traffic on both subjects after close reaches nobody.
    otherNc.publish(
      channelSubject(TENANT, channel) as string,
      mustEncode(encodeEnvelope({ type: 'message', channel, epoch: 0, seq: 1, payload: new Uint8Array(1) })),
    );
    otherNc.publish(creditSubject(TENANT, channel) as string, mustEncode(encodeCredit({ channel, epoch: 0, receivedSeq: 0, window: 8 })));
    await otherNc.flush();
    await receiverNc.flush();
    await senderNc.flush();
    // Proving an absence takes time: several refresh periods with nothing happening.
    await new Promise((resolve) => setTimeout(resolve, refreshMs * 5));

    expect(pair.inb.stats.creditsSent).toBe(sentAtClose);
    expect(pair.out.stats.creditsReceived).toBe(receivedAtClose);
    expect(received).toBe(0);
    await expect(pair.out.sendMessage(1, 0, payloadFor(1, 16))).rejects.toMatchObject({ kind: 'closed' });
    // Closing twice is harmless.
    await pair.inb.close();
    await pair.out.close();
  });
});
