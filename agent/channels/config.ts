/**
 * What both channel ends check once, when they are opened: the subjects of a channel and its limits.
 * A bad setting is a typed error at open, never a channel that half works.
 */
import type { ChannelId } from '../../src/ids.js';
import {
  channelSubject,
  checkWireLimits,
  creditSubject,
  isChannelId,
  isName,
  type WireLimits,
  wireLimitsDefault,
} from '../../src/wire/index.js';
import { CHANNEL_LIMITS_DEFAULT, type ChannelLimits } from './types.js';

/** A channel was opened with a bad tenant, channel id or limit. */
export class ChannelConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'ChannelConfigError';
  }
}

/** The largest window a Credit can carry (its wire field is a uint32). */
export const CREDIT_WINDOW_MESSAGES_MAX = 0xffff_ffff;

/**
 * Node keeps timer delays in a signed 32-bit integer and turns larger ones into 1 ms, which would
 * make a "rare" refresh a busy loop; refuse them instead.
 */
const TIMER_DELAY_MS_MAX = 0x7fff_ffff;

export function resolveChannelLimits(partial: Partial<ChannelLimits> | undefined): ChannelLimits {
  const limits: ChannelLimits = { ...CHANNEL_LIMITS_DEFAULT, ...partial };
  positiveInteger('creditWindowMessages', limits.creditWindowMessages, CREDIT_WINDOW_MESSAGES_MAX);
  positiveInteger('outboundQueueMessagesMax', limits.outboundQueueMessagesMax, Number.MAX_SAFE_INTEGER);
  positiveInteger('inFlightBytesMax', limits.inFlightBytesMax, Number.MAX_SAFE_INTEGER);
  positiveInteger('creditRefreshMs', limits.creditRefreshMs, TIMER_DELAY_MS_MAX);
  positiveInteger('gapRepairMs', limits.gapRepairMs, TIMER_DELAY_MS_MAX);
  positiveInteger('overtakeQueuedBytesMax', limits.overtakeQueuedBytesMax, Number.MAX_SAFE_INTEGER);
  return limits;
}

export function resolveWireLimits(limits: WireLimits | undefined): WireLimits {
  const checked = checkWireLimits(limits ?? wireLimitsDefault);
  if (!checked.ok) throw new ChannelConfigError(checked.error.field ?? 'wireLimits', checked.error.message);
  return checked.value;
}

export interface ChannelSubjects {
  /** Envelopes, sender -> receiver. */
  readonly data: string;
  /** Credits, receiver -> sender. */
  readonly credit: string;
}

export function resolveChannelSubjects(tenant: string, channel: ChannelId): ChannelSubjects {
  // The subject builders trust their input; a dot or wildcard in a name would cross tenants or channels.
  if (!isName(tenant)) throw new ChannelConfigError('tenant', `'${tenant}' must match [A-Za-z0-9_-]{1,64}`);
  const data = isChannelId(channel) ? channelSubject(tenant, channel) : undefined;
  const credit = isChannelId(channel) ? creditSubject(tenant, channel) : undefined;
  if (data === undefined || credit === undefined) {
    throw new ChannelConfigError('channel', `'${channel}' is not a channel id of the form server/app->server/app`);
  }
  return { data, credit };
}

function positiveInteger(field: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw new ChannelConfigError(field, `must be a positive integer no larger than ${max}, got ${String(value)}`);
  }
}

/** An epoch or a sequence number handed in by the caller; anything else is a bug in the caller. */
export function assertCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${String(value)}`);
  }
}
