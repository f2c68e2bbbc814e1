/** What the simulated coordinator keeps in its KV bucket, and the keys it keeps it under. */
import type { OperationKind, OperationLevel, OperationOutcome, OperationState } from '../../src/control/operation.js';
import type { RoundFailure, RoundState, RoundVolumeRecord } from '../../src/control/round.js';
import type { AppRestore, ObjectRef } from '../../src/wire/index.js';
import type { Level } from './topology.js';

export interface CheckpointRecord {
  readonly id: number;
  readonly plan: string;
  readonly level: Level;
  readonly epoch: number;
  state: RoundState | 'deleted';
  failure: RoundFailure | null;
  parts: { readonly server: string; readonly app: string; readonly ref: ObjectRef }[];
  volumes: readonly RoundVolumeRecord[];
  /** A staged checkpoint (BeginCheckpoint): its hold deadline. */
  readonly holdMs?: number;
  /** A staged checkpoint's volume snapshots, the caller's (the coordinator never deletes them). */
  callerVolumes?: readonly RoundVolumeRecord[];
  pinned: boolean;
  /** A DeleteCheckpoint began (src/control/retention.ts decideDeleteMark): the parts may be gone, the record goes last. */
  deleting?: boolean;
  /** The coordinator incarnation that ran it (recovery aborts the rounds of dead ones). */
  readonly owner: string;
  readonly periodic: boolean;
  readonly createdAtMs: number;
}

/**
 * A rollback's or restore's record (coordinator/store/operations.ts OperationRecord): what an
 * operator sees, and what the next coordinator needs to take it over (its servers, the mapping).
 */
export interface OperationRecord {
  readonly id: string;
  readonly kind: OperationKind;
  readonly level: OperationLevel;
  readonly checkpointId: number;
  /** The epoch line it sets: the plan, or a restore's own line. */
  readonly line: string;
  readonly request: string;
  readonly servers: readonly string[];
  /** Where each of the checkpoint's apps (`server/app`) goes. */
  readonly mapping: Readonly<Record<string, { readonly server: string; readonly app: string }>>;
  /** The idempotency key whose record this operation answers (the service keeps both in one record). */
  readonly key?: string;
  readonly state: OperationState;
  readonly detail: string;
  readonly epoch?: number;
  readonly safety: number;
  readonly outcome?: OperationOutcome;
}

/** What each server is sent to restore (coordinator/checkpoints/restore.ts restoreCommands); undefined when an app of the checkpoint has no target. */
export function restoreCommands(r: CheckpointRecord, mapping: OperationRecord['mapping']): Map<string, AppRestore[]> | undefined {
  const byServer = new Map<string, AppRestore[]>();
  for (const p of r.parts) {
    const target = mapping[`${p.server}/${p.app}`];
    if (target === undefined) return undefined;
    byServer.set(target.server, [...(byServer.get(target.server) ?? []), { app: target.app, state: { kind: 'object', ref: p.ref }, counts: { sent: {}, received: {} }, channelAliases: {} }]);
  }
  return byServer;
}

export const checkpointKey = (id: number): string => `ckpt.${id}`;
export const slotsKey = (plan: string): string => `slots.${plan}`;
export const epochKey = (plan: string): string => `epoch.${plan}`;
export const CHECKPOINT_COUNTER = 'counter.ckpt';
export const OPERATION_COUNTER = 'counter.op';
export const operationKey = (id: string): string => `op.${id}`;
export const idempotencyKey = (key: string): string => `key.${key}`;

/** The stored objects of a checkpoint share this prefix (the clean-up deletes by it). */
export const objectPrefix = (id: number): string => `ckpt/${id}/`;

/** Volume snapshots a completed record still owns (not deleted). */
export function liveVolumeRefs(r: CheckpointRecord): string[] {
  return r.volumes.filter((v) => v.deletedAtUnixMs === undefined).map((v) => v.snapshotRef);
}
