/**
 * The volume backend of a coordinator with a server backend: the round's one group snapshot goes
 * to the server backend for the disks of servers without an agent (one atomic snapshot of each such
 * server's disks) and to the configured volume backend for the rest, at the same time. Which
 * servers have no agent is the plan's word: the plan the router routed the round's freezes by, or,
 * for a round that froze nothing (level none, app), the plan read through the checkpoint's record.
 */
import { fail, ok, type Result } from '../errors.js';
import type { AgentlessServer, Plan, Volume } from '../model.js';
import type { TakenVolumeSnapshot, VolumeBackend, VolumeSnapshotRef } from '../volumes/backend.js';
import type { ServerBackend } from './backend.js';

export interface PlanOfCheckpoint {
  (checkpointId: number): Promise<Result<Plan>>;
}

export class ServerAwareVolumes implements VolumeBackend {
  readonly kind: VolumeBackend['kind'];

  constructor(
    private readonly inner: VolumeBackend | undefined,
    private readonly servers: ServerBackend,
    private readonly planOf: PlanOfCheckpoint,
  ) {
    this.kind = inner?.kind ?? 'server';
  }

  private async agentless(checkpointId: number): Promise<Result<ReadonlyMap<string, AgentlessServer>>> {
    const plan = await this.planOf(checkpointId);
    if (!plan.ok) return fail(plan.error.kind, `which servers of checkpoint ${checkpointId} have no agent is unknown: ${plan.error.message}`);
    return ok(new Map((plan.value.agentlessServers ?? []).map((s) => [s.server, s])));
  }

  private split(volumes: readonly Volume[], agentless: ReadonlyMap<string, AgentlessServer>): { others: Volume[]; byServer: Map<string, Volume[]> } {
    const others: Volume[] = [];
    const byServer = new Map<string, Volume[]>();
    for (const v of volumes) {
      if (agentless.has(v.server)) byServer.set(v.server, [...(byServer.get(v.server) ?? []), v]);
      else others.push(v);
    }
    return { others, byServer };
  }

  private noInner(others: readonly Volume[]): Result<never> {
    return fail('failed-precondition', `volume ${others[0]?.id} of ${others[0]?.server} belongs to a server with an agent, and the coordinator has no volume backend (start it with --volume-backend)`);
  }

  /** Each server's disks and the other volumes at once; whatever was taken when one part fails is deleted. */
  async snapshot(volumes: readonly Volume[], checkpointId: number): Promise<Result<TakenVolumeSnapshot[]>> {
    const agentless = await this.agentless(checkpointId);
    if (!agentless.ok) return agentless;
    const { others, byServer } = this.split(volumes, agentless.value);
    if (others.length > 0 && this.inner === undefined) return this.noInner(others);
    const parts = await Promise.all([
      ...(others.length > 0 && this.inner ? [this.inner.snapshot(others, checkpointId)] : []),
      ...[...byServer].map(([server, vs]) => this.servers.snapshotDisks(agentless.value.get(server) as AgentlessServer, vs, checkpointId)),
    ]);
    const failed = parts.find((p) => !p.ok);
    const taken = parts.flatMap((p) => (p.ok ? p.value : []));
    if (failed !== undefined && !failed.ok) {
      await this.delete(taken);
      return failed;
    }
    return ok(taken);
  }

  async revert(snapshots: readonly VolumeSnapshotRef[], volumes: readonly Volume[]): Promise<Result<void>> {
    const own = snapshots.find((s) => this.servers.owns(s.snapshotRef));
    if (own !== undefined) return fail('failed-precondition', `volume ${own.volumeId} of ${own.server} is a disk of a server without an agent: its snapshot ${own.snapshotRef} is reverted with the machine off (docs/backends.md), not by the coordinator`);
    if (this.inner === undefined) return fail('failed-precondition', 'the coordinator has no volume backend');
    return this.inner.revert(snapshots, volumes);
  }

  async restoreTo(snapshot: VolumeSnapshotRef, target: Volume): Promise<Result<void>> {
    if (this.servers.owns(snapshot.snapshotRef)) return fail('failed-precondition', `${snapshot.snapshotRef} is a disk snapshot of a server without an agent: restoring it elsewhere is not done by the coordinator (docs/backends.md)`);
    if (this.inner === undefined) return fail('failed-precondition', 'the coordinator has no volume backend');
    return this.inner.restoreTo(snapshot, target);
  }

  async delete(snapshots: readonly VolumeSnapshotRef[]): Promise<Result<void>> {
    const own = snapshots.filter((s) => this.servers.owns(s.snapshotRef));
    const others = snapshots.filter((s) => !this.servers.owns(s.snapshotRef));
    if (own.length > 0) {
      const r = await this.servers.delete(own);
      if (!r.ok) return r;
    }
    if (others.length === 0) return ok(undefined);
    if (this.inner === undefined) return fail('failed-precondition', 'the coordinator has no volume backend');
    return this.inner.delete(others);
  }

  async deleteForCheckpoint(checkpointId: number, volumes: readonly Volume[]): Promise<Result<void>> {
    const agentless = await this.agentless(checkpointId);
    if (!agentless.ok) return agentless;
    const { others, byServer } = this.split(volumes, agentless.value);
    for (const [server, vs] of byServer) {
      const r = await this.servers.deleteForCheckpoint(agentless.value.get(server) as AgentlessServer, vs, checkpointId);
      if (!r.ok) return r;
    }
    if (others.length === 0) return ok(undefined);
    if (this.inner === undefined) return this.noInner(others);
    return this.inner.deleteForCheckpoint(checkpointId, others);
  }
}
