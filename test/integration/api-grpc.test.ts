/**
 * The checkpoint calls of issue 9 through the real gRPC server and client, over the real service and
 * NATS: a busy plan is RESOURCE_EXHAUSTED with the ErrorInfo reason PLAN_BUSY (not a refusal), a plan
 * sharing an app with another plan is refused naming both, out-of-range durations are
 * INVALID_ARGUMENT, and Cancel, Pin, Unpin and Delete answer as docs/api.md says, snapctl included.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../coordinator/agents.js';
import { CoordinatorClient, type CallResult } from '../../coordinator/grpc/client.js';
import { startGrpcServer, type GrpcServerHandle } from '../../coordinator/grpc/server.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { runSnapctl } from '../../coordinator/snapctl/main.js';
import { ok } from '../../coordinator/errors.js';
import { agentlessPlan, demoPlan, startApiWorld, type ApiWorld } from '../support/api-world.js';
import { silent } from '../support/live-fixture.js';

let world: ApiWorld;
let server: GrpcServerHandle;
let client: CoordinatorClient;
let address = '';

beforeAll(async () => {
  world = await startApiWorld();
  const plans = new PlanRegistry({ store: world.store.plans, logger: silent, hasCheckpoints: async () => ok(false), deleteCheckpoints: async () => ok(undefined) });
  server = await startGrpcServer({ api: { plans, checkpoints: world.service, agents: new AgentRegistry({ logger: silent }) }, address: '127.0.0.1:0', logger: silent });
  address = `127.0.0.1:${server.port}`;
  client = new CoordinatorClient(address);
  const idle = await client.registerPlan(agentlessPlan('idle'), 0);
  expect(idle.ok).toBe(true);
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

async function snapctl(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runSnapctl(
    ['--address', address, ...argv],
    {},
    { stdout: (t) => void (out += t), stderr: (t) => void (err += t), stdoutIsTTY: false, readFile: () => '', now: () => Date.now(), onInterrupt: () => () => undefined },
    (a) => new CoordinatorClient(a),
  );
  return { code, out, err };
}

describe('over gRPC', () => {
  it('a busy plan answers RESOURCE_EXHAUSTED with the ErrorInfo reason PLAN_BUSY, a refusal FAILED_PRECONDITION', async () => {
    const first = value(await client.takeSnapshot({ planId: 'idle', level: 'app', options: { timeoutMs: 60_000 } }));
    const busy = await client.takeSnapshot({ planId: 'idle', level: 'app', options: { timeoutMs: 60_000 } });
    expect(busy.ok).toBe(false);
    if (busy.ok) return;
    expect(busy.error.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(busy.error.reason).toBe('PLAN_BUSY');
    expect(busy.error.message).toMatch(new RegExp(`^PLAN_BUSY: checkpoint ${first.id} of plan idle is in flight`));
    // A plan with volumes and no volume backend cannot go crash at all: refused, not busy.
    value(await client.registerPlan({ ...agentlessPlan('withvol'), volumes: [{ id: 'v1', server: 'withvol-srv1', backendRef: '/x' }] }, 0));
    const refused = await client.takeSnapshot({ planId: 'withvol', level: 'crash', options: {} });
    expect(!refused.ok && refused.error.codeName).toBe('FAILED_PRECONDITION');
    expect(!refused.ok && refused.error.reason).toBeUndefined();
    // Cancel frees the plan; snapctl says so.
    const cancelled = await snapctl('cancel', String(first.id));
    expect(cancelled.code, cancelled.err).toBe(0);
    expect(cancelled.out).toMatch(new RegExp(`checkpoint ${first.id} (aborted|cancelled)`));
    await world.service.waitFor(first.id);
    const again = value(await client.takeSnapshot({ planId: 'idle', level: 'app', options: { timeoutMs: 60_000, maxConcurrent: 2 } }));
    expect(value(await client.getCheckpoint(again.id)).options.maxConcurrent).toBe(2);
    value(await client.cancelCheckpoint(again.id, 'cancel-op-1'));
    // The retry of a keyed cancel answers like the first call.
    expect(value(await client.cancelCheckpoint(again.id, 'cancel-op-1')).id).toBe(again.id);
    await world.service.waitFor(again.id);
  }, 30_000);

  it('a freeze_deadline of 4294967295 ms is INVALID_ARGUMENT naming the field', async () => {
    const r = await client.takeSnapshot({ planId: 'idle', level: 'crash', options: { freezeDeadlineMs: 4_294_967_295 } });
    expect(!r.ok && r.error.codeName).toBe('INVALID_ARGUMENT');
    expect(!r.ok && r.error.message).toMatch(/freeze_deadline 4294967295 ms is out of range/);
  });

  it('a plan that includes an app of another plan is refused naming both plans (APP_IN_ANOTHER_PLAN)', async () => {
    // The world stored the demo plan (s1/APP1, s2/APP2, s3/APP3) at start.
    expect(value(await client.getPlan(demoPlan.id)).apps).toContainEqual({ server: 's1', app: 'APP1' });
    const overlapping = { ...agentlessPlan('overlap'), servers: ['s1', 'overlap-srv1'], apps: [{ server: 's1', app: 'APP1' }, { server: 'overlap-srv1', app: 'APP' }], channels: [] };
    const r = await client.registerPlan(overlapping, 0);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.codeName).toBe('FAILED_PRECONDITION');
    expect(r.error.reason).toBe('APP_IN_ANOTHER_PLAN');
    expect(r.error.message).toMatch(/plan overlap includes s1\/APP1, already in plan demo/);
    expect((await client.getPlan('overlap')).ok).toBe(false);
  });

  it('pin, unpin and delete through snapctl: list and show show the pin, delete says what went', async () => {
    const taken = value(await client.takeSnapshot({ planId: 'demo', level: 'app', options: {} }));
    const final = await world.service.waitFor(taken.id);
    expect(final.state).toBe('completed');
    expect((await snapctl('pin', String(taken.id))).out).toBe(`checkpoint ${taken.id} pinned: retention keeps it\n`);
    expect((await snapctl('show', String(taken.id))).out).toContain('(pinned: retention keeps it)');
    expect((await snapctl('list', '--plan', 'demo')).out).toContain(`${taken.id} (pinned)`);
    const refused = await snapctl('delete', String(taken.id));
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/pinned/);
    expect((await snapctl('unpin', String(taken.id))).out).toBe(`checkpoint ${taken.id} unpinned\n`);
    const deleted = await snapctl('--json', 'delete', String(taken.id), '--idempotency-key', 'del-1');
    expect(deleted.code, deleted.out).toBe(0);
    expect(JSON.parse(deleted.out)).toMatchObject({ deleted: taken.id, deletedVolumeSnapshots: [] });
    expect((await snapctl('delete', String(taken.id), '--idempotency-key', 'del-1')).code).toBe(0);
    expect((await snapctl('delete', String(taken.id))).err).toMatch(/NOT_FOUND/);
  }, 30_000);
});
