/**
 * What a coordinator does at start-up with the rounds a dead coordinator left (issue 9, defect 9:
 * they stayed `collecting` for 109-129 s, and meanwhile new checkpoints of the plan were accepted).
 * Pure: the records still in flight and every plan's admission slots in, the actions out.
 *
 * A starting coordinator runs no round yet, so every record in flight that it does not run is a dead
 * coordinator's: it is aborted at once, its parts and volume snapshots deleted. Its admission slot
 * is released only after that, so admission keeps counting it until it is really over. Slots whose
 * checkpoint is not in flight (its record final or never written) are released too.
 *
 * Volume snapshots of an aborted round are looked for by the checkpoint's name on the backend, not
 * only in the record: the record lists a group snapshot only once the round wrote it after the thaw,
 * and a crash between the backend's answer and that write, or during the clean-up's deletes, left
 * them on the backend for ever (the `volume-snapshots-of-dead-coordinator` finding of docs/vopr.md).
 *
 * A record marked `deleting` is a DeleteCheckpoint cut short (src/control/retention.ts
 * decideDeleteMark): its parts may be gone already, so the delete is finished, never undone.
 *
 * This is sound only while one coordinator runs at a time: a second live coordinator's rounds look
 * exactly the same. Several coordinators need the leader lease of issue 11 (only the leader runs
 * rounds and recovers); docs/api.md says so.
 */
import type { Slot } from './admission.js';

export interface InFlightRecord {
  readonly checkpointId: number;
  readonly planId: string;
  readonly state: string;
  readonly createdAtUnixMs: number;
  /** The round may have taken volume snapshots (crash level, or a plan with volumes). */
  readonly hasVolumes?: boolean;
}

export interface RecoveryInput {
  /** Records in a state before completed/aborted (pending, triggering, collecting, committing, aborting). */
  readonly inFlight: readonly InFlightRecord[];
  readonly slots: readonly { readonly planId: string; readonly slots: readonly Slot[] }[];
  /** Checkpoints this coordinator runs itself (none at start-up). */
  readonly runningHere: readonly number[];
  readonly nowMs: number;
}

/** In this order: every `abort` before any `release-slot`. */
export type RecoveryAction =
  /**
   * Tell the agents, delete the parts and the volume snapshots the record lists, write it aborted.
   * `sweepVolumes`: delete too whatever the volume backend holds under the checkpoint's name.
   */
  | { readonly type: 'abort'; readonly checkpointId: number; readonly planId: string; readonly detail: string; readonly sweepVolumes: boolean }
  | { readonly type: 'release-slot'; readonly checkpointId: number; readonly planId: string; readonly reason: 'aborted-now' | 'not-in-flight' };

export function decideRecovery(input: RecoveryInput): RecoveryAction[] {
  const here = new Set(input.runningHere);
  const aborts: RecoveryAction[] = [];
  const aborted = new Set<number>();
  for (const r of [...input.inFlight].sort((a, b) => a.checkpointId - b.checkpointId)) {
    if (here.has(r.checkpointId)) continue;
    const ageS = Math.max(0, Math.round((input.nowMs - r.createdAtUnixMs) / 1000));
    aborts.push({
      type: 'abort',
      checkpointId: r.checkpointId,
      planId: r.planId,
      detail: `found ${r.state} ${ageS} s after it was created, with no coordinator running it (the one that did stopped): aborted by the coordinator that started next`,
      sweepVolumes: r.hasVolumes === true,
    });
    aborted.add(r.checkpointId);
  }
  const inFlight = new Set(input.inFlight.map((r) => r.checkpointId));
  const releases: RecoveryAction[] = [];
  for (const p of input.slots) {
    for (const s of p.slots) {
      if (here.has(s.checkpointId)) continue;
      if (aborted.has(s.checkpointId)) releases.push({ type: 'release-slot', checkpointId: s.checkpointId, planId: p.planId, reason: 'aborted-now' });
      else if (!inFlight.has(s.checkpointId)) releases.push({ type: 'release-slot', checkpointId: s.checkpointId, planId: p.planId, reason: 'not-in-flight' });
    }
  }
  return [...aborts, ...releases];
}

/** Delete the parts and volume snapshots of a record marked `deleting`, then the record. */
export interface FinishDelete {
  readonly type: 'finish-delete';
  readonly checkpointId: number;
  readonly planId: string;
}

/**
 * The deletes a stopped coordinator began and did not finish: every final record marked `deleting`
 * (src/control/retention.ts decideDeleteMark) that no call of this coordinator is deleting, oldest
 * first. Finished, never undone: the mark went before the first part, so some parts may be gone.
 */
export function decideUnfinishedDeletes(
  marked: readonly { readonly checkpointId: number; readonly planId: string; readonly state: string }[],
  deletingHere: readonly number[],
): FinishDelete[] {
  const here = new Set(deletingHere);
  return [...marked]
    .filter((m) => (m.state === 'completed' || m.state === 'aborted') && !here.has(m.checkpointId))
    .sort((a, b) => a.checkpointId - b.checkpointId)
    .map((m) => ({ type: 'finish-delete', checkpointId: m.checkpointId, planId: m.planId }));
}
