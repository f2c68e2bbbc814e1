/**
 * The log channel over JetStream: the messages go into a stream the operator made (the plan names it
 * and the subject), and stay there. Each barrier goes into the same subject as a record of its own,
 * right behind the last message the sender published before its cut, naming that message's seq:
 * JetStream keeps one publisher's order, so the receiving core meets the barrier exactly at the cut
 * (a barrier on a subject of its own could arrive after messages the sender published later, which
 * would put them on the wrong side of the cut). No credit, resend or recording is needed: the stream
 * is durable and ordered, and a rollback restarts the consumer at the recorded stream sequence, so
 * the replay is JetStream's own.
 *
 * A message is the app's payload as it is, with headers (src/wire/subjects.ts, LOG_HEADERS): the
 * channel, the epoch and the seq; a barrier has an empty payload and the checkpoint id instead of
 * the seq. Other consumers of the stream read the app's messages unchanged and skip the barriers.
 */
import { headers, RetentionPolicy, type ConsumerMessages, type StreamConfig, type JetStreamClient, type JsMsg, type MsgHdrs, type NatsConnection } from 'nats';
import { type Logger, pino } from 'pino';
import type { ChannelId, CheckpointId, Epoch } from '../../src/ids.js';
import { isChannelId, isLogSubject, isName, LOG_HEADERS, type TenantId } from '../../src/wire/index.js';
import { logConsumer, type LogConsumer } from '../../adapters/log-consumer.js';
import { AppSendError } from '../app.js';
import { assertCount, ChannelConfigError } from './config.js';
import { LogOffsets } from './log-offsets.js';
import type { EnvelopeHandler, InboundChannel, InboundItem, InboundStats, LogChannelConfig, LogInboundPosition, OutboundChannel, OutboundStats } from './types.js';


interface LogEnds {
  readonly tenant: TenantId;
  readonly channel: ChannelId;
  readonly log: LogChannelConfig;
  readonly logger?: Logger;
}

export interface LogOutboundOptions extends LogEnds {
  readonly epoch: Epoch;
  readonly lastSentSeq?: number;
}

export interface LogInboundOptions extends LogEnds {
  readonly epoch: Epoch;
  readonly deliveredSeq?: number;
  /** The stream sequence of message `deliveredSeq`; 0: start at the stream's first message. */
  readonly fromOffset?: number;
  readonly onEnvelope: EnvelopeHandler;
}

/** Checks the names, and that the stream exists and holds the subject. */
async function resolveLog(nc: NatsConnection, o: LogEnds): Promise<void> {
  if (!isName(o.tenant)) throw new ChannelConfigError('tenant', `'${o.tenant}' must match [A-Za-z0-9_-]{1,64}`);
  if (!isChannelId(o.channel)) throw new ChannelConfigError('channel', `'${o.channel}' is not a channel id of the form server/app->server/app`);
  if (!isName(o.log.stream)) throw new ChannelConfigError('stream', `'${o.log.stream}' must match [A-Za-z0-9_-]{1,64}`);
  if (!isLogSubject(o.log.subject)) throw new ChannelConfigError('subject', `'${o.log.subject}' must be dot-separated tokens of [A-Za-z0-9_-], no wildcards`);
  const jsm = await nc.jetstreamManager();
  let holder: string;
  try {
    holder = await jsm.streams.find(o.log.subject);
  } catch (error) {
    throw new ChannelConfigError('subject', `no JetStream stream holds ${o.log.subject} (expected stream ${o.log.stream}): ${error instanceof Error ? error.message : String(error)}`);
  }
  if (holder !== o.log.stream) throw new ChannelConfigError('stream', `${o.log.subject} is in stream ${holder}, not ${o.log.stream}`);
  const { config } = await jsm.streams.info(o.log.stream);
  // A work-queue or interest stream deletes what its consumers took: nothing would be left to replay.
  if (config.retention !== RetentionPolicy.Limits) {
    throw new ChannelConfigError('stream', `stream ${o.log.stream} has ${config.retention} retention, which deletes consumed messages: a log channel needs limits retention to replay a checkpoint's range`);
  }
  const limits = streamLimits(config);
  if (limits.length > 0) {
    (o.logger ?? pino({ level: 'silent' })).warn(
      { channel: o.channel, stream: o.log.stream, limits },
      'the stream drops messages past its limits: a rollback to a checkpoint whose range it dropped fails the channel; size the limits for the oldest checkpoint kept',
    );
  }
}

/** The stream's limits that drop old messages, as `name=value` (none: it keeps everything). */
function streamLimits(config: StreamConfig): string[] {
  const out: string[] = [];
  if (config.max_age > 0) out.push(`max_age=${config.max_age / 1_000_000_000}s`);
  if (config.max_msgs > 0) out.push(`max_msgs=${config.max_msgs}`);
  if (config.max_bytes > 0) out.push(`max_bytes=${config.max_bytes}`);
  if (config.max_msgs_per_subject > 0) out.push(`max_msgs_per_subject=${config.max_msgs_per_subject}`);
  return out;
}

export async function openLogOutbound(nc: NatsConnection, o: LogOutboundOptions): Promise<OutboundChannel> {
  await resolveLog(nc, o);
  return new LogOutbound(nc.jetstream(), o);
}

export async function openLogInbound(nc: NatsConnection, o: LogInboundOptions): Promise<InboundChannel> {
  await resolveLog(nc, o);
  const inbound = new LogInbound(nc, o);
  try {
    await inbound.start();
    await nc.flush();
  } catch (error) {
    await inbound.close();
    throw error;
  }
  return inbound;
}

const EMPTY = new Uint8Array(0);

/** A header's non-negative integer, undefined when absent or anything else. */
function count(text: string | undefined): number | undefined {
  if (text === undefined || !/^[0-9]{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

class LogOutbound implements OutboundChannel {
  readonly id: ChannelId;
  private readonly log: Logger;
  private epoch: Epoch;
  private lastSeq: number;
  /** The stream sequence of the last message published: each must be above the one before. */
  private lastOffset = 0;
  /** Settles when every message published so far has its acknowledgement (or failed). */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private failed: string | undefined;
  private closed = false;
  private counts = { published: 0, barriers: 0 };

  constructor(
    private readonly js: JetStreamClient,
    private readonly o: LogOutboundOptions,
  ) {
    this.id = o.channel;
    this.epoch = o.epoch;
    this.lastSeq = o.lastSentSeq ?? 0;
    assertCount('epoch', o.epoch);
    assertCount('lastSentSeq', this.lastSeq);
    this.log = (o.logger ?? pino({ level: 'silent' })).child({ channel: o.channel, stream: o.log.stream });
  }

  sendMessage(seq: number, epoch: Epoch, payload: Uint8Array): Promise<void> {
    if (seq !== this.lastSeq + 1 || epoch !== this.epoch) throw new RangeError(`log channel ${this.id}: message ${seq} of epoch ${epoch} after ${this.lastSeq} of epoch ${this.epoch}`);
    // Numbered even when refused: the core counted it as sent, and the next one follows it.
    this.lastSeq = seq;
    if (this.closed) return Promise.reject(new AppSendError('closed', `log channel ${this.id} is closed`));
    if (this.failed !== undefined) return Promise.reject(new AppSendError('channel-failed', this.failed));
    const h = headers();
    h.set(LOG_HEADERS.channel, this.id);
    h.set(LOG_HEADERS.epoch, String(epoch));
    h.set(LOG_HEADERS.seq, String(seq));
    return this.publish(`message ${seq}`, payload, h, `${this.id}|${epoch}|${seq}`);
  }

  sendBarrier(checkpointId: CheckpointId, epoch: Epoch, afterSeq: number): Promise<void> {
    if (afterSeq !== this.lastSeq || epoch !== this.epoch) throw new RangeError(`log channel ${this.id}: barrier ${checkpointId} after ${afterSeq} of epoch ${epoch}, but ${this.lastSeq} of epoch ${this.epoch} went last`);
    if (this.closed) return Promise.reject(new AppSendError('closed', `log channel ${this.id} is closed`));
    if (this.failed !== undefined) return Promise.reject(new AppSendError('channel-failed', this.failed));
    const h = headers();
    h.set(LOG_HEADERS.channel, this.id);
    h.set(LOG_HEADERS.epoch, String(epoch));
    h.set(LOG_HEADERS.barrier, String(checkpointId));
    h.set(LOG_HEADERS.afterSeq, String(afterSeq));
    this.counts.barriers += 1;
    return this.publish(`barrier ${checkpointId}`, EMPTY, h, `${this.id}|${epoch}|b${checkpointId}`);
  }

  /**
   * Publishes at once, in the order of the calls: one connection keeps that order into the stream.
   * The msgID makes a republish by the client after a lost acknowledgement a no-op.
   */
  private publish(what: string, payload: Uint8Array, h: MsgHdrs, msgID: string): Promise<void> {
    this.inFlight += 1;
    const acked = this.js.publish(this.o.log.subject, payload, { headers: h, msgID, expect: { streamName: this.o.log.stream } }).then(
      (ack) => {
        this.inFlight -= 1;
        this.counts.published += 1;
        if (ack.duplicate) return;
        if (ack.seq <= this.lastOffset) this.fail(`${what} landed at stream sequence ${ack.seq}, not after ${this.lastOffset}: the stream's order broke`);
        else this.lastOffset = ack.seq;
      },
      (error: unknown) => {
        this.inFlight -= 1;
        this.fail(`publishing ${what} to stream ${this.o.log.stream} failed: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
    this.tail = acked;
    return acked.then(() => {
      if (this.failed !== undefined) throw new AppSendError('channel-failed', this.failed);
    });
  }

  reset(epoch: Epoch, lastSentSeq: number): void {
    assertCount('epoch', epoch);
    assertCount('lastSentSeq', lastSentSeq);
    // What the abandoned epoch published stays in the stream; the receivers fence it by epoch.
    this.epoch = epoch;
    this.lastSeq = lastSentSeq;
    this.failed = undefined;
  }

  get stats(): OutboundStats {
    return { published: this.counts.published - this.counts.barriers, envelopesPublished: this.counts.published, queued: this.inFlight, creditWaitMs: 0, creditsReceived: 0, malformedCredits: 0 };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
  }

  private fail(detail: string): void {
    if (this.failed === undefined) this.log.error({ detail }, 'log channel failed: later sends are refused until a restore');
    this.failed = detail;
  }
}

class LogInbound implements InboundChannel, LogInboundPosition {
  readonly id: ChannelId;
  readonly logPosition: LogInboundPosition = this;
  private readonly logger: Logger;
  private readonly offsets: LogOffsets;
  private readonly counts = { received: 0, malformed: 0, misrouted: 0 };
  private messages: ConsumerMessages | undefined;
  /** The consumer's current run: a restart stops it, and what it read goes stale (see LogMessageItem). */
  private run = { stopped: false, handedOffset: 0, delivered: 0 };
  private consumer: LogConsumer | undefined;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly o: LogInboundOptions,
  ) {
    this.id = o.channel;
    assertCount('epoch', o.epoch);
    this.offsets = new LogOffsets(o.deliveredSeq ?? 0, o.fromOffset ?? 0);
    this.logger = (o.logger ?? pino({ level: 'silent' })).child({ channel: o.channel, stream: o.log.stream });
  }

  async start(): Promise<void> {
    await this.consumeFrom(this.o.fromOffset ?? 0);
  }

  /**
   * Starts a consumer of the channel's subject right after stream sequence `offset`
   * (adapters/log-consumer.ts). A message lost between the server and this client leaves a hole in
   * the consumer's delivery sequence: the consumer is then started again after the last message
   * handed on, as nats.js's ordered consumers do.
   */
  private async consumeFrom(offset: number): Promise<void> {
    this.run.stopped = true;
    const run = { stopped: false, handedOffset: offset, delivered: 0 };
    this.run = run;
    const made = await logConsumer(this.nc, this.o.log.stream, this.o.log.subject, offset);
    if (run.stopped || this.closed) return made.remove();
    const messages = await made.consumer.consume({
      callback: (m) => {
        if (run.stopped) return;
        if (m.info.deliverySequence !== run.delivered + 1) {
          this.logger.warn({ expected: run.delivered + 1, got: m.info.deliverySequence, offset: run.handedOffset }, 'stream consumer skipped a message: starting it again');
          this.restart(run.handedOffset);
          return;
        }
        run.delivered = m.info.deliverySequence;
        run.handedOffset = m.seq;
        this.onMessage(m, run);
      },
    });
    this.consumer = made;
    this.messages = messages;
    if (run.stopped || this.closed) this.stopConsumer();
  }

  private stopConsumer(): void {
    this.messages?.stop();
    void this.consumer?.remove();
    this.messages = undefined;
    this.consumer = undefined;
  }

  /** Stops the consumer and starts another right after stream sequence `offset`. */
  private restart(offset: number): void {
    this.run.stopped = true;
    this.stopConsumer();
    this.consumeFrom(offset).catch((error: unknown) => this.logger.error({ err: error, offset }, 'could not start the stream consumer again'));
  }

  private onMessage(m: JsMsg, run: { readonly stopped: boolean }): void {
    const h = m.headers;
    const channel = h?.get(LOG_HEADERS.channel) ?? '';
    if (channel !== this.id) {
      this.counts.misrouted += 1;
      this.logger.warn({ named: channel, offset: m.seq }, 'stream message of another channel (or of no channel) skipped');
      return;
    }
    const epoch = count(h?.get(LOG_HEADERS.epoch));
    const barrier = h?.get(LOG_HEADERS.barrier) ?? '';
    const seq = count(barrier === '' ? h?.get(LOG_HEADERS.seq) : h?.get(LOG_HEADERS.afterSeq));
    const checkpointId = barrier === '' ? 0 : count(barrier);
    if (epoch === undefined || seq === undefined || checkpointId === undefined || (barrier === '' && seq < 1)) {
      this.counts.malformed += 1;
      this.logger.warn({ offset: m.seq }, 'stream record with bad Snap-* headers skipped');
      return;
    }
    this.counts.received += 1;
    if (barrier !== '') this.hand({ type: 'barrier', channel: this.id, epoch, afterSeq: seq, checkpointId });
    else this.hand({ type: 'message', channel: this.id, epoch, seq, payload: m.data, offset: m.seq, run });
  }

  private hand(item: InboundItem): void {
    try {
      this.o.onEnvelope(item);
    } catch (error) {
      this.logger.error({ err: error }, 'onEnvelope threw: a bug in the endpoint');
    }
  }

  offer(seq: number, offset: number): void {
    this.offsets.offer(seq, offset);
  }

  settle(accepted: boolean): void {
    this.offsets.settle(accepted);
  }

  offsetOf(seq: number): number | undefined {
    return this.offsets.offsetOf(seq);
  }

  consumed(seq: number): void {
    this.offsets.consumed(seq);
  }

  reset(epoch: Epoch, deliveredSeq: number): void {
    // Without a stream position only the core's position moves: the consumer goes on where it is.
    assertCount('epoch', epoch);
    this.offsets.reset(deliveredSeq, this.offsets.offsetOf(deliveredSeq) ?? 0);
  }

  resetAt(epoch: Epoch, deliveredSeq: number, offset: number): void {
    assertCount('epoch', epoch);
    assertCount('offset', offset);
    this.offsets.reset(deliveredSeq, offset);
    this.restart(offset);
  }

  get stats(): InboundStats {
    return { received: this.counts.received, malformed: this.counts.malformed, misrouted: this.counts.misrouted, creditsSent: 0 };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.run.stopped = true;
    const messages = this.messages;
    const consumer = this.consumer;
    this.messages = undefined;
    this.consumer = undefined;
    messages?.stop();
    await messages?.closed().catch(() => undefined);
    await consumer?.remove();
  }
}

