/**
 * The in-band data channel over core NATS. Core NATS delivers at most once and keeps order only per
 * publishing connection and subject, so the transport adds what the snapshot core needs to trust a
 * channel: one publishing connection per channel end, the core's per-channel sequence numbers in
 * every envelope, credit-based flow control (the receiver grants a window, so a slow consumer holds
 * the sender back instead of being cut off by the server), the repair of what a broker fault lost
 * (the sender keeps what is not yet consumed and resends it when the receiver asks), and loss
 * detection left to the core for a gap that cannot be repaired (it fails the channel loudly).
 */
import type { ChannelId, CheckpointId, Epoch } from '../../src/ids.js';
import type { ChannelItem } from '../../src/wire/index.js';

export interface OutboundChannel {
  readonly id: ChannelId;
  /**
   * Queues a message; envelopes leave in the order they were queued. A message waits until the
   * receiver's credit covers its seq. Resolves when published; rejects with AppSendError('queue-full')
   * when `outboundQueueMessagesMax` messages already wait, or 'closed'.
   */
  sendMessage(seq: number, epoch: Epoch, payload: Uint8Array): Promise<void>;
  /** Queues a barrier behind every message queued before it; barriers need no credit. */
  /** `overtake`: an unaligned checkpoint's barrier, sent ahead of messages waiting for credit. */
  sendBarrier(checkpointId: CheckpointId, epoch: Epoch, afterSeq: number, overtake?: boolean): Promise<void>;
  /** After a restore: drop what is queued, move to the new epoch, continue after `lastSentSeq`. */
  reset(epoch: Epoch, lastSentSeq: number): void;
  readonly stats: OutboundStats;
  close(): Promise<void>;
}

export interface OutboundStats {
  readonly published: number;
  /** NATS messages those went out in: a run of messages is one. */
  readonly envelopesPublished: number;
  readonly queued: number;
  /** Time spent with a message waiting for credit, in ms. */
  readonly creditWaitMs: number;
  readonly creditsReceived: number;
  readonly malformedCredits: number;
}

export interface InboundChannel {
  readonly id: ChannelId;
  /** The app consumed every message up to `seq`: grant credit up to seq + window. */
  consumed(seq: number): void;
  /** After a restore: new epoch, credit restarts after `deliveredSeq`. */
  reset(epoch: Epoch, deliveredSeq: number): void;
  readonly stats: InboundStats;
  close(): Promise<void>;
  /** Present on a log channel's receiving end (./log.ts): its position in the stream. */
  readonly logPosition?: LogInboundPosition;
}

/** What the endpoint tells a log input's receiving end, and asks it, about stream positions. */
export interface LogInboundPosition {
  /** Message `seq`, found at stream sequence `offset`, goes to the core now (see LogOffsets). */
  offer(seq: number, offset: number): void;
  /** Whether the core took the message offered last. */
  settle(accepted: boolean): void;
  /** The stream sequence of message `seq` (the last consumed, or one accepted since); undefined if unknown. */
  offsetOf(seq: number): number | undefined;
  /** After a restore: new epoch; the consumer restarts right after stream sequence `offset` (message `deliveredSeq`). */
  resetAt(epoch: Epoch, deliveredSeq: number, offset: number): void;
}

/** A log channel: the JetStream stream and the subject in it that carry its messages. */
export interface LogChannelConfig {
  readonly stream: string;
  readonly subject: string;
}

export interface InboundStats {
  readonly received: number;
  /** Envelopes that did not decode or validate: dropped, counted, logged. */
  readonly malformed: number;
  /** Envelopes for another channel id than the subject's. */
  readonly misrouted: number;
  readonly creditsSent: number;
}

/**
 * A log channel's message as its receiving end hands it on: where it is in the stream (`offset`, the
 * stream sequence) and which run of the stream consumer read it. A restore restarts the consumer;
 * what the run before read and the endpoint has not fed yet is stale, and dropped.
 */
export type LogMessageItem = Extract<ChannelItem, { readonly type: 'message' }> & {
  readonly offset: number;
  readonly run: { readonly stopped: boolean };
};

export type InboundItem = ChannelItem | LogMessageItem;

/** Called for every envelope that decodes and validates, in arrival order. */
export type EnvelopeHandler = (envelope: InboundItem) => void;

export interface ChannelLimits {
  /** Messages the receiver lets the sender have in flight beyond what it consumed. */
  readonly creditWindowMessages: number;
  /**
   * Bytes the sender lets be in flight (sent, not yet consumed), whatever the window: keeps large
   * messages well below nats-server's per-client pending limit (64 MiB), past which the server cuts
   * a slow consumer off. One message larger than this still goes once nothing else is in flight.
   */
  readonly inFlightBytesMax: number;
  /** Messages an outbound channel queues (waiting for credit) before sends are refused. */
  readonly outboundQueueMessagesMax: number;
  /** How often the receiver repeats its credit (credits are cumulative, so a lost one is repaired). */
  readonly creditRefreshMs: number;
  /**
   * How long the receiver waits, from the moment it sees a gap, for a resend to close it before it
   * passes the gap on and the channel fails. The gap is seen only once later messages get through,
   * so both ends are connected again by then: the wait covers a resend request and the answer.
   */
  readonly gapRepairMs: number;
  /**
   * An unaligned checkpoint's barrier overtakes the sender's queued messages only while they take
   * at most this many bytes; behind a larger backlog it keeps its FIFO place. What it overtakes
   * becomes channel state, which the receiver keeps in memory and stores with its ack: past some
   * size that costs more than the wait for the backlog to drain.
   */
  readonly overtakeQueuedBytesMax: number;
}

export const CHANNEL_LIMITS_DEFAULT: ChannelLimits = {
  // 1024 rather than 256: with 1 KiB messages a window of 256 left the sender waiting for credit
  // (docs/BENCHMARKS.md, channel, +35 %); inFlightBytesMax bounds what large messages may pile up.
  creditWindowMessages: 1024,
  inFlightBytesMax: 8 * 1024 * 1024,
  outboundQueueMessagesMax: 10_000,
  creditRefreshMs: 1_000,
  gapRepairMs: 3_000,
  // 1 MiB: a fast consumer drains that in milliseconds, while a backlog of 57 MB (64 KiB messages,
  // a producer 1,000 sends ahead) recorded as channel state made a checkpoint take 8.3 s instead of
  // 0.31 s behind it (docs/channels.md, *Barriers that overtake*).
  overtakeQueuedBytesMax: 1024 * 1024,
};
