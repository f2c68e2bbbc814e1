/**
 * An app's send leaves its state when the app hands it to the agent (the demo's tokens leave then),
 * so every snapshot taken after that must count the send (agent/endpoint.ts). A send made while the
 * endpoint's queue is busy waits in that queue; a task that held the queue across I/O let a barrier
 * queued before the send reach the core first: the app's state without the message, the counts
 * without it either, and the message's tokens in neither (a live run lost one token that way while
 * the endpoint deleted an aborted checkpoint's late state object).
 */
import { expect, it } from 'vitest';
import type { OutboundChannel } from '../../agent/channels/types.js';
import type { StatePort } from '../../agent/endpoint.js';
import { openOneInOneOut } from '../support/endpoint-fakes.js';
import type { AgentEventBody, ChannelItem } from '../../src/wire/index.js';

const IN = 's1/A->s2/B';
const OUT = 's2/B->s3/C';

const outbound: OutboundChannel = {
  id: OUT,
  sendMessage: async () => undefined,
  sendBarrier: async () => undefined,
  reset: () => undefined,
  stats: { published: 0, envelopesPublished: 0, queued: 0, creditWaitMs: 0, creditsReceived: 0, malformedCredits: 0 },
  close: async () => undefined,
};

const barrier = (checkpointId: number): ChannelItem => ({ type: 'barrier', channel: IN, epoch: 0, afterSeq: 0, checkpointId });
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const trigger = (checkpointId: number) => ({ checkpointId, policy: { kind: 'aligned' as const }, timeoutMs: 10_000, initiator: false, backEdgeInputs: [], inlineStateBytesMax: 0 });

/**
 * App B: its state is the number of sends it made. Checkpoint 10's upload finishes after its abort
 * (so the endpoint deletes the late object), and that delete takes as long as `deleteDone` says.
 */
async function setUp(deleteDone: Promise<void>) {
  let appSent = 0;
  /** Per checkpoint, the sends the app had made when it snapshotted: what its state holds. */
  const sentAtSnapshot = new Map<number, number>();
  let firstUpload: (() => void) | undefined;
  const events: AgentEventBody[] = [];
  const state: StatePort = {
    put: (name, bytes) => {
      const ref = { name, digest: 'SHA-256=x', sizeBytes: bytes.byteLength };
      if (firstUpload !== undefined || !name.startsWith('cp/10/')) return Promise.resolve(ref);
      return new Promise((resolve) => (firstUpload = () => resolve(ref)));
    },
    get: async () => new Uint8Array(0),
    delete: () => deleteDone,
  };
  const { endpoint, arrive } = await openOneInOneOut({
    input: IN,
    output: outbound,
    handler: {
      deliver: () => undefined,
      snapshot: (id) => {
        sentAtSnapshot.set(id, appSent);
        return new Uint8Array([appSent]);
      },
      restore: () => undefined,
    },
    state,
    events,
  });
  const send = (): Promise<void> => {
    appSent += 1;
    return endpoint.send(OUT, new Uint8Array([1]));
  };
    /** The sends checkpoint `id` counted on the output, beside those the app's state holds. */
  const books = (id: number) => {
    const ack = events.find((e) => e.type === 'ack' && e.checkpointId === id);
    return { counted: ack?.type === 'ack' ? ack.counts.sent[OUT] : 'no ack', inState: sentAtSnapshot.get(id) };
  };
  return { endpoint, arrive, send, books, finishFirstUpload: () => firstUpload?.() };
}

it("a send made while the endpoint deletes an aborted checkpoint's late object is counted by the next snapshot", async () => {
  let deleted: (() => void) | undefined;
  const { endpoint, arrive, send, books, finishFirstUpload } = await setUp(new Promise((resolve) => (deleted = resolve)));
  endpoint.trigger(trigger(10));
  arrive(barrier(10));
  await settle();
  endpoint.abort(10);
  await settle();
  finishFirstUpload();
  await settle();
  // The late object's delete is under way; the next checkpoint's trigger and barrier come in, then
  // the app sends (a timer of its own, between the barrier's arrival and its turn).
  endpoint.trigger(trigger(11));
  arrive(barrier(11));
  await settle();
  const sent = send();
  deleted?.();
  await sent;
  for (let i = 0; i < 5; i++) await settle();
  // The app's state and the cut's counts must agree on the send, or its payload is in neither.
  const { counted, inState } = books(11);
  expect(counted, `sends counted by checkpoint 11 (the app's state holds ${inState})`).toBe(inState);
  await endpoint.close();
});

it('the control: the same send with no late object under deletion is counted by the snapshot too', async () => {
  const { endpoint, arrive, send, books } = await setUp(Promise.resolve());
  endpoint.trigger(trigger(11));
  arrive(barrier(11));
  await settle();
  await send();
  for (let i = 0; i < 5; i++) await settle();
  // Nothing held the queue: the barrier went in first, and the send after the snapshot.
  expect(books(11)).toEqual({ counted: 0, inState: 0 });
  await endpoint.close();
});
