/**
 * The directory backend, for tests and the demo: a volume is a directory (its backendRef); a
 * snapshot is a copy under the snapshot root (copy-on-write clones where the filesystem has them);
 * a revert swaps the volume's content for the snapshot's.
 */
import { constants } from 'node:fs';
import { cp, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fail, ok, type Result } from '../errors.js';
import type { Volume } from '../model.js';
import type { TakenVolumeSnapshot, VolumeBackend, VolumeSnapshotRef } from './backend.js';

export class DirectoryBackend implements VolumeBackend {
  readonly kind = 'directory' as const;
  private readonly log: Logger;

  constructor(
    private readonly root: string,
    logger: Logger,
    private readonly nowUnixMs: () => number = Date.now,
  ) {
    this.log = logger.child({ component: 'volumes', backend: 'directory' });
  }

  /** The volumes are copied one after another, so each member has an interval of its own. */
  async snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    const refs: TakenVolumeSnapshot[] = [];
    try {
      for (const v of volumes) {
        const target = join(this.root, String(checkpointId), v.server, v.id);
        const startedAtUnixMs = this.nowUnixMs();
        await mkdir(join(this.root, String(checkpointId), v.server), { recursive: true });
        await cp(v.backendRef, target, { recursive: true, mode: constants.COPYFILE_FICLONE, errorOnExist: true, force: false });
        const endedAtUnixMs = this.nowUnixMs();
        refs.push({ volumeId: v.id, server: v.server, snapshotRef: target, startedAtUnixMs, endedAtUnixMs });
        this.log.info({ checkpointId, volume: v.id, server: v.server, from: v.backendRef, to: target, copyMs: endedAtUnixMs - startedAtUnixMs }, 'volume snapshotted');
      }
    } catch (error) {
      await this.delete(refs);
      return fail('internal', `directory snapshot failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    return ok(refs);
  }

  async revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>> {
    for (const s of snapshots) {
      const v = volumes.find((x) => x.id === s.volumeId && x.server === s.server);
      if (!v) return fail('failed-precondition', `volume ${s.volumeId} of ${s.server} is no longer in the plan`);
      const r = await this.restoreTo(s, v);
      if (!r.ok) return r;
    }
    return ok(undefined);
  }

  async restoreTo(s: VolumeSnapshotRef, v: Volume): Promise<Result<void>> {
    {
      try {
        await stat(s.snapshotRef);
      } catch {
        return fail('failed-precondition', `snapshot ${s.snapshotRef} of volume ${s.volumeId} is gone`);
      }
      // Copy first, swap second: a failure half way leaves the volume as it was.
      const incoming = `${v.backendRef}.incoming-${process.pid}`;
      const outgoing = `${v.backendRef}.outgoing-${process.pid}`;
      try {
        await rm(incoming, { recursive: true, force: true });
        await cp(s.snapshotRef, incoming, { recursive: true, mode: constants.COPYFILE_FICLONE });
        await rename(v.backendRef, outgoing);
        await rename(incoming, v.backendRef);
        await rm(outgoing, { recursive: true, force: true });
        this.log.info({ volume: v.id, server: v.server, from: s.snapshotRef }, 'volume restored from its snapshot');
      } catch (error) {
        return fail('internal', `restoring ${v.backendRef} from ${s.snapshotRef} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return ok(undefined);
  }

  /** Every snapshot of a checkpoint is under PATH/<checkpoint>/, a partial copy included. */
  async deleteForCheckpoint(checkpointId: number): Promise<Result<void>> {
    if (!Number.isSafeInteger(checkpointId) || checkpointId <= 0) return fail('invalid-argument', `checkpoint id must be a positive integer, got ${checkpointId}`);
    try {
      await rm(join(this.root, String(checkpointId)), { recursive: true, force: true });
    } catch (error) {
      return fail('internal', `deleting the snapshots of checkpoint ${checkpointId} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    return ok(undefined);
  }

  async delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>> {
    for (const s of snapshots) await rm(s.snapshotRef, { recursive: true, force: true });
    return ok(undefined);
  }
}
