/**
 * The shell of start-up recovery (src/control/recovery.ts decides): reads every record in flight and
 * every plan's admission slots, then carries out the actions in their order. An abort tells the
 * record's agents (best effort: an agent that misses it times its part out, and a frozen guest
 * thaws at its own deadline), deletes the stored parts and volume snapshots, and writes the record
 * `aborted` (`coordinator-lost`); only then is the slot released. A left crash-level round also has
 * the volume backend delete every snapshot named after its checkpoint, recorded or not. Deletes a
 * stopped coordinator began (records marked `deleting`) are finished.
 */
import type { Logger } from 'pino';
import type { StateObjects } from '../../adapters/state-store.js';
import { stepAdmission, type AdmissionConfig, type Slot } from '../../src/control/admission.js';
import { decideRecovery, decideUnfinishedDeletes, type RecoveryAction } from '../../src/control/recovery.js';
import type { ControlBus } from '../bus.js';
import { ok, type Result } from '../errors.js';
import { IN_FLIGHT_STATES, TERMINAL_STATES, type CheckpointRecord } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { finishMarkedDelete, retireParts } from './retire.js';

export interface RecoveryDeps {
  readonly store: CoordinatorStore;
  readonly objects: StateObjects;
  readonly bus: ControlBus;
  readonly volumes: VolumeBackend | undefined;
  readonly admission: AdmissionConfig;
  readonly logger: Logger;
  readonly nowUnixMs: () => number;
  /** Told of each delete finished here, as DeleteCheckpoint's are (the sites then delete the copies). */
  readonly onDeleted?: (record: CheckpointRecord) => void;
}

export interface RecoveryReport {
  readonly aborted: readonly number[];
  readonly released: readonly number[];
  /** Deletes a stopped coordinator began, finished now. */
  readonly deleted: readonly number[];
}

export async function recoverLeftRounds(deps: RecoveryDeps, runningHere: readonly number[]): Promise<Result<RecoveryReport>> {
  const log = deps.logger.child({ component: 'recovery' });
  const records: CheckpointRecord[] = [];
  let token = '';
  do {
    const page = await deps.store.checkpoints.list({ states: IN_FLIGHT_STATES }, 500, token);
    if (!page.ok) return page;
    records.push(...page.value.items);
    token = page.value.nextPageToken;
  } while (token !== '');
  const marked: CheckpointRecord[] = [];
  do {
    const page = await deps.store.checkpoints.list({ deleting: true }, 500, token);
    if (!page.ok) return page;
    marked.push(...page.value.items);
    token = page.value.nextPageToken;
  } while (token !== '');
  const plans = await deps.store.slots.plans();
  if (!plans.ok) return plans;
  const slots: { planId: string; slots: readonly Slot[] }[] = [];
  for (const planId of plans.value) {
    const s = await deps.store.slots.read(planId);
    if (!s.ok) return s;
    if (s.value.slots.length > 0) slots.push({ planId, slots: s.value.slots });
  }
  const now = deps.nowUnixMs();
  const actions = decideRecovery({
    inFlight: records.map((r) => ({ checkpointId: r.id, planId: r.planId, state: r.state, createdAtUnixMs: r.createdAtUnixMs, hasVolumes: mayHoldVolumeSnapshots(r) })),
    slots,
    runningHere,
    nowMs: now,
  });
  const byId = new Map(records.map((r) => [r.id, r]));
  const aborted: number[] = [];
  const released: number[] = [];
  for (const a of actions) {
    if (a.type === 'abort') {
      const record = byId.get(a.checkpointId);
      if (record !== undefined && (await abortLeft(deps, log, record, a))) aborted.push(a.checkpointId);
    } else if (a.type === 'release-slot') {
      // A round whose abort failed keeps its slot: the plan stays busy rather than overlapping it.
      if (a.reason === 'aborted-now' && !aborted.includes(a.checkpointId)) continue;
      const step = await deps.store.slots.transact(a.planId, (current) => {
        const s = stepAdmission(current, { type: 'release', checkpointId: a.checkpointId }, deps.admission);
        return { next: s.changed ? s.slots : undefined, out: s.changed };
      });
      if (!step.ok) log.warn({ plan: a.planId, checkpointId: a.checkpointId, error: step.error.message }, 'admission slot of a left round not released');
      else if (step.value) released.push(a.checkpointId);
    }
  }
  const deleted: number[] = [];
  const markedById = new Map(marked.map((r) => [r.id, r]));
  for (const d of decideUnfinishedDeletes(marked.map((r) => ({ checkpointId: r.id, planId: r.planId, state: r.state })), [])) {
    const record = markedById.get(d.checkpointId) as CheckpointRecord;
    const at = { checkpointId: record.id, plan: record.planId, tenant: record.tenant };
    const finished = await finishMarkedDelete(record, deps.objects, deps.volumes, deps.store.checkpoints);
    // Left marked: a DeleteCheckpoint retry, retention or the next start-up finishes it.
    if (!finished.ok) log.warn({ ...at, error: finished.error.message }, 'delete left by a stopped coordinator not finished');
    else {
      log.warn({ ...at, ...finished.value }, 'delete left by a stopped coordinator finished');
      deleted.push(record.id);
      deps.onDeleted?.(record);
    }
  }
  if (aborted.length > 0 || released.length > 0) log.warn({ aborted, released }, 'rounds left by a stopped coordinator ended');
  return ok({ aborted, released, deleted });
}

async function abortLeft(deps: RecoveryDeps, log: Logger, record: CheckpointRecord, action: Extract<RecoveryAction, { type: 'abort' }>): Promise<boolean> {
  const at = { checkpointId: record.id, plan: record.planId, tenant: record.tenant, state: record.state };
  const servers = new Set([...record.parts.map((p) => p.server), ...(record.servers ?? []).map((s) => s.server), ...record.volumes.map((v) => v.server)]);
  for (const server of servers) {
    try {
      deps.bus.send({ tenant: record.tenant, server, plan: record.planId, epoch: record.epoch, checkpointId: record.id, type: 'abort', reason: 'the coordinator running this checkpoint stopped' });
    } catch (error) {
      log.warn({ ...at, server, err: error }, 'abort notice not sent');
    }
  }
  const retired = await retireParts(record, deps.objects, deps.volumes);
  if (!retired.ok) log.warn({ ...at, error: retired.error.message }, 'parts of a left round not all deleted');
  if (action.sweepVolumes && deps.volumes !== undefined) await sweepCheckpointVolumes(deps.store, deps.volumes, log, record);
  const now = deps.nowUnixMs();
  const updated = await deps.store.checkpoints.update(record.id, (cur) =>
    TERMINAL_STATES.includes(cur.state) ? undefined : { ...cur, state: 'aborted', failureReason: 'coordinator-lost', failureDetail: action.detail, finishedAtUnixMs: now },
  );
  if (!updated.ok) {
    log.warn({ ...at, error: updated.error.message }, 'left round not marked aborted');
    return false;
  }
  log.warn({ ...at, ...(retired.ok ? retired.value : {}) }, 'left round aborted');
  return true;
}

/** A round of this record may have had the backend snapshot volumes, recorded or not. */
export function mayHoldVolumeSnapshots(record: CheckpointRecord): boolean {
  return record.levelRequested !== 'app' || record.volumes.length > 0;
}

/**
 * The volume snapshots of a left round that its record does not list: the backend answered after
 * the round's coordinator died, or before the round wrote them down, or a crash cut their deletion.
 * The backend finds them by the checkpoint's name. Best effort: what it cannot delete stays, logged.
 */
export async function sweepCheckpointVolumes(store: CoordinatorStore, volumes: VolumeBackend, log: Logger, record: CheckpointRecord): Promise<void> {
  const at = { checkpointId: record.id, plan: record.planId, tenant: record.tenant };
  const plan = await store.plans.get(record.planId);
  // A plan deleted since: the directory backend still finds them by the id alone.
  const planVolumes = plan.ok ? plan.value.volumes : [];
  const swept = await volumes.deleteForCheckpoint(record.id, planVolumes);
  if (!swept.ok) log.warn({ ...at, error: swept.error.message }, 'volume snapshots of a left round not looked for: any the record does not list stay on the backend');
}
