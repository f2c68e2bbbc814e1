/**
 * One seed, start to end, as TigerBeetle's VOPR runs one: a safety phase with faults and a
 * workload, then a liveness phase in a healed world (faults off, every process up) in which every
 * plan must complete a checkpoint, then a quiet spell after which nothing may be leaked and every
 * agent must hold its plans' epochs. The safety invariants are checked after every event.
 */
import type { NegativeControl } from '../../src/control/negative-controls.js';
import type { RunSeed } from './cli-main.js';
import { describeFaults } from './faults.js';
import { focusTrace } from './focus.js';
import type { SeedResult } from './result.js';
import { describeTopology } from './topology.js';
import { corruptObject, deleteCall, pinCall, restoreCall, rollbackCall } from './api-calls.js';
import { heal, startWorkload } from './workload.js';
import { World } from './world.js';

export const SAFETY_MS = 20_000;
/** After healing: time for what the faults left under way (timeouts, operations) to end. */
export const SETTLE_MS = 8_000;
/** Within this, every plan must complete a checkpoint (retrying while busy). */
export const LIVENESS_MS = 15_000;
/** Then nothing happens but heartbeats, and the end checks run. */
export const QUIET_MS = 4_000;
/** A run that takes more events than this is a livelock in the making: it is stopped and reported. */
export const STEPS_MAX = 2_000_000;
const LIVENESS_RETRY_MS = 300;

export const runSeed: RunSeed = (seed: number, controls: readonly NegativeControl[], options: { readonly traceAll: boolean }): SeedResult => {
  const world = new World(seed, new Set(controls));
  const { agenda, ledger } = world;
  world.note(`seed ${seed}: plans ${describeTopology(world.topology)}`);
  for (const agent of world.agents.values()) agent.boot(false);
  world.coordinator.boot();
  startWorkload(world, SAFETY_MS, {
    extra: [
      { weight: 1.2, run: () => rollbackCall(world) },
      { weight: 0.5, run: () => restoreCall(world) },
      { weight: 0.6, run: () => deleteCall(world) },
      { weight: 0.3, run: () => corruptObject(world) },
      { weight: 0.4, run: () => pinCall(world) },
    ],
    coordinatorCrashes: true,
  });
  agenda.at(SAFETY_MS, '', () => heal(world));
  const livenessEnd = SAFETY_MS + SETTLE_MS + LIVENESS_MS;
  const done = new Set<string>();
  agenda.at(SAFETY_MS + SETTLE_MS, '', () => {
    world.note('LIVENESS: every plan must complete a checkpoint');
    for (const plan of world.topology.plans) {
      // A plan left in needs-repair is repaired with the one call the design promises: a rollback.
      if (needsRepair(world.operationsLedger.lastState.get(plan.id))) repair(world, plan.id, livenessEnd, () => livenessTake(world, plan.id, livenessEnd, done));
      else livenessTake(world, plan.id, livenessEnd, done);
    }
  });
  const end = livenessEnd + QUIET_MS;
  let steps = 0;
  while (agenda.nextAt <= end) {
    agenda.step((e) => {
      if (e.label !== '') world.note(e.label);
    });
    steps++;
    ledger.checkStep(agenda.now);
    if (steps >= STEPS_MAX) {
      ledger.violate('no-plan-wedged', 'steps', agenda.now, `the run took ${STEPS_MAX} events without ending (a livelock)`);
      break;
    }
  }
  for (const plan of world.topology.plans) {
    if (!done.has(plan.id)) ledger.wedged(plan.id, livenessEnd, `no checkpoint of plan ${plan.id} completed in the ${LIVENESS_MS} ms after the faults stopped (and ${SETTLE_MS} ms to settle)`);
  }
  ledger.checkNoLeaks(
    agenda.now,
    [...world.objects.list().map((o) => o.name), ...world.volumes.list().map((v) => `${v.id} (${v.tag})`)],
    world.inFlightItems(),
    (item) => world.knownLeak(item),
  );
  world.checkCompletedRecords();
  ledger.checkConverged(
    agenda.now,
    world.topology.plans.flatMap((p) => p.servers.map((server) => ({ server, plan: p.id, epoch: world.agents.get(server)?.controlMachine.epochOf(p.id) }))),
  );
  world.count('messages sent', world.controls.stats.sent + world.events.stats.sent);
  world.count('messages lost', world.controls.stats.lost + world.events.stats.lost);
  world.count('messages duplicated', world.controls.stats.duplicated + world.events.stats.duplicated);
  const violations = [...ledger.violations].sort((a, b) => a.atMs - b.atMs);
  const first = violations.find((v) => v.known === undefined);
  return {
    seed,
    steps,
    simulatedMs: agenda.now,
    faults: describeFaults(world.faultProfile),
    violations,
    traceTail: first === undefined ? [] : focusTrace(world.traceAll, first),
    ...(options.traceAll ? { traceAll: world.traceAll } : {}),
    traceDigest: fnv1a(world.traceAll),
    counts: world.counts,
  };
};

/**
 * The one call that repairs a plan in needs-repair: a rollback (no safety checkpoint: there is no
 * consistent present) to its newest completed checkpoint, or, when that one is refused (a part
 * damaged), to the next older one, until one completes.
 */
function repair(world: World, plan: string, until: number, then: () => void, skip = 0): void {
  const completed = world.completedOf(plan);
  const target = completed[completed.length - 1 - (skip % Math.max(1, completed.length))];
  if (target === undefined) {
    world.ledger.wedged(plan, world.agenda.now, `plan ${plan} needs repair and has no completed checkpoint to roll back to`);
    return;
  }
  world.note(`REPAIR ${plan}: rollback to ckpt ${target.id}`);
  world.operations.call({ kind: 'rollback', checkpointId: target.id, skipSafety: true }, (o) => {
    if (o.ok) then();
    else if (world.agenda.now + LIVENESS_RETRY_MS < until) world.agenda.after(LIVENESS_RETRY_MS, '', () => repair(world, plan, until, then, o.kind === 'unavailable' ? skip : skip + 1));
  });
}

/** The newest operation of the plan moved its epoch and did not finish: it ended in needs-repair, or died with its coordinator. */
function needsRepair(state: string | undefined): boolean {
  return state !== undefined && state !== 'completed';
}

/** A manual checkpoint of the plan, retried while the plan is busy or the checkpoint aborts, until one completes. */
function livenessTake(world: World, plan: string, until: number, done: Set<string>): void {
  const retry = (): void => {
    if (world.agenda.now + LIVENESS_RETRY_MS < until) world.agenda.after(LIVENESS_RETRY_MS, '', () => livenessTake(world, plan, until, done));
  };
  world.coordinator.take(plan, false, (a) => {
    if (!a.ok) {
      retry();
      return;
    }
    world.coordinator.whenEnded(a.id, (r) => {
      if (r?.state === 'completed') done.add(plan);
      else retry();
    });
  });
}

/** FNV-1a (32 bits) of every line and its newline, as 8 hex digits: equal digests, (almost surely) equal traces. */
function fnv1a(lines: readonly string[]): string {
  let h = 0x811c9dc5;
  for (const line of lines) {
    for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ 10, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
