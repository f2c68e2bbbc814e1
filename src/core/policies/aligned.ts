/**
 * ABS (asynchronous barrier snapshots): an input blocks once its barrier arrived; the snapshot is taken
 * when every forward input delivered its barrier. Back-edge inputs of a cycle are not waited for: what
 * arrives on them between the snapshot and their barrier is recorded (ABS for cyclic graphs).
 */
import type { PolicyWithBarriers, PolicyController } from '../policy.js';
import type { PendingCheckpoint } from '../pending.js';
import type { InputHandle } from '../types.js';

/** Shared with aligned-timeout, which differs only in what a timer does. */
export function alignedOnBarrier(c: PolicyController, p: PendingCheckpoint, channel: InputHandle): undefined {
  if (p.phase === 'snapshotted') {
    c.closeRecording(p, channel);
    return undefined;
  }
  c.block(p, channel);
  if (c.forwardInputsAligned(p)) c.snapshot(p, { sendBarriers: true, recordOpenInputs: true });
  return undefined;
}

export const alignedPolicy: PolicyWithBarriers = {
  kind: 'aligned',
  concurrency: 'one-aligning',
  onTrigger(c, p) {
    // An initiator snapshots at once; inputs still without a barrier are recorded, as in Chandy-Lamport.
    c.snapshot(p, { sendBarriers: true, recordOpenInputs: true });
  },
  onBarrier: alignedOnBarrier,
  onAlignmentTimeout() {
    // Plain aligned mode never starts the timer.
  },
};
