/** What the simulated coordinator keeps in its KV bucket, and the keys it keeps it under. */
import type { RoundFailure, RoundState, RoundVolumeRecord } from '../../src/control/round.js';
import type { ObjectRef } from '../../src/wire/index.js';
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
  pinned: boolean;
  /** A DeleteCheckpoint began (src/control/retention.ts decideDeleteMark): the parts may be gone, the record goes last. */
  deleting?: boolean;
  /** The coordinator incarnation that ran it (recovery aborts the rounds of dead ones). */
  readonly owner: string;
  readonly periodic: boolean;
  readonly createdAtMs: number;
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
