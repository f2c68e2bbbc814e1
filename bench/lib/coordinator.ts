/**
 * The coordinator as the benchmarks run it: in the main process, wired as coordinator/main.ts wires
 * it (JetStream store, state objects, control bus, agent registry, checkpoint service) minus the
 * gRPC server, which would add a hop that is not the coordinator's own cost.
 */
import { connect, type NatsConnection } from 'nats';
import { pino, type Logger } from 'pino';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { AgentRegistry } from '../../coordinator/agents.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService } from '../../coordinator/checkpoints/service.js';
import type { CheckpointRecord, PlanInput, SnapshotOptions } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { COORDINATOR_NATS_OPTIONS } from '../../coordinator/nats-options.js';
import type { VolumeBackend } from '../../coordinator/volumes/backend.js';

export const TENANT = 'bench';

export interface BenchCoordinator {
  readonly nc: NatsConnection;
  readonly store: CoordinatorStore;
  readonly bus: ControlBus;
  readonly registry: AgentRegistry;
  readonly service: CheckpointService;
  /** Takes one app-level checkpoint and waits until it ended; the time from the request to the end. */
  /** One checkpoint, request to end; `startedAtUnixMs` is when it was requested, on the records' clock. */
  round(planId: string, options?: Partial<SnapshotOptions>): Promise<{ ms: number; record: CheckpointRecord; startedAtUnixMs: number }>;
  /** Starts a checkpoint (app level unless told) without waiting; undefined when one is still running (the plan is busy). */
  start(planId: string, options?: Partial<SnapshotOptions>, level?: 'app' | 'crash'): Promise<{ id: number; ended: Promise<CheckpointRecord> } | undefined>;
  createPlan(plan: PlanInput): Promise<void>;
  stop(): Promise<void>;
}

export interface CoordinatorOptions {
  readonly timeoutMs: number;
  /** Completed checkpoints kept per plan: above the rounds of a run, so retention deletes run no GC in the middle of it. */
  readonly retainedPerPlan: number;
  readonly logLevel: string;
  /** The group snapshot of crash-level checkpoints (the scale benchmark's crash mode). */
  readonly volumes?: VolumeBackend;
}

export async function startCoordinator(url: string, o: CoordinatorOptions): Promise<BenchCoordinator> {
  // Logs go to stderr: stdout carries the benchmark's result.
  const logger: Logger = pino({ level: o.logLevel, base: { component: 'coordinator' } }, pino.destination(2));
  const nc = await connect({ ...COORDINATOR_NATS_OPTIONS, servers: url, name: 'bench coordinator', maxReconnectAttempts: -1 });
  const store = await openCoordinatorStore(nc);
  const objects = new JetStreamStateObjects(nc);
  const bus = new ControlBus(nc, logger.child({ component: 'bus' }));
  const registry = new AgentRegistry({ logger });
  bus.onEvents((e) => registry.observe(e));
  await bus.start();
  const service = new CheckpointService(store, objects, bus, logger, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: o.timeoutMs },
    retainedPerPlan: o.retainedPerPlan,
    fences: registry,
    ...(o.volumes ? { volumes: o.volumes } : {}),
  });
  const ended = new Map<number, CheckpointRecord>();
  const waiting = new Map<number, (r: CheckpointRecord) => void>();
  service.onEnded((r) => {
    const w = waiting.get(r.id);
    if (w) {
      waiting.delete(r.id);
      w(r);
    } else ended.set(r.id, r);
  });
  const endOf = (id: number): Promise<CheckpointRecord> => {
    const r = ended.get(id);
    if (r) {
      ended.delete(id);
      return Promise.resolve(r);
    }
    return new Promise((resolve) => waiting.set(id, resolve));
  };
  const start: BenchCoordinator['start'] = async (planId, options = {}, level = 'app') => {
    const taken = await service.take({ planId, level, options });
    if (!taken.ok) {
      // Busy: the previous checkpoint of the plan is still in flight (RESOURCE_EXHAUSTED, PLAN_BUSY).
      if (taken.error.kind === 'resource-exhausted') return undefined;
      throw new Error(`take failed: ${taken.error.message}`);
    }
    return { id: taken.value.id, ended: endOf(taken.value.id) };
  };
  return {
    nc,
    store,
    bus,
    registry,
    service,
    start,
    async round(planId, options = {}) {
      const startedAtUnixMs = Date.now();
      const t0 = performance.now();
      const started = await start(planId, options);
      if (!started) throw new Error('a checkpoint of this plan is still running');
      const record = await started.ended;
      return { ms: performance.now() - t0, record, startedAtUnixMs };
    },
    async createPlan(plan) {
      const now = Date.now();
      const created = await store.plans.create({ ...plan, createdAtUnixMs: now, updatedAtUnixMs: now });
      if (!created.ok) throw new Error(created.error.message);
    },
    async stop() {
      bus.stop();
      await nc.drain().catch(() => undefined);
    },
  };
}

/** N servers with one app each and no channels: the control benchmark's plan of isolated apps. */
export function isolatedPlan(id: string, servers: number): PlanInput {
  const names = Array.from({ length: servers }, (_, i) => `s${i}`);
  return { id, tenant: TENANT, servers: names, apps: names.map((server) => ({ server, app: 'a' })), channels: [], volumes: [] };
}

/** A pipeline s0/a -> s1/a -> ... -> sD/a. */
export function pipelinePlan(id: string, depth: number): PlanInput {
  const names = Array.from({ length: depth + 1 }, (_, i) => `s${i}`);
  return {
    id,
    tenant: TENANT,
    servers: names,
    apps: names.map((server) => ({ server, app: 'a' })),
    channels: names.slice(1).map((to, i) => ({ from: { server: `s${i}`, app: 'a' }, to: { server: to, app: 'a' }, kind: 'in-band' as const })),
    volumes: [],
  };
}

/** The configuration file of the agent on `server` for plan `plan` (every app of that server). */
export function agentConfig(plan: PlanInput, server: string, url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const id = (s: string, a: string): string => `${s}/${a}`;
  return {
    tenant: plan.tenant,
    server,
    nats: { servers: [url] },
    apps: plan.apps
      .filter((a) => a.server === server)
      .map((a) => ({
        name: a.app,
        inputs: plan.channels.filter((c) => c.to.server === server && c.to.app === a.app).map((c) => `${id(c.from.server, c.from.app)}->${id(server, a.app)}`),
        outputs: plan.channels.filter((c) => c.from.server === server && c.from.app === a.app).map((c) => `${id(server, a.app)}->${id(c.to.server, c.to.app)}`),
      })),
    logLevel: 'warn',
    ...extra,
  };
}
