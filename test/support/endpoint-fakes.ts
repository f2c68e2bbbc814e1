/** Channel halves for endpoint unit tests (agent/endpoint.ts) that talk to nothing. */
import type { InboundChannel } from '../../agent/channels/types.js';
import type { ChannelId } from '../../src/ids.js';

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
