/**
 * The baseline of today's protection services: each process snapshots whenever it is told, with no
 * markers and no channel state. Kept to show, with the cut checker, what it gets wrong.
 */
import type { BarrierPolicy } from '../policy.js';

export const nonePolicy: BarrierPolicy = {
  kind: 'none',
  concurrency: 'independent',
  onTrigger(c, p) {
    c.snapshot(p, { sendBarriers: false, recordOpenInputs: false });
  },
  onBarrier(_c, p, channel) {
    return { reason: 'unexpected-barrier', detail: `barrier on ${channel} for ${p.id} under policy none` };
  },
  onAlignmentTimeout() {
    // No alignment, no timer.
  },
};
