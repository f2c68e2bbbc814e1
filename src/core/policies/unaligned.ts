/**
 * Chandy-Lamport: the first barrier (or a trigger) takes the snapshot and forwards barriers at once;
 * every other input is recorded until its own barrier arrives. No stall, channel state recorded.
 */
import type { PolicyWithBarriers } from '../policy.js';

export const unalignedPolicy: PolicyWithBarriers = {
  kind: 'unaligned',
  concurrency: 'independent',
  onTrigger(c, p) {
    c.snapshot(p, { sendBarriers: true, recordOpenInputs: true });
  },
  onBarrier(c, p, channel) {
    if (p.phase === 'aligning') c.snapshot(p, { sendBarriers: true, recordOpenInputs: true });
    else c.closeRecording(p, channel);
    return undefined;
  },
  onAlignmentTimeout() {
    // Never aligns, so never starts the timer.
  },
};
