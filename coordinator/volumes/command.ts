/**
 * The command backend, for real clouds: argument templates run once per volume (e.g. `rbd snap
 * create {ref}@cp-{checkpoint}`), no shell involved, each invocation logged with its exit code and
 * the tail of its stderr. A non-zero exit fails the step with that stderr.
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
  for (const k of ['snapshot', 'revert', 'delete', 'restore', 'deleteCheckpoint']) {
    const v = o[k];
    const optional = k === 'restore' || k === 'deleteCheckpoint';
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
  return ok(o as unknown as CommandTemplates);
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => values[k] ?? m);
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
    const [cmd, ...args] = argv;
    return new Promise((resolve) => {
      execFile(cmd as string, args, { timeout: this.t.commandTimeoutMs ?? COMMAND_TIMEOUT_MS_DEFAULT }, (error, _stdout, stderr) => {
        const tail = stderr.slice(-STDERR_TAIL_CHARS);
        this.log.info({ ...what, argv, exitCode: error ? (error.code ?? 'killed') : 0, stderr: tail }, 'volume command');
        resolve(error ? fail('internal', `${argv.join(' ')} failed (${error.code ?? error.signal ?? error.message}): ${tail}`) : ok(undefined));
      });
    });
  }

  private values(v: { id?: string; volumeId?: string; server: string; backendRef?: string }, checkpointId: string, snapshot = ''): Record<string, string> {
    const base = { ref: v.backendRef ?? '', volume: v.id ?? v.volumeId ?? '', server: v.server, checkpoint: checkpointId, snapshot };
    return base;
  }

  /**
   * One command per volume, one after another: each member's interval is its own command's run.
   * The instant the storage took the snapshot lies somewhere inside it; the command cannot tell us
   * more, so nothing narrower is claimed.
   */
  async snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
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

  private snapshotName(values: Record<string, string>): string {
    return fill(this.t.snapshotName ?? '{ref}@cp-{checkpoint}', values);
  }

  async deleteForCheckpoint(checkpointId: number, volumes: readonly Volume[]): Promise<Result<void>> {
    const template = this.t.deleteCheckpoint;
    if (template === undefined) {
      return fail('failed-precondition', `the command volume backend has no "deleteCheckpoint" template: snapshots of checkpoint ${checkpointId} that no record lists cannot be found`);
    }
    for (const v of volumes) {
      const values = this.values(v, String(checkpointId));
      const r = await this.run(template.map((a) => fill(a, { ...values, snapshot: this.snapshotName(values) })), { checkpointId, volume: v.id, step: 'delete-checkpoint' });
      if (!r.ok) return r;
    }
    return ok(undefined);
  }

  async revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>> {
    for (const s of snapshots) {
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
    for (const s of snapshots) {
      const r = await this.run(this.t.delete.map((a) => fill(a, { ref: '', volume: s.volumeId, server: s.server, checkpoint: '', snapshot: s.snapshotRef })), { volume: s.volumeId, step: 'delete' });
      if (!r.ok) return r;
    }
    return ok(undefined);
  }
}
