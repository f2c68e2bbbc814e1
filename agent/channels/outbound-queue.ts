/**
 * The sender's half of the credit protocol, without I/O: one FIFO queue of envelopes and the latest
 * credit of the current epoch. The shell (./outbound.ts) feeds it sends, credits and resets with the
 * current monotonic time, and publishes exactly what `takeReady` hands back, in that order.
 *
 * Rules (docs/channels.md):
 * - nothing leaves before the first credit of the current epoch, so a restarted receiver is never
 *   flooded with what was queued for its predecessor;
 * - a message leaves only when `seq <= receivedSeq + window` of the credits taken, and when the
 *   bytes already sent and not yet consumed (seq above the credit's receivedSeq) leave room for it
 *   under `inFlightBytesMax`; a message larger than that cap still leaves once nothing is in flight.
 *   The window counts messages; the cap keeps large messages from piling up in the server beyond
 *   its per-client pending limit (a slow consumer is cut off there);
 * - a barrier needs no credit of its own and, as a rule, never overtakes a queued message: FIFO
 *   order is what puts a barrier exactly at its cut position. The exception is the barrier of an
 *   unaligned checkpoint, which may go ahead of messages waiting for credit (`ahead`): it carries
 *   the seq of the last message before it, and the receiver records those messages as the
 *   channel's state when they come (Flink's unaligned checkpoints); it still waits for the first
 *   credit of the epoch like everything else;
 * - the limit only moves forward: credits travel on one subject from one connection, so they
 *   arrive in order, and a receiver's consumed seq only grows, so a credit behind the last one, or
 *   beyond the last message sent, is corrupted or forged and is refused (`behind`, `beyond-sent`);
 * - what was sent is kept, in send order, until the receiver has consumed past it (a message: its
 *   seq; a barrier: the message after it), so a credit that asks for a resend from some seq is
 *   answered with the same items again (`retransmitFrom`). That is bounded by what the credit
 *   window and `inFlightBytesMax` already let be in flight.
 */
import type { ChannelId, Epoch } from '../../src/ids.js';
import type { Credit } from '../../src/wire/index.js';
import { assertCount } from './config.js';

export type QueuedEntry<T> =
  | { readonly kind: 'message'; readonly seq: number; readonly bytes: number; readonly item: T }
  | { readonly kind: 'barrier'; readonly afterSeq: number; readonly item: T };

/** Something sent and kept for a resend until the receiver consumed `releasedBy`. */
interface Sent<T> {
  readonly item: T;
  /** A message's seq; a barrier's afterSeq + 1 (consuming the message after it proves it came). */
  readonly releasedBy: number;
  /** Undefined for a barrier. */
  readonly seq: number | undefined;
}

/**
 * - `accepted`: a credit of the current epoch, now the one in force.
 * - `other-channel`: meant for another channel (misrouted); ignored.
 * - `stale-epoch`: from before the last reset (the abandoned run); ignored.
 * - `future-epoch`: the receiver was reset first; kept and applied when this sender is reset to that
 *   epoch, so a restore does not wait a whole refresh period for the next credit.
 */
export type CreditOutcome = 'accepted' | 'other-channel' | 'stale-epoch' | 'future-epoch' | 'behind' | 'beyond-sent';

export type EnqueueOutcome = 'queued' | 'queue-full';

/** A FIFO whose removals from the front stay O(1) on long queues; memory follows its length. */
class Fifo<E> {
  private items: E[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: E): void {
    this.items.push(item);
  }

  peek(): E | undefined {
    return this.items[this.head];
  }

  shift(): E | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.head += 1;
    // Compact once the consumed prefix dominates.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** What is in it, oldest first. */
  all(): E[] {
    return this.items.slice(this.head);
  }

  /** Empties it; returns what was in it, oldest first. */
  clear(): E[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return all;
  }
}

export class OutboundQueue<T> {
  private readonly entries = new Fifo<QueuedEntry<T>>();
  /** Barriers that go ahead of the queued messages, in the order they came. */
  private readonly ahead = new Fifo<QueuedEntry<T>>();
  private messagesQueued = 0;
  private messagesQueuedBytes = 0;
  private currentEpoch: Epoch;
  /** Highest seq that may be sent; undefined until a credit of the current epoch arrived. */
  private sendLimitSeq: number | undefined;
  /** The receivedSeq of the last credit taken in this epoch. */
  private creditReceivedSeq = 0;
  /** The latest credit of a later epoch than ours (see `future-epoch`). */
  private earlyCredit: Credit | undefined;
  private waitedMs = 0;
  /** When the head became blocked for lack of credit; undefined while it is not blocked. */
  private blockedSinceMs: number | undefined;
  /** Messages sent and not yet reported consumed, oldest first, with their sizes. */
  private readonly inFlight = new Fifo<{ readonly seq: number; readonly bytes: number }>();
  private inFlightBytesNow = 0;
  /** Everything sent and possibly not yet arrived, in send order (see `retransmitFrom`). */
  private readonly sent = new Fifo<Sent<T>>();
  /** The highest message seq taken to be sent in this epoch. */
  private sentSeqMax = 0;

  constructor(
    readonly channel: ChannelId,
    epoch: Epoch,
    /** Messages (not barriers) that may wait at once; more are refused. */
    readonly queueMessagesMax: number,
    /** Bytes of messages sent and not yet consumed that may be outstanding at once. */
    readonly inFlightBytesMax: number = Number.MAX_SAFE_INTEGER,
    /** The last seq sent before this queue (the channel's count at open): credits cannot be beyond it yet. */
    sentSeq = 0,
  ) {
    assertCount('epoch', epoch);
    if (!Number.isSafeInteger(queueMessagesMax) || queueMessagesMax <= 0) {
      throw new RangeError(`queueMessagesMax must be a positive integer, got ${String(queueMessagesMax)}`);
    }
    if (!Number.isSafeInteger(inFlightBytesMax) || inFlightBytesMax <= 0) {
      throw new RangeError(`inFlightBytesMax must be a positive integer, got ${String(inFlightBytesMax)}`);
    }
    assertCount('sentSeq', sentSeq);
    this.currentEpoch = epoch;
    this.sentSeqMax = sentSeq;
  }

  get epoch(): Epoch {
    return this.currentEpoch;
  }

  /** Messages waiting (barriers are not counted: they are bounded by the checkpoints in flight). */
  get queuedMessages(): number {
    return this.messagesQueued;
  }

  /** Bytes of the messages waiting (the sizes given to `enqueueMessage`). */
  get queuedBytes(): number {
    return this.messagesQueuedBytes;
  }

  /** Entries waiting, messages and barriers. */
  get length(): number {
    return this.entries.length + this.ahead.length;
  }

  /** Bytes sent and not yet reported consumed. */
  get inFlightBytes(): number {
    return this.inFlightBytesNow;
  }

  /** The highest seq the credits taken allow, or undefined before the first credit of the epoch. */
  get creditLimitSeq(): number | undefined {
    return this.sendLimitSeq;
  }

  /**
   * Queues a message. Barriers are never refused: refusing one would fail a checkpoint for a reason
   * that has nothing to do with it, and there are at most as many as checkpoints in flight.
   */
  enqueueMessage(seq: number, item: T, nowMs: number, bytes = 0): EnqueueOutcome {
    assertCount('seq', seq);
    assertCount('bytes', bytes);
    if (this.messagesQueued >= this.queueMessagesMax) return 'queue-full';
    this.entries.push({ kind: 'message', seq, bytes, item });
    this.messagesQueued += 1;
    this.messagesQueuedBytes += bytes;
    this.updateWait(nowMs);
    return 'queued';
  }

  /**
   * `afterSeq`: the seq of the message the barrier follows. `ahead`: the barrier goes out before
   * the messages queued now (see the rules above).
   */
  enqueueBarrier(item: T, nowMs: number, ahead = false, afterSeq = 0): void {
    assertCount('afterSeq', afterSeq);
    if (ahead) this.ahead.push({ kind: 'barrier', afterSeq, item });
    else this.entries.push({ kind: 'barrier', afterSeq, item });
    this.updateWait(nowMs);
  }

  applyCredit(credit: Credit, nowMs: number): CreditOutcome {
    if (credit.channel !== this.channel) return 'other-channel';
    if (credit.epoch < this.currentEpoch) return 'stale-epoch';
    if (credit.epoch > this.currentEpoch) {
      this.earlyCredit = credit;
      return 'future-epoch';
    }
    // A receiver's credits only move forward within an epoch (what it consumed never shrinks), so a
    // credit behind the last one is a corrupted or forged copy: taken, it would lower the limit and
    // stall this sender with nothing in flight to earn the next credit.
    if (credit.receivedSeq < this.creditReceivedSeq) return 'behind';
    // Nor can a receiver have consumed what was never sent: taken, such a credit would let go of the
    // messages kept for a resend and put every true credit behind it.
    if (credit.receivedSeq > this.sentSeqMax) return 'beyond-sent';
    this.creditReceivedSeq = credit.receivedSeq;
    this.sendLimitSeq = Math.max(this.sendLimitSeq ?? 0, credit.receivedSeq + credit.window);
    this.releaseConsumed(credit.receivedSeq);
    this.updateWait(nowMs);
    return 'accepted';
  }

  /** Removes and returns, in queue order, every entry the credit in force lets go now. */
  takeReady(nowMs: number): T[] {
    const ready: T[] = [];
    if (this.sendLimitSeq !== undefined) {
      for (let b = this.ahead.shift(); b !== undefined; b = this.ahead.shift()) {
        this.keepSent(b);
        ready.push(b.item);
      }
    }
    for (;;) {
      const entry = this.peek();
      if (entry === undefined || !this.mayLeave(entry)) break;
      this.removeHead();
      if (entry.kind === 'message') {
        this.inFlight.push({ seq: entry.seq, bytes: entry.bytes });
        this.inFlightBytesNow += entry.bytes;
      }
      this.keepSent(entry);
      ready.push(entry.item);
    }
    this.updateWait(nowMs);
    return ready;
  }

  /**
   * After a restore: everything queued belongs to the abandoned run and is returned to be dropped;
   * the queue waits for a credit of `epoch` (one that arrived early is applied at once).
   */
  reset(epoch: Epoch, nowMs: number, sentSeq = 0): T[] {
    assertCount('epoch', epoch);
    assertCount('sentSeq', sentSeq);
    if (epoch < this.currentEpoch) {
      throw new RangeError(`reset to epoch ${epoch} is behind the current epoch ${this.currentEpoch}`);
    }
    const dropped = this.removeAll();
    this.currentEpoch = epoch;
    this.sendLimitSeq = undefined;
    this.creditReceivedSeq = 0;
    // The receiver of the new epoch starts afresh: nothing of the old one counts as in flight.
    this.inFlight.clear();
    this.inFlightBytesNow = 0;
    this.sent.clear();
    this.sentSeqMax = sentSeq;
    const early = this.earlyCredit;
    if (early !== undefined && early.epoch <= epoch) {
      this.earlyCredit = undefined;
      if (early.epoch === epoch && early.receivedSeq <= sentSeq) {
        this.sendLimitSeq = early.receivedSeq + early.window;
        this.creditReceivedSeq = early.receivedSeq;
      }
    }
    this.updateWait(nowMs);
    return dropped;
  }

  /** Empties the queue (close); returns what was waiting. */
  removeAll(): T[] {
    const all = this.ahead.clear().concat(this.entries.clear()).map((entry) => entry.item);
    this.messagesQueued = 0;
    this.messagesQueuedBytes = 0;
    return all;
  }

  /** Total time the head of the queue has waited for credit, including a wait still going on. */
  creditWaitMs(nowMs: number): number {
    return this.waitedMs + (this.blockedSinceMs === undefined ? 0 : Math.max(0, nowMs - this.blockedSinceMs));
  }

  private mayLeave(entry: QueuedEntry<T>): boolean {
    if (this.sendLimitSeq === undefined) return false;
    if (entry.kind === 'barrier') return true;
    if (entry.seq > this.sendLimitSeq) return false;
    return this.inFlightBytesNow === 0 || this.inFlightBytesNow + entry.bytes <= this.inFlightBytesMax;
  }

  /**
   * What to publish again for a receiver that misses messages from `fromSeq` on: every kept message
   * from that seq and every kept barrier that follows message fromSeq - 1 or later, in the order
   * they were sent (the receiver drops what it already has). Past the last message sent that is
   * only the barriers after it (lost at the tail, they would leave a checkpoint waiting); undefined
   * when message `fromSeq` was sent but is no longer kept (or was never sent: refused after the
   * core numbered it), so the gap cannot be repaired from here.
   */
  retransmitFrom(fromSeq: number): T[] | undefined {
    assertCount('fromSeq', fromSeq);
    const kept = this.sent.all();
    if (fromSeq <= this.sentSeqMax && !kept.some((s) => s.seq === fromSeq)) return undefined;
    return kept.filter((s) => (s.seq === undefined ? s.releasedBy >= fromSeq : s.seq >= fromSeq)).map((s) => s.item);
  }

  /** Everything kept for a resend, in send order: what a reconnected sender publishes again. */
  retransmitAll(): T[] {
    return this.sent.all().map((s) => s.item);
  }

  /** Items kept for a resend. */
  get keptForResend(): number {
    return this.sent.length;
  }

  private keepSent(entry: QueuedEntry<T>): void {
    if (entry.kind === 'message') {
      this.sent.push({ item: entry.item, releasedBy: entry.seq, seq: entry.seq });
      if (entry.seq > this.sentSeqMax) this.sentSeqMax = entry.seq;
    } else {
      this.sent.push({ item: entry.item, releasedBy: entry.afterSeq + 1, seq: undefined });
    }
  }

  /** Forgets the messages the receiver has consumed (seq up to `consumedSeq`). */
  private releaseConsumed(consumedSeq: number): void {
    // Front first: an overtaking barrier (released late) keeps what was sent behind it a little longer.
    for (let oldest = this.sent.peek(); oldest !== undefined && oldest.releasedBy <= consumedSeq; oldest = this.sent.peek()) this.sent.shift();
    for (let oldest = this.inFlight.peek(); oldest !== undefined && oldest.seq <= consumedSeq; oldest = this.inFlight.peek()) {
      this.inFlightBytesNow -= oldest.bytes;
      this.inFlight.shift();
    }
  }

  private peek(): QueuedEntry<T> | undefined {
    return this.entries.peek();
  }

  private removeHead(): void {
    const entry = this.entries.shift();
    if (entry?.kind === 'message') {
      this.messagesQueued -= 1;
      this.messagesQueuedBytes -= entry.bytes;
    }
  }

  private updateWait(nowMs: number): void {
    const head = this.peek();
    const blocked = head !== undefined && !this.mayLeave(head);
    if (blocked && this.blockedSinceMs === undefined) {
      this.blockedSinceMs = nowMs;
    } else if (!blocked && this.blockedSinceMs !== undefined) {
      this.waitedMs += Math.max(0, nowMs - this.blockedSinceMs);
      this.blockedSinceMs = undefined;
    }
  }
}
