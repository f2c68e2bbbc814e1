/**
 * The receiver's repair of lost messages, without I/O. Core NATS drops what a broker restart or a
 * lost node had in flight; the sender keeps what it sent until it is consumed (./outbound-queue.ts),
 * so a gap can be repaired instead of failing the channel. The shell (./inbound.ts) feeds every item
 * of the current epoch through `accept` and hands the core what comes back, in that order.
 *
 * Rules (docs/channels.md, *Broker faults*):
 * - a message after a gap (seq beyond the next expected), or a barrier after one, is held, in its
 *   place, and a resend from the next expected seq is asked for (`requestFrom`); the resend brings
 *   the gap and, again, everything held behind it, in the original order, so the core sees no gap.
 *   What was held is not released when the gap fills but replaced by its resent copy: a barrier
 *   lost in the gap just before the first held message is in the resend, after the last missing
 *   message, and releasing the held messages at that point would hand it over behind them (seen
 *   with a cluster node killed under traffic). What is held stays only for `expire`;
 * - a message already handed over (seq below the next expected) is a duplicate (a resend racing the
 *   original) and is dropped, and so is a barrier whose checkpoint already went through, and a
 *   barrier placed behind an earlier barrier (no sender does that: it is counted as refused);
 * - a barrier flagged overtaking is handed over at once: it legitimately runs ahead of its messages,
 *   and the core holds it in its place itself;
 * - a gap that is not closed within `gapRepairMs` of its opening, or behind which more than
 *   `heldMessagesMax` messages pile up, is passed on as it is (`expire`): the core sees the gap and
 *   fails the channel loudly, as it would without this repair. A resend closes a real gap in one go
 *   (the sender republishes everything from the missing seq to its last), so the wait does not
 *   restart when part of it fills: a message that no sender sent (forged, or from a sender that
 *   restarted and forgot) is not waited for while ordinary traffic creeps up to it.
 */
import type { Epoch } from '../../src/ids.js';
import type { ChannelItem } from '../../src/wire/index.js';
import { assertCount } from './config.js';

/** Checkpoint ids of barriers remembered to drop repeats; a resend reaches back one window at most. */
const BARRIER_IDS_REMEMBERED = 256;

export interface Accepted {
  /** What to hand the core now, in order. */
  readonly deliver: ChannelItem[];
  /** Set when a gap opened with this item: ask the sender to resend from this seq. */
  readonly requestFrom?: number;
  /** Set when the item was dropped as one no honest sender sends. */
  readonly refused?: 'barrier-misordered';
}

export class InboundOrder {
  private currentEpoch: Epoch;
  /** The next message seq the core should get. */
  private expected: number;
  /** Items behind the gap, in channel order. */
  private held: ChannelItem[] = [];
  private heldMessages = 0;
  /** When the open gap opened; undefined while there is none. */
  private gapSinceMs: number | undefined;
  private readonly barrierIds = new Set<number>();
  /** The afterSeq of the last barrier handed over in this epoch. */
  private barrierAfterSeq = 0;
  private counts = { duplicates: 0, gapsRepaired: 0, gapsPassedOn: 0, barriersMisordered: 0 };

  constructor(
    epoch: Epoch,
    deliveredSeq: number,
    readonly gapRepairMs: number,
    readonly heldMessagesMax: number,
  ) {
    assertCount('epoch', epoch);
    assertCount('deliveredSeq', deliveredSeq);
    this.currentEpoch = epoch;
    this.expected = deliveredSeq + 1;
  }

  get epoch(): Epoch {
    return this.currentEpoch;
  }

  /** The next message seq the core should get: where a resend would start. */
  get nextSeq(): number {
    return this.expected;
  }

  /** The seq a resend should start from while a gap is open; undefined otherwise. */
  get gapFrom(): number | undefined {
    return this.gapSinceMs === undefined ? undefined : this.expected;
  }

  /** When the open gap is due to be passed on; undefined while there is none. */
  get gapDeadlineMs(): number | undefined {
    return this.gapSinceMs === undefined ? undefined : this.gapSinceMs + this.gapRepairMs;
  }

  get stats(): { readonly duplicates: number; readonly gapsRepaired: number; readonly gapsPassedOn: number; readonly barriersMisordered: number; readonly held: number } {
    return { ...this.counts, held: this.held.length };
  }

  /** An item of the current epoch arrived. */
  accept(item: ChannelItem, nowMs: number): Accepted {
    if (item.type === 'barrier') {
      if (this.barrierIds.has(item.checkpointId)) {
        this.counts.duplicates += 1;
        return { deliver: [] };
      }
      if (item.afterSeq < this.barrierAfterSeq) {
        // A sender's barriers follow one another with non-decreasing afterSeq (each sits behind the
        // last message sent when it left, overtaking or not): one behind an earlier barrier is
        // corrupted or forged. Dropped and counted; the core would fail the channel for it. (One
        // behind messages but not behind the last barrier still goes in: then a message the sender
        // did not send may have been taken, and the core fails the channel loudly, docs/channels.md.)
        this.counts.barriersMisordered += 1;
        return { deliver: [], refused: 'barrier-misordered' };
      }
      if (item.overtaking === true || item.afterSeq < this.expected) {
        this.rememberBarrier(item.checkpointId);
        this.barrierAfterSeq = item.afterSeq;
        this.forgetResent();
        return { deliver: [item] };
      }
    } else if (item.seq < this.expected) {
      this.counts.duplicates += 1;
      return { deliver: [] };
    } else if (item.seq === this.expected) {
      this.expected += 1;
      this.forgetResent();
      return { deliver: [item] };
    }
    return this.hold(item, nowMs);
  }

  /** Passes the gap on if it waited too long: returns what was held, for the core to fail on. */
  expire(nowMs: number): ChannelItem[] {
    const deadline = this.gapDeadlineMs;
    if (deadline === undefined || nowMs < deadline) return [];
    return this.passOn();
  }

  /** After a restore: a new epoch whose messages continue after `deliveredSeq`. */
  reset(epoch: Epoch, deliveredSeq: number): void {
    assertCount('epoch', epoch);
    assertCount('deliveredSeq', deliveredSeq);
    this.currentEpoch = epoch;
    this.expected = deliveredSeq + 1;
    this.held = [];
    this.heldMessages = 0;
    this.gapSinceMs = undefined;
    this.barrierIds.clear();
    this.barrierAfterSeq = 0;
  }

  private hold(item: ChannelItem, nowMs: number): Accepted {
    const key = positionOf(item);
    let at = this.held.length;
    while (at > 0 && positionOf(this.held[at - 1] as ChannelItem) > key) at -= 1;
    const before = this.held[at - 1];
    if (before !== undefined && positionOf(before) === key && sameItem(before, item)) {
      this.counts.duplicates += 1;
      return { deliver: [] };
    }
    this.held.splice(at, 0, item);
    if (item.type === 'message') this.heldMessages += 1;
    const opened = this.gapSinceMs === undefined;
    if (opened) this.gapSinceMs = nowMs;
    if (this.heldMessages > this.heldMessagesMax) return { deliver: this.passOn() };
    return opened ? { deliver: [], requestFrom: this.expected } : { deliver: [] };
  }

  /**
   * Drops held items that have now been handed over as their resent copies (held items are in
   * channel order, so from the front); the gap is repaired once nothing is held.
   */
  private forgetResent(): void {
    if (this.held.length === 0) return;
    let n = 0;
    for (; n < this.held.length; n++) {
      const next = this.held[n] as ChannelItem;
      if (next.type === 'message') {
        if (next.seq >= this.expected) break;
        this.heldMessages -= 1;
      } else if (!this.barrierIds.has(next.checkpointId)) {
        break;
      }
    }
    if (n > 0) this.held = this.held.slice(n);
    if (this.held.length === 0) {
      this.gapSinceMs = undefined;
      this.counts.gapsRepaired += 1;
    }
  }

  private passOn(): ChannelItem[] {
    const all = this.held;
    for (const item of all) {
      if (item.type === 'message') this.expected = Math.max(this.expected, item.seq + 1);
      else this.rememberBarrier(item.checkpointId);
    }
    this.held = [];
    this.heldMessages = 0;
    this.gapSinceMs = undefined;
    this.counts.gapsPassedOn += 1;
    return all;
  }

  private rememberBarrier(id: number): void {
    this.barrierIds.add(id);
    if (this.barrierIds.size > BARRIER_IDS_REMEMBERED) {
      const oldest = this.barrierIds.values().next().value;
      if (oldest !== undefined) this.barrierIds.delete(oldest);
    }
  }
}

/** Where an item sits in its channel: message n at 2n, a barrier after message n at 2n + 1. */
function positionOf(item: ChannelItem): number {
  return item.type === 'message' ? 2 * item.seq : 2 * item.afterSeq + 1;
}

function sameItem(a: ChannelItem, b: ChannelItem): boolean {
  if (a.type === 'message') return b.type === 'message';
  return b.type === 'barrier' && a.checkpointId === b.checkpointId;
}
