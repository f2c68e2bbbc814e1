/** Channel halves for endpoint unit tests (agent/endpoint.ts) that talk to nothing. */
import { pino } from 'pino';
import type { InboundChannel, OutboundChannel } from '../../agent/channels/types.js';
import { Endpoint, type EndpointOptions, type StatePort } from '../../agent/endpoint.js';
import type { ChannelId } from '../../src/ids.js';
import type { AgentEventBody, ChannelItem } from '../../src/wire/index.js';

/** An input whose envelopes the test hands the endpoint itself; credits and resets go nowhere. */
export function silentInbound(id: ChannelId): InboundChannel {
  return {
    id,
    consumed: () => undefined,
    reset: () => undefined,
    stats: { received: 0, malformed: 0, misrouted: 0, creditsSent: 0 },
    close: async () => undefined,
  };
}

/**
 * App B's endpoint on s2 with one input and one output: the output is the given half, the input's
 * envelopes are what the test hands `arrive`, and every event it publishes goes into `events`.
 */
export async function openOneInOneOut(o: {
  readonly input: ChannelId;
  readonly output: OutboundChannel;
  readonly handler: EndpointOptions['handler'];
  readonly state: StatePort;
  readonly events: AgentEventBody[];
}): Promise<{ readonly endpoint: Endpoint; readonly arrive: (e: ChannelItem) => void }> {
  let arrive: ((e: ChannelItem) => void) | undefined;
  const endpoint = await Endpoint.open({
    server: 's2',
    app: 'B',
    inputs: [o.input],
    outputs: [o.output.id],
    epoch: 0,
    handler: o.handler,
    openOutbound: async () => o.output,
    openInbound: async (_c, _e, _d, onEnvelope) => {
      arrive = onEnvelope;
      return silentInbound(o.input);
    },
    state: o.state,
    publish: (e) => {
      o.events.push(e);
    },
    clock: { nowMs: () => 0, setTimer: () => () => undefined },
    logger: pino({ level: 'silent' }),
  });
  if (!arrive) throw new Error('no inbound opened');
  return { endpoint, arrive };
}
