/**
 * The coordinator's /metrics, wired to the service and the agent registry: what main.ts starts when
 * `metrics.port` is set.
 */
import type { Logger } from 'pino';
import type { AgentRegistry } from '../agents.js';
import type { CheckpointService } from '../checkpoints/service.js';
import type { Result } from '../errors.js';
import { CoordinatorMetrics } from './coordinator-metrics.js';
import { startMetricsServer, type MetricsServerHandle } from './server.js';

export { CoordinatorMetrics } from './coordinator-metrics.js';
export { startMetricsServer, type MetricsServerHandle } from './server.js';

export interface CoordinatorMetricsOptions {
  readonly checkpoints: Pick<CheckpointService, 'inFlight' | 'onEnded' | 'onOperationEnded'>;
  readonly agents: Pick<AgentRegistry, 'list'>;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
}

export async function serveCoordinatorMetrics(o: CoordinatorMetricsOptions): Promise<Result<MetricsServerHandle>> {
  const metrics = new CoordinatorMetrics({
    inFlight: () => o.checkpoints.inFlight().length,
    agents: async () => {
      const listed = await o.agents.list(undefined);
      return listed.ok ? listed.value : [];
    },
  });
  o.checkpoints.onEnded((r) => metrics.checkpointEnded(r));
  o.checkpoints.onOperationEnded((kind, succeeded) => metrics.operationEnded(kind, succeeded));
  return startMetricsServer({ metrics, host: o.host, port: o.port, logger: o.logger });
}
