/**
 * `channel`: in-band channel throughput, one producer app (agent s0, worker 0) to one consumer app
 * (agent s1, worker 1) over one channel, 1 KiB messages, against plain NATS publish/subscribe of the
 * same payloads between the same two processes. Then the same transfer with a checkpoint every
 * `interval` ms, aligned and unaligned, against the transfer without checkpoints.
 *
 * A run is timed in this process from the producer's start command to the consumer's report that the
 * last message arrived (two IPC hops, well under a millisecond, on runs of seconds). Floor and
 * project runs are interleaved, `repeat` times each, and medians reported, so machine noise hits
 * both alike.
 */
import type { AlignmentMode, CheckpointRecord } from '../coordinator/model.js';
import { agentConfig, startCoordinator, TENANT, type BenchCoordinator } from './lib/coordinator.js';
import { cpuPerItemByWorker, cpuSnapshot, withEnv, type BenchEnv } from './lib/env.js';
import { atLeast, type BenchResult } from './lib/report.js';
import { median, round, summarize } from './lib/stats.js';
import type { WorkerPool } from './lib/workers.js';

export interface ChannelOptions {
  readonly messages: number;
  readonly payloadBytes: number;
  readonly intervalMs: number;
  /** Sends the producer keeps outstanding. */
  readonly window: number;
  /** The receiving agent's credit window (channels.creditWindowMessages); undefined: the agent's default. */
  readonly creditWindow: number | undefined;
  readonly repeat: number;
  readonly logLevel: string;
}

const WORKERS = 2;
const FLOOR_FLUSH_EVERY = 1_000;
const TARGET_VS_FLOOR = 0.8;
const TARGET_WITH_CHECKPOINTS = 0.9;

interface CheckpointStats {
  attempted: number;
  skipped: number;
  completed: number;
  /** Per completed checkpoint: the largest alignmentMs an app reported, and the duration. */
  alignmentMs: number[];
  durationMs: number[];
}

export async function runChannel(o: ChannelOptions): Promise<BenchResult> {
  return withEnv(WORKERS, async (env) => {
    const { nats, pool } = env;
    const plan = {
      id: 'channel',
      tenant: TENANT,
      servers: ['s0', 's1'],
      apps: [
        { server: 's0', app: 'p' },
        { server: 's1', app: 'c' },
      ],
      channels: [{ from: { server: 's0', app: 'p' }, to: { server: 's1', app: 'c' }, kind: 'in-band' as const }],
      volumes: [],
    };
    const coordinator = await startCoordinator(nats.url, { timeoutMs: 60_000, retainedPerPlan: 100_000, logLevel: o.logLevel });
    try {
      await coordinator.createPlan(plan);
      const channels = o.creditWindow !== undefined ? { channels: { creditWindowMessages: o.creditWindow } } : {};
      await pool.call(0, 'agents.start', { specs: [{ config: agentConfig(plan, 's0', nats.url, channels), app: { kind: 'producer' } }] });
      await pool.call(1, 'agents.start', { specs: [{ config: agentConfig(plan, 's1', nats.url, channels), app: { kind: 'consumer' } }] });
      await pool.call(1, 'pubsub.subscribe', { url: nats.url, subject: 'bench.pubsub' });
      const rates = { floor: [] as number[], none: [] as number[], aligned: [] as number[], unaligned: [] as number[] };
      const stats: Record<AlignmentMode, CheckpointStats> = {
        aligned: { attempted: 0, skipped: 0, completed: 0, alignmentMs: [], durationMs: [] },
        unaligned: { attempted: 0, skipped: 0, completed: 0, alignmentMs: [], durationMs: [] },
      };
      let floorTotal = 0;
      let projectTotal = 0;
      const cpu = { floor: [] as number[][], none: [] as number[][] };
      for (let rep = 0; rep < o.repeat; rep++) {
        floorTotal += o.messages;
        rates.floor.push(await measured(env, o.messages, cpu.floor, () => floorRun(pool, nats.url, o, floorTotal)));
        projectTotal += o.messages;
        rates.none.push(await measured(env, o.messages, cpu.none, () => projectRun(pool, o, projectTotal)));
        for (const mode of ['aligned', 'unaligned'] as const) {
          projectTotal += o.messages;
          rates[mode].push(await withCheckpoints(coordinator, plan.id, mode, o.intervalMs, stats[mode], () => projectRun(pool, o, projectTotal)));
        }
      }
      const floor = median(rates.floor);
      const none = median(rates.none);
      const headline = atLeast('throughput vs plain NATS', 'msg/s', floor, none, TARGET_VS_FLOOR);
      const mb = (msgs: number): number => (msgs * o.payloadBytes) / 1e6;
      const stall = (s: CheckpointStats): Record<string, number> => {
        const a = summarize(s.alignmentMs);
        const d = summarize(s.durationMs);
        return { attempted: s.attempted, skippedStillRunning: s.skipped, completed: s.completed, alignmentMsP50: round(a.p50), alignmentMsMax: round(a.max), durationMsP50: round(d.p50), durationMsMax: round(d.max) };
      };
      return {
        benchmark: 'channel',
        params: { messages: o.messages, payloadBytes: o.payloadBytes, intervalMs: o.intervalMs, window: o.window, creditWindow: o.creditWindow ?? 'default', repeat: o.repeat },
        headline,
        rows: [
          headline,
          atLeast('throughput vs plain NATS', 'MB/s', mb(floor), mb(none)),
          // Here the "floor" column is the project's own figure without checkpoints.
          atLeast(`aligned, checkpoint every ${o.intervalMs} ms, vs none`, 'msg/s', none, median(rates.aligned), TARGET_WITH_CHECKPOINTS),
          atLeast(`unaligned, checkpoint every ${o.intervalMs} ms, vs none`, 'msg/s', none, median(rates.unaligned), TARGET_WITH_CHECKPOINTS),
        ],
        extra: {
          ratesMsgPerSec: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, v.map((x) => Math.round(x))])),
          cpuMicrosPerMessage: { floor: lastOf(cpu.floor), project: lastOf(cpu.none), workers: ['producer (worker 0)', 'consumer (worker 1)'] },
          checkpointsAligned: stall(stats.aligned),
          checkpointsUnaligned: stall(stats.unaligned),
        },
        notes: [
          'alignmentMs is what each app reports in its ack (agent/endpoint.ts): from the first sign of the checkpoint at the app (trigger or barrier) to its snapshot; the consumer has one input, so no input is ever blocked, and the figure is the barrier\'s wait behind in-flight messages',
        ],
      };
    } finally {
      await pool.all('reset', () => ({}));
      await coordinator.stop();
    }
  });
}

/** Runs `run` and records the CPU per message of each worker. */
async function measured(env: BenchEnv, messages: number, into: number[][], run: () => Promise<number>): Promise<number> {
  const a = await cpuSnapshot(env);
  const rate = await run();
  into.push(cpuPerItemByWorker(a, await cpuSnapshot(env), messages));
  return rate;
}

function lastOf<T>(xs: readonly T[]): T | undefined {
  return xs[xs.length - 1];
}

async function floorRun(pool: WorkerPool, url: string, o: ChannelOptions, total: number): Promise<number> {
  const arrived = pool.call(1, 'pubsub.until', { total });
  const t0 = performance.now();
  await pool.call(0, 'pubsub.publish', { url, subject: 'bench.pubsub', count: o.messages, payloadBytes: o.payloadBytes, flushEvery: FLOOR_FLUSH_EVERY });
  await arrived;
  return o.messages / ((performance.now() - t0) / 1000);
}

async function projectRun(pool: WorkerPool, o: ChannelOptions, total: number): Promise<number> {
  const arrived = pool.call(1, 'consumer.until', { app: 's1/c', total });
  const t0 = performance.now();
  await pool.call(0, 'producer.run', { app: 's0/p', count: o.messages, payloadBytes: o.payloadBytes, window: o.window });
  await arrived;
  return o.messages / ((performance.now() - t0) / 1000);
}

/** Runs `run` while taking a checkpoint every `intervalMs` (skipping a tick while one still runs). */
async function withCheckpoints(
  coordinator: BenchCoordinator,
  planId: string,
  mode: AlignmentMode,
  intervalMs: number,
  stats: CheckpointStats,
  run: () => Promise<number>,
): Promise<number> {
  const ended: Promise<CheckpointRecord>[] = [];
  let starting = false;
  const timer = setInterval(() => {
    if (starting) return;
    starting = true;
    stats.attempted += 1;
    coordinator
      .start(planId, { alignmentMode: mode })
      .then((s) => {
        if (s) ended.push(s.ended);
        else stats.skipped += 1;
      })
      .finally(() => (starting = false));
  }, intervalMs);
  let rate: number;
  try {
    rate = await run();
  } finally {
    clearInterval(timer);
  }
  while (starting) await new Promise((r) => setTimeout(r, 5));
  for (const record of await Promise.all(ended)) {
    if (record.state !== 'completed') continue;
    stats.completed += 1;
    stats.alignmentMs.push(Math.max(0, ...record.parts.map((p) => p.alignmentMs ?? 0)));
    if (record.triggeredAtUnixMs !== undefined && record.finishedAtUnixMs !== undefined) stats.durationMs.push(record.finishedAtUnixMs - record.triggeredAtUnixMs);
  }
  return rate;
}
