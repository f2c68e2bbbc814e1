/**
 * ABS with an alignment timeout (as Flink): aligned until the timer fires, then this checkpoint goes
 * unaligned: snapshot now, forward barriers, release the blocked inputs (what they hold is after the
 * cut) and record the inputs still missing their barrier.
 */
import type { PolicyWithBarriers } from '../policy.js';
import { alignedOnBarrier } from './aligned.js';

export function alignedTimeoutPolicy(alignmentTimeoutMs: number): PolicyWithBarriers {
  return {
    kind: 'aligned-timeout',
    concurrency: 'one-aligning',
    onTrigger(c, p) {
      c.snapshot(p, { sendBarriers: true, recordOpenInputs: true });
    },
    onBarrier(c, p, channel) {
      if (p.phase === 'aligning' && !p.alignmentTimerRunning) {
        c.startAlignmentTimer(p, alignmentTimeoutMs);
      }
      return alignedOnBarrier(c, p, channel);
    },
    onAlignmentTimeout(c, p) {
      if (p.phase !== 'aligning') return;
      p.finishedUnaligned = true;
      c.snapshot(p, { sendBarriers: true, recordOpenInputs: true });
    },
  };
}
