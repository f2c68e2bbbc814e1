/**
 * F10 (docs/RELIABILITY.md), over a real nats-server: a rollback completed and stored its end, yet
 * its call was never answered and every later rollback of the plan was refused as "still running".
 * What held it: after the operation ended, the call pruned the plan's old operation records (a key
 * listing, which nats.js ends only when NATS says nothing is pending) before it answered and before
 * it released the plan's mark in memory. A store call there that does not answer held both for ever.
 *
 * Each test puts a store call that does not answer (until the test lets it go) between the service
 * and the real JetStream store, at the point the chaos run's hang was, and checks that the call is
 * answered, that the plan's next rollback runs, and that the outcome can be learnt again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../coordinator/errors.js';
import type { CoordinatorStore } from '../../coordinator/store/index.js';
import { operationEnded, type OperationRecord, type OperationStore } from '../../coordinator/store/operations.js';
import { startOperationsWorld, type OperationsWorld } from '../support/operations-world.js';

/** A store call held until `release()`: what a NATS call that never answers looks like to its caller. */
class Gate {
  private open: () => void = () => undefined;
  private readonly opened = new Promise<void>((resolve) => {
    this.open = resolve;
  });
  held = 0;

  async pass(): Promise<void> {
    this.held += 1;
    await this.opened;
  }

  release(): void {
    this.open();
  }
}

/** The real operation store with two faults that a test switches on. */
class FaultyOperations implements OperationStore {
  /** Hold every pruning of old records. */
  holdPrune: Gate | undefined;
  /** Hold the write that stores an operation's end, after it landed. */
  holdEndWrite: Gate | undefined;

  constructor(private readonly inner: OperationStore) {}

  newId(...args: Parameters<OperationStore['newId']>): string {
    return this.inner.newId(...args);
  }
  claim(...args: Parameters<OperationStore['claim']>): ReturnType<OperationStore['claim']> {
    return this.inner.claim(...args);
  }
  async put(record: OperationRecord): Promise<Result<void>> {
    const r = await this.inner.put(record);
    if (this.holdEndWrite && record.outcome !== undefined) await this.holdEndWrite.pass();
    return r;
  }
  putChecked(...args: Parameters<OperationStore['putChecked']>): ReturnType<OperationStore['putChecked']> {
    return this.inner.putChecked(...args);
  }
  get(...args: Parameters<OperationStore['get']>): ReturnType<OperationStore['get']> {
    return this.inner.get(...args);
  }
  list(...args: Parameters<OperationStore['list']>): ReturnType<OperationStore['list']> {
    return this.inner.list(...args);
  }
  unfinished(): ReturnType<OperationStore['unfinished']> {
    return this.inner.unfinished();
  }
  recentRollbacks(...args: Parameters<OperationStore['recentRollbacks']>): ReturnType<OperationStore['recentRollbacks']> {
    return this.inner.recentRollbacks(...args);
  }
  async prune(...args: Parameters<OperationStore['prune']>): ReturnType<OperationStore['prune']> {
    if (this.holdPrune) await this.holdPrune.pass();
    return this.inner.prune(...args);
  }
}

const TENANT = 'wedge';
let world: OperationsWorld;
let faults: FaultyOperations;
const gates: Gate[] = [];

function gate(): Gate {
  const g = new Gate();
  gates.push(g);
  return g;
}

beforeAll(async () => {
  world = await startOperationsWorld({
    tenant: TENANT,
    restoreTimeoutMs: 5_000,
    wrapStore: (real: CoordinatorStore): CoordinatorStore => {
      faults = new FaultyOperations(real.operations);
      return { ...real, operations: faults };
    },
  });
}, 60_000);

afterAll(async () => {
  for (const g of gates) g.release();
  await world?.stop();
});

/** The call's result, or 'not answered' after `ms`. */
async function within<T>(ms: number, call: Promise<T>): Promise<T | 'not answered'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'not answered'>((resolve) => {
    timer = setTimeout(() => resolve('not answered'), ms);
  });
  try {
    return await Promise.race([call, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function completedCheckpoint(): Promise<number> {
  const c = await world.take();
  expect(c.state, `checkpoint ${c.id}: ${c.failureReason ?? ''} ${c.failureDetail ?? ''}`).toBe('completed');
  return c.id;
}

async function operationsOf(planId: string): Promise<OperationRecord[]> {
  const r = await world.store.operations.list(planId);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('F10: an operation that ended does not hold its call or its plan', () => {
  it('the pruning of old records after a rollback does not answer: the rollback is answered all the same, and the plan\'s next rollback runs', async () => {
    const target = await completedCheckpoint();
    const prune = gate();
    faults.holdPrune = prune;
    const first = await within(15_000, world.service.rollback({ checkpointId: target, skipSafetyCheckpoint: true }));
    expect(first, 'the rollback call was answered').not.toBe('not answered');
    if (first === 'not answered') return;
    expect(first.ok, first.ok ? '' : first.error.message).toBe(true);
    expect(prune.held, 'the pruning was reached and is held').toBe(1);
    const second = await within(15_000, world.service.rollback({ checkpointId: target, skipSafetyCheckpoint: true }));
    expect(second, 'the next rollback was answered').not.toBe('not answered');
    if (second === 'not answered') return;
    expect(second.ok, second.ok ? '' : second.error.message).toBe(true);
    // The second call's pruning waits for nothing: one pruning of a plan at a time.
    expect(prune.held).toBe(1);
    const ops = (await operationsOf(world.plan.id)).slice(0, 2);
    expect(ops.map((o) => o.state)).toEqual(['completed', 'completed']);
    faults.holdPrune = undefined;
    prune.release();
    await completedCheckpoint();
  }, 90_000);

  it('the write that stores an operation\'s end lands but does not return: the plan\'s next rollback runs, and a retry with the first call\'s key learns its outcome', async () => {
    const target = await completedCheckpoint();
    const endWrite = gate();
    faults.holdEndWrite = endWrite;
    // This call stays unanswered while its last write is held; the test does not wait for it.
    const stuck = world.service.rollback({ checkpointId: target, skipSafetyCheckpoint: true, idempotencyKey: 'f10-first' });
    const deadline = Date.now() + 15_000;
    while (endWrite.held === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(endWrite.held, 'the end of the first rollback was written').toBe(1);
    faults.holdEndWrite = undefined;
    const [stored] = await operationsOf(world.plan.id);
    expect(stored?.idempotencyKey).toBe('f10-first');
    expect(stored && operationEnded(stored)).toBe(true);

    const next = await within(15_000, world.service.rollback({ checkpointId: target, skipSafetyCheckpoint: true }));
    expect(next, 'the next rollback was answered').not.toBe('not answered');
    if (next === 'not answered') return;
    expect(next.ok, next.ok ? '' : next.error.message).toBe(true);

    const retried = await within(15_000, world.service.rollback({ checkpointId: target, skipSafetyCheckpoint: true, idempotencyKey: 'f10-first' }));
    expect(retried, 'the keyed retry was answered').not.toBe('not answered');
    if (retried === 'not answered') return;
    expect(retried).toEqual({ ok: true, value: { safetyCheckpointId: 0, epoch: stored?.epoch } });

    endWrite.release();
    const first = await stuck;
    expect(first).toEqual(retried);
    await completedCheckpoint();
  }, 90_000);
});
