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

export interface VolumeBackend {
  readonly kind: 'directory' | 'command';
  /** One call for the whole group, while every member is frozen. */
  snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<VolumeSnapshotRef[]>>;
  /** Puts each volume back to its snapshot (a rollback: the servers are frozen meanwhile). */
  revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>>;
  /** Puts a snapshot onto another volume (restore into other servers); the target is frozen meanwhile. */
  restoreTo(snapshot: VolumeSnapshotRef, target: Volume): Promise<Result<void>>;
  /** Deletes snapshots (an aborted or retired checkpoint); a missing one is not an error. */
  delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>>;
}

/** `directory:/path/for/snapshots` or `command:/path/to/templates.json`. */
export async function createVolumeBackend(spec: string, logger: Logger): Promise<Result<VolumeBackend>> {
  const at = spec.indexOf(':');
  const kind = at < 0 ? spec : spec.slice(0, at);
  const arg = at < 0 ? '' : spec.slice(at + 1);
  if (kind === 'directory') {
    if (arg === '') return fail('invalid-argument', 'the directory backend needs a snapshot directory: directory:/var/lib/snapshots');
    return { ok: true, value: new DirectoryBackend(arg, logger) };
  }
  if (kind === 'command') {
    const templates = await parseCommandTemplates(arg);
    if (!templates.ok) return templates;
    return { ok: true, value: new CommandBackend(templates.value, logger) };
  }
  return fail('invalid-argument', `unknown volume backend ${JSON.stringify(kind)}: use directory:PATH or command:TEMPLATES.json`);
}
