/**
 * Rollback and restore as the service offers them: the checks and the safety checkpoint, then the
 * restore itself (restore.ts). Kept apart from the checkpoint service, which it reaches only through
 * the small port below.
 */
import type { CheckpointId } from '../../src/ids.js';
import type { RestoreRequest, TakeSnapshotRequest } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { crashRollback, restoreInto, rollback, type RestoreDeps } from './restore.js';

export interface RollbackRequest {
  readonly checkpointId: CheckpointId;
  readonly skipSafetyCheckpoint: boolean;
  readonly idempotencyKey?: string;
}

export interface RollbackOutcome {
  readonly safetyCheckpointId: CheckpointId | 0;
  readonly epoch: number;
}

/** What operations need of the checkpoint service. */
export interface OperationsPort {
  take(request: TakeSnapshotRequest): Promise<Result<CheckpointRecord>>;
  waitFor(id: CheckpointId): Promise<CheckpointRecord>;
  get(id: CheckpointId): Promise<Result<CheckpointRecord>>;
  /** Cancels every checkpoint of the plan in flight. */
  cancelRunsOf(planId: string, detail: string): void;
  store(): CoordinatorStore;
  restoreDeps(): RestoreDeps;
  volumes(): VolumeBackend | undefined;
}

export class Operations {
  constructor(private readonly port: OperationsPort) {}

  async rollback(request: RollbackRequest): Promise<Result<RollbackOutcome>> {
    const target = await this.port.get(request.checkpointId);
    if (!target.ok) return target;
    if (target.value.state !== 'completed') {
      return fail('failed-precondition', `checkpoint ${request.checkpointId} is ${target.value.state}; only a completed checkpoint can be rolled back to`);
    }
    const crash = target.value.levelAchieved === 'crash';
    let safetyCheckpointId: CheckpointId | 0 = 0;
    if (!request.skipSafetyCheckpoint) {
      // Rollback is destructive: first keep the present, so the rollback itself can be undone.
      const safety = await this.port.take({ planId: target.value.planId, level: crash ? 'crash' : 'app', options: {}, safety: true });
      if (!safety.ok) return fail('failed-precondition', `the safety checkpoint before the rollback could not start: ${safety.error.message} (pass skip_safety_checkpoint to roll back without one)`);
      const final = await this.port.waitFor(safety.value.id);
      if (final.state !== 'completed') {
        return fail('failed-precondition', `the safety checkpoint ${final.id} before the rollback ${final.state}: ${final.failureDetail ?? ''} (pass skip_safety_checkpoint to roll back without one)`);
      }
      safetyCheckpointId = final.id;
    }
    this.port.cancelRunsOf(target.value.planId, `plan ${target.value.planId} is being rolled back to checkpoint ${request.checkpointId}`);
    let done: Result<{ epoch: number }>;
    if (crash) {
      const plan = await this.port.store().plans.get(target.value.planId);
      if (!plan.ok) return plan;
      done = await crashRollback(target.value, plan.value.servers, plan.value.volumes, this.port.volumes(), target.value.options.freezeDeadlineMs, this.port.restoreDeps());
    } else {
      done = await rollback(target.value, this.port.restoreDeps());
    }
    return done.ok ? ok({ safetyCheckpointId, epoch: done.value.epoch }) : done;
  }

  restore(request: RestoreRequest): Promise<Result<{ epoch: number }>> {
    return restoreInto(request, this.port.restoreDeps(), (id) => this.port.get(id));
  }
}
