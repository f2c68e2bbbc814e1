/**
 * The built-in QEMU server backend, over QMP (the server's backendRef is its QMP unix socket):
 * freeze is `stop` (the machine paused: its memory holds what the guest had not flushed, so the
 * disks are crash-consistent, as if power were cut), or, when the plan names the server's
 * qemu-guest-agent socket and the agent answers, `guest-fsfreeze-freeze` (the guest flushes and
 * holds its file systems). The disks are snapshotted by one QMP `transaction` of
 * `blockdev-snapshot-internal-sync` actions, one per disk: atomic, all or none. Thaw is `cont` (or
 * `guest-fsfreeze-thaw`).
 *
 * A snapshot is internal to its qcow2 image, named `cp-<checkpoint>`; its snapshotRef is
 * `qemu:<QMP socket>#<disk>@cp-<checkpoint>`, so it can be deleted later from the ref alone.
 * Reverting one is not done here (a running machine's disk cannot be reverted under it); docs/backends.md
 * says how (`qemu-img snapshot -a` with the machine off).
 */
import type { Logger } from 'pino';
import { fail, ok, type Result } from '../errors.js';
import type { AgentlessServer, Volume } from '../model.js';
import type { TakenVolumeSnapshot, VolumeSnapshotRef } from '../volumes/backend.js';
import { SERVER_COMMAND_TIMEOUT_MS_DEFAULT, type HeldServer, type ServerBackend } from './backend.js';
import { openGuestAgent, openQmp, type JsonSocket } from './qmp.js';

const REF_PREFIX = 'qemu:';

/** A disk as `query-block` shows it: a BlockBackend with a medium inserted. */
interface BlockInfo {
  readonly device?: string;
  readonly qdev?: string;
  readonly inserted?: { readonly ro?: boolean; readonly 'node-name'?: string; readonly file?: string };
}

/** The name QMP's block commands take for a disk: its BlockBackend's device name, else its node name. */
function nameOf(b: BlockInfo): string | undefined {
  return b.device !== undefined && b.device !== '' ? b.device : b.inserted?.['node-name'];
}

function label(b: BlockInfo): string {
  return b.device || b.qdev || b.inserted?.['node-name'] || '?';
}

/** The disk a volume's backendRef names, by device id, qdev id or node name. */
function diskOf(disks: readonly BlockInfo[], ref: string): string | undefined {
  const b = disks.find((d) => (d.device !== undefined && d.device !== '' && d.device === ref) || d.qdev === ref || d.inserted?.['node-name'] === ref);
  return b === undefined ? undefined : nameOf(b);
}

export function snapshotNameFor(checkpointId: number): string {
  return `cp-${checkpointId}`;
}

function refFor(socket: string, disk: string, name: string): string {
  return `${REF_PREFIX}${socket}#${disk}@${name}`;
}

function parseRef(ref: string): { socket: string; disk: string; name: string } | undefined {
  if (!ref.startsWith(REF_PREFIX)) return undefined;
  const hash = ref.lastIndexOf('#');
  const at = ref.lastIndexOf('@');
  if (hash < REF_PREFIX.length || at < hash) return undefined;
  return { socket: ref.slice(REF_PREFIX.length, hash), disk: ref.slice(hash + 1, at), name: ref.slice(at + 1) };
}

/** QEMU's answer when the snapshot to delete is not there (qcow2: "Snapshot with id ... and name ... does not exist"). */
const MISSING_SNAPSHOT = /does not exist|not found/i;

export class QemuServerBackend implements ServerBackend {
  readonly kind = 'qemu' as const;
  private readonly log: Logger;

  constructor(
    logger: Logger,
    private readonly nowUnixMs: () => number = Date.now,
    private readonly timeoutMs: number = SERVER_COMMAND_TIMEOUT_MS_DEFAULT,
  ) {
    this.log = logger.child({ component: 'servers', backend: 'qemu' });
  }

  private async session<T>(socket: string, work: (qmp: JsonSocket) => Promise<Result<T>>): Promise<Result<T>> {
    const qmp = await openQmp(socket, this.timeoutMs);
    if (!qmp.ok) return qmp;
    try {
      return await work(qmp.value);
    } finally {
      qmp.value.close();
    }
  }

  async freeze(server: AgentlessServer, checkpointId: number): Promise<Result<HeldServer>> {
    if (server.guestAgentRef !== undefined) {
      const frozen = await this.guestFreeze(server.guestAgentRef);
      if (frozen.ok) {
        this.log.info({ server: server.server, checkpointId, method: 'guest-fsfreeze', filesystems: frozen.value }, 'server frozen');
        return ok({ method: 'guest-fsfreeze', wasPaused: false });
      }
      this.log.warn({ server: server.server, checkpointId, error: frozen.error.message }, 'guest agent fsfreeze failed: pausing the machine instead');
    }
    const paused = await this.session(server.backendRef, async (qmp) => {
      const status = await qmp.execute('query-status', undefined, this.timeoutMs);
      if (!status.ok) return status;
      const wasPaused = (status.value as { running?: boolean }).running === false;
      const stopped = await qmp.execute('stop', undefined, this.timeoutMs);
      return stopped.ok ? ok<HeldServer>({ method: 'hypervisor-pause', wasPaused }) : stopped;
    });
    if (paused.ok) {
      this.log.info({ server: server.server, checkpointId, method: 'hypervisor-pause', wasPaused: paused.value.wasPaused }, 'server frozen');
      return paused;
    }
    // The stop may have landed though its answer did not: resume, so that nothing stays paused.
    const resumed = await this.session(server.backendRef, (qmp) => qmp.execute('cont', undefined, this.timeoutMs));
    const after = resumed.ok ? 'it was resumed' : `resuming it failed too: ${resumed.error.message}`;
    this.log.error({ server: server.server, checkpointId, error: paused.error.message, resumed: resumed.ok }, 'pausing the server failed');
    return fail(paused.error.kind, `pausing ${server.server} over QMP failed: ${paused.error.message}; ${after}`);
  }

  /** A guest agent that fails falls back to the pause, so a failed freeze is the pause's. */
  failedFreezeMethod(): HeldServer['method'] {
    return 'hypervisor-pause';
  }

  private async guestFreeze(socket: string): Promise<Result<unknown>> {
    const ga = await openGuestAgent(socket, this.timeoutMs);
    if (!ga.ok) return ga;
    try {
      const r = await ga.value.execute('guest-fsfreeze-freeze', undefined, this.timeoutMs);
      // A freeze that failed half way may hold some file systems: thawing an unfrozen guest is harmless.
      if (!r.ok) await ga.value.execute('guest-fsfreeze-thaw', undefined, this.timeoutMs);
      return r;
    } finally {
      ga.value.close();
    }
  }

  async thaw(server: AgentlessServer, held: HeldServer, checkpointId: number): Promise<Result<void>> {
    if (held.method === 'guest-fsfreeze') {
      const ga = await openGuestAgent(server.guestAgentRef ?? '', this.timeoutMs);
      if (!ga.ok) return ga;
      try {
        const r = await ga.value.execute('guest-fsfreeze-thaw', undefined, this.timeoutMs);
        if (!r.ok) return r;
      } finally {
        ga.value.close();
      }
    } else if (!held.wasPaused) {
      const r = await this.session(server.backendRef, (qmp) => qmp.execute('cont', undefined, this.timeoutMs));
      if (!r.ok) return fail(r.error.kind, `resuming ${server.server} over QMP failed: ${r.error.message}`);
    }
    this.log.info({ server: server.server, checkpointId, method: held.method }, 'server thawed');
    return ok(undefined);
  }

  /**
   * Every writable disk of the machine must be a volume of the plan: a disk left out (the system
   * disk, typically) would be missing from the checkpoint, or snapshotted with no record to delete
   * it by. Each volume's backendRef names its disk by device id, qdev id or node name.
   */
  async snapshotDisks(server: AgentlessServer, volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    const name = snapshotNameFor(checkpointId);
    return this.session(server.backendRef, async (qmp) => {
      const listed = await this.disks(qmp);
      if (!listed.ok) return listed;
      const disks = listed.value;
      const members: { volume: Volume; disk: string }[] = [];
      for (const v of volumes) {
        const disk = diskOf(disks, v.backendRef);
        if (disk === undefined) return fail('failed-precondition', `volume ${v.id} of ${server.server}: the machine has no writable disk ${JSON.stringify(v.backendRef)} (query-block lists ${disks.map(label).join(', ') || 'none'})`);
        const twin = members.find((m) => m.disk === disk);
        if (twin !== undefined) return fail('failed-precondition', `volumes ${twin.volume.id} and ${v.id} of ${server.server} name the same disk ${disk}`);
        members.push({ volume: v, disk });
      }
      const unlisted = disks.filter((d) => !members.some((m) => m.disk === nameOf(d)));
      if (unlisted.length > 0) {
        const names = unlisted.map((d) => `${label(d)} (${d.inserted?.file ?? '?'})`);
        return fail('failed-precondition', `${server.server} has disks the plan does not list: ${names.join(', ')}; every disk of a server without an agent is a volume of the plan, the system disk too`);
      }
      const actions = members.map((m) => ({ type: 'blockdev-snapshot-internal-sync', data: { device: m.disk, name } }));
      const startedAtUnixMs = this.nowUnixMs();
      const done = await qmp.execute('transaction', { actions }, this.timeoutMs);
      const endedAtUnixMs = this.nowUnixMs();
      if (!done.ok) {
        this.log.error({ server: server.server, checkpointId, error: done.error.message }, 'disk snapshot refused');
        return fail('internal', `snapshotting the disks of ${server.server} failed (none was taken: the transaction is all or nothing): ${done.error.message}`);
      }
      this.log.info({ server: server.server, checkpointId, disks: members.map((m) => m.disk), snapshot: name, ms: endedAtUnixMs - startedAtUnixMs }, 'disks snapshotted');
      return ok(members.map((m) => ({ volumeId: m.volume.id, server: m.volume.server, snapshotRef: refFor(server.backendRef, m.disk, name), startedAtUnixMs, endedAtUnixMs })));
    });
  }

  owns(snapshotRef: string): boolean {
    return snapshotRef.startsWith(REF_PREFIX);
  }

  async delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>> {
    const bySocket = new Map<string, { disk: string; name: string }[]>();
    for (const s of snapshots) {
      const p = parseRef(s.snapshotRef);
      if (p === undefined) return fail('invalid-argument', `${s.snapshotRef} is not a qemu disk snapshot`);
      bySocket.set(p.socket, [...(bySocket.get(p.socket) ?? []), { disk: p.disk, name: p.name }]);
    }
    for (const [socket, list] of bySocket) {
      const r = await this.deleteOn(socket, list);
      if (!r.ok) return r;
    }
    return ok(undefined);
  }

  async deleteForCheckpoint(server: AgentlessServer, volumes: readonly Volume[], checkpointId: number): Promise<Result<void>> {
    // The disks as the snapshot named them: a volume may name its disk by qdev id, which deletes do not take.
    const disks = await this.session(server.backendRef, (qmp) => this.disks(qmp));
    if (!disks.ok) return disks;
    return this.deleteOn(server.backendRef, volumes.map((v) => ({ disk: diskOf(disks.value, v.backendRef) ?? v.backendRef, name: snapshotNameFor(checkpointId) })));
  }

  /** The machine's writable disks with a medium: what a snapshot of the server covers. */
  private async disks(qmp: JsonSocket): Promise<Result<BlockInfo[]>> {
    const blocks = await qmp.execute('query-block', undefined, this.timeoutMs);
    if (!blocks.ok) return blocks;
    return ok((blocks.value as BlockInfo[]).filter((b) => b.inserted !== undefined && b.inserted.ro !== true));
  }

  private deleteOn(socket: string, list: readonly { disk: string; name: string }[]): Promise<Result<void>> {
    return this.session(socket, async (qmp) => {
      for (const { disk, name } of list) {
        const r = await qmp.execute('blockdev-snapshot-delete-internal-sync', { device: disk, name }, this.timeoutMs);
        if (!r.ok && !MISSING_SNAPSHOT.test(r.error.message)) return fail('internal', `deleting snapshot ${name} of disk ${disk} over ${socket} failed: ${r.error.message}`);
        this.log.info({ socket, disk, snapshot: name, existed: r.ok }, 'disk snapshot deleted');
      }
      return ok(undefined);
    });
  }
}
