/**
 * The operation records against a real nats-server: a key is claimed by exactly one of two
 * coordinators racing on it, recentRollbacks lists what retention must keep (newest first, refused
 * ones left out), and pruning keeps the newest records and every operation still running.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../coordinator/errors.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import type { OperationRecord } from '../../coordinator/store/operations.js';
import { type NatsServerHandle, startNatsServer } from '../support/nats-server.js';

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.kind}: ${result.error.message}`);
  return result.value;
}

function op(id: string, overrides: Partial<OperationRecord> = {}): OperationRecord {
  return {
    id,
    kind: 'rollback',
    level: 'app',
    planId: 'demo',
    tenant: 'acme',
    checkpointId: 7,
    epochLine: 'demo',
    request: 'rollback to checkpoint 7 with a safety checkpoint',
    state: 'completed',
    detail: 'done',
    safetyCheckpointId: 9,
    outcome: { ok: true, epoch: 1, safetyCheckpointId: 9 },
    createdAtUnixMs: 1_000,
    updatedAtUnixMs: 1_000,
    ...overrides,
  };
}

describe('operation records on JetStream', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let nc2: NatsConnection;
  let store: CoordinatorStore;
  let other: CoordinatorStore;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    nc2 = await connect({ servers: server.url });
    store = await openCoordinatorStore(nc);
    other = await openCoordinatorStore(nc2);
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    await nc2?.close();
    await server?.stop();
  });

  it('two coordinators claiming one key: exactly one creates it, the other gets the first one\'s record', async () => {
    const id = store.operations.newId('rollback', 'retry-me');
    expect(other.operations.newId('restore', 'retry-me')).toBe(id);
    expect(store.operations.newId('rollback', undefined)).not.toBe(store.operations.newId('rollback', undefined));
    const [a, b] = await Promise.all([
      store.operations.claim(op(id, { state: 'validating', request: 'first' })),
      other.operations.claim(op(id, { state: 'validating', request: 'second' })),
    ]);
    const outcomes = [value(a), value(b)];
    expect(outcomes.filter((o) => o.created)).toHaveLength(1);
    const lost = outcomes.find((o) => !o.created);
    const won = outcomes[0]?.created ? 'first' : 'second';
    expect(lost && !lost.created && lost.existing.request).toBe(won);
  });

  it('recentRollbacks: targets and safety checkpoints of the last rollbacks, newest first, without refused ones or restores', async () => {
    value(await store.operations.put(op('r1', { planId: 'p', epochLine: 'p', checkpointId: 1, safetyCheckpointId: 2, createdAtUnixMs: 10 })));
    value(await store.operations.put(op('r2', { planId: 'p', epochLine: 'p', checkpointId: 3, safetyCheckpointId: 0, state: 'needs-repair', createdAtUnixMs: 20 })));
    value(await store.operations.put(op('r3', { planId: 'p', epochLine: 'p', checkpointId: 4, state: 'refused', createdAtUnixMs: 30 })));
    value(await store.operations.put(op('r4', { planId: 'p', epochLine: 'p', kind: 'restore', checkpointId: 5, createdAtUnixMs: 40 })));
    value(await store.operations.put(op('r5', { planId: 'p', epochLine: 'p', checkpointId: 6, safetyCheckpointId: 8, createdAtUnixMs: 50 })));
    expect(value(await store.operations.recentRollbacks('p', 2))).toEqual([
      { targetId: 6, safetyId: 8, atUnixMs: 50 },
      { targetId: 3, safetyId: 0, atUnixMs: 20 },
    ]);
    expect(value(await store.operations.recentRollbacks('p', 10))).toHaveLength(3);
    expect(value(await store.operations.recentRollbacks('nothing-here', 3))).toEqual([]);
  });

  it('prune keeps the newest records and every operation still running', async () => {
    for (let i = 0; i < 6; i++) value(await store.operations.put(op(`q${i}`, { planId: 'q', epochLine: 'q', createdAtUnixMs: 100 + i, ...(i === 0 ? { state: 'restoring' } : {}) })));
    expect(value(await store.operations.prune('q', 3))).toBe(2);
    expect(value(await store.operations.list('q')).map((r) => r.id)).toEqual(['q5', 'q4', 'q3', 'q0']);
  });
});
