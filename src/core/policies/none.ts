/**
 * The baseline of today's protection services: each process snapshots whenever it is told, with no
 * markers and no channel state. Kept to show, with the cut checker, what it gets wrong.
 */
import type { PolicyWithoutBarriers } from '../policy.js';

// No onBarrier: the participant refuses every barrier under none before a policy could be asked.
export const nonePolicy: PolicyWithoutBarriers = {
  kind: 'none',
  concurrency: 'independent',
  onTrigger(c, p) {
    c.snapshot(p, { sendBarriers: false, recordOpenInputs: false });
  },
  onAlignmentTimeout() {
    // No alignment, no timer.
  },
};
