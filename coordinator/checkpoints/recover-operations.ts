/**
 * The shell of start-up recovery for rollbacks and restores (src/control/operation-recovery.ts
 * decides): reads every operation record whose state is not final, each one left by a coordinator
 * that stopped, and ends each before the coordinator serves. It rebuilds what the operation needs to
 * go on (its servers from the record, the restore commands from its checkpoint and the recorded
 * mapping), asks the decision, then either writes the record in its final state at once or finishes
 * the operation through the machine (operations.ts `takeOverOperation`), which sends the phase's
 * commands again under their old request ids and waits for the answers, at most one phase timeout
 * per phase left. Operations are recovered side by side.
 *
 * Like the round recovery (recover.ts), this runs only on the leader, when it takes the leader lease
 * (main.ts, docs/ha.md): to it, a live coordinator's operations would look like a dead one's.
 */
import type { Logger } from 'pino';
import { decideOperationRecovery, type LeftOperation } from '../../src/control/operation-recovery.js';
import type { AppRestore } from '../../src/wire/index.js';
import { ok, type Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import type { OperationRecord } from '../store/operations.js';
import { takeOverOperation, type OperationsOptions } from './operations.js';
import { identityMapping, restoreCommands, type RestoreDeps } from './restore.js';

export interface OperationRecoveryDeps extends RestoreDeps {
  readonly nowUnixMs: () => number;
  readonly options?: Partial<OperationsOptions>;
}

export interface OperationRecoveryReport {
  /** Operations finished from their phase (whatever state they reached: completed, or needs-repair when an agent did not answer). */
  readonly finished: readonly string[];
  /** Operations whose record was ended at once (failed or needs-repair). */
  readonly ended: readonly string[];
}

export async function recoverLeftOperations(deps: OperationRecoveryDeps): Promise<Result<OperationRecoveryReport>> {
  const log = deps.logger.child({ component: 'operation-recovery' });
  const left = await deps.store.operations.unfinished();
  if (!left.ok) return left;
  const finished: string[] = [];
  const ended: string[] = [];
  await Promise.all(
    left.value.map(async (record) => {
      const how = await recoverOne(deps, log, record);
      if (how === 'finished') finished.push(record.id);
      else if (how === 'ended') ended.push(record.id);
    }),
  );
  if (finished.length > 0 || ended.length > 0) log.warn({ finished, ended }, 'rollbacks and restores left by a stopped coordinator ended');
  return ok({ finished, ended });
}

async function recoverOne(deps: OperationRecoveryDeps, log: Logger, record: OperationRecord): Promise<'finished' | 'ended' | 'not-written' | 'none'> {
  const at = { operation: record.id, kind: record.kind, checkpointId: record.checkpointId, plan: record.planId, tenant: record.tenant, state: record.state };
  const got = await deps.store.checkpoints.get(record.checkpointId);
  if (!got.ok) log.warn({ ...at, error: got.error.message }, 'checkpoint of a left operation not read');
  const checkpoint = got.ok ? got.value.record : undefined;
  const servers = record.servers ?? (checkpoint !== undefined && record.kind === 'rollback' && record.level === 'app' ? [...new Set(checkpoint.parts.map((p) => p.server))].sort() : undefined);
  const lineEpoch = await deps.store.epochs.get(record.epochLine);
  if (!lineEpoch.ok) log.warn({ ...at, error: lineEpoch.error.message }, 'epoch of a left operation not read');
  const commands = checkpoint !== undefined && record.level === 'app' ? commandsOf(record, checkpoint) : undefined;
  const facts: LeftOperation = {
    id: record.id,
    kind: record.kind,
    level: record.level,
    checkpointId: record.checkpointId,
    state: record.state,
    ...(record.epoch !== undefined ? { epoch: record.epoch } : {}),
    ...(lineEpoch.ok ? { lineEpoch: lineEpoch.value } : {}),
    serversKnown: servers !== undefined && servers.length > 0 && checkpoint !== undefined,
    restoreCommandsKnown: commands !== undefined,
  };
  const decision = decideOperationRecovery(facts);
  switch (decision.type) {
    case 'none':
      return 'none';
    case 'end': {
      const written = await deps.store.operations.put({ ...record, state: decision.state, detail: decision.detail, outcome: decision.outcome, updatedAtUnixMs: deps.nowUnixMs() });
      if (!written.ok) {
        log.warn({ ...at, error: written.error.message }, 'left operation not ended: its record could not be written');
        return 'not-written';
      }
      log.warn({ ...at, ended: decision.state }, decision.detail);
      return 'ended';
    }
    case 'redo': {
      // The decision redoes a phase only when the servers (and so the checkpoint) are known.
      if (checkpoint === undefined || servers === undefined) throw new Error(`operation ${record.id}: ${decision.phase} redone without its checkpoint or servers`);
      log.warn({ ...at, phase: decision.phase }, 'left operation taken over: its phase is asked again');
      const outcome = await takeOverOperation(
        record,
        checkpoint,
        servers,
        commands ?? new Map(),
        {
          type: 'recover',
          nowMs: deps.nowUnixMs(),
          phase: decision.phase,
          epoch: decision.epoch,
          safetyCheckpointId: record.safetyCheckpointId,
          ...(decision.thenState !== undefined ? { thenState: decision.thenState } : {}),
          ...(decision.thenDetail !== undefined ? { thenDetail: decision.thenDetail } : {}),
        },
        deps,
        deps.options,
      );
      log.warn({ ...at, ok: outcome.ok }, outcome.ok ? 'left operation finished' : outcome.message);
      return 'finished';
    }
  }
}

/** What each server is sent to restore: the identity mapping of a rollback, the recorded one of a restore. */
function commandsOf(record: OperationRecord, checkpoint: CheckpointRecord): Map<string, AppRestore[]> | undefined {
  const mapping = record.kind === 'rollback' ? identityMapping(checkpoint) : record.mapping !== undefined ? new Map(Object.entries(record.mapping)) : undefined;
  if (mapping === undefined) return undefined;
  const commands = restoreCommands(checkpoint, mapping);
  return commands.ok ? commands.value : undefined;
}
