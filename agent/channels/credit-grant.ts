/**
 * The receiver's half of the credit protocol, without I/O: what has been consumed, what was last
 * granted, and when a new grant is worth a message. The shell (./inbound.ts) publishes `credit()`
 * when this says so, on open, after a reset, and on its refresh timer.
 *
 * Credits are cumulative (`receivedSeq + window` is an absolute limit, not an increment), so a lost
 * or repeated credit does no harm: the next one carries the whole truth.
 */
import type { ChannelId, Epoch } from '../../src/ids.js';
import type { Credit } from '../../src/wire/index.js';
import { assertCount } from './config.js';

/**
 * - `grant`: consumption moved at least half a window, or half the sender's bytes cap
 *   (`inFlightBytesMax`, the receiver's own setting: both ends of a channel are meant to share
 *   their limits), past the last credit: publish one now, so the sender never drains its window or
 *   its cap while a credit could have been on its way;
 * - `caught-up`: everything that arrived is consumed, short of those halves but at least
 *   `idleCreditBytesMin` of it not yet granted: a sender whose own cap is smaller than this end's
 *   may be waiting, so a credit is due once nothing more arrives right away (`owesIdleCredit`);
 * - `hold`: progress recorded; the next grant or refresh carries it. A trickle of small messages is
 *   credited by the refresh only (not every one: see the inbound channel's `refresh`): the sender
 *   is nowhere near its window or cap, and a credit for each message would double the channel's
 *   traffic (docs/channels.md);
 * - `not-advanced`: `seq` is not beyond what was already consumed (a repeat); nothing changes.
 */
export type ConsumeOutcome = 'grant' | 'caught-up' | 'hold' | 'not-advanced';

/**
 * The least not-yet-granted consumption, in bytes, that earns a catch-up credit: below what a
 * sender's cap lets be in flight when it blocks (a sender that blocks with less in flight waits for
 * the refresh), far above what a trickle of small messages adds up to between two refreshes.
 */
export const IDLE_CREDIT_BYTES_MIN = 16 * 1024;

export class CreditGrant {
  private currentEpoch: Epoch;
  private consumedSeq: number;
  /** receivedSeq of the last credit handed out. */
  private grantedSeq: number;
  /** The highest seq of this epoch that arrived (consumed or not). */
  private arrivedSeq: number;
  /** Consumption that makes a credit worth sending before the refresh timer fires. */
  readonly grantStepMessages: number;
  readonly grantStepBytes: number;
  readonly idleCreditBytesMin: number;
  /**
   * Bytes of every message of this epoch that arrived (a running total), and the totals at each
   * arrived, unconsumed message, oldest first: consuming up to a seq reads its total off the front.
   */
  private arrivedBytes = 0;
  private consumedBytes = 0;
  private grantedBytes = 0;
  private pendingSeqs: number[] = [];
  private pendingTotals: number[] = [];
  private pendingHead = 0;

  constructor(
    readonly channel: ChannelId,
    epoch: Epoch,
    consumedSeq: number,
    readonly windowMessages: number,
    inFlightBytesMax: number = Number.MAX_SAFE_INTEGER,
  ) {
    assertCount('epoch', epoch);
    assertCount('consumedSeq', consumedSeq);
    if (!Number.isSafeInteger(windowMessages) || windowMessages <= 0) {
      throw new RangeError(`windowMessages must be a positive integer, got ${String(windowMessages)}`);
    }
    this.currentEpoch = epoch;
    this.consumedSeq = consumedSeq;
    this.grantedSeq = consumedSeq;
    this.arrivedSeq = consumedSeq;
    if (!Number.isSafeInteger(inFlightBytesMax) || inFlightBytesMax <= 0) {
      throw new RangeError(`inFlightBytesMax must be a positive integer, got ${String(inFlightBytesMax)}`);
    }
    this.grantStepMessages = Math.max(1, Math.ceil(windowMessages / 2));
    this.grantStepBytes = Math.max(1, Math.ceil(inFlightBytesMax / 2));
    this.idleCreditBytesMin = Math.min(IDLE_CREDIT_BYTES_MIN, this.grantStepBytes);
  }

  get epoch(): Epoch {
    return this.currentEpoch;
  }

  get consumed(): number {
    return this.consumedSeq;
  }

  /** The highest seq of this epoch that arrived, consumed or not. */
  get lastArrived(): number {
    return this.arrivedSeq;
  }

  /**
   * An envelope of this epoch arrived: a message `seq` of about `bytes` on the wire, or a barrier
   * after message `seq` (no bytes).
   */
  arrived(seq: number, bytes = 0): void {
    if (seq <= this.arrivedSeq) return;
    this.arrivedSeq = seq;
    if (bytes <= 0) return;
    this.arrivedBytes += bytes;
    this.pendingSeqs.push(seq);
    this.pendingTotals.push(this.arrivedBytes);
  }

  consume(seq: number): ConsumeOutcome {
    assertCount('seq', seq);
    if (seq <= this.consumedSeq) return 'not-advanced';
    this.consumedSeq = seq;
    this.consumeBytesThrough(seq);
    const ungrantedBytes = this.consumedBytes - this.grantedBytes;
    if (seq - this.grantedSeq >= this.grantStepMessages || ungrantedBytes >= this.grantStepBytes) return 'grant';
    return seq >= this.arrivedSeq && ungrantedBytes >= this.idleCreditBytesMin ? 'caught-up' : 'hold';
  }

  private consumeBytesThrough(seq: number): void {
    let head = this.pendingHead;
    while (head < this.pendingSeqs.length && (this.pendingSeqs[head] as number) <= seq) {
      this.consumedBytes = this.pendingTotals[head] as number;
      head += 1;
    }
    if (head === this.pendingSeqs.length) {
      this.pendingSeqs.length = 0;
      this.pendingTotals.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > this.pendingSeqs.length) {
      this.pendingSeqs = this.pendingSeqs.slice(head);
      this.pendingTotals = this.pendingTotals.slice(head);
      head = 0;
    }
    this.pendingHead = head;
  }

  /**
   * The last seq any credit of this epoch allowed: an honest sender never sends a message beyond it,
   * nor a barrier after one (an overtaking barrier aside: it names queued messages not yet sent).
   */
  get creditLimit(): number {
    return this.grantedSeq + this.windowMessages;
  }

  /** Everything that arrived is consumed and enough of it not granted that the sender may be waiting. */
  get owesIdleCredit(): boolean {
    return this.consumedSeq >= this.arrivedSeq && this.consumedSeq > this.grantedSeq && this.consumedBytes - this.grantedBytes >= this.idleCreditBytesMin;
  }

  /** The credit to publish now; it records that this much has been granted. `resendFrom`: see Credit. */
  credit(resendFrom?: number): Credit {
    this.grantedSeq = this.consumedSeq;
    this.grantedBytes = this.consumedBytes;
    const credit: Credit = { channel: this.channel, epoch: this.currentEpoch, receivedSeq: this.consumedSeq, window: this.windowMessages };
    return resendFrom === undefined ? credit : { ...credit, resendFrom };
  }

  /** After a restore: a new epoch whose consumption restarts after `consumedSeq`. */
  reset(epoch: Epoch, consumedSeq: number): void {
    assertCount('epoch', epoch);
    assertCount('consumedSeq', consumedSeq);
    if (epoch < this.currentEpoch) {
      throw new RangeError(`reset to epoch ${epoch} is behind the current epoch ${this.currentEpoch}`);
    }
    this.currentEpoch = epoch;
    this.consumedSeq = consumedSeq;
    this.grantedSeq = consumedSeq;
    this.arrivedSeq = consumedSeq;
    this.arrivedBytes = 0;
    this.consumedBytes = 0;
    this.grantedBytes = 0;
    this.pendingSeqs.length = 0;
    this.pendingTotals.length = 0;
    this.pendingHead = 0;
  }
}
