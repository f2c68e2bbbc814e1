/**
 * Stop the world: a trigger pauses the app's sends and puts a marker on every output. Since nobody
 * sends after its marker, an input is drained once its marker arrives; when all inputs are drained the
 * snapshot is taken with empty channel states. The app stays paused until `complete` or `abort`.
 * Every process of the plan is triggered. This is the synchronous baseline, honest about its stall.
 */
import type { PolicyWithBarriers } from '../policy.js';

export const syncPolicy: PolicyWithBarriers = {
  kind: 'sync',
  concurrency: 'one-at-a-time',
  onTrigger(c, p) {
    c.pauseAndFlush(p);
    if (c.allInputsAligned(p)) c.snapshot(p, { sendBarriers: false, recordOpenInputs: false });
  },
  onBarrier(c, p, channel) {
    if (p.phase === 'snapshotted') {
      return { reason: 'unexpected-barrier', detail: `marker on ${c.inputId(channel)} after the sync snapshot of ${p.id}` };
    }
    // A marker can come before this process is triggered; blocking keeps anything after it out of the cut.
    c.block(p, channel);
    if (p.triggered && c.allInputsAligned(p)) c.snapshot(p, { sendBarriers: false, recordOpenInputs: false });
    return undefined;
  },
  onAlignmentTimeout() {
    // Sync has no alignment timer: the coordinator's checkpoint timeout aborts and resumes.
  },
};
