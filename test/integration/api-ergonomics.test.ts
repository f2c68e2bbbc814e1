/**
 * The API's ergonomics for a Python caller (issue 13 item 2), through the real gRPC server over the
 * real service, NATS and agents: times are google.protobuf.Timestamp (absent: not yet) and durations
 * Duration; an INVALID_ARGUMENT names its field as a google.rpc.BadRequest field violation;
 * TakeSnapshotAndWait streams a checkpoint it starts to its end; ListAgents shows each agent's
 * channels.
 */
import { credentials, status as GrpcStatus, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry, trackAgents } from '../../coordinator/agents.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { coordinatorGrpc } from '../../coordinator/grpc/descriptor.js';
import { startGrpcServer, type GrpcServerHandle } from '../../coordinator/grpc/server.js';
import { fieldViolationsOf } from '../../coordinator/grpc/status.js';
import type { ProgressView } from '../../coordinator/grpc/convert.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { ok } from '../../coordinator/errors.js';
import { demoPlan, startApiWorld, type ApiWorld } from '../support/api-world.js';
import { silent } from '../support/live-fixture.js';

let world: ApiWorld;
let server: GrpcServerHandle;
let client: CoordinatorClient;
let raw: Client;
let untrack: () => void;

beforeAll(async () => {
  world = await startApiWorld();
  const registry = new AgentRegistry({ logger: silent });
  untrack = trackAgents(world.bus, registry);
  const plans = new PlanRegistry({ store: world.store.plans, logger: silent, hasCheckpoints: async () => ok(false), deleteCheckpoints: async () => ok(undefined) });
  server = await startGrpcServer({ api: { plans, checkpoints: world.service, agents: registry }, address: '127.0.0.1:0', logger: silent });
  client = new CoordinatorClient(`127.0.0.1:${server.port}`);
  raw = new (coordinatorGrpc().Client)(`127.0.0.1:${server.port}`, credentials.createInsecure());
}, 30_000);

afterAll(async () => {
  untrack?.();
  raw?.close();
  client?.close();
  await server?.close();
  await world?.stop();
});

/** A unary call as a Python client makes it: the message as decoded, or the ServiceError. */
function call(method: string, request: object): Promise<{ error: ServiceError | null; response: Record<string, unknown> }> {
  const fn = (raw as unknown as Record<string, (r: object, o: object, cb: (e: ServiceError | null, r: Record<string, unknown>) => void) => void>)[method];
  if (fn === undefined) throw new Error(`no ${method}`);
  return new Promise((resolve) => fn.call(raw, request, { deadline: new Date(Date.now() + 20_000) }, (error, response) => resolve({ error, response })));
}

describe('times and durations', () => {
  it('a checkpoint carries Timestamps and Durations; a time not reached yet is absent', async () => {
    const before = Math.floor(Date.now() / 1000);
    const taken = await call('TakeSnapshot', { plan_id: demoPlan.id, level: 'CONSISTENCY_LEVEL_APP', options: { timeout: { seconds: 20, nanos: 0 } } });
    expect(taken.error).toBeNull();
    const c = taken.response['checkpoint'] as Record<string, unknown>;
    expect(Number((c['created_at'] as { seconds: string }).seconds)).toBeGreaterThanOrEqual(before);
    expect(c['finished_at']).toBeNull();
    expect(c['options']).toMatchObject({ timeout: { seconds: '20', nanos: 0 } });
    await world.service.waitFor(Number(taken.response['checkpoint_id']));
    const got = await call('GetCheckpoint', { checkpoint_id: taken.response['checkpoint_id'] });
    const done = got.response['checkpoint'] as Record<string, unknown>;
    expect(done['state']).toBe('CHECKPOINT_STATE_COMPLETED');
    expect(Number((done['finished_at'] as { seconds: string }).seconds)).toBeGreaterThanOrEqual(before);
    expect(done['stats']).toMatchObject({ duration: { seconds: expect.any(String), nanos: expect.any(Number) } });
  }, 30_000);
});

describe('INVALID_ARGUMENT names its field', () => {
  it.each([
    ['an out-of-range duration', 'TakeSnapshot', { plan_id: demoPlan.id, level: 'CONSISTENCY_LEVEL_APP', options: { timeout: { seconds: 3_601, nanos: 0 } } }, 'options.timeout'],
    ['a missing field', 'TakeSnapshot', { level: 'CONSISTENCY_LEVEL_APP' }, 'plan_id'],
    ['a nanos out of range', 'BeginCheckpoint', { plan_id: demoPlan.id, level: 'CONSISTENCY_LEVEL_CRASH', hold_deadline: { seconds: 1, nanos: 1_000_000_000 } }, 'hold_deadline.nanos'],
    ['a finish with a snapshot without its ref', 'FinishCheckpoint', { checkpoint_id: 1, volumes: [{ volume_id: 'v', server: 'srv1', snapshot_ref: '' }] }, 'volumes[0].snapshot_ref'],
  ])('%s: a google.rpc.BadRequest field violation for %s', async (_what, method, request, field) => {
    const r = await call(method, request);
    expect(r.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(fieldViolationsOf(r.error?.metadata).map((v) => v.field)).toEqual([field]);
    expect(fieldViolationsOf(r.error?.metadata)[0]?.description).toBe(r.error?.details);
  });

  it('a refusal that is not about a field carries none', async () => {
    const r = await call('GetCheckpoint', { checkpoint_id: 999_999 });
    expect(r.error?.code).toBe(GrpcStatus.NOT_FOUND);
    expect(fieldViolationsOf(r.error?.metadata)).toEqual([]);
  });
});

describe('TakeSnapshotAndWait', () => {
  it('starts the checkpoint and streams its progress; the last message carries the completed record', async () => {
    const events: ProgressView[] = [];
    const { done } = client.takeSnapshotAndWait({ planId: demoPlan.id, level: 'app', options: {} }, (e) => events.push(e));
    expect((await done).ok).toBe(true);
    expect(events[0]?.kind).toBe('state-changed');
    expect(events.filter((e) => e.kind === 'app-acked').map((e) => `${e.server}/${e.app}`).sort()).toEqual(demoPlan.apps.map((a) => `${a.server}/${a.app}`).sort());
    expect(events.at(-1)?.checkpoint.state).toBe('completed');
  }, 30_000);

  it('a request the take refuses ends the stream with its status before any message', async () => {
    const fn = (raw as unknown as Record<string, (r: object) => ClientReadableStream<unknown>>)['TakeSnapshotAndWait'] as (r: object) => ClientReadableStream<unknown>;
    const stream = fn.call(raw, { plan_id: 'no-such-plan', level: 'CONSISTENCY_LEVEL_APP' });
    let messages = 0;
    stream.on('data', () => messages++);
    const code = await new Promise<number>((resolve) => stream.on('error', (e: ServiceError) => resolve(e.code)));
    expect(code).toBe(GrpcStatus.NOT_FOUND);
    expect(messages).toBe(0);
  });
});

describe('ListAgents', () => {
  it('shows each agent with the channels of its apps, from the plans', async () => {
    let agents: Record<string, unknown>[] = [];
    for (let i = 0; i < 100 && agents.length < demoPlan.servers.length; i++) {
      agents = ((await call('ListAgents', { tenant: demoPlan.tenant })).response['agents'] as Record<string, unknown>[]) ?? [];
      if (agents.length < demoPlan.servers.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(agents.map((a) => a['server']).sort()).toEqual([...demoPlan.servers].sort());
    for (const a of agents) {
      const server = a['server'] as string;
      const want = demoPlan.channels.filter((c) => c.from.server === server || c.to.server === server).map((c) => `${c.from.server}/${c.from.app}->${c.to.server}/${c.to.app}`);
      const got = (a['channels'] as { from_app: { server: string; app: string }; to_app: { server: string; app: string } }[]).map((c) => `${c.from_app.server}/${c.from_app.app}->${c.to_app.server}/${c.to_app.app}`);
      expect(got.sort(), server).toEqual(want.sort());
      expect(want.length).toBeGreaterThan(0);
      expect(a['last_heartbeat_at']).not.toBeNull();
    }
  }, 30_000);
});
