/**
 * The command backend, for real clouds: argument templates run once per volume (e.g. `rbd snap
 * create {ref}@cp-{checkpoint}`), or, where the storage has a group API, one command for the whole
 * group (`snapshotGroup`, e.g. `rbd group snap create`); no shell involved, each invocation logged
 * with its exit code and the tail of its stderr. A non-zero exit fails the step with that stderr.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { fail, ok, type Result } from '../errors.js';
import type { Volume } from '../model.js';
import type { TakenVolumeSnapshot, VolumeBackend, VolumeSnapshotRef } from './backend.js';

export interface CommandTemplates {
  /** Placeholders: {ref} (the volume's backendRef), {volume}, {server}, {checkpoint}, {snapshot}. */
  readonly snapshot: readonly string[];
  readonly revert: readonly string[];
  readonly delete: readonly string[];
  /** Optional: puts a snapshot onto another volume (restore into other servers), e.g. `rbd clone`. */
  readonly restore?: readonly string[];
  /**
   * Optional: deletes the snapshot of one volume for one checkpoint, recorded or not, and succeeds
   * when there is none (e.g. a script around `rbd snap rm {snapshot}` that ignores "not found").
   * Run once per volume of the plan, with {snapshot} the name `snapshotName` gives; the coordinator
   * uses it for rounds a crash cut short, whose snapshots no record lists. Without it, those are
   * left on the backend (logged).
   */
  readonly deleteCheckpoint?: readonly string[];
  /** What a snapshot is called, from the same placeholders; default `{ref}@cp-{checkpoint}`. */
  readonly snapshotName?: string;
  /**
   * Optional: one command for all the volumes of a snapshot call instead of `snapshot` once per
   * volume (a storage group snapshot, atomic across its members). Placeholders {checkpoint} and
   * {snapshot} (the group's name, `groupSnapshotName`); an argument that is exactly `{refs}` becomes
   * one argument per volume's backendRef. Every member's snapshot is the group's: `delete` and
   * `revert` run once per distinct snapshot.
   */
  readonly snapshotGroup?: readonly string[];
  /** What a group snapshot is called; default `cp-{checkpoint}`. */
  readonly groupSnapshotName?: string;
  readonly commandTimeoutMs?: number;
}

const COMMAND_TIMEOUT_MS_DEFAULT = 60_000;
const STDERR_TAIL_CHARS = 2_000;

export async function parseCommandTemplates(path: string): Promise<Result<CommandTemplates>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    return fail('invalid-argument', `cannot read command templates ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const o = (json ?? {}) as Record<string, unknown>;
  for (const k of ['snapshot', 'revert', 'delete', 'restore', 'deleteCheckpoint', 'snapshotGroup']) {
    const v = o[k];
    const optional = k === 'restore' || k === 'deleteCheckpoint' || k === 'snapshotGroup';
    if (optional && v === undefined) continue;
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string')) {
      return fail('invalid-argument', `${path}: "${k}" must be a non-empty list of strings (the command and its arguments)`);
    }
  }
  // The sweep finds a checkpoint's snapshots by name: a name without the checkpoint would be
  // another checkpoint's snapshot too, and the sweep would delete that one.
  if (o.deleteCheckpoint !== undefined && typeof o.snapshotName === 'string' && !o.snapshotName.includes('{checkpoint}')) {
    return fail('invalid-argument', `${path}: with "deleteCheckpoint", "snapshotName" must contain {checkpoint}`);
  }
  // Two checkpoints' group snapshots under one name would collide, and a delete of one would take the other.
  if (o.snapshotGroup !== undefined && typeof o.groupSnapshotName === 'string' && !o.groupSnapshotName.includes('{checkpoint}')) {
    return fail('invalid-argument', `${path}: "groupSnapshotName" must contain {checkpoint}`);
  }
  return ok(o as unknown as CommandTemplates);
}

export function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => values[k] ?? m);
}

/**
 * Runs one command (no shell), logging it with its exit code and the tail of its stderr; a non-zero
 * exit, a signal or the timeout is an error value carrying that stderr. Shared with the server
 * backend's templates (coordinator/servers/command.ts).
 */
export function runArgv(argv: readonly string[], timeoutMs: number, log: Logger, what: Record<string, unknown>): Promise<Result<void>> {
  const [cmd, ...args] = argv;
  return new Promise((resolve) => {
    execFile(cmd as string, args, { timeout: timeoutMs }, (error, _stdout, stderr) => {
      const tail = stderr.slice(-STDERR_TAIL_CHARS);
      log.info({ ...what, argv, exitCode: error ? (error.code ?? 'killed') : 0, stderr: tail }, 'command');
      resolve(error ? fail('internal', `${argv.join(' ')} failed (${error.code ?? error.signal ?? error.message}): ${tail}`) : ok(undefined));
    });
  });
}

export class CommandBackend implements VolumeBackend {
  readonly kind = 'command' as const;
  private readonly log: Logger;

  constructor(
    private readonly t: CommandTemplates,
    logger: Logger,
    private readonly nowUnixMs: () => number = Date.now,
  ) {
    this.log = logger.child({ component: 'volumes', backend: 'command' });
  }

  private run(argv: readonly string[], what: Record<string, unknown>): Promise<Result<void>> {
    return runArgv(argv, this.t.commandTimeoutMs ?? COMMAND_TIMEOUT_MS_DEFAULT, this.log, what);
  }

  private values(v: { id?: string; volumeId?: string; server: string; backendRef?: string }, checkpointId: string, snapshot = ''): Record<string, string> {
    const base = { ref: v.backendRef ?? '', volume: v.id ?? v.volumeId ?? '', server: v.server, checkpoint: checkpointId, snapshot };
    return base;
  }

  /**
   * One command per volume, one after another: each member's interval is its own command's run.
   * The instant the storage took the snapshot lies somewhere inside it; the command cannot tell us
   * more, so nothing narrower is claimed. With `snapshotGroup`, one command for all of them, whose
   * run is every member's interval.
   */
  async snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    if (this.t.snapshotGroup !== undefined) return this.snapshotAsGroup(this.t.snapshotGroup, volumes, checkpointId);
    const refs: TakenVolumeSnapshot[] = [];
    for (const v of volumes) {
      const values = this.values(v, String(checkpointId));
      const name = this.snapshotName(values);
      const startedAtUnixMs = this.nowUnixMs();
      const r = await this.run(this.t.snapshot.map((a) => fill(a, { ...values, snapshot: name })), { checkpointId, volume: v.id, step: 'snapshot' });
      if (!r.ok) {
        await this.delete(refs);
        return r;
      }
      refs.push({ volumeId: v.id, server: v.server, snapshotRef: name, startedAtUnixMs, endedAtUnixMs: this.nowUnixMs() });
    }
    return ok(refs);
  }

  private async snapshotAsGroup(template: readonly string[], volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    const name = this.groupSnapshotName(checkpointId);
    const values = { checkpoint: String(checkpointId), snapshot: name };
    const argv = template.flatMap((a) => (a === '{refs}' ? volumes.map((v) => v.backendRef) : [fill(a, values)]));
    const startedAtUnixMs = this.nowUnixMs();
    const r = await this.run(argv, { checkpointId, volumes: volumes.map((v) => v.id), step: 'snapshot-group' });
    if (!r.ok) return r;
    const endedAtUnixMs = this.nowUnixMs();
    return ok(volumes.map((v) => ({ volumeId: v.id, server: v.server, snapshotRef: name, startedAtUnixMs, endedAtUnixMs })));
  }

  private groupSnapshotName(checkpointId: number): string {
    return fill(this.t.groupSnapshotName ?? 'cp-{checkpoint}', { checkpoint: String(checkpointId) });
  }

  private snapshotName(values: Record<string, string>): string {
    return fill(this.t.snapshotName ?? '{ref}@cp-{checkpoint}', values);
  }

  async deleteForCheckpoint(checkpointId: number, volumes: readonly Volume[]): Promise<Result<void>> {
    const template = this.t.deleteCheckpoint;
    if (template === undefined) {
      return fail('failed-precondition', `the command volume backend has no "deleteCheckpoint" template: snapshots of checkpoint ${checkpointId} that no record lists cannot be found`);
    }
    if (this.t.snapshotGroup !== undefined) {
      const values = { checkpoint: String(checkpointId), snapshot: this.groupSnapshotName(checkpointId), ref: '', volume: '', server: '' };
      return this.run(template.map((a) => fill(a, values)), { checkpointId, step: 'delete-checkpoint' });
    }
    for (const v of volumes) {
      const values = this.values(v, String(checkpointId));
      const r = await this.run(template.map((a) => fill(a, { ...values, snapshot: this.snapshotName(values) })), { checkpointId, volume: v.id, step: 'delete-checkpoint' });
      if (!r.ok) return r;
    }
    return ok(undefined);
  }

  async revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>> {
    for (const s of distinct(snapshots)) {
      const v = volumes.find((x) => x.id === s.volumeId && x.server === s.server);
      if (!v) return fail('failed-precondition', `volume ${s.volumeId} of ${s.server} is no longer in the plan`);
      const r = await this.run(this.t.revert.map((a) => fill(a, this.values(v, '', s.snapshotRef))), { volume: v.id, step: 'revert' });
      if (!r.ok) return r;
    }
    return ok(undefined);
  }

  async restoreTo(s: VolumeSnapshotRef, target: Volume): Promise<Result<void>> {
    if (!this.t.restore) return fail('failed-precondition', 'the command volume backend has no "restore" template: restoring into other volumes is not configured');
    return this.run(this.t.restore.map((a) => fill(a, this.values(target, '', s.snapshotRef))), { volume: target.id, step: 'restore', from: s.snapshotRef });
  }

  async delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>> {
    for (const s of distinct(snapshots)) {
      const r = await this.run(this.t.delete.map((a) => fill(a, { ref: '', volume: s.volumeId, server: s.server, checkpoint: '', snapshot: s.snapshotRef })), { volume: s.volumeId, step: 'delete' });
      if (!r.ok) return r;
    }
    return ok(undefined);
  }
}

/** The first of each snapshotRef: the members of a group snapshot share one, which is acted on once. */
function distinct(snapshots: readonly VolumeSnapshotRef[]): VolumeSnapshotRef[] {
  const seen = new Set<string>();
  return snapshots.filter((s) => !seen.has(s.snapshotRef) && seen.add(s.snapshotRef) !== undefined);
}
