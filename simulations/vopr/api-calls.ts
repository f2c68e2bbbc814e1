/**
 * The workload's rollback, restore and delete calls, as a protection service makes them: with an
 * idempotency key most of the time, retried with the same key after an answer was lost or slow (and
 * sometimes while the first call still runs), and now and then a call that must be refused at once.
 */
import type { OperationOutcome } from '../../src/control/operation.js';
import type { OperationCall } from './operation-host.js';
import type { World } from './world.js';

/** How many times a client calls again with the same key. */
const RETRIES_MAX = 2;

export function rollbackCall(world: World): void {
  // Rollback of opaque checkpoints is not implemented (docs/architecture.md).
  const plans = world.topology.plans.filter((p) => p.level !== 'opaque');
  if (plans.length === 0) return;
  const plan = world.prng.pick(plans);
  const completed = world.completedOf(plan.id);
  if (completed.length === 0) return;
  // Mostly the newest, as an operator does; sometimes an older one; and the damaged one, which must be
  // refused before anything changes (defect 2).
  const damaged = completed.find((r) => r.id === world.damaged);
  const target = damaged !== undefined && world.prng.next() < 0.5 ? damaged : world.prng.next() < 0.7 ? (completed[completed.length - 1] as (typeof completed)[number]) : world.prng.pick(completed);
  keyed(world, { kind: 'rollback', checkpointId: target.id, skipSafety: world.prng.next() < 0.5 });
}

export function restoreCall(world: World): void {
  const plans = world.topology.plans.filter((p) => p.level === 'app' && world.completedOf(p.id).length > 0);
  if (plans.length === 0) return;
  const plan = world.prng.pick(plans);
  const source = world.prng.pick(world.completedOf(plan.id));
  // Now and then onto the checkpoint's own server: refused at once (defect 8), nothing changes.
  const target = world.prng.next() < 0.15 ? (plan.servers[0] as string) : world.prng.pick(world.topology.spareServers);
  keyed(world, { kind: 'restore', checkpointId: source.id, skipSafety: true, target });
}

export function deleteCall(world: World): void {
  const all = world.topology.plans.flatMap((p) => world.completedOf(p.id));
  if (all.length === 0) return;
  const victim = world.prng.pick(all);
  world.note(`api delete ckpt ${victim.id}`);
  world.coordinator.deleteCheckpoint(victim.id, (ok, message) => world.note(`api delete ckpt ${victim.id}: ${ok ? 'ok' : message}`));
}

function keyed(world: World, base: Omit<OperationCall, 'key'>): void {
  const key = world.prng.next() < 0.8 ? `k${world.seed}-${world.agenda.now}` : undefined;
  const call: OperationCall = key !== undefined ? Object.assign({ key }, base) : base;
  const attempt = (n: number): void => {
    if (!world.coordinator.process.up || !world.coordinator.serving) {
      if (key !== undefined && n < RETRIES_MAX) world.agenda.after(500 + world.prng.int(2_000), '', () => attempt(n + 1));
      return;
    }
    world.note(`api ${call.kind} ckpt ${call.checkpointId}${call.target !== undefined ? ` into ${call.target}` : ''}${key !== undefined ? ` key ${key}` : ''}${n > 0 ? ` (retry ${n})` : ''}`);
    world.count(`${call.kind}s`);
    world.operations.call(call, (o: OperationOutcome) => {
      world.note(`api ${call.kind} ckpt ${call.checkpointId}${key !== undefined ? ` key ${key}` : ''}: ${o.ok ? `ok, epoch ${o.epoch}` : `${o.kind}: ${o.message}`}`);
      world.count(`${call.kind}s ${o.ok ? 'ok' : o.kind}`);
      // The answer was lost or slow: the client calls again with the same key.
      if (key !== undefined && n < RETRIES_MAX && world.prng.next() < 0.4) world.agenda.after(world.prng.int(3_000), '', () => attempt(n + 1));
    });
    // Sometimes the retry comes while the first call still runs (it joins it).
    if (key !== undefined && n === 0 && world.prng.next() < 0.15) world.agenda.after(1 + world.prng.int(200), '', () => attempt(RETRIES_MAX));
  };
  attempt(0);
}

/** Storage damages one app state of a completed checkpoint (a fault, not a call). */
export function corruptObject(world: World): void {
  // Once per run at most: damage is rare, and a plan whose every checkpoint is damaged cannot be repaired by anyone.
  if (!world.faultProfile.corruptsObjects || world.counts['corruptions'] !== undefined) return;
  // Only where the plan keeps another checkpoint: with its only one damaged, a plan whose rollback
  // failed after the epoch moved could not be repaired by any call (a limit, stated in docs/vopr.md).
  const parts = world.topology.plans
    .map((p) => world.completedOf(p.id))
    .filter((list) => list.length >= 2)
    .flat()
    .flatMap((r) => r.parts.map((x) => ({ id: r.id, name: x.ref.name })));
  if (parts.length === 0) return;
  const { id, name } = world.prng.pick(parts);
  world.damaged = id;
  world.count('corruptions');
  world.note(`CORRUPT ${name}`);
  world.objects.corrupt(name);
}

export function pinCall(world: World): void {
  const all = world.topology.plans.flatMap((p) => world.completedOf(p.id));
  if (all.length === 0) return;
  const r = world.prng.pick(all);
  const pinned = !r.pinned;
  world.coordinator.pin(r.id, pinned, (ok) => world.note(`api ${pinned ? 'pin' : 'unpin'} ckpt ${r.id}: ${ok ? 'ok' : 'unchanged'}`));
  world.count(pinned ? 'pins' : 'unpins');
}
