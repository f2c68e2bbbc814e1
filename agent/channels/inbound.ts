/**
 * The receiving end of an in-band channel: envelopes in on the channel subject, credits out on the
 * credit subject. It decodes and routes; fencing and gap detection are the core's (src/core). Items
 * of the current epoch go through InboundOrder first: a gap a broker fault left is held back and
 * repaired by a resend when the sender still has the messages, and only passed on (the core then
 * fails the channel) when it cannot be (./inbound-order.ts).
 */
import { Events, type NatsConnection, type QueuedIterator, type Status, type Subscription } from 'nats';
import { type Logger, pino } from 'pino';
import { BadTrafficLog } from '../../adapters/bad-traffic-log.js';
import type { ChannelId, Epoch } from '../../src/ids.js';
import { ChannelCodec, encodeCredit, forEachItem, type ChannelItem, type TenantId, type WireLimits } from '../../src/wire/index.js';
import { assertCount, resolveChannelLimits, resolveChannelSubjects, resolveWireLimits } from './config.js';
import { CreditGrant } from './credit-grant.js';
import { InboundOrder } from './inbound-order.js';
import { watchStatus } from './status-watch.js';
import type { ChannelLimits, EnvelopeHandler, InboundChannel, InboundStats } from './types.js';

export interface InboundOptions {
  readonly tenant: TenantId;
  readonly channel: ChannelId;
  readonly epoch: Epoch;
  /** Messages already delivered before this end was opened (a restart or restore); default 0. */
  readonly deliveredSeq?: number;
  readonly limits?: Partial<ChannelLimits>;
  readonly wireLimits?: WireLimits;
  readonly logger?: Logger;
  /** Where malformed and misrouted envelopes are logged at a bounded rate; default: one of this channel's own. */
  readonly badTraffic?: BadTrafficLog;
  /**
   * Every valid envelope, in arrival order, synchronously from the NATS callback. A message's
   * payload is a view into the received bytes: copy it to keep it beyond the call if memory matters.
   * It must not throw; if it does, the error is logged and counted, and the next envelope is delivered.
   */
  readonly onEnvelope: EnvelopeHandler;
}

export interface InboundChannelStats extends InboundStats {
  /** Items of the current epoch beyond the credit granted (corrupted or forged): dropped. */
  readonly beyondCredit: number;
  /** onEnvelope threw: a bug in the caller, logged at error level. */
  readonly handlerErrors: number;
  readonly epoch: Epoch;
  /** The last seq reported by `consumed` (or deliveredSeq at open/reset). */
  readonly consumedSeq: number;
  /** Repeats dropped: a resend racing the original. */
  readonly duplicates: number;
  /** Gaps filled by a resend, and gaps passed on to the core (the channel failed). */
  readonly gapsRepaired: number;
  readonly gapsPassedOn: number;
  /** Barriers dropped for sitting behind an earlier barrier (InboundOrder). */
  readonly barriersMisordered: number;
  /** Items held behind an open gap now. */
  readonly held: number;
}

/** InboundChannel with the extra statistics this transport keeps. */
export interface InboundChannelHandle extends InboundChannel {
  readonly stats: InboundChannelStats;
}

/**
 * Subscribes to the channel, grants the first credit and starts the refresh timer. Resolves once the
 * server has the subscription and the first credit. Throws ChannelConfigError for a bad tenant,
 * channel id or limit.
 */
export async function openInbound(nc: NatsConnection, options: InboundOptions): Promise<InboundChannelHandle> {
  const channel = new NatsInboundChannel(nc, options);
  try {
    await nc.flush();
  } catch (error) {
    await channel.close();
    throw error;
  }
  return channel;
}

/** Credits that ask for a resend after a reconnect: the first at once, the others on the refresh. */
const RECONNECT_PROBES = 3;

/**
 * While a sender keeps sending, and so holds credit, a refresh only reports progress: every this
 * many refreshes is enough for a trickle (half a window or half the cap are granted at once anyway).
 * A credit at each refresh was a tenth of the scale benchmark's messages (10 a second a channel).
 */
const REFRESHES_PER_PROGRESS_CREDIT = 5;

/** How often a resend request is repeated while a gap stays open. */
const GAP_REQUEST_REPEAT_MS = 250;

/**
 * An envelope's bytes beyond its payload and channel id (field tags, epoch, seq, lengths), about:
 * the receiver counts a message as the sender's cap does, by its envelope's size.
 */
const ENVELOPE_FIELDS_BYTES = 24;

/** The shortest time between two catch-up credits of one channel. */
const IDLE_CREDIT_INTERVAL_MS = 10;

class NatsInboundChannel implements InboundChannelHandle {
  readonly id: ChannelId;
  private readonly creditSubject: string;
  private readonly grant: CreditGrant;
  private readonly order: InboundOrder;
  private gapTimer: NodeJS.Timeout | undefined;
  /** Credits still to carry a resend request after a reconnect (see `watchReconnects`). */
  private probesLeft = 0;
  /** Refreshes since the last credit went out. */
  private quietRefreshes = 0;
  /** The arrived seq at the previous refresh. */
  private arrivedAtRefresh: number;
  private readonly wireLimits: WireLimits;
  private readonly codec: ChannelCodec;
  private readonly onEnvelope: EnvelopeHandler;
  private readonly log: Logger;
  private readonly badTraffic: BadTrafficLog;
  private readonly subscription: Subscription;
  private readonly refreshTimer: NodeJS.Timeout;
  /** What a message's envelope adds to its payload, about (see ENVELOPE_FIELDS_BYTES). */
  private readonly envelopeBytesOver: number;
  private idleCreditScheduled = false;
  /** When the last catch-up credit went out (performance.now()). */
  private lastIdleCreditMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly statuses: QueuedIterator<Status>;
  private counts = { received: 0, malformed: 0, misrouted: 0, beyondCredit: 0, creditsSent: 0, handlerErrors: 0 };

  constructor(
    private readonly nc: NatsConnection,
    options: InboundOptions,
  ) {
    const limits = resolveChannelLimits(options.limits);
    const subjects = resolveChannelSubjects(options.tenant, options.channel);
    this.wireLimits = resolveWireLimits(options.wireLimits);
    this.id = options.channel;
    this.codec = new ChannelCodec(options.channel, this.wireLimits);
    this.creditSubject = subjects.credit;
    this.grant = new CreditGrant(options.channel, options.epoch, options.deliveredSeq ?? 0, limits.creditWindowMessages, limits.inFlightBytesMax);
    this.arrivedAtRefresh = this.grant.lastArrived;
    this.envelopeBytesOver = options.channel.length + ENVELOPE_FIELDS_BYTES;
    // The sender never has more than a window beyond what was consumed: more behind a gap is not a
    // broker fault's doing.
    this.order = new InboundOrder(options.epoch, options.deliveredSeq ?? 0, limits.gapRepairMs, limits.creditWindowMessages);
    this.onEnvelope = options.onEnvelope;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({
      component: 'channel-in',
      tenant: options.tenant,
      channel: options.channel,
    });
    this.badTraffic = options.badTraffic ?? new BadTrafficLog(this.log);
    this.subscription = nc.subscribe(subjects.data, {
      callback: (error, msg) => {
        if (error) {
          this.log.error({ err: error }, 'channel subscription failed');
          return;
        }
        this.onData(msg.data);
      },
    });
    // Credits are cumulative, so repeating the current one repairs a lost one (core NATS is at most
    // once) and reaches a sender that subscribed after the last grant. Unref'd: a channel alone must
    // not keep the process alive.
    this.refreshTimer = setInterval(() => this.refresh(), limits.creditRefreshMs);
    this.refreshTimer.unref();
    this.log.info({ epoch: options.epoch, deliveredSeq: this.grant.consumed, limits }, 'inbound channel open');
    this.publishCredit();
    this.statuses = watchStatus(nc);
    void this.watchReconnects();
  }

  /**
   * Messages the server dropped while this end was away are seen as a gap only when a later one
   * comes; the last ones before a pause in traffic would never be. So after a reconnect the next
   * RECONNECT_PROBES credits ask for a resend from the next expected seq: the sender republishes
   * what it sent beyond that (nothing, if nothing was lost), and several, because the sender may
   * not be back yet.
   */
  private async watchReconnects(): Promise<void> {
    for await (const status of this.statuses) {
      if (this.closed) return;
      if (status.type !== Events.Reconnect) continue;
      this.probesLeft = RECONNECT_PROBES;
      this.log.info({ nextSeq: this.order.nextSeq }, 'reconnected: asking for a resend of anything lost');
      this.publishCredit();
    }
  }

  get stats(): InboundChannelStats {
    const { duplicates, gapsRepaired, gapsPassedOn, barriersMisordered, held } = this.order.stats;
    return { ...this.counts, epoch: this.grant.epoch, consumedSeq: this.grant.consumed, duplicates, gapsRepaired, gapsPassedOn, barriersMisordered, held };
  }

  consumed(seq: number): void {
    if (this.closed) return;
    const outcome = this.grant.consume(seq);
    if (outcome === 'grant') this.publishCredit();
    else if (outcome === 'caught-up') this.scheduleIdleCredit();
  }

  /**
   * A credit once the envelopes that came in the same read are handled, if nothing new arrived by
   * then: in a steady stream the next envelope is already there and the half-window (or half-cap)
   * grants do the work; a sender of large messages with a smaller cap than this end's gets its
   * credit now, not at the refresh. At most one every IDLE_CREDIT_INTERVAL_MS.
   */
  private scheduleIdleCredit(): void {
    if (this.idleCreditScheduled) return;
    this.idleCreditScheduled = true;
    const fire = (): void => {
      this.idleCreditScheduled = false;
      if (this.closed || !this.grant.owesIdleCredit) return;
      this.lastIdleCreditMs = performance.now();
      this.publishCredit();
    };
    const waitMs = this.lastIdleCreditMs + IDLE_CREDIT_INTERVAL_MS - performance.now();
    if (waitMs <= 0) setImmediate(fire);
    else setTimeout(fire, waitMs).unref();
  }

  reset(epoch: Epoch, deliveredSeq: number): void {
    assertCount('deliveredSeq', deliveredSeq);
    if (this.closed) {
      this.log.debug({ epoch }, 'reset ignored: channel closed');
      return;
    }
    this.grant.reset(epoch, deliveredSeq);
    this.arrivedAtRefresh = this.grant.lastArrived;
    this.order.reset(epoch, deliveredSeq);
    this.armGapTimer();
    this.log.info({ epoch, deliveredSeq }, 'inbound channel reset');
    this.publishCredit();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.refreshTimer);
    clearTimeout(this.gapTimer);
    this.subscription.unsubscribe();
    this.statuses.stop();
    this.log.info({ ...this.counts }, 'inbound channel closed');
  }

  private onData(bytes: Uint8Array): void {
    const decoded = this.codec.decode(bytes);
    if (!decoded.ok) {
      this.counts.malformed += 1;
      this.badTraffic.warn('malformed-envelope', { channel: this.id, error: decoded.error }, 'malformed envelope dropped');
      return;
    }
    const envelope = decoded.value;
    if (envelope.channel !== this.id) {
      // Only a misconfigured or hostile publisher puts another channel's envelope on this subject.
      this.counts.misrouted += 1;
      this.badTraffic.warn('misrouted-envelope', { channel: this.id, envelopeChannel: envelope.channel, type: envelope.type }, 'misrouted envelope dropped');
      return;
    }
    // A run is handed over as its messages, so nothing past this point knows runs exist.
    if (envelope.epoch === this.order.epoch) forEachItem(envelope, this.ordered);
    else forEachItem(envelope, this.hand);
  }

  private readonly ordered = (item: ChannelItem): void => {
    const at = item.type === 'message' ? item.seq : item.afterSeq;
    if (at > this.grant.creditLimit && !(item.type === 'barrier' && item.overtaking === true)) {
      // No sender was allowed this far: held, it would open a gap that no resend can fill and fail
      // the channel (a corrupted or forged envelope, docs/security.md). Dropped and counted instead.
      this.counts.beyondCredit += 1;
      this.badTraffic.warn('beyond-credit', { channel: this.id, type: item.type, seq: at, creditLimit: this.grant.creditLimit }, 'envelope beyond the credit granted dropped');
      return;
    }
    const gapWasOpen = this.order.gapFrom !== undefined;
    const accepted = this.order.accept(item, performance.now());
    if (accepted.refused !== undefined && item.type === 'barrier') {
      this.badTraffic.warn(accepted.refused, { channel: this.id, checkpointId: item.checkpointId, afterSeq: item.afterSeq }, 'barrier behind an earlier barrier dropped');
    }
    for (const next of accepted.deliver) {
      if (next.type === 'message') this.grant.arrived(next.seq, next.payload.byteLength + this.envelopeBytesOver);
      else this.grant.arrived(next.afterSeq);
      this.hand(next);
    }
    if (accepted.requestFrom !== undefined) {
      this.log.warn({ fromSeq: accepted.requestFrom, seq: item.type === 'message' ? item.seq : item.afterSeq }, 'gap in the channel: resend requested');
      this.publishCredit();
    }
    if (gapWasOpen !== (this.order.gapFrom !== undefined) || accepted.requestFrom !== undefined) this.armGapTimer();
  };

  /**
   * While a gap is open: repeats the resend request every GAP_REQUEST_REPEAT_MS (one may be lost
   * while the sender reconnects) and passes the gap on once it has waited gapRepairMs.
   */
  private armGapTimer(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    const deadline = this.order.gapDeadlineMs;
    if (deadline === undefined || this.closed) return;
    const waitMs = Math.max(0, Math.min(deadline - performance.now(), GAP_REQUEST_REPEAT_MS));
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      const fromSeq = this.order.gapFrom;
      const passed = this.order.expire(performance.now());
      if (passed.length > 0) {
        this.log.error({ fromSeq, held: passed.length }, 'gap not repaired by a resend: passed on, the channel fails');
        for (const item of passed) {
          if (item.type === 'message') this.grant.arrived(item.seq, item.payload.byteLength + this.envelopeBytesOver);
          this.hand(item);
        }
      } else if (fromSeq !== undefined) {
        this.publishCredit();
      }
      this.armGapTimer();
    }, waitMs);
    this.gapTimer.unref();
  }

  private readonly hand = (item: ChannelItem): void => {
    this.counts.received += 1;
    try {
      this.onEnvelope(item);
    } catch (error) {
      // Thrown into the NATS client it would break its read loop for every subscription.
      this.counts.handlerErrors += 1;
      this.log.error({ err: error, type: item.type }, 'envelope handler threw');
    }
  };

  /**
   * The periodic credit. While messages arrived since the previous refresh, the sender holds credit
   * (the grants at half a window or half the cap keep it so) and only every
   * REFRESHES_PER_PROGRESS_CREDIT-th goes out. Every one goes out after a period with nothing new
   * (the sender may have missed its credit: lost, or it subscribed late; so a sender that ran out
   * on a lost credit waits two periods at most), while a gap is open, and while a reconnect's
   * probes are due.
   */
  private refresh(): void {
    const sending = this.grant.lastArrived > this.arrivedAtRefresh;
    this.arrivedAtRefresh = this.grant.lastArrived;
    this.quietRefreshes += 1;
    if (!sending || this.quietRefreshes >= REFRESHES_PER_PROGRESS_CREDIT || this.order.gapFrom !== undefined || this.probesLeft > 0) this.publishCredit();
  }

  private publishCredit(): void {
    if (this.closed) return;
    this.quietRefreshes = 0;
    // While a gap is open every credit repeats the request: one lost with a reconnect is repaired.
    let resendFrom = this.order.gapFrom;
    if (resendFrom === undefined && this.probesLeft > 0) {
      this.probesLeft -= 1;
      resendFrom = this.order.nextSeq;
    }
    const credit = this.grant.credit(resendFrom);
    const encoded = encodeCredit(credit, this.wireLimits);
    if (!encoded.ok) {
      // Every field comes from validated state: an encoding failure is a bug here.
      throw new Error(`channel ${this.id}: cannot encode credit ${JSON.stringify(credit)}: ${encoded.error.message}`);
    }
    try {
      this.nc.publish(this.creditSubject, encoded.value);
      this.counts.creditsSent += 1;
    } catch (error) {
      // Connection closed or draining: the next refresh tries again if it comes back.
      this.log.warn({ err: error }, 'credit not published');
    }
  }
}
