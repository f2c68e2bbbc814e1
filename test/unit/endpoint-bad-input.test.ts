/**
 * What a broken or forged sender may send an endpoint (agent/endpoint.ts; docs/security.md) and what
 * it must not cost:
 * - a barrier whose checkpoint no trigger announced: its channel is held for triggerWaitMs, and if
 *   the trigger never comes the barrier is dropped, not taken as a checkpoint. Taken, a made-up id
 *   would raise the app's fence past the plan's real ids, and every later checkpoint would be
 *   refused as stale;
 * - a restore the core refuses (an epoch that does not move forward): the app's state, the
 *   envelopes held and the app's sends stay as they were;
 * - a trigger with wrong rules that leaves a checkpoint in flight: the next trigger with other rules
 *   gives the older checkpoint up, so the wrong rules do not outlast it.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { OutboundChannel } from '../../agent/channels/types.js';
import { Endpoint, RestoreRefusedError, type StatePort } from '../../agent/endpoint.js';
import { silentInbound } from '../support/endpoint-fakes.js';
import type { AgentEventBody, ChannelItem } from '../../src/wire/index.js';

const CH = 's1/A->s2/B';
const WAIT_MS = 500;

const inbound = silentInbound(CH);

/** An endpoint for app B with one input, a clock moved by hand, and what its app saw. */
async function endpointB(state?: StatePort, snapshotBytes = new Uint8Array(0)): Promise<{ endpoint: Endpoint; arrive: (e: ChannelItem) => void; elapse: (ms: number) => void; seen: string[]; events: AgentEventBody[] }> {
  let arrive: ((e: ChannelItem) => void) | undefined;
  let now = 0;
  const timers: { at: number; fire: () => void; cancelled: boolean }[] = [];
  const seen: string[] = [];
  const events: AgentEventBody[] = [];
  const endpoint = await Endpoint.open({
    server: 's2',
    app: 'B',
    inputs: [CH],
    outputs: [],
    epoch: 0,
    handler: {
      deliver: (_channel, payload) => {
        seen.push(`deliver ${payload[0]}`);
      },
      snapshot: (checkpointId) => {
        seen.push(`snapshot ${checkpointId}`);
        return snapshotBytes;
      },
      restore: () => {
        seen.push('restore');
      },
    },
    openOutbound: async () => ({}) as OutboundChannel,
    openInbound: async (_c, _e, _d, onEnvelope) => {
      arrive = onEnvelope;
      return inbound;
    },
    state: state ?? { put: async () => ({ name: 'x', digest: 'SHA-256=x', sizeBytes: 0 }), get: async () => new Uint8Array(0), delete: async () => undefined },
    publish: (e) => {
        events.push(e);
      },
    clock: {
      nowMs: () => now,
      setTimer: (afterMs, fire) => {
        const t = { at: now + afterMs, fire, cancelled: false };
        timers.push(t);
        return () => {
          t.cancelled = true;
        };
      },
    },
    logger: pino({ level: 'silent' }),
    limits: { triggerWaitMs: WAIT_MS },
  });
  if (!arrive) throw new Error('no inbound opened');
  const elapse = (ms: number): void => {
    now += ms;
    for (const t of timers.splice(0)) {
      if (t.cancelled) continue;
      if (t.at <= now) t.fire();
      else timers.push(t);
    }
  };
  return { endpoint, arrive, elapse, seen, events };
}

/** A state store that stores with `put` and records what is deleted. */
function recordingState(put: StatePort['put']): { state: StatePort; deleted: string[] } {
  const deleted: string[] = [];
  return {
    state: {
      put,
      get: async () => new Uint8Array(0),
      delete: async (name) => {
        deleted.push(name);
      },
    },
    deleted,
  };
}

const message = (seq: number): ChannelItem => ({ type: 'message', channel: CH, epoch: 0, seq, payload: new Uint8Array([seq]) });
const barrier = (checkpointId: number, afterSeq: number): ChannelItem => ({ type: 'barrier', channel: CH, epoch: 0, afterSeq, checkpointId });
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('endpoint: a barrier no trigger announced', () => {
  it('is held for triggerWaitMs with what follows it, then dropped: no snapshot, no fence, the messages behind it delivered', async () => {
    const { endpoint, arrive, elapse, seen } = await endpointB();
    arrive(message(1));
    arrive(barrier(1_000_000_000, 1));
    arrive(message(2));
    await settle();
    expect(seen).toEqual(['deliver 1']);
    elapse(WAIT_MS);
    await settle();
    expect(seen).toEqual(['deliver 1', 'deliver 2']);
    expect(endpoint.highestCheckpointId()).toBe(0);
    expect(endpoint.inFlight()).toEqual([]);
    expect(endpoint.stats.barriersWithoutTrigger).toBe(1);
    await endpoint.close();
  });

  it('the same barrier with its trigger within the wait is a checkpoint: the app snapshots and its fence rises', async () => {
    const { endpoint, arrive, elapse, seen } = await endpointB();
    arrive(message(1));
    arrive(barrier(7, 1));
    arrive(message(2));
    elapse(WAIT_MS - 1);
    endpoint.trigger({ checkpointId: 7, policy: { kind: 'aligned' }, timeoutMs: 10_000, initiator: false, backEdgeInputs: [], inlineStateBytesMax: 0 });
    await settle();
    await settle();
    expect(seen).toEqual(['deliver 1', 'snapshot 7', 'deliver 2']);
    expect(endpoint.highestCheckpointId()).toBe(7);
    expect(endpoint.stats.barriersWithoutTrigger).toBe(0);
    await endpoint.close();
  });

  it('a restore the core refuses leaves the app alone: no state put back, the held envelopes still delivered, sends not paused', async () => {
    const { endpoint, arrive, elapse, seen } = await endpointB();
    arrive(message(1));
    arrive(barrier(1_000_000_000, 1));
    arrive(message(2));
    await settle();
    // At the endpoint's own epoch (0): not a move forward, so refused.
    const restored = endpoint.restore(
      { checkpointId: 3, epoch: 0, state: { kind: 'inline', bytes: new Uint8Array(0) }, counts: { sent: {}, received: {} }, channelAliases: {} },
      {},
      new Uint8Array([9]),
    );
    await expect(restored).rejects.toThrow(/epoch-not-increasing/);
    // Its own type: the agent counts it as bad traffic instead of logging an error line each time.
    await expect(restored).rejects.toBeInstanceOf(RestoreRefusedError);
    elapse(WAIT_MS);
    await settle();
    expect(seen).toEqual(['deliver 1', 'deliver 2']);
    arrive(message(3));
    await settle();
    expect(seen).toEqual(['deliver 1', 'deliver 2', 'deliver 3']);
    await endpoint.close();
  });

  it('a checkpoint begun under other rules is given up by the next trigger, whose rules then apply', async () => {
    const { endpoint, events } = await endpointB();
    // As a corrupted trigger might: another policy, and this app an initiator; its snapshot leaves
    // the checkpoint in flight, recording its input until a barrier that never comes.
    endpoint.trigger({ checkpointId: 100, policy: { kind: 'unaligned' }, timeoutMs: 600_000, initiator: true, backEdgeInputs: [], inlineStateBytesMax: 0 });
    await settle();
    await settle();
    expect(endpoint.inFlight()).toEqual([100]);
    endpoint.trigger({ checkpointId: 200, policy: { kind: 'aligned' }, timeoutMs: 10_000, initiator: false, backEdgeInputs: [], inlineStateBytesMax: 0 });
    await settle();
    expect(endpoint.inFlight()).toEqual([]);
    expect(events.filter((e) => e.type === 'decline').map((e) => e.type === 'decline' && [e.checkpointId, e.reason])).toEqual([[100, 'subsumed']]);
    await endpoint.close();
  });

  it('the same rules again leave an older checkpoint in flight alone', async () => {
    const { endpoint, events } = await endpointB();
    endpoint.trigger({ checkpointId: 100, policy: { kind: 'unaligned' }, timeoutMs: 600_000, initiator: true, backEdgeInputs: [], inlineStateBytesMax: 0 });
    await settle();
    await settle();
    endpoint.trigger({ checkpointId: 200, policy: { kind: 'unaligned' }, timeoutMs: 10_000, initiator: false, backEdgeInputs: [], inlineStateBytesMax: 0 });
    await settle();
    expect(endpoint.inFlight()).toEqual([100]);
    expect(events.filter((e) => e.type === 'decline')).toEqual([]);
    await endpoint.close();
  });

  it('a state stored after its checkpoint was aborted here is deleted by the endpoint, and no ack goes out', async () => {
    let stored: (() => void) | undefined;
    const { state, deleted } = recordingState((name, bytes) => new Promise((resolve) => (stored = () => resolve({ name, digest: 'SHA-256=x', sizeBytes: bytes.byteLength }))));
    const { endpoint, events, arrive } = await endpointB(state, new Uint8Array([1, 2, 3]));
    endpoint.trigger({ checkpointId: 10, policy: { kind: 'aligned' }, timeoutMs: 10_000, initiator: true, backEdgeInputs: [], inlineStateBytesMax: 0 });
    arrive(barrier(10, 0));
    await settle();
    await settle();
    expect(stored, 'the upload started').toBeDefined();
    endpoint.abort(10);
    await settle();
    stored?.();
    await settle();
    await settle();
    expect(deleted).toEqual(['cp/10/s2/B/state']);
    expect(events.filter((e) => e.type === 'ack')).toEqual([]);
    await endpoint.close();
  });

  it('the same upload finishing before any abort is acked and kept (the control)', async () => {
    const { state, deleted } = recordingState(async (name, bytes) => ({ name, digest: 'SHA-256=x', sizeBytes: bytes.byteLength }));
    const { endpoint, events, arrive } = await endpointB(state, new Uint8Array([1, 2, 3]));
    endpoint.trigger({ checkpointId: 10, policy: { kind: 'aligned' }, timeoutMs: 10_000, initiator: true, backEdgeInputs: [], inlineStateBytesMax: 0 });
    arrive(barrier(10, 0));
    for (let i = 0; i < 5; i++) await settle();
    expect(deleted).toEqual([]);
    expect(events.filter((e) => e.type === 'ack').map((e) => e.type === 'ack' && e.checkpointId)).toEqual([10]);
    await endpoint.close();
  });
});
