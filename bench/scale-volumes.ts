/**
 * The scale benchmark's crash mode measures the frozen window beyond the volume backend's own time.
 * The record gives each member's start only (VolumeSnapshot.snapshotAtUnixMs), not when the group
 * call returned, so the backend is wrapped here and its snapshot call timed whole.
 */
import type { Result } from '../coordinator/errors.js';
import type { Volume } from '../coordinator/model.js';
import type { TakenVolumeSnapshot, VolumeBackend, VolumeSnapshotRef } from '../coordinator/volumes/backend.js';

export class TimedVolumeBackend implements VolumeBackend {
  /** Per checkpoint id: how long the group snapshot call took, and how many volumes it took. */
  readonly calls = new Map<number, { ms: number; members: number }>();

  constructor(private readonly inner: VolumeBackend) {}

  get kind(): VolumeBackend['kind'] {
    return this.inner.kind;
  }

  async snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    const t0 = performance.now();
    const r = await this.inner.snapshot(volumes, checkpointId);
    this.calls.set(checkpointId, { ms: performance.now() - t0, members: volumes.length });
    return r;
  }

  revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>> {
    return this.inner.revert(snapshots, volumes);
  }

  restoreTo(snapshot: VolumeSnapshotRef, target: Volume): Promise<Result<void>> {
    return this.inner.restoreTo(snapshot, target);
  }

  delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>> {
    return this.inner.delete(snapshots);
  }

  deleteForCheckpoint(checkpointId: number, volumes: readonly Volume[]): Promise<Result<void>> {
    return this.inner.deleteForCheckpoint(checkpointId, volumes);
  }
}
