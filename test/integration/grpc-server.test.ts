/**
 * The coordinator's gRPC edge as a client sees it: a grpc-js client built from the same generated
 * descriptor, against the real server with the real plan registry on a real nats-server (the
 * checkpoint side is FakeCheckpoints). Pins the status code and a readable message for every kind
 * of bad request, the health service, and WatchCheckpoint's stream lifecycle.
 */
import { Client as GrpcClient, credentials, Metadata, status as GrpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient, type CallResult } from '../../coordinator/grpc/client.js';
import { coordinatorGrpc } from '../../coordinator/grpc/descriptor.js';
import { healthGrpc } from '../../coordinator/grpc/health.js';
import type { ProgressView } from '../../coordinator/grpc/convert.js';
import { planInput } from '../support/coordinator-fixtures.js';
import type { AppRef, PlanInput } from '../../coordinator/model.js';
import { STUCK_PLAN, THROWING_CHECKPOINT_ID } from '../support/fake-checkpoints.js';
import { startTestCoordinator, type TestCoordinator } from '../support/test-coordinator.js';

function value<T>(result: CallResult<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.codeName}: ${result.error.message}`);
  return result.value;
}

function failure(result: CallResult<unknown>): { code: number; message: string } {
  if (result.ok) throw new Error('expected an error, got ok');
  return { code: result.error.code, message: result.error.message };
}

/** A raw unary call with a hand-built request, to send what the typed client never would. */
function raw(client: Client, method: string, request: unknown): Promise<{ code: number; message: string; response?: unknown }> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, (r: unknown, cb: (e: ServiceError | null, res: unknown) => void) => void>)[method];
    fn?.call(client, request, (error, response) => resolve(error === null ? { code: GrpcStatus.OK, message: '', response } : { code: error.code, message: error.details }));
  });
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('coordinator gRPC server', () => {
  let coordinator: TestCoordinator;
  let client: CoordinatorClient;
  let rawClient: Client;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ pageSizeMax: 50, pageSizeDefault: 10 });
    client = new CoordinatorClient(coordinator.address);
    rawClient = new (coordinatorGrpc().Client)(coordinator.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    rawClient?.close();
    await coordinator?.stop();
  });

  describe('health', () => {
    it('the server and the Coordinator service report SERVING; an unknown service is NOT_FOUND', async () => {
      const health = new (healthGrpc().Client)(coordinator.address, credentials.createInsecure());
      try {
        expect(await raw(health, 'Check', { service: '' })).toMatchObject({ code: GrpcStatus.OK, response: { status: 'SERVING' } });
        expect(await raw(health, 'Check', { service: 'snapshot.v1.Coordinator' })).toMatchObject({ response: { status: 'SERVING' } });
        expect((await raw(health, 'Check', { service: 'nope.v1.Nothing' })).code).toBe(GrpcStatus.NOT_FOUND);
      } finally {
        health.close();
      }
    });
  });

  describe('plans', () => {
    it('register, get, list and delete a plan; its revision is the compare-and-set token', async () => {
      const created = value(await client.registerPlan(planInput({ id: 'grpc-plan' }), 0));
      expect(created).toMatchObject({ id: 'grpc-plan', tenant: 'acme', createdAtUnixMs: coordinator.clock.nowMs });
      expect(created.channels).toEqual(planInput().channels);
      expect(created.revision).toBeGreaterThan(0);
      expect(value(await client.getPlan('grpc-plan'))).toEqual(created);

      const again = failure(await client.registerPlan(planInput({ id: 'grpc-plan' }), 0));
      expect(again.code).toBe(GrpcStatus.ALREADY_EXISTS);
      expect(again.message).toMatch(/grpc-plan already exists/);

      coordinator.clock.nowMs += 1_000;
      const replaced = value(await client.registerPlan(planInput({ id: 'grpc-plan', volumes: [] }), created.revision));
      expect(replaced.revision).toBeGreaterThan(created.revision);
      expect(replaced.createdAtUnixMs).toBe(created.createdAtUnixMs);
      expect(replaced.updatedAtUnixMs).toBe(created.updatedAtUnixMs + 1_000);
      const stale = failure(await client.registerPlan(planInput({ id: 'grpc-plan' }), created.revision));
      expect(stale.code).toBe(GrpcStatus.FAILED_PRECONDITION);
      expect(stale.message).toMatch(new RegExp(`revision ${replaced.revision}, not ${created.revision}`));

      value(await client.deletePlan('grpc-plan', false));
      const gone = failure(await client.getPlan('grpc-plan'));
      expect(gone.code).toBe(GrpcStatus.NOT_FOUND);
      expect(gone.message).toMatch(/plan grpc-plan does not exist/);
    });

    it('ListPlans pages by tenant with the default page size when page_size is 0', async () => {
      // Each plan on servers of its own: an app belongs to at most one plan.
      const onOwnServers = (id: string): PlanInput => {
        const p = planInput({ id, tenant: 'lister' });
        const s = (server: string): string => `${server}-${id}`;
        const ref = (a: AppRef): AppRef => ({ server: s(a.server), app: a.app });
        return { ...p, servers: p.servers.map(s), apps: p.apps.map(ref), channels: p.channels.map((c) => ({ ...c, from: ref(c.from), to: ref(c.to) })), volumes: p.volumes.map((v) => ({ ...v, server: s(v.server) })) };
      };
      for (let i = 0; i < 12; i++) value(await client.registerPlan(onOwnServers(`lp-${String(i).padStart(2, '0')}`), 0));
      const first = value(await client.listPlans('lister', 0, ''));
      expect(first.items).toHaveLength(10);
      const second = value(await client.listPlans('lister', 0, first.nextPageToken));
      expect(second.items.map((p) => p.id)).toEqual(['lp-10', 'lp-11']);
      expect(second.nextPageToken).toBe('');
    });

    it('a plan with an app on an unlisted server is INVALID_ARGUMENT naming the field and value', async () => {
      const bad = planInput({ id: 'bad-plan', apps: [...planInput().apps, { server: 'srv9', app: 'APP9' }] });
      const error = failure(await client.registerPlan(bad, 0));
      expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(error.message).toContain('apps[3].server "srv9" is not one of the plan\'s servers');
    });

    it('deleting a plan that has checkpoints needs delete_checkpoints', async () => {
      value(await client.registerPlan(planInput({ id: 'with-cps' }), 0));
      value(await client.takeSnapshot({ planId: 'with-cps', level: 'app', options: {} }));
      const refused = failure(await client.deletePlan('with-cps', false));
      expect(refused.code).toBe(GrpcStatus.FAILED_PRECONDITION);
      expect(refused.message).toMatch(/still has checkpoints/);
      value(await client.deletePlan('with-cps', true));
      expect(failure(await client.getPlan('with-cps')).code).toBe(GrpcStatus.NOT_FOUND);
    });
  });

  describe('invalid arguments', () => {
    const cases: { name: string; method: string; request: unknown; message: RegExp }[] = [
      { name: 'GetPlan without plan_id', method: 'GetPlan', request: {}, message: /^plan_id is required$/ },
      { name: 'GetPlan with a plan_id that is not a name', method: 'GetPlan', request: { plan_id: 'a b' }, message: /plan_id "a b" must match/ },
      { name: 'RegisterPlan without a plan', method: 'RegisterPlan', request: {}, message: /^plan is required$/ },
      { name: 'ListPlans with page_size over the maximum', method: 'ListPlans', request: { page_size: 5000 }, message: /page_size 5000 is more than the maximum of 50/ },
      { name: 'ListPlans with a forged page_token', method: 'ListPlans', request: { page_token: 'abc' }, message: /page_token is not one this coordinator issued/ },
      { name: 'GetCheckpoint with checkpoint_id 0', method: 'GetCheckpoint', request: { checkpoint_id: 0 }, message: /checkpoint_id is required/ },
      {
        name: 'GetCheckpoint with a checkpoint_id beyond 2^53',
        method: 'GetCheckpoint',
        request: { checkpoint_id: '18446744073709551615' },
        message: /checkpoint_id: 18446744073709551615 is beyond the largest integer/,
      },
      { name: 'TakeSnapshot without a level', method: 'TakeSnapshot', request: { plan_id: 'p' }, message: /level is required: one of CONSISTENCY_LEVEL_NONE, CONSISTENCY_LEVEL_CRASH, CONSISTENCY_LEVEL_APP/ },
      { name: 'TakeSnapshot with an unknown level number', method: 'TakeSnapshot', request: { plan_id: 'p', level: 42 }, message: /unknown ConsistencyLevel value 42/ },
      {
        name: 'TakeSnapshot unaligned with an alignment timeout',
        method: 'TakeSnapshot',
        request: { plan_id: 'p', level: 'CONSISTENCY_LEVEL_APP', options: { alignment_mode: 'ALIGNMENT_MODE_UNALIGNED', alignment_timeout: { seconds: 0, nanos: 100_000_000 } } },
        message: /alignment_timeout applies only to ALIGNMENT_MODE_ALIGNED/,
      },
      { name: 'ListCheckpoints filtering on an UNSPECIFIED state', method: 'ListCheckpoints', request: { states: ['CHECKPOINT_STATE_UNSPECIFIED'] }, message: /states\[0\] is CHECKPOINT_STATE_UNSPECIFIED; filter on real states/ },
      { name: 'RestoreSnapshot with no mapping', method: 'RestoreSnapshot', request: { checkpoint_id: 1 }, message: /servers or apps must map/ },
      {
        name: 'RestoreSnapshot mapping a server onto itself',
        method: 'RestoreSnapshot',
        request: { checkpoint_id: 1, servers: [{ source_server: 'srv1', target_server: 'srv1' }] },
        message: /is the source itself: that is a rollback/,
      },
      { name: 'ListAgents with a tenant that is not a name', method: 'ListAgents', request: { tenant: 'a.b' }, message: /tenant "a.b" must match/ },
    ];
    for (const c of cases) {
      it(`${c.name}: INVALID_ARGUMENT with a message naming the field`, async () => {
        const result = await raw(rawClient, c.method, c.request);
        expect(result.code).toBe(GrpcStatus.INVALID_ARGUMENT);
        expect(result.message).toMatch(c.message);
      });
    }
  });

  describe('malformed bytes', () => {
    /** Sends raw bytes as the request of a method, bypassing any serializer. */
    function rawBytes(path: string, bytes: Buffer): Promise<{ code: number; message: string }> {
      const c = new GrpcClient(coordinator.address, credentials.createInsecure());
      return new Promise((resolve) => {
        c.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, new Metadata(), {}, (error) => {
          c.close();
          resolve(error === null ? { code: GrpcStatus.OK, message: '' } : { code: error.code, message: error.details });
        });
      });
    }

    it('a request that is not the method\'s message is INVALID_ARGUMENT, logged and counted, and the server keeps serving', async () => {
      const before = coordinator.grpc.stats.malformedRequests;
      const result = await rawBytes('/snapshot.v1.Coordinator/GetPlan', Buffer.from([0xff, 0xff, 0xff, 0x07]));
      expect(result.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(result.message).toMatch(/^the request is not a valid GetPlanRequest message \(/);
      expect(coordinator.grpc.stats.malformedRequests).toBe(before + 1);
      expect(coordinator.logLines.some((l) => l.method === 'GetPlan' && l.code === 'invalid-argument' && String(l.reason).length > 0)).toBe(true);
      expect(value(await client.listAgents(undefined))).toBeInstanceOf(Array);
    });

    it('a watch whose request does not decode ends with INVALID_ARGUMENT', async () => {
      const c = new GrpcClient(coordinator.address, credentials.createInsecure());
      try {
        const stream = c.makeServerStreamRequest('/snapshot.v1.Coordinator/WatchCheckpoint', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x08]), new Metadata(), {});
        const code = await new Promise<number>((resolve) => {
          stream.on('data', () => undefined);
          stream.on('error', (e: ServiceError) => resolve(e.code));
          stream.on('status', (s: { code: number }) => resolve(s.code));
        });
        expect(code).toBe(GrpcStatus.INVALID_ARGUMENT);
      } finally {
        c.close();
      }
    });
  });

  describe('checkpoints', () => {
    it('TakeSnapshot answers with the accepted record; the options carry the defaults the API filled in', async () => {
      const cp = value(await client.takeSnapshot({ planId: 'p-take', level: 'crash', options: { fallbackPolicy: 'downgrade' }, idempotencyKey: 'op-1' }));
      expect(cp).toMatchObject({ planId: 'p-take', levelRequested: 'crash', state: 'pending', idempotencyKey: 'op-1' });
      expect(cp.options).toEqual({ timeoutMs: 60_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'downgrade', freezeDeadlineMs: 30_000, maxConcurrent: 1 });
      const retry = value(await client.takeSnapshot({ planId: 'p-take', level: 'crash', options: {}, idempotencyKey: 'op-1' }));
      expect(retry.id).toBe(cp.id);
    });

    it('WatchCheckpoint streams from the current record to the final state, then the stream ends OK', async () => {
      const cp = value(await client.takeSnapshot({ planId: 'p-watch', level: 'app', options: {} }));
      const events: ProgressView[] = [];
      const { done } = client.watchCheckpoint(cp.id, (e) => events.push(e));
      value(await done);
      expect(events[0]).toMatchObject({ kind: 'state-changed' });
      expect(events.map((e) => e.kind)).toContain('app-acked');
      const last = events[events.length - 1];
      expect(last?.checkpoint.state).toBe('completed');
      expect(last?.checkpoint.levelAchieved).toBe('app');
      expect(last?.checkpoint.stats).toMatchObject({ acked: 2, total: 2, sizeBytes: 200 });
      await until(() => coordinator.checkpoints.stopped.includes(cp.id));
    });

    it('WatchCheckpoint on a finished checkpoint sends its record once and ends', async () => {
      const cp = value(await client.takeSnapshot({ planId: 'p-watch-done', level: 'app', options: {} }));
      value(await client.watchCheckpoint(cp.id, () => undefined).done);
      const events: ProgressView[] = [];
      value(await client.watchCheckpoint(cp.id, (e) => events.push(e)).done);
      expect(events.map((e) => e.checkpoint.state)).toEqual(['completed']);
    });

    it('a client cancelling WatchCheckpoint stops the watch behind it', async () => {
      const cp = value(await client.takeSnapshot({ planId: STUCK_PLAN, level: 'app', options: {} }));
      let received = 0;
      const watch = client.watchCheckpoint(cp.id, () => received++);
      await until(() => received > 0);
      watch.cancel();
      expect(failure(await watch.done).code).toBe(GrpcStatus.CANCELLED);
      await until(() => coordinator.checkpoints.stopped.includes(cp.id));
    });

    it('WatchCheckpoint of an unknown checkpoint ends with NOT_FOUND', async () => {
      const result = await client.watchCheckpoint(987_654, () => undefined).done;
      expect(failure(result)).toMatchObject({ code: GrpcStatus.NOT_FOUND, message: 'checkpoint 987654 does not exist' });
    });

    it('ListCheckpoints is newest first and filters by state', async () => {
      const a = value(await client.takeSnapshot({ planId: 'p-list', level: 'app', options: {} }));
      const b = value(await client.takeSnapshot({ planId: 'p-list', level: 'app', options: {} }));
      const all = value(await client.listCheckpoints({ filter: { planId: 'p-list' }, pageSize: 10, pageToken: '' }));
      expect(all.items.map((c) => c.id)).toEqual([b.id, a.id]);
      const pending = value(await client.listCheckpoints({ filter: { planId: 'p-list', states: ['aborted'] }, pageSize: 10, pageToken: '' }));
      expect(pending.items).toEqual([]);
    });

    it('rollback, restore, verify and delete pass the API\'s answers and errors through', async () => {
      const cp = value(await client.takeSnapshot({ planId: 'p-ops', level: 'app', options: {} }));
      const early = failure(await client.rollback(cp.id, false));
      expect(early.code).toBe(GrpcStatus.FAILED_PRECONDITION);
      value(await client.watchCheckpoint(cp.id, () => undefined).done);
      expect(value(await client.rollback(cp.id, false))).toEqual({ safetyCheckpointId: 1000 + cp.id, epoch: 1 });
      expect(value(await client.rollback(cp.id, true)).safetyCheckpointId).toBe(0);
      expect(value(await client.restore({ checkpointId: cp.id, servers: { srv1: 'srv7' }, apps: [] }))).toEqual({ epoch: 2, restoredCheckpointId: cp.id });
      expect(value(await client.verify(cp.id))).toEqual({ ok: true, problems: [] });
      value(await client.deleteCheckpoint(cp.id));
      expect(failure(await client.getCheckpoint(cp.id)).code).toBe(GrpcStatus.NOT_FOUND);
    });

    it('an exception behind the API is INTERNAL with one error log line, and the server keeps serving', async () => {
      const result = failure(await client.getCheckpoint(THROWING_CHECKPOINT_ID));
      expect(result.code).toBe(GrpcStatus.INTERNAL);
      expect(result.message).toMatch(/internal error in GetCheckpoint/);
      expect(result.message).not.toMatch(/a bug behind the API/);
      const lines = coordinator.logLines.filter((l) => l.method === 'GetCheckpoint' && l.level === 50);
      expect(lines.some((l) => String(l.msg).includes('a bug behind the API'))).toBe(true);
      expect(value(await client.listAgents(undefined))).toBeInstanceOf(Array);
    });
  });

  describe('agents', () => {
    it('ListAgents shows registered agents with their status as the clock moves', async () => {
      coordinator.agents.observe({ type: 'register', requestId: 'r1', tenant: 'acme', server: 'srv1', epoch: 0, apps: ['APP1'], version: '0.1.0' });
      expect(value(await client.listAgents('acme'))).toEqual([
        {
          tenant: 'acme',
          server: 'srv1',
          apps: ['APP1'],
          version: '0.1.0',
          status: 'online',
          registeredAtUnixMs: coordinator.clock.nowMs,
          lastHeartbeatAtUnixMs: coordinator.clock.nowMs,
          frozen: false,
        },
      ]);
      coordinator.clock.nowMs += 10 * 60_000;
      expect(value(await client.listAgents('acme'))[0]?.status).toBe('offline');
      expect(value(await client.listAgents('nobody'))).toEqual([]);
    });
  });
});

describe('coordinator gRPC server shutdown', () => {
  it('close() turns health NOT_SERVING, ends open watches with UNAVAILABLE, stops the server, and is idempotent', async () => {
    const coordinator = await startTestCoordinator();
    const client = new CoordinatorClient(coordinator.address, { callTimeoutMs: 2_000 });
    const health = new (healthGrpc().Client)(coordinator.address, credentials.createInsecure());
    try {
      const cp = value(await client.takeSnapshot({ planId: STUCK_PLAN, level: 'app', options: {} }));
      let received = 0;
      const watch = client.watchCheckpoint(cp.id, () => received++);
      const statuses: string[] = [];
      const healthWatch = (health as unknown as Record<string, (r: unknown) => NodeJS.EventEmitter>)['Watch']?.call(health, { service: '' });
      healthWatch?.on('data', (m: { status: string }) => statuses.push(m.status));
      healthWatch?.on('error', () => undefined);
      await until(() => received > 0 && statuses.length > 0);
      expect(statuses).toEqual(['SERVING']);

      await Promise.all([coordinator.grpc.close(), coordinator.grpc.close()]);
      const ended = failure(await watch.done);
      expect(ended.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(ended.message).toMatch(/shutting down/);
      await until(() => statuses.includes('NOT_SERVING'));
      expect(failure(await client.listAgents(undefined)).code).toBe(GrpcStatus.UNAVAILABLE);
    } finally {
      health.close();
      client.close();
      await coordinator.stop();
    }
  });
});
