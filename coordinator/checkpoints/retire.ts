/**
 * Deleting what a checkpoint left outside its record: its stored objects (app and channel states)
 * and its volume snapshots, through the volume backend. Delete, retention and recovery all retire a
 * checkpoint this way, so none of them leaves volume snapshots behind (issue 9, defect 6: delete and
 * retention never deleted them).
 */
import type { StateObjects } from '../../adapters/state-store.js';
import type { DeleteOutcome } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import type { CheckpointStore } from '../store/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { storedObjectNames } from './part-state.js';

/** FAILED_PRECONDITION when the record has volume snapshots and there is no backend to delete them with. */
export function canRetire(record: CheckpointRecord, volumes: VolumeBackend | undefined): Result<void> {
  if (record.volumes.length > 0 && volumes === undefined) {
    return fail(
      'failed-precondition',
      `checkpoint ${record.id} has ${record.volumes.length} volume snapshot(s) and this coordinator has no volume backend to delete them with: start it with --volume-backend`,
    );
  }
  return ok(undefined);
}

/** Deletes the objects and volume snapshots; the record is the caller's to delete or mark. */
export async function retireParts(record: CheckpointRecord, objects: StateObjects, volumes: VolumeBackend | undefined): Promise<Result<DeleteOutcome>> {
  const retirable = canRetire(record, volumes);
  if (!retirable.ok) return retirable;
  // The parts' objects, and those an app stored but never acked (an incomplete checkpoint's), by prefix.
  const listed = await objects.list(record.tenant, `cp/${record.id}/`);
  if (!listed.ok) return fail('unavailable', `the stored parts of checkpoint ${record.id} could not be listed: ${listed.error.message}`);
  const names = [...new Set([...storedObjectNames(record), ...listed.value])];
  const removed = await objects.delete(record.tenant, names);
  if (!removed.ok) return fail('unavailable', `the stored parts of checkpoint ${record.id} could not be deleted: ${removed.error.message}`);
  const refs = record.volumes.map((v) => ({ volumeId: v.volumeId, server: v.server, snapshotRef: v.snapshotRef }));
  if (refs.length > 0 && volumes !== undefined) {
    const gone = await volumes.delete(refs);
    if (!gone.ok) return fail('unavailable', `the volume snapshots of checkpoint ${record.id} could not be deleted: ${gone.error.message}`);
  }
  return ok({ deletedObjects: names.length, deletedVolumeSnapshots: refs.map((r) => r.snapshotRef) });
}

/**
 * Finishes the delete of a record marked `deleting` (src/control/retention.ts decideDeleteMark): its
 * parts and volume snapshots, then the record. Idempotent, so a retry, retention and recovery may all
 * finish one delete; a record already gone counts as deleted.
 */
export async function finishMarkedDelete(
  record: CheckpointRecord,
  objects: StateObjects,
  volumes: VolumeBackend | undefined,
  checkpoints: CheckpointStore,
): Promise<Result<DeleteOutcome>> {
  if (record.deleting !== true) return fail('internal', `checkpoint ${record.id} is not marked deleting: its parts must not go`);
  const retired = await retireParts(record, objects, volumes);
  if (!retired.ok) return retired;
  const deleted = await checkpoints.delete(record.id);
  if (!deleted.ok && deleted.error.kind !== 'not-found') return deleted;
  return retired;
}
