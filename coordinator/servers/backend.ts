/**
 * Server backends: crash consistency for servers that run no agent (DESIGN.md section 10). Where an
 * agent would freeze its server, the server backend pauses the machine at the hypervisor (or
 * freezes the guest's file systems through qemu-guest-agent), and snapshots all the machine's disks
 * as one group while every server of the plan is frozen; then resumes it. One interface, one module
 * per backend (qemu over QMP, command templates), chosen once at start-up by `createServerBackend`.
 *
 * The round machine does not know about them: coordinator/servers/router.ts answers the round's
 * freeze and thaw commands for these servers, and coordinator/servers/volumes.ts routes their disks
 * to the server backend within the round's one group snapshot.
 */
import type { Logger } from 'pino';
import { fail, type Result } from '../errors.js';
import type { AgentlessServer, ServerFreeze, Volume } from '../model.js';
import type { TakenVolumeSnapshot, VolumeSnapshotRef } from '../volumes/backend.js';
import { parseServerTemplates, ServerCommandBackend } from './command.js';
import { QemuServerBackend } from './qemu.js';

/**
 * How a server was held still, as recorded: by its agent (freeze hooks, fsfreeze), by the
 * hypervisor (the machine paused: nothing runs, nothing is flushed), or by the guest agent
 * (qemu-guest-agent's fsfreeze: the guest flushed its file systems and holds writes).
 */
export type FreezeMethod = 'agent-freeze' | 'hypervisor-pause' | 'guest-fsfreeze';

/** What a freeze did, for the thaw to undo exactly that. */
export interface HeldServer {
  readonly method: Exclude<FreezeMethod, 'agent-freeze'>;
  /** The machine was already paused before the freeze (by someone else): the thaw leaves it paused. */
  readonly wasPaused: boolean;
}

export interface ServerBackend {
  readonly kind: 'qemu' | 'command';
  /**
   * Holds the server still. On failure the backend has tried to undo whatever part of it took
   * effect (a `stop` whose answer was lost may have paused the machine), and the error says so.
   */
  freeze(server: AgentlessServer, checkpointId: number): Promise<Result<HeldServer>>;
  /** What a freeze of this server that failed is recorded as (the step that failed last). */
  failedFreezeMethod(server: AgentlessServer): HeldServer['method'];
  /** Undoes `freeze`. */
  thaw(server: AgentlessServer, held: HeldServer, checkpointId: number): Promise<Result<void>>;
  /**
   * One atomic snapshot of every disk of the server (the system disk too), named after the
   * checkpoint; one member per volume given (the plan's volumes of that server). The call's run is
   * every member's interval.
   */
  snapshotDisks(server: AgentlessServer, volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>>;
  /** Whether a snapshotRef names one of this backend's snapshots. */
  owns(snapshotRef: string): boolean;
  /** Deletes snapshots this backend took; a missing one is not an error. */
  delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>>;
  /** Deletes the server's snapshots of checkpoint `checkpointId`, recorded or not; none is not an error. */
  deleteForCheckpoint(server: AgentlessServer, volumes: readonly Volume[], checkpointId: number): Promise<Result<void>>;
}

/** The name of the hook result a server backend records for a freeze or thaw it carried out. */
export function freezeHookName(method: HeldServer['method']): string {
  return `server-backend:${method}`;
}

/** How a server of a crash-level record was held still: read from the hook result the server backend recorded, if any. */
export function freezeMethodOf(s: ServerFreeze): FreezeMethod {
  for (const h of s.hooks) {
    if (h.action !== 'freeze') continue;
    if (h.hook === freezeHookName('hypervisor-pause')) return 'hypervisor-pause';
    if (h.hook === freezeHookName('guest-fsfreeze')) return 'guest-fsfreeze';
  }
  return 'agent-freeze';
}

/** How long one QMP or guest-agent exchange, or one template command, may take by default. */
export const SERVER_COMMAND_TIMEOUT_MS_DEFAULT = 10_000;

/**
 * `qemu` (QMP sockets named by each agentless server's backendRef) or `command:/path/templates.json`.
 * `nowUnixMs` must be the clock the checkpoint runs use (the disk snapshot times are checked against
 * the frozen windows).
 */
export async function createServerBackend(spec: string, logger: Logger, nowUnixMs: () => number = Date.now): Promise<Result<ServerBackend>> {
  const at = spec.indexOf(':');
  const kind = at < 0 ? spec : spec.slice(0, at);
  const arg = at < 0 ? '' : spec.slice(at + 1);
  if (kind === 'qemu') {
    if (arg !== '') return fail('invalid-argument', `the qemu server backend takes no argument (each server's QMP socket is its backend_ref in the plan), got ${JSON.stringify(arg)}`);
    return { ok: true, value: new QemuServerBackend(logger, nowUnixMs) };
  }
  if (kind === 'command') {
    const templates = await parseServerTemplates(arg);
    if (!templates.ok) return templates;
    return { ok: true, value: new ServerCommandBackend(templates.value, logger, nowUnixMs) };
  }
  return fail('invalid-argument', `unknown server backend ${JSON.stringify(kind)}: use qemu or command:TEMPLATES.json`);
}
