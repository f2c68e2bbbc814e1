/**
 * A snapshot the app takes its time over (an app behind the local API answers over a socket): the
 * barriers on its outputs leave before the snapshot is done, as Flink sends a barrier downstream
 * before it takes the operator's state (agent/endpoint.ts, `barriersAhead`), so a pipeline does not
 * pay the snapshot's time at every hop. The cut stays where it was: a send the app makes while its
 * snapshot is under way goes out after the barrier and is counted by neither the snapshot nor the
 * barrier's position, and the app gets no delivery before its snapshot is done.
 */
import { expect, it } from 'vitest';
import type { OutboundChannel } from '../../agent/channels/types.js';
import type { StatePort } from '../../agent/endpoint.js';
import { openOneInOneOut } from '../support/endpoint-fakes.js';
import type { AgentEventBody } from '../../src/wire/index.js';

const IN = 's1/A->s2/B';
const OUT = 's2/B->s3/C';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

it("the barriers leave while the app's snapshot is under way; a send made meanwhile follows them and stays out of the snapshot", async () => {
  /** What reached the output, in order: `m<seq>` for a message, `b<id>@<afterSeq>` for a barrier. */
  const wire: string[] = [];
  const outbound: OutboundChannel = {
    id: OUT,
    sendMessage: async (seq) => {
      wire.push(`m${seq}`);
    },
    sendBarrier: async (checkpointId, _epoch, afterSeq) => {
      wire.push(`b${checkpointId}@${afterSeq}`);
    },
    reset: () => undefined,
    stats: { published: 0, envelopesPublished: 0, queued: 0, creditsReceived: 0, creditWaitMs: 0, malformedCredits: 0 },
    close: async () => undefined,
  };
  const state: StatePort = {
    put: async (name, bytes) => ({ name, digest: 'SHA-256=x', sizeBytes: bytes.byteLength }),
    get: async () => new Uint8Array(0),
    delete: async () => undefined,
  };
  let appSent = 0;
  const delivered: number[] = [];
  let finishSnapshot: (() => void) | undefined;
  let sentAtSnapshot: number | undefined;
  const events: AgentEventBody[] = [];
  const { endpoint, arrive } = await openOneInOneOut({
    input: IN,
    output: outbound,
    handler: {
      deliver: (_channel, payload) => {
        delivered.push(payload[0] ?? -1);
      },
      snapshot: () => {
        sentAtSnapshot = appSent;
        return new Promise<Uint8Array>((resolve) => (finishSnapshot = () => resolve(new Uint8Array([appSent]))));
      },
      restore: () => undefined,
    },
    state,
    events,
  });
  const send = (): Promise<void> => {
    appSent += 1;
    return endpoint.send(OUT, new Uint8Array([appSent]));
  };

  await send();
  endpoint.trigger({ checkpointId: 7, policy: { kind: 'aligned' }, timeoutMs: 10_000, initiator: false, backEdgeInputs: [], inlineStateBytesMax: 64 });
  arrive({ type: 'barrier', channel: IN, epoch: 0, afterSeq: 0, checkpointId: 7 });
  arrive({ type: 'message', channel: IN, epoch: 0, seq: 1, payload: new Uint8Array([42]) });
  for (let i = 0; i < 3; i++) await settle();
  expect(finishSnapshot, 'the app was asked for its snapshot').toBeDefined();
  // The snapshot is under way: the barrier is out already, behind the one message sent before it.
  expect(wire).toEqual(['m1', 'b7@1']);
  const sentMeanwhile = send();
  for (let i = 0; i < 3; i++) await settle();
  expect(wire).toEqual(['m1', 'b7@1']);
  expect(delivered, 'no delivery before the snapshot is done').toEqual([]);

  finishSnapshot?.();
  await sentMeanwhile;
  for (let i = 0; i < 5; i++) await settle();
  expect(wire).toEqual(['m1', 'b7@1', 'm2']);
  expect(delivered).toEqual([42]);
  const ack = events.find((e) => e.type === 'ack' && e.checkpointId === 7);
  expect(ack?.type === 'ack' ? ack.counts.sent[OUT] : 'no ack').toBe(1);
  expect(sentAtSnapshot).toBe(1);
  await endpoint.close();
});
