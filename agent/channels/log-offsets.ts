/**
 * Where a log input's consumed messages are in their stream. The core numbers a channel's messages
 * (seq) and places its barriers by that number; a rollback or restore restarts the stream consumer at
 * a stream sequence, so the receiver keeps the stream sequence of each message the core accepted until
 * the app has consumed it. Only accepted messages count: a rollback leaves the abandoned messages in
 * the stream, with the same seqs as the ones that replace them.
 */
export class LogOffsets {
  /** Accepted, not consumed yet: seq -> stream sequence, in ascending seq (the core accepts in order). */
  private readonly accepted = new Map<number, number>();
  private lastSeq: number;
  private lastOffset: number;
  /** Highest seq consumed or accepted. */
  private highest: number;
  /** The message being fed to the core now; its fate is known once the core has taken it. */
  private offered: { seq: number; offset: number } | undefined;

  /** `seq` consumed, at stream sequence `offset` (0: nothing of the stream consumed yet). */
  constructor(seq: number, offset: number) {
    this.lastSeq = seq;
    this.lastOffset = offset;
    this.highest = seq;
  }

  /**
   * Message `seq`, at stream sequence `offset`, is about to go to the core. Its delivery (and so
   * `consumed`) may come before the core's answer, within the same step.
   */
  offer(seq: number, offset: number): void {
    this.offered = { seq, offset };
  }

  /** The core's answer to the message offered last. */
  settle(accepted: boolean): void {
    if (accepted) this.commitOffered();
    this.offered = undefined;
  }

  /** The app consumed every message up to `seq`. */
  consumed(seq: number): void {
    // Delivered within the step that fed it: the core took it.
    if (this.offered !== undefined && this.offered.seq <= seq) this.commitOffered();
    for (const [s, offset] of this.accepted) {
      if (s > seq) break;
      this.lastSeq = s;
      this.lastOffset = offset;
      this.accepted.delete(s);
    }
  }

  /** The stream sequence of message `seq`, if it is the last consumed or an accepted one. */
  offsetOf(seq: number): number | undefined {
    return seq === this.lastSeq ? this.lastOffset : this.accepted.get(seq);
  }

  reset(seq: number, offset: number): void {
    this.accepted.clear();
    this.offered = undefined;
    this.lastSeq = seq;
    this.lastOffset = offset;
    this.highest = seq;
  }

  /**
   * Only a seq above everything taken so far: a repeat the core refused (an abandoned message of an
   * older epoch with a seq already taken) must not replace the position of the one it took.
   */
  private commitOffered(): void {
    const o = this.offered;
    this.offered = undefined;
    if (o === undefined || o.seq <= this.highest) return;
    this.accepted.set(o.seq, o.offset);
    this.highest = o.seq;
  }
}
