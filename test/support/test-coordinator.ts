/**
 * A coordinator's gRPC edge for tests: a real nats-server with the real plan store and registry,
 * an agent registry with a hand-moved clock, and the in-memory FakeCheckpoints in place of the
 * checkpoint orchestration.
 */
import { connect, type NatsConnection } from 'nats';
import { pino, type Logger } from 'pino';
import { AgentRegistry } from '../../coordinator/agents.js';
import { startGrpcServer, type GrpcServerHandle, type GrpcServerLimits } from '../../coordinator/grpc/server.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { PolicyRegistry } from '../../coordinator/policies/registry.js';
import { JetStreamPolicyStore } from '../../coordinator/store/policies.js';
import { openCoordinatorStore } from '../../coordinator/store/index.js';
import { FakeCheckpoints } from './fake-checkpoints.js';
import { startNatsServer, type NatsServerHandle } from './nats-server.js';

export interface TestCoordinator {
  readonly address: string;
  readonly grpc: GrpcServerHandle;
  readonly checkpoints: FakeCheckpoints;
  readonly agents: AgentRegistry;
  readonly clock: { nowMs: number };
  /** Log lines the coordinator wrote (JSON objects). */
  readonly logLines: Record<string, unknown>[];
  stop(): Promise<void>;
}

export async function startTestCoordinator(limits: Partial<GrpcServerLimits> = {}): Promise<TestCoordinator> {
  const nats: NatsServerHandle = await startNatsServer();
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: nats.url });
    const logLines: Record<string, unknown>[] = [];
    const logger: Logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    const store = await openCoordinatorStore(nc);
    const checkpoints = new FakeCheckpoints();
    const clock = { nowMs: 1_700_000_000_000 };
    const plans = new PlanRegistry({
      store: store.plans,
      hasCheckpoints: checkpoints.hasCheckpoints,
      deleteCheckpoints: checkpoints.deleteCheckpoints,
      now: () => clock.nowMs,
      logger,
    });
    const agents = new AgentRegistry({ now: () => clock.nowMs, logger });
    // Policies are stored and served; their schedules are not started here (no registry.start()).
    const policies = new PolicyRegistry({
      store: new JetStreamPolicyStore(store.buckets.plans, 1_000),
      plans: store.plans,
      logger,
      take: (r) => checkpoints.take(r),
      waitFor: async (id) => {
        const r = await checkpoints.get(id);
        if (!r.ok) throw new Error(r.error.message);
        return r.value;
      },
    });
    const grpc = await startGrpcServer({ api: { plans, checkpoints, agents, policies }, address: '127.0.0.1:0', logger, limits });
    const conn = nc;
    return {
      address: `127.0.0.1:${grpc.port}`,
      grpc,
      checkpoints,
      agents,
      clock,
      logLines,
      stop: async () => {
        await grpc.close();
        await conn.close();
        await nats.stop();
      },
    };
  } catch (error) {
    await nc?.close();
    await nats.stop();
    throw error;
  }
}
