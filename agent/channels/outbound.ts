/**
 * The sending end of an in-band channel: envelopes out on the channel subject, credits in on the
 * credit subject. All protocol decisions live in the pure OutboundQueue; this shell turns NATS
 * messages and calls into its inputs and publishes what it releases.
 *
 * Ordering: core NATS keeps order per publishing connection and subject, so every envelope of a
 * channel is published from the one connection handed in, in queue order, synchronously (no await
 * between taking an envelope off the queue and publishing it).
 */
import { Events, type NatsConnection, type QueuedIterator, type Status, type Subscription } from 'nats';
import { type Logger, pino } from 'pino';
import { BadTrafficLog } from '../../adapters/bad-traffic-log.js';
import type { ChannelId, CheckpointId, Epoch } from '../../src/ids.js';
import { ChannelCodec, decodeCredit, type Envelope, type TenantId, type WireLimits, type WireResult } from '../../src/wire/index.js';
import { AppSendError } from '../app.js';
import { assertCount, resolveChannelLimits, resolveChannelSubjects, resolveWireLimits } from './config.js';
import { envelopeMemory } from './envelope-memory.js';
import { OutboundQueue } from './outbound-queue.js';
import { watchStatus } from './status-watch.js';
import type { ChannelLimits, OutboundChannel, OutboundStats } from './types.js';

export interface OutboundOptions {
  readonly tenant: TenantId;
  readonly channel: ChannelId;
  readonly epoch: Epoch;
  /** The last seq sent on this channel before it was opened (a restart); reported in stats and logs. */
  readonly lastSentSeq?: number;
  readonly limits?: Partial<ChannelLimits>;
  /** Default: wireLimitsDefault; the server's max_payload applies too, whichever is smaller. */
  readonly wireLimits?: WireLimits;
  readonly logger?: Logger;
  /** Where malformed credits are logged at a bounded rate; default: one of this channel's own. */
  readonly badTraffic?: BadTrafficLog;
}


export interface OutboundChannelStats extends OutboundStats {
  /** Credits of another epoch or channel: ignored. */
  readonly ignoredCredits: number;
  /** Barriers of unaligned checkpoints sent ahead of queued messages. */
  readonly barriersAhead: number;
  /** Credits that asked for a resend. */
  readonly resendRequests: number;
  /** Messages and barriers published again for those. */
  readonly republished: number;
  /** Resend requests for messages no longer kept (or never sent): the receiver fails the channel. */
  readonly resendsRefused: number;
  readonly epoch: Epoch;
  /** The seq of the last message published (or lastSentSeq at open/reset). */
  readonly lastPublishedSeq: number;
  /** The highest seq the credit in force allows; undefined before the first credit of the epoch. */
  readonly creditLimitSeq: number | undefined;
}

/** OutboundChannel with the extra statistics this transport keeps. */
export interface OutboundChannelHandle extends OutboundChannel {
  readonly stats: OutboundChannelStats;
}

interface Pending {
  /** The item's own envelope: a message (which a run may take the payload of) or a barrier. */
  readonly bytes: Uint8Array;
  /** Undefined for a barrier. */
  readonly seq: number | undefined;
  /** The message's payload size: the payload is the last bytes of its envelope. */
  readonly payloadBytes: number;
  /** The epoch in the envelope; a run holds messages of one epoch. */
  readonly epoch: Epoch;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Messages ready together go out as runs of at most this many bytes (and never above the server's
 * max_payload): large enough that per-message costs fade, small enough not to hold a slow
 * receiver's read loop on one message.
 */
const RUN_BYTES_MAX = 64 * 1024;

/**
 * Opens the sending end and subscribes to its credits. Resolves once the server has the
 * subscription, so a credit the receiver publishes from then on is not missed.
 * Throws ChannelConfigError for a bad tenant, channel id or limit.
 */
export async function openOutbound(nc: NatsConnection, options: OutboundOptions): Promise<OutboundChannelHandle> {
  const channel = new NatsOutboundChannel(nc, options);
  try {
    await nc.flush();
  } catch (error) {
    await channel.close();
    throw error;
  }
  return channel;
}

class NatsOutboundChannel implements OutboundChannelHandle {
  readonly id: ChannelId;
  private readonly subject: string;
  private readonly queue: OutboundQueue<Pending>;
  private readonly wireLimits: WireLimits;
  private readonly overtakeQueuedBytesMax: number;
  private readonly codec: ChannelCodec;
  private readonly log: Logger;
  private readonly badTraffic: BadTrafficLog;
  private readonly subscription: Subscription;
  private closed = false;
  /** Set when a publish failed: the receiver will see a gap, so nothing more is sent until a reset. */
  private failure: Error | undefined;
  private counts = { published: 0, envelopesPublished: 0, creditsReceived: 0, malformedCredits: 0, ignoredCredits: 0, barriersAhead: 0, resendRequests: 0, republished: 0, resendsRefused: 0 };
  private lastPublishedSeq: number;
  private pumpScheduled = false;
  /** False from a disconnect until the reconnect: nothing new is published meanwhile (see `watchConnection`). */
  private connected = true;
  private readonly statuses: QueuedIterator<Status>;

  constructor(
    private readonly nc: NatsConnection,
    options: OutboundOptions,
  ) {
    const limits = resolveChannelLimits(options.limits);
    this.overtakeQueuedBytesMax = limits.overtakeQueuedBytesMax;
    const subjects = resolveChannelSubjects(options.tenant, options.channel);
    this.wireLimits = resolveWireLimits(options.wireLimits);
    assertCount('epoch', options.epoch);
    this.lastPublishedSeq = options.lastSentSeq ?? 0;
    assertCount('lastSentSeq', this.lastPublishedSeq);
    this.id = options.channel;
    this.subject = subjects.data;
    this.codec = new ChannelCodec(options.channel, this.wireLimits, envelopeMemory());
    this.queue = new OutboundQueue<Pending>(options.channel, options.epoch, limits.outboundQueueMessagesMax, limits.inFlightBytesMax, options.lastSentSeq ?? 0);
    this.log = (options.logger ?? pino({ level: 'silent' })).child({
      component: 'channel-out',
      tenant: options.tenant,
      channel: options.channel,
    });
    this.badTraffic = options.badTraffic ?? new BadTrafficLog(this.log);
    this.subscription = nc.subscribe(subjects.credit, {
      callback: (error, msg) => {
        if (error) {
          this.log.error({ err: error }, 'credit subscription failed');
          return;
        }
        this.onCredit(msg.data);
      },
    });
    this.log.info({ epoch: options.epoch, lastSentSeq: this.lastPublishedSeq, limits }, 'outbound channel open');
    this.statuses = watchStatus(nc);
    void this.watchConnection();
  }

  /**
   * What this end's server had not yet passed on when the connection broke is lost, and a loss that
   * ends with a barrier shows the receiver no gap: the next message follows the last one it got, and
   * the barrier would never come (or come late, out of its place). So from a disconnect nothing new
   * is published (it waits in the queue instead of the client's reconnect buffer), and after the
   * reconnect everything kept is published again, in order, before anything new: the receiver drops
   * what it has and takes a lost barrier in its place.
   */
  private async watchConnection(): Promise<void> {
    for await (const status of this.statuses) {
      if (this.closed) return;
      if (status.type === Events.Disconnect) {
        this.connected = false;
      } else if (status.type === Events.Reconnect) {
        this.connected = true;
        if (this.failure) continue;
        const again = this.queue.retransmitAll();
        this.log.info({ items: again.length, lastPublishedSeq: this.lastPublishedSeq }, 'reconnected: republishing what the receiver may have lost');
        this.publishAll(again, false);
        this.pump();
      }
    }
  }

  get stats(): OutboundChannelStats {
    return {
      ...this.counts,
      queued: this.queue.length,
      creditWaitMs: this.queue.creditWaitMs(performance.now()),
      epoch: this.queue.epoch,
      lastPublishedSeq: this.lastPublishedSeq,
      creditLimitSeq: this.queue.creditLimitSeq,
    };
  }

  sendMessage(seq: number, epoch: Epoch, payload: Uint8Array): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const encoded = this.checked('message', this.codec.encodeMessage(epoch, seq, payload));
    if (encoded instanceof Error) return Promise.reject(encoded);
    return new Promise<void>((resolve, reject) => {
      const outcome = this.queue.enqueueMessage(seq, { bytes: encoded, seq, payloadBytes: payload.byteLength, epoch, resolve, reject }, performance.now(), encoded.byteLength);
      if (outcome === 'queue-full') {
        reject(
          new AppSendError(
            'queue-full',
            `channel ${this.id}: ${this.queue.queueMessagesMax} messages already wait for credit (outboundQueueMessagesMax)`,
          ),
        );
        return;
      }
      this.pumpSoon();
    });
  }

  /**
   * `overtake`: the barrier of an unaligned checkpoint, which goes out ahead of the messages queued
   * for credit now (flagged `overtaking` when there are any) instead of behind them.
   */
  sendBarrier(checkpointId: CheckpointId, epoch: Epoch, afterSeq: number, overtake = false): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const ahead = overtake && this.queue.queuedMessages > 0 && this.queue.queuedBytes <= this.overtakeQueuedBytesMax;
    const encoded = this.checked('barrier', this.codec.encodeBarrier(epoch, afterSeq, checkpointId, ahead));
    if (encoded instanceof Error) return Promise.reject(encoded);
    if (ahead) this.counts.barriersAhead += 1;
    return new Promise<void>((resolve, reject) => {
      this.queue.enqueueBarrier({ bytes: encoded, seq: undefined, payloadBytes: 0, epoch, resolve, reject }, performance.now(), ahead, afterSeq);
      this.pump();
    });
  }

  reset(epoch: Epoch, lastSentSeq: number): void {
    assertCount('lastSentSeq', lastSentSeq);
    if (this.closed) {
      this.log.debug({ epoch }, 'reset ignored: channel closed');
      return;
    }
    const dropped = this.queue.reset(epoch, performance.now(), lastSentSeq);
    const error = new AppSendError('channel-failed', `channel ${this.id}: dropped by a restore to epoch ${epoch}`);
    for (const pending of dropped) pending.reject(error);
    this.failure = undefined;
    this.lastPublishedSeq = lastSentSeq;
    this.log.info({ epoch, lastSentSeq, dropped: dropped.length }, 'outbound channel reset');
    // A credit of the new epoch may have arrived before the reset.
    this.pump();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscription.unsubscribe();
    this.statuses.stop();
    const error = new AppSendError('closed', `channel ${this.id} is closed`);
    const dropped = this.queue.removeAll();
    for (const pending of dropped) pending.reject(error);
    this.log.info({ dropped: dropped.length, ...this.counts }, 'outbound channel closed');
  }

  private refusal(): AppSendError | undefined {
    if (this.closed) return new AppSendError('closed', `channel ${this.id} is closed`);
    if (this.failure) {
      return new AppSendError('channel-failed', `channel ${this.id} failed: ${this.failure.message}; a restore resets it`);
    }
    return undefined;
  }

  /** The envelope's bytes, or the error to reject the send with. */
  private checked(type: Envelope['type'], encoded: WireResult<Uint8Array>): Uint8Array | Error {
    if (!encoded.ok) {
      if (encoded.error.kind === 'too-large') {
        return new AppSendError('payload-too-large', `channel ${this.id}: ${encoded.error.message}`);
      }
      // Seq, epoch and checkpoint id come from the core: an invalid one is a bug there, not the app's.
      return new RangeError(`channel ${this.id}: invalid ${type} envelope: ${encoded.error.message}`);
    }
    // The server refuses anything above its max_payload, which may be below our own limit.
    const serverMaxBytes = this.nc.info?.max_payload;
    if (serverMaxBytes !== undefined && encoded.value.byteLength > serverMaxBytes) {
      return new AppSendError(
        'payload-too-large',
        `channel ${this.id}: envelope is ${encoded.value.byteLength} bytes; the server's max_payload is ${serverMaxBytes}`,
      );
    }
    return encoded.value;
  }

  private onCredit(bytes: Uint8Array): void {
    const decoded = decodeCredit(bytes, this.wireLimits);
    if (!decoded.ok) {
      this.counts.malformedCredits += 1;
      this.badTraffic.warn('malformed-credit', { channel: this.id, error: decoded.error }, 'malformed credit dropped');
      return;
    }
    const credit = decoded.value;
    const outcome = this.queue.applyCredit(credit, performance.now());
    if (outcome !== 'accepted') {
      this.counts.ignoredCredits += 1;
      if (outcome === 'behind' || outcome === 'beyond-sent') {
        this.badTraffic.warn(`credit-${outcome}`, { channel: this.id, receivedSeq: credit.receivedSeq }, 'credit no receiver sends dropped');
      }
      this.log.debug({ outcome, credit }, 'credit ignored');
      return;
    }
    this.counts.creditsReceived += 1;
    if (credit.resendFrom !== undefined) this.resend(credit.resendFrom);
    this.pump();
  }

  /**
   * The receiver misses messages from `fromSeq` on (a broker restart or node loss dropped them):
   * publish again what is kept from there, ahead of anything new, so its order is the original's.
   */
  private resend(fromSeq: number): void {
    // While disconnected the receiver repeats its request; the reconnect republishes everything anyway.
    if (this.closed || this.failure || !this.connected) return;
    this.counts.resendRequests += 1;
    const again = this.queue.retransmitFrom(fromSeq);
    if (again === undefined) {
      this.counts.resendsRefused += 1;
      this.log.warn({ fromSeq, lastPublishedSeq: this.lastPublishedSeq }, 'resend requested for messages no longer kept; the receiver will fail the channel');
      return;
    }
    if (again.length === 0) return;
    this.log.info({ fromSeq, items: again.length, lastPublishedSeq: this.lastPublishedSeq }, 'republishing for a resend request');
    this.publishAll(again, false);
  }

  /**
   * Messages are published together once the current task is over: nats.js writes to the socket
   * in a microtask after a publish onto an empty buffer, so publishing each send as it came made a
   * socket write per message (1 KiB messages: half the producer's CPU). A barrier is published at
   * once (pump), behind whatever is queued, since its latency is the checkpoint's.
   */
  private pumpSoon(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * Publishes everything the credit in force releases, in queue order: consecutive messages as
   * runs (one NATS message each), a barrier on its own between them.
   */
  private pump(): void {
    if (this.closed || this.failure || !this.connected) return;
    this.publishAll(this.queue.takeReady(performance.now()), true);
  }

  /** `fresh`: first publication (resolves the sends); otherwise a resend of items already resolved. */
  private publishAll(ready: Pending[], fresh: boolean): void {
    const runBytesMax = Math.min(RUN_BYTES_MAX, this.wireLimits.wireMessageBytesMax, this.nc.info?.max_payload ?? Number.POSITIVE_INFINITY);
    let i = 0;
    while (i < ready.length) {
      const first = ready[i] as Pending;
      let end = i + 1;
      if (first.seq !== undefined) {
        let items = this.codec.runItemSize(first.payloadBytes);
        for (; end < ready.length; end++) {
          const next = ready[end] as Pending;
          // A run numbers its messages from the first: a gap (a send refused after the core numbered
          // it) must reach the receiver as one, so it ends the run.
          if (next.seq !== first.seq + (end - i) || next.epoch !== first.epoch) break;
          const more = items + this.codec.runItemSize(next.payloadBytes);
          if (this.codec.runSize(first.epoch, first.seq, more) > runBytesMax) break;
          items = more;
        }
      }
      try {
        this.nc.publish(this.subject, this.envelopeOf(ready, i, end));
      } catch (error) {
        this.fail(error instanceof Error ? error : new Error(String(error)), ready.slice(i));
        return;
      }
      this.counts.envelopesPublished += 1;
      if (!fresh) {
        this.counts.republished += end - i;
        i = end;
        continue;
      }
      for (; i < end; i++) {
        const pending = ready[i] as Pending;
        this.counts.published += 1;
        if (pending.seq !== undefined) this.lastPublishedSeq = pending.seq;
        pending.resolve();
      }
    }
  }

  /** The one envelope for ready[from..to): the item's own, or a run of the messages. */
  private envelopeOf(ready: readonly Pending[], from: number, to: number): Uint8Array {
    const first = ready[from] as Pending;
    if (to - from === 1 || first.seq === undefined) return first.bytes;
    const payloads = ready.slice(from, to).map((p) => p.bytes.subarray(p.bytes.byteLength - p.payloadBytes));
    const run = this.codec.encodeRun(first.epoch, first.seq, payloads);
    // Every message fits on its own and the run is kept under the limits: a failure is a bug here.
    if (!run.ok) throw new Error(`channel ${this.id}: a run of ${to - from} from seq ${first.seq} did not encode: ${run.error.message}`);
    return run.value;
  }

  /**
   * A publish failed (connection closed or draining): sending what follows would open a gap, so the
   * channel stops and fails every waiting send; the core fails the channel, and a restore resets it.
   */
  private fail(cause: Error, unsent: Pending[]): void {
    this.failure = cause;
    const error = new AppSendError('channel-failed', `channel ${this.id}: publish failed: ${cause.message}`);
    error.cause = cause;
    for (const pending of [...unsent, ...this.queue.removeAll()]) pending.reject(error);
    this.log.error({ err: cause, lastPublishedSeq: this.lastPublishedSeq }, 'publish failed; channel failed');
  }
}
