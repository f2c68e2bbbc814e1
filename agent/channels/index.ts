/** In-band data channels over core NATS: sequence-numbered envelopes with credit-based flow control. */
export { ChannelConfigError, CREDIT_WINDOW_MESSAGES_MAX, resolveChannelLimits } from './config.js';
export { type ConsumeOutcome, CreditGrant } from './credit-grant.js';
export { type InboundChannelHandle, type InboundChannelStats, type InboundOptions, openInbound } from './inbound.js';
export { type CreditOutcome, type EnqueueOutcome, OutboundQueue, type QueuedEntry } from './outbound-queue.js';
export {
  type OutboundChannelHandle,
  type OutboundChannelStats,
  type OutboundOptions,
  openOutbound,
} from './outbound.js';
export {
  CHANNEL_LIMITS_DEFAULT,
  type ChannelLimits,
  type EnvelopeHandler,
  type InboundChannel,
  type InboundStats,
  type OutboundChannel,
  type OutboundStats,
} from './types.js';
