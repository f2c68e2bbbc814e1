/**
 * `state`: a checkpoint of A apps holding `bytes` of state in total (bytes / A each, A agents spread
 * over the workers), from the request to the record written `completed`, against plain Object
 * Store puts of the same objects from the same processes (all at once, as the apps upload at once).
 * Reported as MB/s (1 MB = 10^6 bytes) and the ratio. An app holds at most 256 MiB (the state
 * store's objectBytesMax), so 512M needs at least 2 apps.
 */
import { agentConfig, isolatedPlan, startCoordinator } from './lib/coordinator.js';
import { withEnv } from './lib/env.js';
import { atLeast, type BenchResult, type Row } from './lib/report.js';
import { median, round } from './lib/stats.js';
import { spread } from './lib/workers.js';
import type { AgentSpec } from './worker.js';

export interface StateOptions {
  readonly sizes: readonly number[];
  readonly apps: number;
  readonly rounds: number;
  /** Unmeasured rounds first, per size (the first put into a bucket creates it). */
  readonly warmup: number;
  readonly workers: number;
  readonly logLevel: string;
}

const FLOOR_BUCKET = 'bench-floor';

export function sizeLabel(bytes: number): string {
  for (const [unit, f] of [['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) if (bytes >= f && bytes % f === 0) return `${bytes / f}${unit}`;
  return `${bytes}B`;
}

export async function runState(o: StateOptions): Promise<BenchResult> {
  return withEnv(o.workers, async ({ nats, pool }) => {
    const coordinator = await startCoordinator(nats.url, { timeoutMs: 600_000, retainedPerPlan: 1_000, logLevel: o.logLevel });
    const rows: Row[] = [];
    const extra: Record<string, unknown> = {};
    try {
      for (const total of o.sizes) {
        const each = Math.ceil(total / o.apps);
        const label = sizeLabel(total);
        // ---- floor: plain Object Store puts, each worker its share of the objects, all at once ----
        const names = Array.from({ length: o.apps }, (_, i) => `floor-${label}-${i}`);
        const byWorker = spread(names, pool.size);
        const floorMs: number[] = [];
        for (let r = 0; r < o.warmup + o.rounds; r++) {
          const perWorker = await pool.all<number>('objects.put', (w) => ({ url: nats.url, bucket: FLOOR_BUCKET, names: byWorker[w], bytes: each }));
          if (r >= o.warmup) floorMs.push(Math.max(...perWorker));
        }
        // ---- project: checkpoints of apps holding the same bytes ----
        const plan = isolatedPlan(`state-${label}`, o.apps);
        await coordinator.createPlan(plan);
        const specs: AgentSpec[] = plan.servers.map((server) => ({ config: agentConfig(plan, server, nats.url), app: { kind: 'trivial', stateBytes: each } }));
        const bySpec = spread(specs, pool.size);
        await pool.all('agents.start', (w) => ({ specs: bySpec[w] }));
        const projectMs: number[] = [];
        const failed: string[] = [];
        for (let r = 0; r < o.warmup + o.rounds; r++) {
          const { ms, record } = await coordinator.round(plan.id);
          // A checkpoint that could not store the state is a result too: named, and no sample.
          if (record.state !== 'completed') failed.push(`checkpoint ${record.id} ${record.state}: ${record.failureDetail ?? ''}`.slice(0, 400));
          else if (r >= o.warmup) projectMs.push(ms);
          // Outside the timing: the store keeps one checkpoint's objects at a time.
          const deleted = await coordinator.service.delete(record.id);
          if (!deleted.ok && record.state === 'completed') throw new Error(`could not delete checkpoint ${record.id}: ${deleted.error.message}`);
        }
        await pool.all('reset', () => ({}));
        const bytes = each * o.apps;
        const mbps = (ms: number): number => bytes / 1e6 / (ms / 1000);
        // No completed checkpoint: 0 MB/s, and the failures say why.
        rows.push(atLeast(`${label} in ${o.apps} apps, MB/s`, 'MB/s', mbps(median(floorMs)), projectMs.length > 0 ? mbps(median(projectMs)) : 0));
        extra[label] = { floorMs: floorMs.map(round), projectMs: projectMs.map(round), ...(failed.length > 0 ? { failed } : {}) };
      }
    } finally {
      await pool.all('reset', () => ({}));
      await coordinator.stop();
    }
    return {
      benchmark: 'state',
      params: { bytes: o.sizes.map(sizeLabel).join(','), apps: o.apps, rounds: o.rounds, warmup: o.warmup, workers: o.workers },
      headline: rows[rows.length - 1] as Row,
      rows,
      extra,
      notes: ['no target is set for state; floor: the slowest worker\'s time for its puts; project: request to completed'],
    };
  });
}
