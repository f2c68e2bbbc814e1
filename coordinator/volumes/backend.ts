/**
 * Volume backends: how the coordinator snapshots a crash-consistent group of volumes while every
 * server of the plan is frozen, and puts volumes back. One interface, one module per backend, chosen
 * once at start-up by `createVolumeBackend`, which rejects a bad specification there.
 */
import type { Logger } from 'pino';
import type { Result } from '../errors.js';
import { fail } from '../errors.js';
import type { Volume } from '../model.js';
import { CommandBackend, parseCommandTemplates } from './command.js';
import { DirectoryBackend } from './directory.js';

export interface VolumeSnapshotRef {
  readonly volumeId: string;
  readonly server: string;
  /** What the backend needs to find the snapshot again. */
  readonly snapshotRef: string;
}

/**
 * One member of a group snapshot, with when it was taken. A snapshot is not an instant: a copy or a
 * storage call takes time, and the member holds what its volume held at some moment in between. So
 * the backend reports that interval, on the coordinator's clock, and the coordinator checks that it
 * lies inside the common frozen window (DESIGN.md section 9: members snapshotted at different
 * instants, or outside the freeze window, are what goes wrong elsewhere). A backend that copies the
 * members one after another reports each member's own interval; one that snapshots the whole group
 * with a single call (a storage array's consistency-group snapshot) reports that call's interval
 * for every member, since it cannot know more.
 */
export interface TakenVolumeSnapshot extends VolumeSnapshotRef {
  /** Just before the backend started on this member (its copy or its command). */
  readonly startedAtUnixMs: number;
  /** Once this member's snapshot existed (its copy or its command finished). */
  readonly endedAtUnixMs: number;
}

export interface VolumeBackend {
  readonly kind: 'directory' | 'command' | 'server';
  /** One call for the whole group, while every member is frozen; with each member's interval (see TakenVolumeSnapshot). */
  snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>>;
  /** Puts each volume back to its snapshot (a rollback: the servers are frozen meanwhile). */
  revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>>;
  /** Puts a snapshot onto another volume (restore into other servers); the target is frozen meanwhile. */
  restoreTo(snapshot: VolumeSnapshotRef, target: Volume): Promise<Result<void>>;
  /** Deletes snapshots (an aborted or retired checkpoint); a missing one is not an error. */
  delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>>;
  /**
   * Deletes whatever snapshot the backend holds of checkpoint `checkpointId`, recorded or not (each
   * backend names its snapshots after their checkpoint); none is not an error. For the snapshots no
   * record lists: a backend that answered after its coordinator died, or whose answer the round had
   * not written down yet, or a clean-up a crash cut. `volumes`: the plan's, as it stands now.
   * FAILED_PRECONDITION when the backend cannot find them (a command backend without the
   * `deleteCheckpoint` template).
   */
  deleteForCheckpoint(checkpointId: number, volumes: readonly Volume[]): Promise<Result<void>>;
}

/**
 * `directory:/path/for/snapshots` or `command:/path/to/templates.json`. `nowUnixMs` must be the
 * clock the checkpoint runs use: the snapshot times are compared with the frozen windows they record.
 */
export async function createVolumeBackend(spec: string, logger: Logger, nowUnixMs: () => number = Date.now): Promise<Result<VolumeBackend>> {
  const at = spec.indexOf(':');
  const kind = at < 0 ? spec : spec.slice(0, at);
  const arg = at < 0 ? '' : spec.slice(at + 1);
  if (kind === 'directory') {
    if (arg === '') return fail('invalid-argument', 'the directory backend needs a snapshot directory: directory:/var/lib/snapshots');
    return { ok: true, value: new DirectoryBackend(arg, logger, nowUnixMs) };
  }
  if (kind === 'command') {
    const templates = await parseCommandTemplates(arg);
    if (!templates.ok) return templates;
    return { ok: true, value: new CommandBackend(templates.value, logger, nowUnixMs) };
  }
  return fail('invalid-argument', `unknown volume backend ${JSON.stringify(kind)}: use directory:PATH or command:TEMPLATES.json`);
}
