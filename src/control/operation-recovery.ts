/**
 * What a starting coordinator does with a rollback or restore that a stopped coordinator left under
 * way: its record is in a phase that is not final, and no process runs it any more (one coordinator
 * at a time, as for the rounds of src/control/recovery.ts). Left alone, such a record stayed in its
 * phase for ever and the apps it had restored stayed paused until an operator rolled back again
 * (VOPR finding `operation-orphaned-by-crash`, seed 101).
 *
 * Pure: the record's facts in, one decision out. Each left operation is either
 * - finished from where it was, when the phase it was in can be asked again: its commands go out
 *   once more under the request ids they had (`op:<operation>:<phase>:<server>`), and an agent that
 *   already answered answers again from memory without doing the work twice (`redo`); or
 * - ended at once in a final state that says what happened and the one call that repairs it (`end`).
 *
 * Which phase can be asked again:
 * - `restoring` (app): yes, when the shell could rebuild what each server is sent. Until every server
 *   restored no app was resumed, so a server restored twice (an agent that restarted forgot the
 *   request) is only restored into the same state again. Then `resuming`, then `completed`.
 * - `resuming` (app): yes; every server had restored, a resume releases the apps a restore paused.
 * - `thawing` (crash): yes, with the restore hooks, as the dead coordinator sent it.
 * - `freezing` (crash): nothing changed yet; every server is thawed back, then `failed`.
 * - `reverting`, `thawing-back` (crash): the servers are thawed back, then `needs-repair`: the
 *   volumes may be partly put back (a thaw-back the dead coordinator began after a freeze failure
 *   cannot be told apart from one after a volume failure, so the stronger state is chosen; a
 *   repairing rollback is harmless when nothing changed).
 * A record whose epoch is not the line's any more is stale: a later operation moved the epoch (this
 * one ended, and its last record write was lost, or it was cut short), so its phase is never sent
 * again: that would restore or thaw at an epoch the agents left. It ends `needs-repair`, saying so.
 * Before the epoch moved (`validating`, `safety-checkpoint`, and `setting-epoch` at crash level,
 * where the epoch is only read) nothing changed on the agents: `failed`, call again. An app-level
 * `setting-epoch` may have bumped the epoch: `needs-repair`, since the plan's agents then refuse its
 * checkpoints as `behind` until a restore reaches them.
 */
import type { OperationErrorKind, OperationKind, OperationLevel, OperationOutcome, OperationState, RedoPhase } from './operation.js';
import { OPERATION_FINAL_STATES } from './operation.js';

/** What the shell knows of a left operation: its record, and whether it can rebuild its commands. */
export interface LeftOperation {
  readonly id: string;
  readonly kind: OperationKind;
  readonly level: OperationLevel;
  readonly checkpointId: number;
  readonly state: OperationState;
  /** The epoch it restores into (app) or froze at (crash), once it was set. */
  readonly epoch?: number;
  /** The epoch line's epoch now, when the shell could read it. */
  readonly lineEpoch?: number;
  /** Whether the shell knows every server the operation talks to. */
  readonly serversKnown: boolean;
  /** App level: whether the shell rebuilt what each server is sent to restore (the checkpoint read back, the mapping recorded). */
  readonly restoreCommandsKnown: boolean;
}

export type OperationRecoveryDecision =
  /** The record is final already. */
  | { readonly type: 'none' }
  /** Write the record in this final state, with this outcome: nothing is sent. */
  | { readonly type: 'end'; readonly state: 'failed' | 'needs-repair'; readonly detail: string; readonly outcome: Extract<OperationOutcome, { ok: false }> }
  /**
   * Finish it through the machine (`recover` input): the phase again under its old request ids.
   * `thawing-back` ends in `thenState` with `thenDetail` once every server thawed.
   */
  | {
      readonly type: 'redo';
      readonly phase: RedoPhase;
      readonly epoch: number;
      readonly thenState?: 'failed' | 'needs-repair';
      readonly thenDetail?: string;
    };

/** The one call that repairs an operation that ended in needs-repair. */
export function repairCall(kind: OperationKind, checkpointId: number): string {
  return kind === 'rollback'
    ? `roll back again: RollbackSnapshot to checkpoint ${checkpointId} (snapctl rollback ${checkpointId}) or to another checkpoint of the plan`
    : `restore again: RestoreSnapshot of checkpoint ${checkpointId} onto the same targets`;
}

export function decideOperationRecovery(left: LeftOperation): OperationRecoveryDecision {
  if (OPERATION_FINAL_STATES.includes(left.state)) return { type: 'none' };
  const what = `${left.kind} of checkpoint ${left.checkpointId} (operation ${left.id})`;
  const stopped = `the coordinator running the ${what} stopped while ${left.state}`;
  const repair = repairCall(left.kind, left.checkpointId);
  const end = (state: 'failed' | 'needs-repair', kind: OperationErrorKind, detail: string): OperationRecoveryDecision => ({
    type: 'end',
    state,
    detail,
    outcome: { ok: false, kind, message: detail },
  });
  const needsRepair = (why: string): OperationRecoveryDecision => end('needs-repair', 'unavailable', `${stopped}; ${why}: ${repair}`);
  const nothingChanged = `${stopped}, before anything changed on the agents; nothing was changed: call again`;
  const epoch = left.epoch;
  if (epoch !== undefined && left.lineEpoch !== undefined && left.lineEpoch !== epoch) {
    return end(
      'needs-repair',
      'unavailable',
      `${stopped} at epoch ${epoch}, and the epoch has moved to ${left.lineEpoch} since: a later operation superseded it, so it is not resumed; if that later one did not complete, ${repair}`,
    );
  }
  if (left.level === 'app') {
    if (epoch === undefined) {
      if (left.state === 'setting-epoch') return needsRepair("the epoch may have been bumped, and the plan's agents refuse its checkpoints until a restore reaches them");
      return end('failed', 'unavailable', nothingChanged);
    }
    switch (left.state) {
      case 'restoring':
        if (left.serversKnown && left.restoreCommandsKnown) return { type: 'redo', phase: 'restoring', epoch };
        return needsRepair(`some servers may have restored and stay paused at epoch ${epoch}, and the restore could not be sent again (its checkpoint, servers or mapping are not known)`);
      case 'resuming':
        if (left.serversKnown) return { type: 'redo', phase: 'resuming', epoch };
        return needsRepair(`every server restored at epoch ${epoch} and stays paused until resumed, and its servers are not known`);
      default:
        // Only the negative control bump-before-validate sets the epoch before these states.
        return needsRepair(`the epoch had moved to ${epoch}`);
    }
  }
  switch (left.state) {
    case 'validating':
    case 'safety-checkpoint':
    case 'setting-epoch':
      return end('failed', 'unavailable', nothingChanged);
    case 'freezing': {
      const detail = `${stopped}: every server was thawed again and nothing changed: call again`;
      if (left.serversKnown && epoch !== undefined) return { type: 'redo', phase: 'thawing-back', epoch, thenState: 'failed', thenDetail: detail };
      return end('failed', 'unavailable', `${stopped}: nothing changed; a server that froze thaws at its freeze deadline (its agent's watchdog): call again`);
    }
    case 'thawing':
      if (left.serversKnown && epoch !== undefined) return { type: 'redo', phase: 'thawing', epoch };
      return needsRepair('the volumes were put back, and a server not thawed yet thaws at its freeze deadline without the restore hooks');
    default: {
      // reverting, thawing-back: the volumes may be partly put back.
      const detail = `${stopped}; the volumes may be partly put back. The servers are thawed: ${repair}`;
      if (left.serversKnown && epoch !== undefined) return { type: 'redo', phase: 'thawing-back', epoch, thenState: 'needs-repair', thenDetail: detail };
      return needsRepair('the volumes may be partly put back, and a frozen server thaws at its freeze deadline');
    }
  }
}
