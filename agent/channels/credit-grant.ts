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
 * - `grant`: consumption moved at least half a window past the last credit: publish one now, so the
 *   sender never drains its window while a credit could have been on its way;
 * - `caught-up`: everything that arrived is consumed, less than half a window since the last credit:
 *   the sender may be waiting for a reason of its own (its cap on bytes in flight, with large
 *   messages, is reached long before half the window), so a credit is due once nothing more arrives
 *   right away (`owesIdleCredit`);
 * - `hold`: progress recorded; the next grant or refresh carries it;
 * - `not-advanced`: `seq` is not beyond what was already consumed (a repeat); nothing changes.
 */
export type ConsumeOutcome = 'grant' | 'caught-up' | 'hold' | 'not-advanced';

export class CreditGrant {
  private currentEpoch: Epoch;
  private consumedSeq: number;
  /** receivedSeq of the last credit handed out. */
  private grantedSeq: number;
  /** The highest seq of this epoch that arrived (consumed or not). */
  private arrivedSeq: number;
  /** Consumption that makes a credit worth sending before the refresh timer fires. */
  readonly grantStepMessages: number;

  constructor(
    readonly channel: ChannelId,
    epoch: Epoch,
    consumedSeq: number,
    readonly windowMessages: number,
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
    this.grantStepMessages = Math.max(1, Math.ceil(windowMessages / 2));
  }

  get epoch(): Epoch {
    return this.currentEpoch;
  }

  get consumed(): number {
    return this.consumedSeq;
  }

  /** An envelope of this epoch arrived: a message `seq`, or a barrier after message `seq`. */
  arrived(seq: number): void {
    if (seq > this.arrivedSeq) this.arrivedSeq = seq;
  }

  consume(seq: number): ConsumeOutcome {
    assertCount('seq', seq);
    if (seq <= this.consumedSeq) return 'not-advanced';
    this.consumedSeq = seq;
    if (seq - this.grantedSeq >= this.grantStepMessages) return 'grant';
    return seq >= this.arrivedSeq ? 'caught-up' : 'hold';
  }

  /**
   * The last seq any credit of this epoch allowed: an honest sender never sends a message beyond it,
   * nor a barrier after one (an overtaking barrier aside: it names queued messages not yet sent).
   */
  get creditLimit(): number {
    return this.grantedSeq + this.windowMessages;
  }

  /** Everything that arrived is consumed and not all of it granted: the sender may be waiting. */
  get owesIdleCredit(): boolean {
    return this.consumedSeq >= this.arrivedSeq && this.consumedSeq > this.grantedSeq;
  }

  /** The credit to publish now; it records that this much has been granted. `resendFrom`: see Credit. */
  credit(resendFrom?: number): Credit {
    this.grantedSeq = this.consumedSeq;
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
  }
}
