/**
 * The protection service and the operator during the safety phase: concurrent API calls at random
 * moments (bursts of takes on one plan, as in defect 5), cancels, deletes, rollbacks and restores
 * with idempotency keys that are retried, and crashes of agents and of the coordinator.
 */
import type { World } from './world.js';

/** Mean gap between two API calls. */
export const CALL_GAP_MS_MEAN = 250;
/** Of the manual takes on a crash- or app-level plan, the share begun as staged checkpoints (BeginCheckpoint). */
export const STAGED_SHARE = 0.4;

export interface Workload {
  /** Optional parts (rollback, restore, retention) that a world may lack. */
  readonly extra: readonly { readonly weight: number; readonly run: () => void }[];
  readonly coordinatorCrashes: boolean;
}

export function startWorkload(world: World, until: number, workload: Workload): void {
  const { agenda, prng, topology, coordinator } = world;
  const next = (): void => {
    const gap = 1 + prng.int(2 * CALL_GAP_MS_MEAN);
    if (agenda.now + gap >= until) return;
    agenda.after(gap, '', () => {
      call();
      next();
    });
  };
  const takeWeight = 5;
  const cancelWeight = 1;
  const extraWeight = workload.extra.reduce((s, x) => s + x.weight, 0);
  const call = (): void => {
    if (!coordinator.process.up || !coordinator.serving) return;
    let r = prng.next() * (takeWeight + cancelWeight + extraWeight);
    if (r < takeWeight) {
      const plan = prng.pick(topology.plans);
      // A burst of concurrent calls on one plan, as the protection service retries in parallel.
      const burst = prng.next() < 0.3 ? 2 + prng.int(2) : 1;
      for (let i = 0; i < burst; i++) {
        const periodic = prng.next() < 0.3;
        // The protection service begins a share of its crash- and app-level checkpoints staged (its own
        // stream: see world.ts callerPrng).
        const staged = (plan.level === 'crash' || plan.level === 'app') && !periodic && world.callerPrng.next() < STAGED_SHARE;
        world.count(staged ? 'begins' : 'takes');
        coordinator.take(plan.id, periodic, (a) => world.count(`${staged ? 'begins' : 'takes'} ${a.ok ? 'admitted' : a.code}`), staged);
      }
      return;
    }
    r -= takeWeight;
    if (r < cancelWeight) {
      const running = topology.plans.flatMap((p) => coordinator.runningOf(p.id));
      if (running.length > 0) {
        const id = prng.pick(running);
        world.note(`api cancel ckpt ${id}`);
        coordinator.cancel(id, 'cancelled by the operator');
        world.count('cancels');
      }
      return;
    }
    r -= cancelWeight;
    for (const x of workload.extra) {
      if (r < x.weight) {
        x.run();
        return;
      }
      r -= x.weight;
    }
  };
  next();
  scheduleCrashes(world, until, workload.coordinatorCrashes);
}

function scheduleCrashes(world: World, until: number, coordinatorCrashes: boolean): void {
  const { agenda, prng, faultProfile: f } = world;
  const every = (meanMs: number, act: () => void): void => {
    if (!Number.isFinite(meanMs)) return;
    const loop = (): void => {
      const gap = 1 + prng.int(2 * meanMs);
      if (agenda.now + gap >= until) return;
      agenda.after(gap, '', () => {
        act();
        loop();
      });
    };
    loop();
  };
  every(f.agentCrashEveryMs, () => {
    const up = [...world.agents.values()].filter((a) => a.process.up);
    if (up.length === 0) return;
    const agent = prng.pick(up);
    world.note(`CRASH agent ${agent.server}`);
    world.count('agent crashes');
    agent.crash();
    agenda.after(1 + prng.int(f.downMsMax), '', () => {
      if (agent.process.up) return;
      world.note(`RESTART agent ${agent.server}`);
      agent.boot(true);
    });
  });
  if (!coordinatorCrashes) return;
  every(f.coordinatorCrashEveryMs, () => {
    const c = world.coordinator;
    if (!c.process.up) return;
    world.note('CRASH coordinator');
    world.count('coordinator crashes');
    world.crashCoordinator();
    agenda.after(1 + prng.int(f.downMsMax), '', () => {
      if (c.process.up) return;
      world.note('RESTART coordinator');
      c.boot();
    });
  });
}

/** The liveness phase starts: every process that is down comes back. */
export function heal(world: World): void {
  world.faultsActive = false;
  world.note('HEAL: faults off, every process up');
  for (const agent of world.agents.values()) {
    if (!agent.process.up) agent.boot(true);
  }
  if (!world.coordinator.process.up) world.coordinator.boot();
}
