/**
 * The coordinator's /metrics, wired to the service and the agent registry: what main.ts starts when
 * `metrics.port` is set.
 */
import type { Logger } from 'pino';
import type { AgentRegistry } from '../agents.js';
import type { PlansApi } from '../api.js';
import type { CheckpointService } from '../checkpoints/service.js';
import { ok, type Result } from '../errors.js';
import type { CheckpointCopy, CheckpointRecord } from '../model.js';
import { CoordinatorMetrics } from './coordinator-metrics.js';
import { startMetricsServer, type MetricsServerHandle } from './server.js';

export { CoordinatorMetrics } from './coordinator-metrics.js';
export { startMetricsServer, type MetricsServerHandle } from './server.js';

export interface CoordinatorMetricsOptions {
  readonly checkpoints: Pick<CheckpointService, 'inFlight' | 'onEnded' | 'onOperationEnded' | 'list'>;
  readonly agents: Pick<AgentRegistry, 'list'>;
  /** To read each plan's newest completed checkpoint, and its sites' newest copies, at start-up. */
  readonly plans: Pick<PlansApi, 'list'>;
  /** Copies to other sites (coordinator/sites/), when the coordinator has sites. */
  readonly sites?: { onCopyEnded(listener: (site: string, record: CheckpointRecord, copy: CheckpointCopy) => void): void };
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
  o.sites?.onCopyEnded((site, record, copy) => metrics.copyEnded(site, record, copy));
  const served = await startMetricsServer({ metrics, host: o.host, port: o.port, logger: o.logger });
  if (served.ok) {
    void seedLastSuccess(metrics, o).then((r) => {
      if (!r.ok) o.logger.warn({ error: r.error.message }, 'last successes and copies not read from the store: the age gauges start empty');
    });
  }
  return served;
}

/** How many of a plan's newest completed checkpoints are searched for its sites' newest copies. */
const COPY_SEED_RECORDS_MAX = 200;

/** Per site the plan copies to, the newest completed checkpoint copied there (newest first, so the first found). */
async function seedCopied(metrics: CoordinatorMetrics, o: CoordinatorMetricsOptions, planId: string, sites: readonly string[]): Promise<Result<void>> {
  const left = new Set(sites);
  let token = '';
  for (let read = 0; left.size > 0 && read < COPY_SEED_RECORDS_MAX; ) {
    const page = await o.checkpoints.list({ planId, states: ['completed'] }, 50, token);
    if (!page.ok) return page;
    for (const r of page.value.items) {
      for (const c of r.copies ?? []) {
        if (c.state !== 'copied' || !left.has(c.site)) continue;
        metrics.seedCopied(c.site, planId, r.finishedAtUnixMs ?? c.copiedAtUnixMs);
        left.delete(c.site);
      }
    }
    read += page.value.items.length;
    token = page.value.nextPageToken;
    if (token === '') break;
  }
  return ok(undefined);
}

async function seedLastSuccess(metrics: CoordinatorMetrics, o: CoordinatorMetricsOptions): Promise<Result<void>> {
  let token = '';
  do {
    const page = await o.plans.list(undefined, 100, token);
    if (!page.ok) return page;
    for (const plan of page.value.items) {
      // Newest first: the first completed one is the plan's last success.
      const newest = await o.checkpoints.list({ planId: plan.id, states: ['completed'] }, 1, '');
      if (!newest.ok) return newest;
      const finished = newest.value.items[0]?.finishedAtUnixMs;
      if (finished !== undefined) metrics.seedLastSuccess(plan.id, finished);
      const copied = await seedCopied(metrics, o, plan.id, plan.copyToSites ?? []);
      if (!copied.ok) return copied;
    }
    token = page.value.nextPageToken;
  } while (token !== '');
  return ok(undefined);
}
