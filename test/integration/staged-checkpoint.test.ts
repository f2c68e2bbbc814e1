/**
 * The staged checkpoint (BeginCheckpoint / FinishCheckpoint) through the real gRPC server and
 * client, over the real service, NATS and agents: begin answers once every server is frozen (HELD),
 * the finish brings the caller's volume snapshots, checked against the frozen window, and completes
 * it; every bad finish gets its own status, and the servers end up thawed whatever happened.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../coordinator/agents.js';
import type { GivenVolumeSnapshot } from '../../coordinator/api.js';
import { CoordinatorClient, type CallResult } from '../../coordinator/grpc/client.js';
import { startGrpcServer, type GrpcServerHandle } from '../../coordinator/grpc/server.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { ok } from '../../coordinator/errors.js';
import { demoPlan, startApiWorld, type ApiWorld } from '../support/api-world.js';
import { silent } from '../support/live-fixture.js';

let world: ApiWorld;
let server: GrpcServerHandle;
let client: CoordinatorClient;
const PLAN = demoPlan.id;
/** The plan's volumes: metadata for the coordinator, snapshotted by the caller (here: by this test). */
const VOLUMES = demoPlan.servers.map((s) => ({ id: `vol-${s}`, server: s, backendRef: `pool/${s}` }));

beforeAll(async () => {
  // No volume backend: a staged checkpoint's volumes are the caller's.
  world = await startApiWorld();
  const plan = await world.store.plans.get(PLAN);
  if (!plan.ok) throw new Error(plan.error.message);
  const updated = await world.store.plans.update({ ...plan.value, volumes: VOLUMES }, plan.value.revision);
  if (!updated.ok) throw new Error(updated.error.message);
  const plans = new PlanRegistry({ store: world.store.plans, logger: silent, hasCheckpoints: async () => ok(false), deleteCheckpoints: async () => ok(undefined) });
  server = await startGrpcServer({ api: { plans, checkpoints: world.service, agents: new AgentRegistry({ logger: silent }) }, address: '127.0.0.1:0', logger: silent });
  client = new CoordinatorClient(`127.0.0.1:${server.port}`);
}, 30_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  await world?.stop();
});

function value<T>(r: CallResult<T>): T {
  if (!r.ok) throw new Error(`${r.error.codeName}: ${r.error.message}`);
  return r.value;
}

function refused<T>(r: CallResult<T>): { code: number; reason: string | undefined; message: string } {
  if (r.ok) throw new Error('expected a refusal');
  return { code: r.error.code, reason: r.error.reason, message: r.error.message };
}

/** The caller's snapshots, taken from `startedAt` to now. */
function snapshots(startedAt: number, volumes = VOLUMES): GivenVolumeSnapshot[] {
  const endedAt = Date.now();
  return volumes.map((v) => ({ volumeId: v.id, server: v.server, snapshotRef: `karbor-${v.id}-${startedAt}`, startedAtUnixMs: startedAt, endedAtUnixMs: endedAt }));
}

async function record(id: number): Promise<CheckpointRecord> {
  const r = await world.service.get(id);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/** Waits until the checkpoint ended (an abort thaws first) and says so. */
async function ended(id: number): Promise<CheckpointRecord> {
  return world.service.waitFor(id);
}

function everyServerThawed(r: CheckpointRecord): boolean {
  return (r.servers ?? []).length === demoPlan.servers.length && (r.servers ?? []).every((s) => s.thawedAtUnixMs !== undefined);
}

describe('staged checkpoint at the crash level', () => {
  it('begin holds every server frozen; the finish records the caller\'s snapshots, thaws and completes', async () => {
    const held = value(await client.beginCheckpoint({ planId: PLAN, level: 'crash', holdMs: 10_000, options: {} }));
    expect(held.state).toBe('held');
    expect(held.servers.every((s) => s.frozenAtUnixMs !== undefined && s.thawedAtUnixMs === undefined)).toBe(true);
    const done = value(await client.finishCheckpoint({ checkpointId: held.id, volumes: snapshots(Date.now()) }));
    expect(done.state).toBe('completed');
    expect(done.levelAchieved).toBe('crash');
    const r = await record(held.id);
    expect(r.holdMs).toBe(10_000);
    expect(r.callerVolumes?.map((v) => v.volumeId).sort()).toEqual(VOLUMES.map((v) => v.id).sort());
    expect(r.volumes).toEqual([]);
    expect(everyServerThawed(r)).toBe(true);
    expect(value(await client.verify(held.id)).ok).toBe(true);
    // A second finish is told the checkpoint was finished already.
    const again = refused(await client.finishCheckpoint({ checkpointId: held.id, volumes: snapshots(Date.now()) }));
    expect(again).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'ALREADY_FINISHED' });
    // Deleting it leaves the caller's snapshots alone: nothing to delete through a backend.
    expect(value(await client.deleteCheckpoint(held.id)).deletedVolumeSnapshots).toEqual([]);
  }, 30_000);

  it('a begin retried with its idempotency key answers the same held checkpoint', async () => {
    const first = value(await client.beginCheckpoint({ planId: PLAN, level: 'crash', holdMs: 10_000, options: {}, idempotencyKey: 'karbor-op-1' }));
    const again = value(await client.beginCheckpoint({ planId: PLAN, level: 'crash', holdMs: 10_000, options: {}, idempotencyKey: 'karbor-op-1' }));
    expect(again.id).toBe(first.id);
    expect(again.state).toBe('held');
    expect(value(await client.finishCheckpoint({ checkpointId: first.id, volumes: snapshots(Date.now()) })).state).toBe('completed');
  }, 30_000);

  it('volumes not of the plan are INVALID_ARGUMENT and the checkpoint stays held; a cancel then thaws it', async () => {
    const held = value(await client.beginCheckpoint({ planId: PLAN, level: 'crash', holdMs: 10_000, options: {} }));
    const wrong = snapshots(Date.now(), [...VOLUMES, { id: 'vol-x', server: demoPlan.servers[0] as string, backendRef: '' }]);
    const r = refused(await client.finishCheckpoint({ checkpointId: held.id, volumes: wrong }));
    expect(r.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(r.message).toContain(`volume vol-x of ${demoPlan.servers[0]} is not a volume of the plan`);
    expect((await record(held.id)).state).toBe('held');
    value(await client.cancelCheckpoint(held.id));
    const final = await ended(held.id);
    expect(final.failureReason).toBe('cancelled');
    expect(everyServerThawed(final)).toBe(true);
  }, 30_000);

  it('a snapshot that started before the servers froze aborts the checkpoint (CHECKPOINT_ABORTED) and thaws them', async () => {
    const before = Date.now() - 1;
    const held = value(await client.beginCheckpoint({ planId: PLAN, level: 'crash', holdMs: 10_000, options: {} }));
    const r = refused(await client.finishCheckpoint({ checkpointId: held.id, volumes: snapshots(before) }));
    expect(r).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'CHECKPOINT_ABORTED' });
    expect(r.message).toContain('outside the frozen window');
    const final = await ended(held.id);
    expect(final.state).toBe('aborted');
    expect(final.failureReason).toBe('volume-snapshot-failed');
    expect(everyServerThawed(final)).toBe(true);
  }, 30_000);

  it('no finish within the hold deadline: aborted, thawed, and a late finish is HOLD_EXPIRED', async () => {
    // Long enough to be held on a loaded machine, short enough to wait for.
    const held = value(await client.beginCheckpoint({ planId: PLAN, level: 'crash', holdMs: 3_000, options: {} }));
    const final = await ended(held.id);
    expect(final.failureReason).toBe('timeout');
    expect(final.failureDetail).toContain('hold deadline of 3000 ms passed');
    expect(everyServerThawed(final)).toBe(true);
    const late = refused(await client.finishCheckpoint({ checkpointId: held.id, volumes: snapshots(held.createdAtUnixMs) }));
    expect(late).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'HOLD_EXPIRED' });
  }, 30_000);

  it('a finish of a TakeSnapshot checkpoint is NOT_STAGED; of no checkpoint, NOT_FOUND; a begin at level none, INVALID_ARGUMENT', async () => {
    const taken = value(await client.takeSnapshot({ planId: PLAN, level: 'app', options: {} }));
    const notStaged = refused(await client.finishCheckpoint({ checkpointId: taken.id, volumes: [] }));
    expect(notStaged).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'NOT_STAGED' });
    await ended(taken.id);
    expect(refused(await client.finishCheckpoint({ checkpointId: 999_999, volumes: [] })).code).toBe(GrpcStatus.NOT_FOUND);
    const none = refused(await client.beginCheckpoint({ planId: PLAN, level: 'none' as 'crash', holdMs: 1_000, options: {} }));
    expect(none.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(none.message).toContain('level must be CONSISTENCY_LEVEL_CRASH (freeze) or CONSISTENCY_LEVEL_APP (barrier)');
  }, 30_000);
});

describe('staged checkpoint at the app level', () => {
  it('begin holds once every app acked; the finish commits the cut with the caller\'s snapshots', async () => {
    const held = value(await client.beginCheckpoint({ planId: PLAN, level: 'app', holdMs: 10_000, options: {} }));
    expect(held.state).toBe('held');
    expect(held.stats.acked).toBe(demoPlan.apps.length);
    const done = value(await client.finishCheckpoint({ checkpointId: held.id, volumes: snapshots(Date.now()) }));
    expect(done.state).toBe('completed');
    expect(done.levelAchieved).toBe('app');
    expect((await record(held.id)).callerVolumes).toHaveLength(VOLUMES.length);
    expect(value(await client.verify(held.id)).ok).toBe(true);
  }, 30_000);
});
