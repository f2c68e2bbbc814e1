/**
 * An unaligned checkpoint's barrier over a real nats-server: with messages waiting for credit it goes
 * out ahead of them, flagged `overtaking`, unless they take more bytes than the cap; an ordinary
 * barrier keeps its FIFO place.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openInbound, openOutbound, type InboundChannelHandle, type OutboundChannelHandle } from '../../agent/channels/index.js';
import type { ChannelItem } from '../../src/wire/index.js';
import { type NatsServerHandle, startNatsServer } from '../support/nats-server.js';

const TENANT = 't1';
const PAYLOAD_BYTES = 1024;
const QUEUED = 4;

let server: NatsServerHandle;
let senderNc: NatsConnection;
let receiverNc: NatsConnection;
const opened: { close(): Promise<void> | void }[] = [];
let channels = 0;

beforeAll(async () => {
  server = await startNatsServer();
  senderNc = await connect({ servers: server.url });
  receiverNc = await connect({ servers: server.url });
});

afterAll(async () => {
  for (const c of opened) await c.close();
  await senderNc?.close();
  await receiverNc?.close();
  await server?.stop();
});

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A receiver with a window of 2 that consumes nothing until told: 2 messages arrive, QUEUED more
 * wait for credit at the sender; then a barrier after all of them.
 */
async function backlogThenBarrier(overtake: boolean, overtakeQueuedBytesMax?: number): Promise<{ seen: string[]; out: OutboundChannelHandle; inb: InboundChannelHandle }> {
  const channel = `s1/P${++channels}->s2/C`;
  const seen: string[] = [];
  const out = await openOutbound(senderNc, { tenant: TENANT, channel, epoch: 0, limits: { creditWindowMessages: 2, ...(overtakeQueuedBytesMax === undefined ? {} : { overtakeQueuedBytesMax }) } });
  opened.push(out);
  const inb = await openInbound(receiverNc, {
    tenant: TENANT,
    channel,
    epoch: 0,
    limits: { creditWindowMessages: 2 },
    onEnvelope: (e: ChannelItem) => seen.push(e.type === 'message' ? `m${e.seq}` : `b${e.checkpointId}${e.overtaking === true ? ' overtaking' : ''} after ${e.afterSeq}`),
  });
  opened.push(inb);
  const total = 2 + QUEUED;
  for (let seq = 1; seq <= total; seq++) void out.sendMessage(seq, 0, new Uint8Array(PAYLOAD_BYTES));
  await waitFor('the first two messages', () => seen.length === 2);
  // Published, if it may go at all, before sendBarrier returns: ahead of the credit consumed() sends.
  void out.sendBarrier(1, 0, total, overtake);
  // Then the receiver consumes what arrived, as an app would, and the rest comes.
  const lastArrived = (): number => Math.max(0, ...seen.filter((e) => e.startsWith('m')).map((e) => Number(e.slice(1))));
  await waitFor('everything', () => {
    inb.consumed(lastArrived());
    return seen.length === total + 1;
  });
  return { seen, out, inb };
}

describe('an unaligned checkpoint\'s barrier and the messages waiting for credit', () => {
  it('goes ahead of them, flagged, with the seq of the last one', async () => {
    const { seen, out } = await backlogThenBarrier(true);
    expect(seen).toEqual(['m1', 'm2', 'b1 overtaking after 6', 'm3', 'm4', 'm5', 'm6']);
    expect(out.stats.barriersAhead).toBe(1);
  });

  it('keeps its FIFO place behind more bytes than the cap, unflagged', async () => {
    const { seen, out } = await backlogThenBarrier(true, QUEUED * PAYLOAD_BYTES - 1);
    expect(seen).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'b1 after 6']);
    expect(out.stats.barriersAhead).toBe(0);
  });

  it('an ordinary barrier keeps its FIFO place', async () => {
    const { seen, out } = await backlogThenBarrier(false);
    expect(seen).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'b1 after 6']);
    expect(out.stats.barriersAhead).toBe(0);
  });
});
