/**
 * Regression tests, over real NATS, for the rollback and restore defects of issue 9:
 * - 2: a refused rollback (a tampered part) must not move the epoch, so the plan's next checkpoint
 *   still completes; a refused rollback takes no safety checkpoint;
 * - 3: a crash-level rollback works after an app-level rollback and after an agent restart;
 * - 3b: a restore reaches an agent that came up after it was first sent;
 * - 4: a rollback or restore retried with the same idempotency key runs once;
 * - 8: a restore onto the checkpoint's own servers, or with a bad mapping, is refused at once, and
 *   one that the agents refuse (a lower epoch) fails at once;
 * - a failure after the epoch moved ends in needs-repair, and one rollback repairs it;
 * - an operation left under way by a coordinator that stopped is finished (or ended in a visible
 *   state) by the next one's start-up recovery, so no app stays paused for ever.
 * The tests share one world and run in order; each says what it starts from.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recoverLeftOperations } from '../../coordinator/checkpoints/recover-operations.js';
import { identityMapping, restoreCommands } from '../../coordinator/checkpoints/restore.js';
import type { Result } from '../../coordinator/errors.js';
import type { OperationRecord } from '../../coordinator/store/operations.js';
import { operationRequestId } from '../../src/control/operation.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { demoPlan } from '../../examples/demo/plan.js';
import { startOperationsWorld, type OperationsWorld } from '../support/operations-world.js';

const TENANT = 'ops';
/** The demo plan over t1..t3: where restores go. */
const COPY: PlanInput = (() => {
  const p = demoPlan(TENANT, 'copy');
  const t = (s: string): string => s.replace(/^s/, 't');
  return {
    ...p,
    servers: p.servers.map(t),
    apps: p.apps.map((a) => ({ server: t(a.server), app: a.app })),
    channels: p.channels.map((c) => ({ ...c, from: { server: t(c.from.server), app: c.from.app }, to: { server: t(c.to.server), app: c.to.app } })),
  };
})();

let world: OperationsWorld;

beforeAll(async () => {
  world = await startOperationsWorld({ tenant: TENANT, restoreTimeoutMs: 5_000, plans: [COPY] });
}, 60_000);

afterAll(async () => {
  await world?.stop();
});

function value<T>(r: Result<T>, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.kind}: ${r.error.message}`);
  return r.value;
}

async function completed(level: 'app' | 'crash' = 'app', planId = 'demo'): Promise<CheckpointRecord> {
  const c = await world.take(level, planId);
  expect(c.state, `checkpoint ${c.id}: ${c.failureReason ?? ''} ${c.failureDetail ?? ''}`).toBe('completed');
  return c;
}

async function epochOf(planId: string): Promise<number> {
  return value(await world.store.epochs.get(planId), 'epoch');
}

async function checkpointIds(): Promise<number[]> {
  const page = value(await world.service.list({}, 1_000, ''), 'list');
  return page.items.map((c) => c.id);
}

async function waitUntilOffline(server: string): Promise<void> {
  // The world's registry calls an agent offline 3 s after its last event.
  await new Promise((resolve) => setTimeout(resolve, 3_500));
  expect(world.agents.has(server)).toBe(false);
}

describe('rollback: check first, then act', () => {
  it('defect 2: a rollback to a checkpoint with a tampered part is refused at once; no safety checkpoint, the epoch stays, and the next checkpoint completes', async () => {
    const target = await completed();
    const part = target.parts[1];
    expect(part?.inlineState, 'the token apps ack their states inline').toBeDefined();
    // Flip the stored bytes: the digest recorded at the ack no longer matches.
    value(
      await world.store.checkpoints.update(target.id, (r) => ({
        ...r,
        parts: r.parts.map((p, i) => (i === 1 && p.inlineState ? { ...p, inlineState: { ...p.inlineState, base64: Buffer.from('tampered').toString('base64') } } : p)),
      })),
      'tamper',
    );
    const before = await checkpointIds();
    const epoch = await epochOf('demo');
    const started = Date.now();
    const rolled = await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(rolled.ok).toBe(false);
    if (rolled.ok) return;
    expect(rolled.error.kind).toBe('failed-precondition');
    expect(rolled.error.message).toContain(`${part?.server}/${part?.app}`);
    expect(await checkpointIds()).toEqual(before);
    expect(await epochOf('demo')).toBe(epoch);
    await completed();
  }, 60_000);

  it('defect 4: a rollback retried with the same key rolls back once: the epoch moves once, one safety checkpoint; the key for another checkpoint is INVALID_ARGUMENT naming both', async () => {
    const target = await completed();
    const epoch = await epochOf('demo');
    const before = await checkpointIds();
    // Two at once (a client retrying while the first call runs) and one after the end.
    const [a, b] = await Promise.all([
      world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false, idempotencyKey: 'rb-1' }),
      world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false, idempotencyKey: 'rb-1' }),
    ]);
    const first = value(a, 'first rollback');
    expect(value(b, 'concurrent retry')).toEqual(first);
    expect(value(await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false, idempotencyKey: 'rb-1' }), 'later retry')).toEqual(first);
    expect(first.epoch).toBe(epoch + 1);
    expect(await epochOf('demo')).toBe(epoch + 1);
    const added = (await checkpointIds()).filter((id) => !before.includes(id));
    expect(added).toEqual([first.safetyCheckpointId]);

    const earlier = Math.min(...before);
    const other = await world.service.rollback({ checkpointId: earlier, skipSafetyCheckpoint: false, idempotencyKey: 'rb-1' });
    expect(other.ok).toBe(false);
    if (other.ok) return;
    expect(other.error.kind).toBe('invalid-argument');
    expect(other.error.message).toContain(`rollback to checkpoint ${target.id}`);
    expect(other.error.message).toContain(`rollback to checkpoint ${earlier}`);
    expect(await epochOf('demo')).toBe(epoch + 1);
    await completed();
  }, 90_000);

  it('defect 3: a crash-level rollback after an app-level rollback succeeds (it freezes at the plan\'s epoch, not the checkpoint\'s)', async () => {
    const crash = await completed('crash');
    const app = await completed();
    const moved = value(await world.service.rollback({ checkpointId: app.id, skipSafetyCheckpoint: true }), 'app-level rollback');
    expect(moved.epoch).toBeGreaterThan(crash.epoch);
    const rolled = value(await world.service.rollback({ checkpointId: crash.id, skipSafetyCheckpoint: false }), 'crash-level rollback');
    expect(rolled.epoch).toBe(moved.epoch);
    const safety = value(await world.service.get(rolled.safetyCheckpointId), 'safety checkpoint');
    expect(safety.state).toBe('completed');
    expect(safety.levelAchieved).toBe('crash');
    await completed();
  }, 90_000);

  it('defect 3: a refused crash-level rollback (an agent offline) leaves no safety checkpoint behind', async () => {
    const app = await completed();
    const crash = await completed('crash');
    await world.stopAgent('s3');
    await waitUntilOffline('s3');
    const before = await checkpointIds();
    const rolled = await world.service.rollback({ checkpointId: crash.id, skipSafetyCheckpoint: false });
    expect(rolled.ok).toBe(false);
    if (!rolled.ok) {
      expect(rolled.error.kind).toBe('failed-precondition');
      expect(rolled.error.message).toContain('s3 (its agent is offline)');
    }
    expect(await checkpointIds()).toEqual(before);
    // The restarted agent's app starts afresh, outside the plan's epoch: a rollback brings it back in.
    await world.startAgent('s3');
    value(await world.service.rollback({ checkpointId: app.id, skipSafetyCheckpoint: true }), 'repairing rollback');
    await completed();
  }, 90_000);

  it('defect 3b: an agent that comes up after the rollback started still gets its restore, and the rollback completes', async () => {
    const target = await completed();
    await world.stopAgent('s2');
    // Still counted present (late, not offline): the rollback goes ahead and its restore to s2 is lost.
    const rolling = world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: true });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await world.startAgent('s2');
    const rolled = value(await rolling, 'rollback');
    expect(rolled.epoch).toBe(await epochOf('demo'));
    await completed();
  }, 90_000);

  it('a rollback that fails after the epoch moved (an agent gone for good) ends in needs-repair on its record; one rollback repairs the plan', async () => {
    const target = await completed();
    await world.stopAgent('s2');
    // s2 still counts as present (late): the rollback goes ahead, and s2 never answers.
    const failed = await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: true });
    expect(failed.ok).toBe(false);
    if (!failed.ok) {
      expect(failed.error.kind).toBe('unavailable');
      expect(failed.error.message).toContain('s2: no answer within 5000 ms');
      expect(failed.error.message).toContain('roll back again');
    }
    const [last] = value(await world.store.operations.list('demo'), 'operations');
    expect(last?.state).toBe('needs-repair');
    expect(last?.epoch).toBe(await epochOf('demo'));
    await world.startAgent('s2');
    // The repair: one call. The present is not consistent, so no safety checkpoint is taken.
    const repaired = value(await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: false }), 'repairing rollback');
    expect(repaired.safetyCheckpointId).toBe(0);
    await completed();
  }, 90_000);

  it('defect 3: a crash-level rollback after an agent restart succeeds', async () => {
    const app = await completed();
    const crash = await completed('crash');
    // The plan moves on to a new epoch, then an agent restarts: the chaos run's case.
    value(await world.service.rollback({ checkpointId: app.id, skipSafetyCheckpoint: true }), 'app-level rollback');
    await world.stopAgent('s1');
    await world.startAgent('s1');
    const rolled = value(await world.service.rollback({ checkpointId: crash.id, skipSafetyCheckpoint: true }), 'crash-level rollback');
    expect(rolled.epoch).toBe(await epochOf('demo'));
    await completed('crash');
    // The restarted agent's app began afresh, outside the plan's epoch (a crash-level rollback does
    // not fence channels): an app-level rollback brings it back in, and app checkpoints complete.
    value(await world.service.rollback({ checkpointId: app.id, skipSafetyCheckpoint: true }), 'app-level rollback');
    await completed();
  }, 90_000);
});

describe('restore: bad requests are refused at once', () => {
  async function refused(request: Parameters<OperationsWorld['service']['restore']>[0], kind: string, text: string): Promise<void> {
    const started = Date.now();
    const r = await world.service.restore(request);
    expect(Date.now() - started, 'answered at once').toBeLessThan(2_000);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe(kind);
    expect(r.error.message).toContain(text);
  }

  it('defect 8: a restore onto the checkpoint\'s own servers is INVALID_ARGUMENT at once', async () => {
    const source = await completed();
    await refused({ checkpointId: source.id, servers: { s1: 's2', s2: 's3', s3: 's1' }, apps: [] }, 'invalid-argument', 'the checkpoint\'s own servers');
  }, 60_000);

  it('defect 8: a mapping naming a server the checkpoint does not hold, or leaving an app out, is INVALID_ARGUMENT at once', async () => {
    const source = await completed();
    await refused({ checkpointId: source.id, servers: { s1: 't1', s2: 't2', s3: 't3', s9: 't9' }, apps: [] }, 'invalid-argument', 's9');
    await refused({ checkpointId: source.id, servers: { s1: 't1', s2: 't2' }, apps: [] }, 'invalid-argument', 'no target for s3/APP3');
    await refused({ checkpointId: source.id, servers: { s1: 'x1', s2: 'x2', s3: 'x3' }, apps: [] }, 'failed-precondition', 'x1 (no agent has registered)');
  }, 60_000);

  it('defect 4: a restore retried with the same key restores once: the target plan\'s epoch moves once', async () => {
    const source = await completed();
    const epoch = await epochOf('copy');
    const request = { checkpointId: source.id, servers: { s1: 't1', s2: 't2', s3: 't3' }, apps: [], idempotencyKey: 'rs-1' };
    const first = value(await world.service.restore(request), 'restore');
    expect(value(await world.service.restore(request), 'retry')).toEqual(first);
    expect(first.epoch).toBe(epoch + 1);
    expect(await epochOf('copy')).toBe(epoch + 1);
    await completed('app', 'copy');
  }, 60_000);

  it('defect 8: a restore the agents refuse (an epoch below theirs) fails at once with FAILED_PRECONDITION, not after the timeout', async () => {
    const source = await completed();
    const mapping = { checkpointId: source.id, servers: { s1: 't1', s2: 't2', s3: 't3' }, apps: [] };
    value(await world.service.restore(mapping), 'restore');
    // The epoch line goes back (a meta bucket restored from an old backup): the next restore's epoch
    // is below the agents'.
    await world.store.buckets.meta.put('epoch.copy', new TextEncoder().encode('0'));
    const started = Date.now();
    const r = await world.service.restore(mapping);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe('failed-precondition');
    expect(r.error.message).toContain('stale-epoch');
  }, 60_000);
});

describe('operations left under way by a coordinator that stopped', () => {
  const recover = async () =>
    value(
      await recoverLeftOperations({ store: world.store, bus: world.bus, objects: world.objects, logger: pino({ level: 'silent' }), timeoutMs: 5_000, nowUnixMs: Date.now, options: { resendIntervalMs: 200 } }),
      'recover',
    );
  const leftRecord = (target: CheckpointRecord, id: string, state: OperationRecord['state'], epoch?: number): OperationRecord => ({
    id,
    kind: 'rollback',
    level: 'app',
    planId: 'demo',
    tenant: TENANT,
    checkpointId: target.id,
    epochLine: 'demo',
    request: `rollback to checkpoint ${target.id} without a safety checkpoint`,
    servers: [...new Set(target.parts.map((p) => p.server))].sort(),
    state,
    detail: 'left by a coordinator that stopped',
    ...(epoch !== undefined ? { epoch } : {}),
    safetyCheckpointId: 0,
    createdAtUnixMs: Date.now(),
    updatedAtUnixMs: Date.now(),
  });

  it('left in restoring (one server restored and paused at the new epoch, the others not): the next coordinator finishes it and the plan checkpoints again', async () => {
    const target = await completed();
    const epoch = value(await world.store.epochs.bump('demo'), 'bump');
    const commands = value(restoreCommands(target, identityMapping(target)), 'commands');
    const record = leftRecord(target, 'rb-left-restoring', 'restoring', epoch);
    const first = record.servers?.[0] as string;
    // The dead coordinator's restore reached the first server only.
    const requestId = operationRequestId(record.id, 1, first);
    const restored = new Promise<void>((resolve) => {
      const stop = world.bus.onEvents((e) => {
        if (e.inReplyTo === requestId && e.type === 'restored') {
          stop();
          resolve();
        }
      });
    });
    world.bus.send({ tenant: TENANT, server: first, plan: 'demo', epoch, checkpointId: target.id, type: 'restore', apps: commands.get(first) ?? [] }, requestId);
    await restored;
    value(await world.store.operations.put(record), 'left record');
    const report = await recover();
    expect(report).toEqual({ finished: [record.id], ended: [] });
    const after = value(await world.store.operations.get('demo', record.id), 'record');
    expect(after?.state, after?.detail).toBe('completed');
    expect(after?.outcome).toEqual({ ok: true, epoch, safetyCheckpointId: 0 });
    expect(await epochOf('demo')).toBe(epoch);
    await completed();
  }, 60_000);

  it('left while bumping the epoch: ended at once in needs-repair naming the rollback that repairs it; a recovery after that finds nothing left', async () => {
    const target = await completed();
    const record = leftRecord(target, 'rb-left-epoch', 'setting-epoch');
    value(await world.store.operations.put(record), 'left record');
    expect(await recover()).toEqual({ finished: [], ended: [record.id] });
    const after = value(await world.store.operations.get('demo', record.id), 'record');
    expect(after?.state).toBe('needs-repair');
    expect(after?.detail).toContain(`RollbackSnapshot to checkpoint ${target.id}`);
    expect(after?.outcome?.ok).toBe(false);
    expect(await recover()).toEqual({ finished: [], ended: [] });
  }, 60_000);
});
