/**
 * Drives a participant in unit tests by channel id, as the tests read best: it resolves the ids to
 * the core's handles, and copies each step's effects out of the core's reused records into plain
 * values with channel ids before releasing them. An id the participant does not have becomes the
 * handle -1, which the core must refuse.
 */
import type { Participant } from '../../src/core/participant.js';
import type { CheckpointAck, DeclineReason, Input, Rejection, SnapshotCounts, TimerKey } from '../../src/core/types.js';
import type { ChannelId, CheckpointId, Epoch } from '../../src/ids.js';

/** An input with channel ids where the core takes handles. */
export type InputById<P> =
  | { readonly type: 'send'; readonly channel: ChannelId; readonly payload: P }
  | { readonly type: 'message'; readonly channel: ChannelId; readonly seq: number; readonly epoch: Epoch; readonly payload: P }
  | { readonly type: 'barrier'; readonly channel: ChannelId; readonly checkpointId: CheckpointId; readonly epoch: Epoch; readonly afterSeq?: number }
  | Exclude<Input<P>, { readonly type: 'send' | 'message' | 'barrier' }>;

/** An effect as a plain value, with channel ids where the core writes handles. */
export type EffectById<P> =
  | { type: 'transmit'; channel: ChannelId; seq: number; epoch: Epoch; payload: P }
  | { type: 'deliver'; channel: ChannelId; seq: number; payload: P }
  | { type: 'snapshot'; checkpointId: CheckpointId; counts: SnapshotCounts }
  | { type: 'send-barrier'; channel: ChannelId; checkpointId: CheckpointId; epoch: Epoch; afterSeq: number }
  | { type: 'ack'; ack: CheckpointAck<P> }
  | { type: 'decline'; checkpointId: CheckpointId; reason: DeclineReason }
  | { type: 'start-timer'; timer: TimerKey; afterMs: number }
  | { type: 'cancel-timer'; timer: TimerKey }
  | { type: 'paused' | 'resumed'; checkpointId: CheckpointId }
  | { type: 'channel-failed'; channel: ChannelId; detail: string };

export interface StepById<P> {
  readonly effects: EffectById<P>[];
  readonly rejected?: Rejection;
}

export function stepById<P>(core: Participant<P>, input: InputById<P>): StepById<P> {
  const mark = core.effects.length;
  const rejected = core.step(withHandles(core, input));
  const effects: EffectById<P>[] = [];
  for (let i = mark; i < core.effects.length; i++) {
    const e = core.effects.at(i);
    switch (e.type) {
      case 'transmit':
        effects.push({ type: e.type, channel: core.outputId(e.channel), seq: e.seq, epoch: e.epoch, payload: e.payload });
        break;
      case 'deliver':
        effects.push({ type: e.type, channel: core.inputId(e.channel), seq: e.seq, payload: e.payload });
        break;
      case 'snapshot':
        effects.push({ type: e.type, checkpointId: e.checkpointId, counts: e.counts });
        break;
      case 'send-barrier':
        effects.push({ type: e.type, channel: core.outputId(e.channel), checkpointId: e.checkpointId, epoch: e.epoch, afterSeq: e.afterSeq });
        break;
      case 'ack':
        effects.push({ type: e.type, ack: e.ack });
        break;
      case 'decline':
        effects.push({ type: e.type, checkpointId: e.checkpointId, reason: e.reason });
        break;
      case 'start-timer':
        effects.push({ type: e.type, timer: e.timer, afterMs: e.afterMs });
        break;
      case 'cancel-timer':
        effects.push({ type: e.type, timer: e.timer });
        break;
      case 'paused':
      case 'resumed':
        effects.push({ type: e.type, checkpointId: e.checkpointId });
        break;
      case 'channel-failed':
        effects.push({ type: e.type, channel: core.inputId(e.channel), detail: e.detail });
        break;
    }
  }
  core.effects.release(mark);
  return rejected ? { effects, rejected } : { effects };
}

function withHandles<P>(core: Participant<P>, input: InputById<P>): Input<P> {
  switch (input.type) {
    case 'send':
      return { ...input, channel: core.outputHandle(input.channel) ?? -1 };
    case 'message':
    case 'barrier':
      return { ...input, channel: core.inputHandle(input.channel) ?? -1 };
    default:
      return input;
  }
}
