/**
 * The endpoint feeds envelopes that arrive together in one task (agent/endpoint.ts). That must never
 * change the order in which inputs reach the core: an envelope that arrives after another command
 * was queued (here a restore) goes in after it, even while an earlier batch still waits for the app.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AppHandler } from '../../agent/app.js';
import type { OutboundChannel } from '../../agent/channels/types.js';
import { Endpoint } from '../../agent/endpoint.js';
import { silentInbound } from '../support/endpoint-fakes.js';
import type { ChannelItem } from '../../src/wire/index.js';

const CH = 's1/A->s2/B';

function message(seq: number, epoch = 0): ChannelItem {
  return { type: 'message', channel: CH, epoch, seq, payload: new Uint8Array([seq]) };
}

const inbound = silentInbound(CH);

async function endpointWith(handler: AppHandler): Promise<{ endpoint: Endpoint; arrive: (e: ChannelItem) => void }> {
  let arrive: ((e: ChannelItem) => void) | undefined;
  const endpoint = await Endpoint.open({
    server: 's2',
    app: 'B',
    inputs: [CH],
    outputs: [],
    epoch: 0,
    handler,
    openOutbound: async () => ({}) as OutboundChannel,
    openInbound: async (_c, _e, _d, onEnvelope) => {
      arrive = onEnvelope;
      return inbound;
    },
    state: { put: async () => ({ name: 'x', digest: 'SHA-256=x', sizeBytes: 0 }), get: async () => new Uint8Array(0), delete: async () => undefined },
    publish: () => undefined,
    clock: { nowMs: () => 0, setTimer: () => () => undefined },
    logger: pino({ level: 'silent' }),
  });
  if (!arrive) throw new Error('no inbound opened');
  return { endpoint, arrive };
}

describe('endpoint: envelopes fed in batches keep their place among the other inputs', () => {
  it('an envelope that arrives after a restore was queued is fed after the restore, not with the batch before it', async () => {
    const seen: string[] = [];
    let releaseFirst: (() => void) | undefined;
    const { endpoint, arrive } = await endpointWith({
      deliver: (_channel, payload) => {
        seen.push(`deliver ${payload[0]}`);
        // The first delivery keeps the app busy, so the envelopes behind it wait in the queue.
        if (payload[0] === 1) return new Promise<void>((resolve) => (releaseFirst = resolve));
        return undefined;
      },
      snapshot: () => new Uint8Array(0),
      restore: () => {
        seen.push('restore');
      },
    });
    arrive(message(1));
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['deliver 1']);
    arrive(message(2));
    const restored = endpoint.restore(
      { checkpointId: 1, epoch: 1, state: { kind: 'inline', bytes: new Uint8Array(0) }, counts: { sent: {}, received: {} }, channelAliases: {} },
      {},
      new Uint8Array(0),
    );
    // Of the old epoch and behind the restore: the core must see it after the restore and fence it off.
    arrive(message(3));
    // Of the new epoch, after the restore (at which nothing of the channel was delivered): the first.
    arrive(message(1, 1));
    releaseFirst?.();
    await restored;
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['deliver 1', 'deliver 2', 'restore', 'deliver 1']);
    await endpoint.close();
  });

  it('envelopes that arrive while the app handles one are delivered in arrival order', async () => {
    const seen: number[] = [];
    let release: (() => void) | undefined;
    const { endpoint, arrive } = await endpointWith({
      deliver: (_channel, payload) => {
        seen.push(payload[0] as number);
        if (payload[0] === 1) return new Promise<void>((resolve) => (release = resolve));
        return undefined;
      },
      snapshot: () => new Uint8Array(0),
      restore: () => undefined,
    });
    for (let seq = 1; seq <= 5; seq++) arrive(message(seq));
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([1]);
    for (let seq = 6; seq <= 8; seq++) arrive(message(seq));
    release?.();
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await endpoint.close();
  });
});
