/**
 * The live system in one test process for rollback and restore: a real nats-server, the checkpoint
 * service over the real JetStream store with an agent registry (so operations check presence), and
 * in-process agents with token apps, any of which can be restarted (a fresh agent, as after a crash)
 * or left down for a while.
 */
import { connect, type NatsConnection } from 'nats';
import { Agent } from '../../agent/agent.js';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { AgentRegistry } from '../../coordinator/agents.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService } from '../../coordinator/checkpoints/service.js';
import type { CheckpointRecord, ConsistencyLevel, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { TokenApp } from '../../agent/demo-apps/token-app.js';
import { demoPlan } from '../../examples/demo/plan.js';
import { agentConfig, silent } from './live-fixture.js';
import { startNatsServer, type NatsServerHandle } from './nats-server.js';

export interface OperationsWorld {
  readonly nats: NatsServerHandle;
  readonly nc: NatsConnection;
  readonly store: CoordinatorStore;
  readonly objects: JetStreamStateObjects;
  readonly bus: ControlBus;
  readonly service: CheckpointService;
  readonly plan: PlanInput;
  readonly agents: Map<string, { agent: Agent; app: TokenApp }>;
  /** Takes a checkpoint of the plan and waits for its end. */
  take(level?: ConsistencyLevel, planId?: string): Promise<CheckpointRecord>;
  /** Stops the agent of `server` (its app with it). */
  stopAgent(server: string): Promise<void>;
  /** Starts a fresh agent (and token app) on `server` of `plan`, as after a crash of the old one. */
  startAgent(server: string, plan?: PlanInput): Promise<void>;
  stop(): Promise<void>;
}

export interface OperationsWorldOptions {
  readonly tenant: string;
  readonly restoreTimeoutMs?: number;
  readonly plans?: readonly PlanInput[];
  /** What the service sees of the real store: a test puts a fault between them here. */
  readonly wrapStore?: (store: CoordinatorStore) => CoordinatorStore;
}

export async function startOperationsWorld(options: OperationsWorldOptions): Promise<OperationsWorld> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const real = await openCoordinatorStore(nc);
  const store = options.wrapStore ? options.wrapStore(real) : real;
  const objects = new JetStreamStateObjects(nc);
  const bus = new ControlBus(nc, silent);
  await bus.start();
  // Offline soon after an agent stops (it heartbeats every 500 ms), so a test need not wait a minute.
  const registry = new AgentRegistry({ logger: silent, limits: { lateAfterMs: 1_500, offlineAfterMs: 3_000 } });
  bus.onEvents((e) => registry.observe(e));
  const service = new CheckpointService(store, objects, bus, silent, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: 10_000 },
    restoreTimeoutMs: options.restoreTimeoutMs ?? 10_000,
    agents: registry,
  });
  const plan = demoPlan(options.tenant);
  const plans = [plan, ...(options.plans ?? [])];
  for (const p of plans) {
    const created = await store.plans.create({ ...p, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
    if (!created.ok) throw new Error(created.error.message);
  }
  const agents = new Map<string, { agent: Agent; app: TokenApp }>();
  const startAgent = async (server: string, of: PlanInput = plan): Promise<void> => {
    const a = of.apps.find((x) => x.server === server);
    if (!a) throw new Error(`no app on ${server}`);
    const agent = await Agent.start(agentConfig(a.server, a.app, nats.url, of), silent);
    const app = new TokenApp({ initialTokens: 1_000, transferTokensMax: 10 });
    const attached = agent.attach(a.app, app);
    if (!attached.ok) throw new Error(attached.error.message);
    app.bind(attached.link);
    agents.set(server, { agent, app });
    await agent.ready();
  };
  for (const p of plans) for (const s of p.servers) await startAgent(s, p);
  const take = async (level: ConsistencyLevel = 'app', planId = plan.id): Promise<CheckpointRecord> => {
    const taken = await service.take({ planId, level, options: {} });
    if (!taken.ok) throw new Error(taken.error.message);
    return service.waitFor(taken.value.id);
  };
  return {
    nats,
    nc,
    store,
    objects,
    bus,
    service,
    plan,
    agents,
    take,
    async stopAgent(server) {
      await agents.get(server)?.agent.stop();
      agents.delete(server);
    },
    startAgent,
    async stop() {
      for (const { agent } of agents.values()) await agent.stop();
      bus.stop();
      await nc.drain().catch(() => undefined);
      await nats.stop();
    },
  };
}
