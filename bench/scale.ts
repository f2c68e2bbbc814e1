/**
 * `scale`: a plan of N servers with 3 apps each under live channel traffic, checkpointed every T for
 * a duration (DESIGN.md section 8: 1,000 servers x 3 apps, every 10 s, 30 minutes, every checkpoint
 * completes, p99 under 2 s; crash level, 128 servers: frozen window p99 under 1 s beyond the volume
 * backend's own time).
 *
 * The graph: on each server a -> b -> c; servers are chained in pipelines of PIPELINE_SERVERS
 * (c of one server -> a of the next), and every CYCLE_EVERY-th pipeline is closed into a cycle
 * (its last c -> its first a, a back edge). Every app sends `rate` messages a second on each output
 * and counts what arrives (bench/scale-worker.ts). Agents (agent/agent.ts, one NATS connection
 * each) are spread over the worker processes; the coordinator (bench/lib/coordinator.ts: the real
 * service, store and bus) runs in this process, so this process's CPU and RSS are the coordinator's.
 *
 * Phases: floor members answer broadcasts while the traffic runs with no checkpoint (the floors of
 * the checkpoint time and of the traffic rate), then checkpoints every T for the duration; a tick
 * that finds the previous checkpoint still running is skipped and counted.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { pino } from 'pino';
import type { AppPart, CheckpointRecord, PlanInput } from '../coordinator/model.js';
import { encodeJson } from '../coordinator/store/json.js';
import { DirectoryBackend } from '../coordinator/volumes/directory.js';
import { agentConfig, startCoordinator, TENANT } from './lib/coordinator.js';
import { cpuSnapshot, type BenchEnv, type CpuSnapshot } from './lib/env.js';
import { atLeast, atMost, type BenchResult, type Row } from './lib/report.js';
import { percentile, round, summarize } from './lib/stats.js';
import { spread, WorkerPool } from './lib/workers.js';
import { TimedVolumeBackend } from './scale-volumes.js';
import type { ScaleCounts, ScaleTraffic } from './scale-worker.js';
import { startNatsServer } from '../examples/nats-server.js';

export interface ScaleOptions {
  readonly servers: number;
  readonly workers: number;
  readonly level: 'app' | 'crash';
  readonly durationMs: number;
  readonly everyMs: number;
  /** Traffic with no checkpoint before the first one (the floors are measured in it). */
  readonly warmupMs: number;
  readonly ratePerChannel: number;
  readonly payloadBytes: number;
  readonly logLevel: string;
}

export const PIPELINE_SERVERS = 10;
export const CYCLE_EVERY = 5;
const APPS = ['a', 'b', 'c'] as const;
const BUCKET_MS = 250;
const FLOOR_ROUND_EVERY_MS = 500;
const SAMPLE_EVERY_MS = 1_000;
const TARGET_P99_MS = 2_000;
const TARGET_FROZEN_BEYOND_P99_MS = 1_000;
/** After the traffic stops: the counts are read again every DRAIN_READ_EVERY_MS while they still move. */
const DRAIN_READ_EVERY_MS = 250;
const DRAIN_READS_MAX = 40;
/** Bytes in each server's volume (crash level): a few small files, as a guest's changed blocks would be few. */
const VOLUME_FILES = 4;
const VOLUME_FILE_BYTES = 4096;
const SCALE_WORKER_ENTRY = fileURLToPath(new URL('./scale-worker.ts', import.meta.url));

/** The scale plan: per server a -> b -> c, servers chained in pipelines, every CYCLE_EVERY-th one a cycle. */
export function scalePlan(id: string, servers: number, volumeRoot?: string): PlanInput {
  const names = Array.from({ length: servers }, (_, i) => `s${i}`);
  const ref = (server: string, app: string) => ({ server, app });
  const channels: PlanInput['channels'][number][] = [];
  for (let i = 0; i < servers; i++) {
    const s = names[i] as string;
    channels.push({ from: ref(s, 'a'), to: ref(s, 'b'), kind: 'in-band' }, { from: ref(s, 'b'), to: ref(s, 'c'), kind: 'in-band' });
    const pipeline = Math.floor(i / PIPELINE_SERVERS);
    const first = pipeline * PIPELINE_SERVERS;
    const last = Math.min(servers, first + PIPELINE_SERVERS) - 1;
    if (i < last) channels.push({ from: ref(s, 'c'), to: ref(names[i + 1] as string, 'a'), kind: 'in-band' });
    else if (pipeline % CYCLE_EVERY === 0 && last > first) channels.push({ from: ref(s, 'c'), to: ref(names[first] as string, 'a'), kind: 'in-band' });
  }
  return {
    id,
    tenant: TENANT,
    servers: names,
    apps: names.flatMap((server) => APPS.map((app) => ref(server, app))),
    channels,
    volumes: volumeRoot === undefined ? [] : names.map((server) => ({ id: `vol-${server}`, server, backendRef: join(volumeRoot, server) })),
  };
}

/**
 * What the report needs of one checkpoint, taken from its record as it ends: the records
 * themselves (1.2 MB of JSON each at 3,000 apps) kept for the whole run would be this process's
 * memory, which the report gives as the coordinator's.
 */
interface Taken {
  readonly requestedAtUnixMs: number;
  readonly ms: number;
  readonly id: number;
  readonly state: CheckpointRecord['state'];
  readonly failureReason: string | undefined;
  readonly failureDetail: string | undefined;
  /** Every app's alignment; for a completed checkpoint only. */
  readonly alignmentsMs: readonly number[];
  /** The last app's ack, when every app acked. */
  readonly lastAckedAtUnixMs: number | undefined;
  /** When the trigger went out and when the acks came, after the request: where a slow checkpoint spent its time. */
  readonly phases: CheckpointPhases;
  readonly jsonBytes: number;
  readonly storedBytes: number;
  /** Undefined without parts. */
  readonly jsonBytesPerPart: number | undefined;
  readonly servers: readonly { readonly frozenAtUnixMs?: number | undefined; readonly thawedAtUnixMs?: number | undefined }[];
}

interface CheckpointPhases {
  readonly triggerMs: number | undefined;
  /** The acks' arrival after the request: the median app's, the 99th percentile's and the last one's. */
  readonly acksMs: { readonly p50: number; readonly p99: number; readonly last: number } | undefined;
  /** The app whose ack came last, with how long its first barrier took to come and its alignment (as it reported them). */
  readonly lastApp: { readonly app: string; readonly startDelayMs: number | undefined; readonly alignmentMs: number | undefined } | undefined;
}

function phasesOf(record: CheckpointRecord, requestedAtUnixMs: number): CheckpointPhases {
  const acked = record.parts.filter((p) => p.ackedAtUnixMs !== undefined);
  const after = acked.map((p) => (p.ackedAtUnixMs as number) - requestedAtUnixMs).sort((a, b) => a - b);
  const last = acked.reduce<AppPart | undefined>((l, p) => (l === undefined || (p.ackedAtUnixMs as number) > (l.ackedAtUnixMs as number) ? p : l), undefined);
  return {
    triggerMs: record.triggeredAtUnixMs === undefined ? undefined : record.triggeredAtUnixMs - requestedAtUnixMs,
    acksMs: after.length === 0 ? undefined : { p50: percentile(after, 50), p99: percentile(after, 99), last: after[after.length - 1] as number },
    lastApp: last === undefined ? undefined : { app: `${last.server}/${last.app}`, startDelayMs: last.startDelayMs, alignmentMs: last.alignmentMs },
  };
}

/** The summary of a checkpoint, adding the CPU seconds it took to `cpu` (the report takes them off the coordinator's figure). */
function taken(record: CheckpointRecord, requestedAtUnixMs: number, ms: number, cpu: { sec: number }): Taken {
  const cpu0 = process.cpuUsage();
  try {
    return summaryOf(record, requestedAtUnixMs, ms);
  } finally {
    const used = process.cpuUsage(cpu0);
    cpu.sec += (used.user + used.system) / 1e6;
  }
}

function summaryOf(record: CheckpointRecord, requestedAtUnixMs: number, ms: number): Taken {
  const allAcked = record.parts.length > 0 && record.parts.every((p) => p.acked && p.ackedAtUnixMs !== undefined);
  return {
    requestedAtUnixMs,
    ms,
    id: record.id,
    state: record.state,
    failureReason: record.failureReason ?? undefined,
    failureDetail: record.failureDetail ?? undefined,
    alignmentsMs: record.state === 'completed' ? record.parts.map((p) => p.alignmentMs ?? 0) : [],
    lastAckedAtUnixMs: allAcked ? Math.max(...record.parts.map((p) => p.ackedAtUnixMs as number)) : undefined,
    phases: phasesOf(record, requestedAtUnixMs),
    jsonBytes: Buffer.byteLength(JSON.stringify(record)),
    storedBytes: encodeJson(record).byteLength,
    jsonBytesPerPart: record.parts.length > 0 ? Buffer.byteLength(JSON.stringify(record.parts)) / record.parts.length : undefined,
    servers: (record.servers ?? []).map((s) => ({ frozenAtUnixMs: s.frozenAtUnixMs, thawedAtUnixMs: s.thawedAtUnixMs })),
  };
}

export async function runScale(o: ScaleOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-scale-'));
  const nats = await startNatsServer();
  let pool: WorkerPool | undefined;
  try {
    pool = await WorkerPool.start(o.workers, SCALE_WORKER_ENTRY);
    return await measure({ nats, pool }, o, dir);
  } finally {
    await pool?.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(env: BenchEnv, o: ScaleOptions, dir: string): Promise<BenchResult> {
  const { nats, pool } = env;
  const crash = o.level === 'crash';
  const volumeRoot = crash ? join(dir, 'volumes') : undefined;
  const plan = scalePlan('scale', o.servers, volumeRoot);
  let volumes: TimedVolumeBackend | undefined;
  if (volumeRoot !== undefined) {
    for (const v of plan.volumes) {
      mkdirSync(v.backendRef, { recursive: true });
      for (let f = 0; f < VOLUME_FILES; f++) writeFileSync(join(v.backendRef, `block-${f}`), new Uint8Array(VOLUME_FILE_BYTES).fill(f + 1));
    }
    volumes = new TimedVolumeBackend(new DirectoryBackend(join(dir, 'snapshots'), pino({ level: o.logLevel }, pino.destination(2))));
  }
  // The service's defaults (timeout, retention) as a deployment would run them.
  const coordinator = await startCoordinator(nats.url, { timeoutMs: 30_000, retainedPerPlan: 20, logLevel: o.logLevel, ...(volumes ? { volumes } : {}) });
  try {
    await coordinator.createPlan(plan);

    // ---- floor members (one plain connection per server), then the agents ----
    const groups = spread(plan.servers, pool.size);
    await pool.all('floor.members', (w) => ({ url: nats.url, names: groups[w], broadcast: 'bench.scale.broadcast', reply: 'bench.scale.reply' }));
    const traffic: ScaleTraffic = { ratePerChannel: o.ratePerChannel, payloadBytes: o.payloadBytes, bucketMs: BUCKET_MS };
    const configs = plan.servers.map((server) =>
      agentConfig(plan, server, nats.url, crash ? { stateDir: join(dir, 'agent-state', server), freeze: { hookRetriesMax: 0 } } : {}),
    );
    const byWorker = spread(configs, pool.size);
    const startedAt = performance.now();
    await pool.all('scale.agents', (w) => ({ configs: byWorker[w], traffic }));
    await pool.all('scale.ready', () => ({}));
    const agentsStartMs = performance.now() - startedAt;

    // ---- warm-up: traffic, no checkpoint; the broadcast floor meanwhile ----
    await pool.all('scale.traffic', () => ({ on: true }));
    const warmFrom = Date.now();
    const floorMs = await broadcastRounds(nats.url, o.servers, o.warmupMs);
    const warmTo = Date.now();
    await pool.all('floor.close', () => ({}));

    // ---- checkpoints every T for the duration ----
    const cpu0 = await cpuSnapshot(env);
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(process.memoryUsage().rss), SAMPLE_EVERY_MS);
    const ended: Promise<Taken>[] = [];
    const summaryCpu = { sec: 0 };
    let attempted = 0;
    let skippedBusy = 0;
    const takeFailures: string[] = [];
    let starting = false;
    const tick = (): void => {
      if (starting) {
        skippedBusy += 1;
        return;
      }
      starting = true;
      attempted += 1;
      const requestedAtUnixMs = Date.now();
      const t0 = performance.now();
      coordinator
        .start(plan.id, {}, o.level)
        .then((s) => {
          if (!s) skippedBusy += 1;
          else ended.push(s.ended.then((record) => taken(record, requestedAtUnixMs, performance.now() - t0, summaryCpu)));
        })
        // A refused take (other than busy) is a result of the run, not a reason to stop it.
        .catch((error: unknown) => takeFailures.push(error instanceof Error ? error.message : String(error)))
        .finally(() => (starting = false));
    };
    const checkpointsFrom = Date.now();
    tick();
    const ticker = setInterval(tick, o.everyMs);
    await new Promise((r) => setTimeout(r, o.durationMs));
    clearInterval(ticker);
    while (starting) await new Promise((r) => setTimeout(r, 10));
    const results = await Promise.all(ended);
    const checkpointsTo = Date.now();
    clearInterval(sampler);
    rss.push(process.memoryUsage().rss);
    const cpu1 = await cpuSnapshot(env);
    await pool.all('scale.traffic', () => ({ on: false }));
    const counts = await drainedCounts(pool);

    return report(o, plan, {
      agentsStartMs,
      floorMs,
      warm: [warmFrom, warmTo],
      run: [checkpointsFrom, checkpointsTo],
      results,
      attempted,
      skippedBusy,
      takeFailures,
      cpu: [cpu0, cpu1],
      rss,
      summaryCpuSec: summaryCpu.sec,
      counts,
      maxPayload: coordinator.nc.info?.max_payload,
      volumeCalls: volumes?.calls,
    });
  } finally {
    await pool.all('scale.traffic', () => ({ on: false })).catch(() => undefined);
    await coordinator.stop();
  }
}

/** Plain-NATS broadcast-and-gather rounds to one connection per server, for `forMs`: the floor of a checkpoint round. */
async function broadcastRounds(url: string, members: number, forMs: number): Promise<number[]> {
  const nc = await connect({ servers: url, name: 'bench scale floor gatherer' });
  let replies = 0;
  let gathered: (() => void) | undefined;
  nc.subscribe('bench.scale.reply', {
    callback: () => {
      replies += 1;
      if (replies === members) gathered?.();
    },
  });
  await nc.flush();
  const ms: number[] = [];
  const question = new Uint8Array(64);
  const end = performance.now() + forMs;
  try {
    while (performance.now() < end) {
      replies = 0;
      const done = new Promise<void>((resolve) => (gathered = resolve));
      const t0 = performance.now();
      nc.publish('bench.scale.broadcast', question);
      await done;
      ms.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, FLOOR_ROUND_EVERY_MS));
    }
  } finally {
    await nc.close();
  }
  return ms;
}

interface Measured {
  readonly agentsStartMs: number;
  readonly floorMs: readonly number[];
  readonly warm: readonly [number, number];
  readonly run: readonly [number, number];
  readonly results: readonly Taken[];
  readonly attempted: number;
  readonly skippedBusy: number;
  readonly takeFailures: readonly string[];
  readonly cpu: readonly [CpuSnapshot, CpuSnapshot];
  readonly rss: readonly number[];
  /** CPU seconds of the driver's own summaries of the checkpoints (`taken`), not the coordinator's. */
  readonly summaryCpuSec: number;
  readonly counts: readonly ScaleCounts[];
  readonly maxPayload: number | undefined;
  readonly volumeCalls: ReadonlyMap<number, { readonly ms: number; readonly members: number }> | undefined;
}

function report(o: ScaleOptions, plan: PlanInput, m: Measured): BenchResult {
  const completed = m.results.filter((r) => r.state === 'completed');
  const aborted: Record<string, number> = {};
  const abortDetails: string[] = [];
  for (const r of m.results) {
    if (r.state === 'completed') continue;
    const reason = r.failureReason ?? r.state;
    aborted[reason] = (aborted[reason] ?? 0) + 1;
    // The first two of each reason, so a rarer reason is not hidden behind the common one.
    if ((aborted[reason] ?? 0) <= 2) abortDetails.push(`${r.id}: ${reason}: ${(r.failureDetail ?? '').slice(0, 300)}`);
  }
  const ckptMs = summarize(completed.map((r) => r.ms));
  // Request to the last ack, for every checkpoint whose apps all acked, completed or not: the
  // collection alone, which an abort at the commit (a record that does not fit) leaves measurable.
  const allAckedMs = summarize(m.results.flatMap((r) => (r.lastAckedAtUnixMs === undefined ? [] : [r.lastAckedAtUnixMs - r.requestedAtUnixMs])));
  const abortMs = summarize(m.results.filter((r) => r.state !== 'completed').map((r) => r.ms));
  // The record is one KV value: a plan whose record does not fit nats-server's max_payload cannot
  // complete a checkpoint, so its size is part of the result, as JSON and as the store writes it.
  const recordBytes = m.results.map((r) => r.jsonBytes);
  const storedBytes = m.results.map((r) => r.storedBytes);
  const partBytes = m.results.flatMap((r) => (r.jsonBytesPerPart === undefined ? [] : [r.jsonBytesPerPart]));
  const floor = summarize(m.floorMs);
  // Every app's alignment in every completed checkpoint, and each checkpoint's slowest app.
  const alignments = completed.flatMap((r) => r.alignmentsMs);
  const alignmentWorst = completed.map((r) => Math.max(0, ...r.alignmentsMs));

  // Traffic: delivered per bucket over every worker; a bucket is "checkpointing" when any checkpoint
  // was in flight (request to end) during it. Only whole buckets inside a phase count.
  const delivered = new Map<number, number>();
  for (const c of m.counts) for (const [b, n] of c.buckets) delivered.set(b, (delivered.get(b) ?? 0) + n);
  const rateOf = (buckets: number[]): number => (buckets.length === 0 ? Number.NaN : buckets.reduce((s, b) => s + (delivered.get(b) ?? 0), 0) / ((buckets.length * BUCKET_MS) / 1000));
  const bucketsIn = (from: number, to: number): number[] => {
    const out: number[] = [];
    for (let b = Math.ceil(from / BUCKET_MS) * BUCKET_MS; b + BUCKET_MS <= to; b += BUCKET_MS) out.push(b);
    return out;
  };
  // The first quarter of the warm-up is left out: channels still fill their credit windows then.
  const warmBuckets = bucketsIn(m.warm[0] + (m.warm[1] - m.warm[0]) / 4, m.warm[1]);
  const inFlight = m.results.map((r) => [r.requestedAtUnixMs, r.requestedAtUnixMs + r.ms] as const);
  const busy: number[] = [];
  const idle: number[] = [];
  for (const b of bucketsIn(m.run[0], m.run[1])) (inFlight.some(([s, e]) => s < b + BUCKET_MS && e > b) ? busy : idle).push(b);
  const rateFloor = rateOf(warmBuckets);
  const rateBusy = rateOf(busy);
  const rateIdle = rateOf(idle);
  const offered = plan.channels.length * o.ratePerChannel;
  const sum = (f: (c: ScaleCounts) => number): number => m.counts.reduce((s, c) => s + f(c), 0);

  const seconds = (m.run[1] - m.run[0]) / 1000;
  const [c0, c1] = m.cpu;
  const coordinatorCpuSec = c1.main - c0.main - m.summaryCpuSec;

  const rows: Row[] = [];
  const completedRow = atLeast('checkpoints completed / taken', 'count', m.results.length, completed.length, 1);
  rows.push(
    completedRow,
    atMost('checkpoint time p50 (vs broadcast-and-gather)', 'ms', floor.p50, ckptMs.p50),
    atMost('checkpoint time p99 (vs broadcast-and-gather)', 'ms', floor.p99, ckptMs.p99),
    atLeast('traffic, checkpoint in flight (vs none: warm-up)', 'msg/s', rateFloor, rateBusy),
    atLeast('traffic, no checkpoint in flight (vs warm-up)', 'msg/s', rateFloor, rateIdle),
  );
  const targets: Record<string, boolean> = {
    everyCheckpointCompleted: m.results.length > 0 && completed.length === m.results.length && m.skippedBusy === 0 && m.takeFailures.length === 0,
    checkpointP99Under2s: ckptMs.p99 < TARGET_P99_MS,
  };
  const extra: Record<string, unknown> = {
    plan: { servers: plan.servers.length, apps: plan.apps.length, channels: plan.channels.length, cycles: plan.channels.filter((c) => c.to.app === 'a' && Number(c.to.server.slice(1)) < Number(c.from.server.slice(1))).length },
    agentsStartMs: Math.round(m.agentsStartMs),
    checkpoints: {
      ticks: m.attempted,
      taken: m.results.length,
      completed: completed.length,
      skippedBusy: m.skippedBusy,
      ...(m.takeFailures.length > 0 ? { takeFailed: m.takeFailures.length, firstTakeFailure: m.takeFailures[0] } : {}),
      aborted, ...(abortDetails.length > 0 ? { abortDetails } : {}) },
    checkpointMs: { p50: round(ckptMs.p50), p99: round(ckptMs.p99), max: round(ckptMs.max), mean: round(ckptMs.mean) },
    allAckedMs: { checkpoints: allAckedMs.n, p50: round(allAckedMs.p50), p99: round(allAckedMs.p99), max: round(allAckedMs.max) },
    // Each taken checkpoint in request order, seconds into the checkpoint phase: slow stretches show
    // where they fall in the run, which the percentiles do not tell.
    checkpointTimeline: [...m.results]
      .sort((a, b) => a.requestedAtUnixMs - b.requestedAtUnixMs)
      .map((r) => ({ atS: round((r.requestedAtUnixMs - m.run[0]) / 1000), ms: Math.round(r.ms), state: r.state, ...r.phases })),
    ...(abortMs.n > 0 ? { abortedMs: { p50: round(abortMs.p50), max: round(abortMs.max) } } : {}),
    record: { jsonBytesMax: recordBytes.length > 0 ? Math.max(...recordBytes) : null, storedBytesMax: storedBytes.length > 0 ? Math.max(...storedBytes) : null, jsonBytesPerPart: partBytes.length > 0 ? round(Math.max(...partBytes)) : null, natsMaxPayload: m.maxPayload },
    floorBroadcastMs: { rounds: floor.n, p50: round(floor.p50), p99: round(floor.p99), max: round(floor.max) },
    ...(o.level === 'app' ? { alignmentMs: { appP50: round(percentile(alignments, 50)), appP99: round(percentile(alignments, 99)), perCheckpointWorstP50: round(percentile(alignmentWorst, 50)), perCheckpointWorstP99: round(percentile(alignmentWorst, 99)) } } : {}),
    trafficMsgPerSec: {
      offered,
      warmup: Math.round(rateFloor),
      checkpointInFlight: Math.round(rateBusy),
      noCheckpointInFlight: Math.round(rateIdle),
      lostWhileCheckpointing: round(1 - rateBusy / rateIdle),
      windows: { inFlight: busy.length, idle: idle.length, bucketMs: BUCKET_MS },
    },
    workerLoopDelayMs: m.counts.map((c) => c.loopDelayMs),
    workerGcMs: m.counts.map((c) => c.gcMs),
    // Seconds into the checkpoint phase, as in the timeline: a slow checkpoint beside a stall of its workers.
    workerStalls: m.counts.map((c) => c.stalls.map(([at, ms, gcMs]) => ({ atS: round((at - m.run[0]) / 1000), ms, gcMs }))),
    sends: { sent: sum((c) => c.sent), delivered: sum((c) => c.delivered), heldBack: sum((c) => c.heldBack), failed: sum((c) => c.sendFailures), ...firstFailure(m.counts) },
    coordinator: {
      cpuPercentOfACore: round((coordinatorCpuSec / seconds) * 100),
      cpuMsPerCheckpoint: m.results.length > 0 ? round((coordinatorCpuSec * 1000) / m.results.length) : null,
      rssMiB: { final: round((m.rss[m.rss.length - 1] ?? 0) / 2 ** 20), peak: round(Math.max(...m.rss) / 2 ** 20) },
    },
    cpuPercentOfACore: { workers: round(((c1.workers - c0.workers) / seconds) * 100), natsServer: round(((c1.natsServer - c0.natsServer) / seconds) * 100) },
    targets,
  };
  if (m.volumeCalls) {
    const frozen = crashWindows(completed, m.volumeCalls);
    const beyond = summarize(frozen.map((f) => f.windowMs - f.backendMs));
    const backend = summarize(frozen.map((f) => f.backendMs));
    const window = summarize(frozen.map((f) => f.windowMs));
    rows.push(atMost('frozen window p50 (vs the backend\'s own time)', 'ms', backend.p50, window.p50), atMost('frozen window p99 (vs the backend\'s own time)', 'ms', backend.p99, window.p99));
    extra['frozenMs'] = {
      window: { p50: round(window.p50), p99: round(window.p99), max: round(window.max) },
      backend: { p50: round(backend.p50), p99: round(backend.p99), max: round(backend.max) },
      beyondBackend: { p50: round(beyond.p50), p99: round(beyond.p99), max: round(beyond.max) },
      perServer: summaryMs(frozen.flatMap((f) => f.perServerMs)),
      freezeSpread: summaryMs(frozen.map((f) => f.freezeSpreadMs)),
      allFrozen: summaryMs(frozen.map((f) => f.allFrozenMs)),
      thawSpread: summaryMs(frozen.map((f) => f.thawSpreadMs)),
      requestToFirstFrozen: summaryMs(frozen.map((f) => f.toFirstFrozenMs)),
    };
    targets['frozenBeyondBackendP99Under1s'] = beyond.p99 < TARGET_FROZEN_BEYOND_P99_MS;
  }
  return {
    benchmark: 'scale',
    params: {
      level: o.level,
      servers: o.servers,
      workers: o.workers,
      durationS: o.durationMs / 1000,
      everyS: o.everyMs / 1000,
      warmupS: o.warmupMs / 1000,
      ratePerChannel: o.ratePerChannel,
      payloadBytes: o.payloadBytes,
    },
    headline: completedRow,
    rows,
    extra,
    notes: [
      'allAckedMs: from the request to the last app\'s ack (the record\'s ackedAtUnixMs), for every checkpoint all of whose apps acked, completed or not',
      'checkpoint time: from the request to the record written completed, measured here; its floor is a plain NATS broadcast to one connection per server and the gathering of the replies, during the warm-up (traffic, no checkpoint)',
      'traffic: messages delivered to every app per second, in 250 ms windows with a checkpoint in flight (request to end) and without; the floor is the warm-up\'s rate',
      ...(o.level === 'app' ? ['alignmentMs: what each app reports in its ack (agent/endpoint.ts), over every app of every completed checkpoint; perCheckpointWorst is each checkpoint\'s slowest app'] : []),
      'workerLoopDelayMs: each worker\'s event-loop delay over the run (its agents share the loop; a barrier\'s hop through an agent waits as long)',
      'sends: read once what was in flight when the traffic stopped has arrived (the counts are read again until they match or stop moving); delivered short of sent by what had not come when they stopped moving',
      'coordinator: this process (the coordinator and the benchmark driver, which is idle between ticks but for a summary of each checkpoint as it ends, whose CPU is taken off); CPU over the checkpoint phase; the driver keeps only those summaries, not the records',
      ...(m.volumeCalls
        ? ['frozen window: first server frozen to last server thawed, as the record gives them (the coordinator\'s clock); the backend\'s own time is its snapshot call, timed around the directory backend; freezeSpread: first to last server frozen, allFrozen: last frozen to first thawed (holds the backend\'s call), thawSpread: first to last thawed']
        : []),
    ],
  };
}

function firstFailure(counts: readonly ScaleCounts[]): { firstFailure?: string } {
  const f = counts.find((c) => c.firstSendFailure !== undefined)?.firstSendFailure;
  return f === undefined ? {} : { firstFailure: f };
}

function summaryMs(xs: readonly number[]): Record<string, number> {
  const s = summarize(xs);
  return { p50: round(s.p50), p99: round(s.p99), max: round(s.max) };
}

interface CrashWindow {
  /** First server frozen to last server thawed (the coordinator's clock). */
  readonly windowMs: number;
  /** The volume backend's group snapshot call. */
  readonly backendMs: number;
  /** First to last server frozen: the servers frozen first wait this long for the last. */
  readonly freezeSpreadMs: number;
  /** Last server frozen to first server thawed (holds the backend's call). */
  readonly allFrozenMs: number;
  /** First to last server thawed. */
  readonly thawSpreadMs: number;
  /** The request to the first server frozen (the trigger and the agents' freeze steps). */
  readonly toFirstFrozenMs: number;
  readonly perServerMs: readonly number[];
}

/** Per completed crash-level checkpoint: its common frozen window, its parts, and the backend's call. */
function crashWindows(results: readonly Taken[], calls: ReadonlyMap<number, { readonly ms: number }>): CrashWindow[] {
  const out: CrashWindow[] = [];
  for (const { id, servers, requestedAtUnixMs } of results) {
    const call = calls.get(id);
    if (servers.length === 0 || !call) continue;
    const frozenAt = servers.map((s) => s.frozenAtUnixMs ?? Number.NaN);
    const thawedAt = servers.map((s) => s.thawedAtUnixMs ?? Number.NaN);
    const [firstFrozen, lastFrozen] = [Math.min(...frozenAt), Math.max(...frozenAt)];
    const [firstThawed, lastThawed] = [Math.min(...thawedAt), Math.max(...thawedAt)];
    out.push({
      windowMs: lastThawed - firstFrozen,
      backendMs: call.ms,
      freezeSpreadMs: lastFrozen - firstFrozen,
      allFrozenMs: firstThawed - lastFrozen,
      thawSpreadMs: lastThawed - firstThawed,
      toFirstFrozenMs: firstFrozen - requestedAtUnixMs,
      perServerMs: servers.map((_, i) => (thawedAt[i] as number) - (frozenAt[i] as number)),
    });
  }
  return out;
}

/**
 * The workers' counts once what was in flight when the traffic stopped has arrived: read at once,
 * `delivered` fell short of `sent` by what was still on its way, which says nothing. Read again until
 * they match or stop moving (a message lost for good shows as the difference that stays).
 */
async function drainedCounts(pool: WorkerPool): Promise<ScaleCounts[]> {
  const total = (counts: readonly ScaleCounts[], f: (c: ScaleCounts) => number): number => counts.reduce((s, c) => s + f(c), 0);
  let counts = await pool.all<ScaleCounts>('scale.counts', () => ({}));
  for (let i = 0; i < DRAIN_READS_MAX && total(counts, (c) => c.delivered) < total(counts, (c) => c.sent); i++) {
    await new Promise((r) => setTimeout(r, DRAIN_READ_EVERY_MS));
    const next = await pool.all<ScaleCounts>('scale.counts', () => ({}));
    const moved = total(next, (c) => c.delivered) !== total(counts, (c) => c.delivered);
    counts = next;
    if (!moved) break;
  }
  return counts;
}
