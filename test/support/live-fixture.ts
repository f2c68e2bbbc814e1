/**
 * The live system in one test process: a real nats-server, the coordinator's checkpoint service over
 * the real JetStream store, and agents with embedded token apps, each agent on its own NATS
 * connection. The demo plan: APP1@s1 -> APP2@s2 -> APP3@s3, APP1 -> APP3, APP3 -> APP1 (a diamond
 * and a cycle).
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { Agent } from '../../agent/agent.js';
import { parseAgentConfig, type AgentConfig } from '../../agent/config.js';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { AgentRegistry } from '../../coordinator/agents.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService, type CheckpointServiceOptions } from '../../coordinator/checkpoints/service.js';
import type { PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { TokenApp } from '../../agent/demo-apps/token-app.js';
import { agentConfigJson, demoPlan as demoPlanOf } from '../../examples/demo/plan.js';
import { createLogStreams } from '../../examples/demo/log-streams.js';
import { startNatsServer, type NatsServerHandle } from './nats-server.js';

export const TENANT = 'acme';
export const INITIAL_TOKENS = 1_000;

export const demoPlan: PlanInput = demoPlanOf(TENANT);

export function agentConfig(server: string, app: string, url: string, plan: PlanInput = demoPlan): AgentConfig {
  const parsed = parseAgentConfig(agentConfigJson(plan, server, app, url, { heartbeatIntervalMs: 500, triggerWaitMs: 500 }));
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.config;
}

export interface LiveWorld {
  readonly nats: NatsServerHandle;
  readonly nc: NatsConnection;
  readonly store: CoordinatorStore;
  readonly objects: JetStreamStateObjects;
  readonly bus: ControlBus;
  readonly registry: AgentRegistry;
  readonly service: CheckpointService;
  readonly agents: Map<string, { agent: Agent; app: TokenApp }>;
  /** Starts periodic transfers in every app; returns a function that stops them. */
  traffic(intervalMs: number): () => void;
  stop(): Promise<void>;
}

export const silent = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

export async function startLiveWorld(
  options: {
    timeoutMs?: number;
    retainedPerPlan?: number;
    retentionFor?: CheckpointServiceOptions['retentionFor'];
    logRetention?: CheckpointServiceOptions['logRetention'];
    plan?: PlanInput;
    /** 0: every app state is stored as an object (the demo apps' are small enough to travel inline). */
    inlineStateBytesMax?: number;
  } = {},
): Promise<LiveWorld> {
  const plan = options.plan ?? demoPlan;
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  // The operator makes the streams of the log channels; the agents check they are there.
  await createLogStreams(nc, plan);
  const store = await openCoordinatorStore(nc);
  const objects = new JetStreamStateObjects(nc);
  const bus = new ControlBus(nc, silent);
  // As the coordinator daemon: the agents' heartbeats give their fences, which the next ids go above.
  const registry = new AgentRegistry();
  bus.onEvents((e) => registry.observe(e));
  await bus.start();
  const service = new CheckpointService(store, objects, bus, silent, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    fences: registry,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: options.timeoutMs ?? 10_000 },
    restoreTimeoutMs: 10_000,
    retainedPerPlan: options.retainedPerPlan ?? CHECKPOINT_SERVICE_DEFAULTS.retainedPerPlan,
    ...(options.retentionFor ? { retentionFor: options.retentionFor } : {}),
    ...(options.logRetention ? { logRetention: options.logRetention } : {}),
    ...(options.inlineStateBytesMax !== undefined ? { inlineStateBytesMax: options.inlineStateBytesMax } : {}),
  });
  const created = await store.plans.create({ ...plan, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
  if (!created.ok) throw new Error(created.error.message);
  const agents = new Map<string, { agent: Agent; app: TokenApp }>();
  for (const a of plan.apps) {
    const agent = await Agent.start(agentConfig(a.server, a.app, nats.url, plan), silent);
    const app = new TokenApp({ initialTokens: INITIAL_TOKENS, transferTokensMax: 10 });
    const attached = agent.attach(a.app, app);
    if (!attached.ok) throw new Error(attached.error.message);
    app.bind(attached.link);
    agents.set(a.app, { agent, app });
  }
  for (const { agent } of agents.values()) await agent.ready();
  return {
    nats,
    nc,
    store,
    objects,
    bus,
    registry,
    service,
    agents,
    traffic(intervalMs) {
      const timer = setInterval(() => {
        for (const { app } of agents.values()) app.transfer()?.catch(() => undefined);
      }, intervalMs);
      return () => clearInterval(timer);
    },
    async stop() {
      for (const { agent } of agents.values()) await agent.stop();
      bus.stop();
      await nc.drain().catch(() => undefined);
      await nats.stop();
    },
  };
}
