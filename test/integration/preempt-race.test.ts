/**
 * F9 (docs/RELIABILITY.md), over a real nats-server: a manual request preempted a periodic
 * checkpoint that was admitted but whose round had not started yet (its record was being created).
 * The service did not find it among its runs, took it for another coordinator's, and did not cancel
 * it; the manual checkpoint completed, then the periodic one triggered with a newer completed
 * checkpoint than itself and aborted `internal` ("trigger ... is not encodable").
 *
 * The test holds the periodic checkpoint's record creation until the manual checkpoint completed,
 * which puts the preemption in that window every time: the periodic checkpoint must end `cancelled`
 * with the preemption as its detail, and the plan's next checkpoint must complete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointStore, CoordinatorStore } from '../../coordinator/store/index.js';
import { startOperationsWorld, type OperationsWorld } from '../support/operations-world.js';

let world: OperationsWorld;
let releaseCreate: () => void = () => undefined;
let createHeld: Promise<void> | undefined;
/** Hold the next checkpoint record's creation until releaseCreate(). */
let holdNextCreate = false;

beforeAll(async () => {
  world = await startOperationsWorld({
    tenant: 'preempt',
    wrapStore: (real: CoordinatorStore): CoordinatorStore => {
      const checkpoints = new Proxy(real.checkpoints, {
        get(target, property, receiver) {
          const v = Reflect.get(target, property, receiver) as unknown;
          if (property !== 'create' || typeof v !== 'function') return v;
          const create: CheckpointStore['create'] = async (record) => {
            if (holdNextCreate) {
              holdNextCreate = false;
              const gate = new Promise<void>((resolve) => {
                releaseCreate = resolve;
              });
              createHeld = Promise.resolve();
              await gate;
            }
            return target.create(record);
          };
          return create;
        },
      });
      return { ...real, checkpoints };
    },
  });
}, 60_000);

afterAll(async () => {
  releaseCreate();
  await world?.stop();
});

describe('F9: a manual request preempting a periodic checkpoint whose round has not started', () => {
  it('the periodic checkpoint ends cancelled, naming the manual one, not aborted internal; the next checkpoint completes', async () => {
    const warmUp = await world.take();
    expect(warmUp.state).toBe('completed');

    holdNextCreate = true;
    const periodicTake = world.service.take({ planId: world.plan.id, level: 'app', options: {}, periodic: true });
    const deadline = Date.now() + 10_000;
    while (createHeld === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(createHeld, 'the periodic checkpoint was admitted and its record creation held').toBeDefined();

    const manual = await world.take();
    expect(manual.state, `manual checkpoint ${manual.id}: ${manual.failureReason ?? ''} ${manual.failureDetail ?? ''}`).toBe('completed');

    releaseCreate();
    const taken = await periodicTake;
    expect(taken.ok, taken.ok ? '' : taken.error.message).toBe(true);
    if (!taken.ok) return;
    expect(taken.value.id).toBeLessThan(manual.id);
    const periodic = await world.service.waitFor(taken.value.id);
    expect(periodic.state).toBe('aborted');
    expect(periodic.failureReason).toBe('cancelled');
    expect(periodic.failureDetail).toContain(`checkpoint ${manual.id} took its slot`);

    const next = await world.take();
    expect(next.state, `checkpoint ${next.id}: ${next.failureReason ?? ''} ${next.failureDetail ?? ''}`).toBe('completed');
  }, 60_000);
});
