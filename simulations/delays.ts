/** Delay models of a scenario, turned into the default delivery scheduler. */
import type { DelayModel, DeliveryRequest, DeliveryScheduler } from './types.js';

/** z of the 99th percentile of a standard normal: sets the log-normal's spread from median and p99. */
const Z_P99 = 2.326;
/**
 * A long-tail delay without its own `maxMs` is capped at this many times its p99. A log-normal has no
 * upper bound: with median 1 ms and p99 49 ms about one sample in 100,000 exceeds 1.2 s, and on a
 * channel slowed 8x that one message (and, by FIFO, everything queued behind it, barriers included)
 * arrived after 10 s, past the checkpoint timeout, so a run without faults aborted checkpoints. A
 * message later than every timeout is a lost message, a fault; the no-fault network is bounded.
 * At 5x p99 about 1 sample in 2,000 is capped (z > 3.3 for p99/median = 49), and the p99 is unchanged.
 */
export const LONG_TAIL_MAX_PER_P99 = 5;

/** The longest delay a long-tail model gives: its `maxMs`, or LONG_TAIL_MAX_PER_P99 times its p99. */
function longTailMaxMs(model: Extract<DelayModel, { kind: 'long-tail' }>): number {
  return model.maxMs ?? model.p99Ms * LONG_TAIL_MAX_PER_P99;
}

export function sampleDelayMs(model: DelayModel, random: () => number): number {
  switch (model.kind) {
    case 'fixed':
      return model.ms;
    case 'uniform':
      return model.minMs + (model.maxMs - model.minMs) * random();
    case 'long-tail': {
      const sigma = Math.log(Math.max(model.p99Ms, model.medianMs) / model.medianMs) / Z_P99;
      // Box-Muller from two uniforms; 1 - u keeps the log away from 0.
      const u1 = 1 - random();
      const u2 = random();
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      // Capped, not redrawn: the draws stay the same, so only runs that drew beyond the cap change.
      return Math.min(model.medianMs * Math.exp(sigma * z), longTailMaxMs(model));
    }
  }
}

/**
 * The longest delay the model ever gives (before a slow channel's factor). Liveness without faults
 * rests on it: a checkpoint timeout above the longest barrier path at this delay never fires.
 */
export function delayMaxMs(model: DelayModel): number {
  switch (model.kind) {
    case 'fixed':
      return model.ms;
    case 'uniform':
      return model.maxMs;
    case 'long-tail':
      return longTailMaxMs(model);
  }
}

/** How far ahead the bulk of the model's deliveries land: its fixed delay, its maximum, its p99. */
export function delayReachMs(model: DelayModel): number {
  switch (model.kind) {
    case 'fixed':
      return model.ms;
    case 'uniform':
      return model.maxMs;
    case 'long-tail':
      return model.p99Ms;
  }
}

export function delayModelScheduler(model: DelayModel, slowChannel?: { channel: string; delayFactor: number }): DeliveryScheduler {
  return {
    arrivalMs(request: DeliveryRequest, random: () => number): number {
      const factor = slowChannel && slowChannel.channel === request.channel ? slowChannel.delayFactor : 1;
      return request.sentAtMs + sampleDelayMs(model, random) * factor;
    },
  };
}

/**
 * Reproduces another simulator's delivery order: arrival times given per channel and wire index
 * (`arrivals[channel][i]` is the arrival time of the (i+1)-th item put on that channel). Items the log
 * does not cover fall back to `fallback`.
 */
export function replayScheduler(
  arrivals: Readonly<Record<string, readonly number[]>>,
  fallback: DeliveryScheduler,
): DeliveryScheduler {
  return {
    arrivalMs(request: DeliveryRequest, random: () => number): number {
      const at = arrivals[request.channel]?.[request.wireIndex - 1];
      return at === undefined ? fallback.arrivalMs(request, random) : Math.max(at, request.sentAtMs);
    },
  };
}
