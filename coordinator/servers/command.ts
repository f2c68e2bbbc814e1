/**
 * The server backend as command templates (libvirt's virsh, a cloud's CLI): argument lists run
 * without a shell, each logged with its exit code and the tail of its stderr. `freeze` and `thaw`
 * once per server, `snapshot` once per server for all its disks (one group snapshot), `delete` once
 * per snapshot. docs/backends.md gives libvirt examples.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { fail, ok, type Result } from '../errors.js';
import type { AgentlessServer, Volume } from '../model.js';
import type { TakenVolumeSnapshot, VolumeSnapshotRef } from '../volumes/backend.js';
import { fill, runArgv } from '../volumes/command.js';
import { SERVER_COMMAND_TIMEOUT_MS_DEFAULT, type HeldServer, type ServerBackend } from './backend.js';

export interface ServerTemplates {
  /**
   * Placeholders everywhere: {ref} (the server's backendRef, e.g. a libvirt domain), {server},
   * {checkpoint}, {snapshot} (the name `snapshotName` gives). An argument that is exactly `{refs}`
   * becomes one argument per volume's backendRef (the server's disks in the plan).
   */
  readonly freeze: readonly string[];
  readonly thaw: readonly string[];
  /** What `freeze` does, as the record says: `hypervisor-pause` (e.g. virsh suspend) or `guest-fsfreeze` (virsh domfsfreeze). */
  readonly freezeMethod: HeldServer['method'];
  /** One atomic snapshot of all the server's disks. */
  readonly snapshot: readonly string[];
  /** Deletes one snapshot ({ref}, {snapshot}); must succeed when it is already gone. */
  readonly delete: readonly string[];
  /** Default `cp-{checkpoint}`. */
  readonly snapshotName?: string;
  readonly commandTimeoutMs?: number;
}

const REF_PREFIX = 'server:';

export async function parseServerTemplates(path: string): Promise<Result<ServerTemplates>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    return fail('invalid-argument', `cannot read server templates ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const o = (json ?? {}) as Record<string, unknown>;
  for (const k of ['freeze', 'thaw', 'snapshot', 'delete']) {
    const v = o[k];
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string')) {
      return fail('invalid-argument', `${path}: "${k}" must be a non-empty list of strings (the command and its arguments)`);
    }
  }
  if (o.freezeMethod !== 'hypervisor-pause' && o.freezeMethod !== 'guest-fsfreeze') {
    return fail('invalid-argument', `${path}: "freezeMethod" must be "hypervisor-pause" or "guest-fsfreeze" (what the freeze command does, as the record says)`);
  }
  if (typeof o.snapshotName === 'string' && !o.snapshotName.includes('{checkpoint}')) {
    return fail('invalid-argument', `${path}: "snapshotName" must contain {checkpoint}`);
  }
  return ok(o as unknown as ServerTemplates);
}

export class ServerCommandBackend implements ServerBackend {
  readonly kind = 'command' as const;
  private readonly log: Logger;

  constructor(
    private readonly t: ServerTemplates,
    logger: Logger,
    private readonly nowUnixMs: () => number = Date.now,
  ) {
    this.log = logger.child({ component: 'servers', backend: 'command' });
  }

  private run(template: readonly string[], server: AgentlessServer, checkpointId: string, volumes: readonly Volume[], what: Record<string, unknown>): Promise<Result<void>> {
    const values = { ref: server.backendRef, server: server.server, checkpoint: checkpointId, snapshot: this.name(checkpointId) };
    const argv = template.flatMap((a) => (a === '{refs}' ? volumes.map((v) => v.backendRef) : [fill(a, values)]));
    return runArgv(argv, this.t.commandTimeoutMs ?? SERVER_COMMAND_TIMEOUT_MS_DEFAULT, this.log, { server: server.server, ...what });
  }

  private name(checkpointId: string): string {
    return fill(this.t.snapshotName ?? 'cp-{checkpoint}', { checkpoint: checkpointId });
  }

  async freeze(server: AgentlessServer, checkpointId: number): Promise<Result<HeldServer>> {
    const r = await this.run(this.t.freeze, server, String(checkpointId), [], { checkpointId, step: 'freeze' });
    if (r.ok) return ok({ method: this.t.freezeMethod, wasPaused: false });
    // A freeze command that failed part way may have taken effect: the thaw command undoes it.
    const undone = await this.run(this.t.thaw, server, String(checkpointId), [], { checkpointId, step: 'thaw-after-failed-freeze' });
    return fail(r.error.kind, `${r.error.message}; ${undone.ok ? 'the thaw command ran after it' : `the thaw command failed too: ${undone.error.message}`}`);
  }

  failedFreezeMethod(): HeldServer['method'] {
    return this.t.freezeMethod;
  }

  thaw(server: AgentlessServer, _held: HeldServer, checkpointId: number): Promise<Result<void>> {
    return this.run(this.t.thaw, server, String(checkpointId), [], { checkpointId, step: 'thaw' });
  }

  async snapshotDisks(server: AgentlessServer, volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    const startedAtUnixMs = this.nowUnixMs();
    const r = await this.run(this.t.snapshot, server, String(checkpointId), volumes, { checkpointId, step: 'snapshot' });
    if (!r.ok) return r;
    const endedAtUnixMs = this.nowUnixMs();
    const snapshotRef = `${REF_PREFIX}${server.backendRef}#${this.name(String(checkpointId))}`;
    return ok(volumes.map((v) => ({ volumeId: v.id, server: v.server, snapshotRef, startedAtUnixMs, endedAtUnixMs })));
  }

  owns(snapshotRef: string): boolean {
    return snapshotRef.startsWith(REF_PREFIX);
  }

  async delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>> {
    const done = new Set<string>();
    for (const s of snapshots) {
      // The disks of one server share one snapshot: deleted once.
      if (done.has(s.snapshotRef)) continue;
      done.add(s.snapshotRef);
      const hash = s.snapshotRef.lastIndexOf('#');
      if (!this.owns(s.snapshotRef) || hash < 0) return fail('invalid-argument', `${s.snapshotRef} is not a server backend snapshot`);
      const values = { ref: s.snapshotRef.slice(REF_PREFIX.length, hash), server: s.server, checkpoint: '', snapshot: s.snapshotRef.slice(hash + 1) };
      const r = await runArgv(this.t.delete.map((a) => fill(a, values)), this.t.commandTimeoutMs ?? SERVER_COMMAND_TIMEOUT_MS_DEFAULT, this.log, { server: s.server, step: 'delete' });
      if (!r.ok) return r;
    }
    return ok(undefined);
  }

  deleteForCheckpoint(server: AgentlessServer, _volumes: readonly Volume[], checkpointId: number): Promise<Result<void>> {
    return this.run(this.t.delete, server, String(checkpointId), [], { checkpointId, step: 'delete-checkpoint' });
  }
}
