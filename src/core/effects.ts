/**
 * The participant's effect buffer: records reused from step to step, so a step allocates nothing for
 * its effects (before this, a step built an array, a result and an object per effect: most of what
 * the simulator allocated). Every record has every field of every effect type, so the records share
 * one shape and reading them stays monomorphic; the `Effect` union is the typed view of a record.
 */
import type { CheckpointId, Epoch } from '../ids.js';
import type { CheckpointAck, DeclineReason, Effect, Effects, EffectType, SnapshotCounts, TimerKey } from './types.js';

class EffectRecord<P> {
  type: EffectType = 'transmit';
  channel = 0;
  seq = 0;
  epoch: Epoch = 0;
  checkpointId: CheckpointId = 0;
  afterSeq = 0;
  afterMs = 0;
  payload: P | undefined = undefined;
  counts: SnapshotCounts | undefined = undefined;
  ack: CheckpointAck<P> | undefined = undefined;
  timer: TimerKey | undefined = undefined;
  reason: DeclineReason = 'subsumed';
  detail = '';
}

/**
 * Participants write into it (its writers are theirs to call); a shell reads and releases it through
 * `Effects`. Create one yourself only to share it among participants (`ParticipantOptions.effects`).
 */
export class EffectBuffer<P> implements Effects<P> {
  private readonly records: EffectRecord<P>[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  at(index: number): Effect<P> {
    if (!(index >= 0 && index < this.count)) throw new RangeError(`effect ${index} of ${this.count}`);
    return this.records[index] as unknown as Effect<P>;
  }

  release(mark: number): void {
    if (!(mark >= 0 && mark <= this.count)) throw new RangeError(`release to ${mark} with ${this.count} effects`);
    // What the released records point to is the shell's now; a record must not keep it alive.
    for (let i = mark; i < this.count; i++) {
      const r = this.records[i] as EffectRecord<P>;
      r.payload = undefined;
      r.counts = undefined;
      r.ack = undefined;
      r.timer = undefined;
    }
    this.count = mark;
  }

  /** The next record, its `type` set; the caller fills in the fields of that type. */
  private next(type: EffectType): EffectRecord<P> {
    let r = this.records[this.count];
    if (r === undefined) {
      r = new EffectRecord<P>();
      this.records.push(r);
    }
    this.count += 1;
    r.type = type;
    return r;
  }

  transmit(channel: number, seq: number, epoch: Epoch, payload: P): void {
    const r = this.next('transmit');
    r.channel = channel;
    r.seq = seq;
    r.epoch = epoch;
    r.payload = payload;
  }

  deliver(channel: number, seq: number, payload: P): void {
    const r = this.next('deliver');
    r.channel = channel;
    r.seq = seq;
    r.payload = payload;
  }

  snapshot(checkpointId: CheckpointId, counts: SnapshotCounts): void {
    const r = this.next('snapshot');
    r.checkpointId = checkpointId;
    r.counts = counts;
  }

  sendBarrier(channel: number, checkpointId: CheckpointId, epoch: Epoch, afterSeq: number): void {
    const r = this.next('send-barrier');
    r.channel = channel;
    r.checkpointId = checkpointId;
    r.epoch = epoch;
    r.afterSeq = afterSeq;
  }

  ack(ack: CheckpointAck<P>): void {
    this.next('ack').ack = ack;
  }

  decline(checkpointId: CheckpointId, reason: DeclineReason): void {
    const r = this.next('decline');
    r.checkpointId = checkpointId;
    r.reason = reason;
  }

  startTimer(timer: TimerKey, afterMs: number): void {
    const r = this.next('start-timer');
    r.timer = timer;
    r.afterMs = afterMs;
  }

  cancelTimer(timer: TimerKey): void {
    this.next('cancel-timer').timer = timer;
  }

  paused(checkpointId: CheckpointId): void {
    this.next('paused').checkpointId = checkpointId;
  }

  resumed(checkpointId: CheckpointId): void {
    this.next('resumed').checkpointId = checkpointId;
  }

  channelFailed(channel: number, detail: string): void {
    const r = this.next('channel-failed');
    r.channel = channel;
    r.detail = detail;
  }
}
