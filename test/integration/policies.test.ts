/**
 * Policies as API objects (issue 12 item 6) through the real gRPC server and client, over the real
 * checkpoint service with live agents on NATS: a plan's policy schedules periodic checkpoints and
 * its retention deletes old ones, but never a pinned checkpoint nor a rollback's safety checkpoint
 * or target; the policy survives a coordinator restart (a new registry and server over the same
 * store) and its schedule runs there; an invalid cron is INVALID_ARGUMENT naming it; the plan's
 * summary statistics count what happened.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../coordinator/agents.js';
import type { CoordinatorApi } from '../../coordinator/api.js';
import { ok } from '../../coordinator/errors.js';
import { CoordinatorClient, type CallResult } from '../../coordinator/grpc/client.js';
import { startGrpcServer, type GrpcServerHandle } from '../../coordinator/grpc/server.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { deletingPolicies, PolicyRegistry } from '../../coordinator/policies/registry.js';
import { JetStreamPolicyStore } from '../../coordinator/store/policies.js';
import { silent, startLiveWorld, type LiveWorld } from '../support/live-fixture.js';

function value<T>(r: CallResult<T>): T {
  if (!r.ok) throw new Error(`${r.error.codeName}: ${r.error.message}`);
  return r.value;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One coordinator's policy registry and gRPC server over the shared world (a restart builds another). */
interface Coordinator {
  readonly registry: PolicyRegistry;
  readonly server: GrpcServerHandle;
  readonly client: CoordinatorClient;
  stop(): Promise<void>;
}

let world: LiveWorld;
let current: PolicyRegistry | undefined;

async function startCoordinator(): Promise<Coordinator> {
  const registry = new PolicyRegistry({
    store: new JetStreamPolicyStore(world.store.buckets.plans, 1_000),
    plans: world.store.plans,
    logger: silent,
    take: (r) => world.service.take(r),
    waitFor: (id) => world.service.waitFor(id),
  });
  current = registry;
  world.service.onEnded((r) => {
    if (r.state === 'completed') registry.noteCompleted(r.planId);
  });
  const plans = new PlanRegistry({ store: world.store.plans, logger: silent, hasCheckpoints: async () => ok(false), deleteCheckpoints: async () => ok(undefined) });
  const api: CoordinatorApi = { plans: deletingPolicies(plans, registry), checkpoints: world.service, agents: new AgentRegistry({ logger: silent }), policies: registry };
  const server = await startGrpcServer({ api, address: '127.0.0.1:0', logger: silent });
  const client = new CoordinatorClient(`127.0.0.1:${server.port}`);
  return {
    registry,
    server,
    client,
    stop: async () => {
      registry.stop();
      client.close();
      await server.close();
    },
  };
}

async function completedIds(): Promise<number[]> {
  const page = await world.service.list({ planId: 'demo', states: ['completed'] }, 200, '');
  if (!page.ok) throw new Error(page.error.message);
  return page.value.items.map((c) => c.id).sort((a, b) => a - b);
}

async function takeAndWait(): Promise<CheckpointRecord> {
  const taken = await world.service.take({ planId: 'demo', level: 'app', options: {} });
  if (!taken.ok) throw new Error(taken.error.message);
  const final = await world.service.waitFor(taken.value.id);
  expect(final.state, final.failureDetail).toBe('completed');
  return final;
}

beforeAll(async () => {
  // Retention asks whichever registry is the live one, as a restarted coordinator's service would.
  world = await startLiveWorld({ retentionFor: (planId) => current?.retentionFor(planId) });
}, 30_000);

afterAll(async () => {
  current?.stop();
  await world?.stop();
});

describe('policies', () => {
  it('an invalid cron is INVALID_ARGUMENT naming the field and the expression; a policy of an unknown plan is NOT_FOUND', async () => {
    const c = await startCoordinator();
    try {
      const bad = await c.client.createPolicy({
        planId: 'demo',
        schedule: { intervalMs: 0, cron: '61 * * * *', level: 'app', windowStart: '', windowEnd: '', jitterMs: 0, minPauseMs: 0, tolerableFailures: 3 },
      });
      expect(bad.ok).toBe(false);
      if (!bad.ok) {
        expect(bad.error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
        expect(bad.error.message).toBe('policy.schedule.cron is invalid: cron "61 * * * *": minute "61" is outside 0-59');
      }
      const unknown = await c.client.createPolicy({ planId: 'nope', retention: { keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 } });
      expect(unknown.ok ? 'ok' : unknown.error.code).toBe(GrpcStatus.NOT_FOUND);
      const neither = await c.client.createPolicy({ planId: 'demo' });
      expect(neither.ok ? 'ok' : neither.error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    } finally {
      await c.stop();
    }
  });

  it('retention of a policy keeps the newest one plus every pinned checkpoint and a rollback safety checkpoint and target', async () => {
    const c = await startCoordinator();
    try {
      await c.registry.start();
      const policy = value(await c.client.createPolicy({ planId: 'demo', retention: { keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 } }));
      expect(policy).toMatchObject({ planId: 'demo', tenant: 'acme', retention: { keepLast: 1 } });
      expect(policy.revision).toBeGreaterThan(0);
      const pinned = await takeAndWait();
      value(await c.client.pinCheckpoint(pinned.id, true));
      const target = await takeAndWait();
      const rolled = value(await c.client.rollback(target.id, false));
      expect(rolled.safetyCheckpointId).toBeGreaterThan(target.id);
      await takeAndWait();
      await takeAndWait();
      const newest = await takeAndWait();
      const kept = await until('retention to settle at 4', async () => {
        const ids = await completedIds();
        return ids.length === 4 ? ids : undefined;
      });
      expect(kept).toEqual([pinned.id, target.id, rolled.safetyCheckpointId, newest.id].sort((a, b) => a - b));
      value(await c.client.deletePolicy('demo'));
      expect(c.registry.retentionFor('demo')).toBeUndefined();
    } finally {
      await c.stop();
    }
  }, 90_000);

  it('survives a restart: the new coordinator serves the policy and runs its schedule', async () => {
    const first = await startCoordinator();
    let created;
    try {
      created = value(
        await first.client.createPolicy({
          planId: 'demo',
          schedule: { intervalMs: 300, cron: '', level: 'app', windowStart: '', windowEnd: '', jitterMs: 0, minPauseMs: 0, tolerableFailures: 3 },
          retention: { keepLast: 50, keepDaily: 7, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 },
        }),
      );
    } finally {
      // Stopped before its registry started: nothing of the first coordinator runs the schedule.
      await first.stop();
    }
    const before = await completedIds();
    const second = await startCoordinator();
    try {
      expect(value(await second.client.getPolicy('demo'))).toEqual(created);
      expect(value(await second.client.listPolicies(undefined, 10, '')).items.map((p) => p.planId)).toEqual(['demo']);
      expect(second.registry.retentionFor('demo')).toBeUndefined();
      await second.registry.start();
      expect(second.registry.retentionFor('demo')).toMatchObject({ keepLast: 50, keepDaily: 7 });
      const periodic = await until('a periodic checkpoint of the restarted coordinator', async () => {
        const page = await world.service.list({ planId: 'demo', states: ['completed'] }, 500, '');
        return page.ok ? page.value.items.find((r) => r.periodic === true && !before.includes(r.id)) : undefined;
      });
      expect(periodic.levelAchieved).toBe('app');
      // Update under compare-and-set: a stale revision is refused, the current one accepted.
      const stale = await second.client.updatePolicy({ planId: 'demo', retention: { keepLast: 3, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 } }, created.revision + 100);
      expect(stale.ok ? 'ok' : stale.error.code).toBe(GrpcStatus.FAILED_PRECONDITION);
      const updated = value(await second.client.updatePolicy({ planId: 'demo', retention: { keepLast: 3, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 } }, created.revision));
      expect(updated.schedule).toBeUndefined();
      expect(updated.createdAtUnixMs).toBe(created.createdAtUnixMs);
      const stats = value(await second.client.planStats('demo'));
      expect(stats.completed).toBeGreaterThanOrEqual(1);
      expect(stats.checkpointsTotal).toBe(stats.completed + stats.aborted + stats.inFlight);
      expect(stats.durationMinMs).toBeLessThanOrEqual(stats.durationAvgMs);
      expect(stats.durationAvgMs).toBeLessThanOrEqual(stats.durationMaxMs);
      expect(stats.latestCompletedId).toBe(Math.max(...(await completedIds())));
      const missing = await second.client.planStats('nope');
      expect(missing.ok ? 'ok' : missing.error.code).toBe(GrpcStatus.NOT_FOUND);
      value(await second.client.deletePolicy('demo'));
    } finally {
      await second.stop();
    }
  }, 90_000);

  it('deleting a plan deletes its policy', async () => {
    const c = await startCoordinator();
    try {
      value(await c.client.registerPlan({ id: 'short-lived', tenant: 'acme', servers: ['x1'], apps: [{ server: 'x1', app: 'A' }], channels: [], volumes: [] }, 0));
      value(await c.client.createPolicy({ planId: 'short-lived', retention: { keepLast: 2, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepWithinMs: 0 } }));
      value(await c.client.deletePlan('short-lived', false));
      const gone = await c.client.getPolicy('short-lived');
      expect(gone.ok ? 'still there' : gone.error.code).toBe(GrpcStatus.NOT_FOUND);
      expect(c.registry.retentionFor('short-lived')).toBeUndefined();
    } finally {
      await c.stop();
    }
  });
});
