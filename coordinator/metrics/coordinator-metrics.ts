/**
 * The coordinator's Prometheus metrics (`snapcoord_*`), named as the Prometheus docs ask: the unit
 * in the name (`_seconds`, `_bytes`), counters ending in `_total`. docs/operations.md lists them
 * with the alerts worth setting.
 *
 * Observed through the service's seams, never by the round itself: a checkpoint is counted when
 * its run ends (CheckpointService.onEnded), a rollback or restore when its call returns
 * (CheckpointService.onOperationEnded); what is true "now" (in flight, agents, age of the last
 * success) is read at scrape time from the sources, so nothing has to keep it up to date.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { checkpointStats } from '../checkpoint-view.js';
import type { AgentInfo, CheckpointCopy, CheckpointRecord } from '../model.js';

export interface MetricsSources {
  /** Checkpoints this coordinator runs whose record is not final yet. */
  readonly inFlight: () => number;
  /** The agents the registry tracks, with their status. */
  readonly agents: () => Promise<readonly AgentInfo[]>;
}

export type OperationKind = 'rollback' | 'restore';

/** Seconds; a checkpoint's round takes from milliseconds (a few apps) to minutes (a timeout). */
const DURATION_BUCKETS_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** An app's alignment or flush: from sub-millisecond to its timeout. */
const STEP_BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** 1 KiB to 16 GiB, by factors of 4 (inline states are bytes, volume-less plans up to gigabytes). */
const SIZE_BUCKETS_BYTES = Array.from({ length: 13 }, (_, i) => 1024 * 4 ** i);

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly checkpoints: Counter<'plan' | 'level' | 'result'>;
  private readonly failures: Counter<'plan' | 'reason'>;
  private readonly duration: Histogram<'plan' | 'level' | 'result'>;
  private readonly size: Histogram<'plan' | 'level'>;
  private readonly alignment: Histogram<'plan'>;
  private readonly flush: Histogram<'plan'>;
  private readonly freeze: Histogram<'plan'>;
  private readonly rollbacks: Counter<'result'>;
  private readonly restores: Counter<'result'>;
  /** Each plan's newest completion (its record's finish time), for the age gauge. */
  private readonly lastSuccess = new Map<string, number>();
  private readonly copies: Counter<'site' | 'plan' | 'result'>;
  private readonly copyLag: Gauge<'site' | 'plan'>;
  /** Per site and plan: the completion time of the newest checkpoint copied there, for the RPO gauge. */
  private readonly lastCopied = new Map<string, { site: string; plan: string; finishedAtUnixMs: number }>();

  constructor(
    sources: MetricsSources,
    private readonly nowUnixMs: () => number = Date.now,
    options: { readonly processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    this.checkpoints = new Counter({
      name: 'snapcoord_checkpoints_total',
      help: 'Checkpoints that ended on this coordinator, by plan, level (achieved if completed, else requested) and result (completed or aborted).',
      labelNames: ['plan', 'level', 'result'],
      registers,
    });
    this.failures = new Counter({
      name: 'snapcoord_checkpoint_failures_total',
      help: 'Aborted checkpoints by plan and failure reason (timeout, declined, cancelled, ...).',
      labelNames: ['plan', 'reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'snapcoord_checkpoint_duration_seconds',
      help: 'Time from the trigger to the end of a checkpoint.',
      labelNames: ['plan', 'level', 'result'],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.size = new Histogram({
      name: 'snapcoord_checkpoint_size_bytes',
      help: 'Stored state of a completed checkpoint (app states and channel states; volume snapshots are not counted).',
      labelNames: ['plan', 'level'],
      buckets: SIZE_BUCKETS_BYTES,
      registers,
    });
    this.alignment = new Histogram({
      name: 'snapcoord_checkpoint_alignment_duration_seconds',
      help: 'Per app of a completed app-level checkpoint: time from the first barrier to the last (inputs held back).',
      labelNames: ['plan'],
      buckets: STEP_BUCKETS_SECONDS,
      registers,
    });
    this.flush = new Histogram({
      name: 'snapcoord_checkpoint_flush_duration_seconds',
      help: "Per app of a completed app-level checkpoint: the synchronous part of its snapshot (the app paused while its state is flushed).",
      labelNames: ['plan'],
      buckets: STEP_BUCKETS_SECONDS,
      registers,
    });
    this.freeze = new Histogram({
      name: 'snapcoord_checkpoint_freeze_duration_seconds',
      help: "Per server of a crash-level checkpoint: time between frozen and thawed, as the coordinator saw it.",
      labelNames: ['plan'],
      buckets: STEP_BUCKETS_SECONDS,
      registers,
    });
    this.rollbacks = new Counter({ name: 'snapcoord_rollbacks_total', help: 'RollbackSnapshot calls that ended, by result (succeeded or failed).', labelNames: ['result'], registers });
    this.restores = new Counter({ name: 'snapcoord_restores_total', help: 'RestoreSnapshot calls that ended, by result (succeeded or failed).', labelNames: ['result'], registers });
    this.copies = new Counter({
      name: 'snapcoord_checkpoint_copies_total',
      help: 'Copies of checkpoints to other sites (docs/sites.md) that ended, by site, plan and result (copied or failed).',
      labelNames: ['site', 'plan', 'result'],
      registers,
    });
    this.copyLag = new Gauge({
      name: 'snapcoord_checkpoint_copy_lag_seconds',
      help: "The newest copy to each site of each plan's checkpoints: seconds from the checkpoint's completion to its copy verified at the site.",
      labelNames: ['site', 'plan'],
      registers,
    });
    const lastCopied = this.lastCopied;
    const nowMs = this.nowUnixMs;
    new Gauge({
      name: 'snapcoord_checkpoint_copy_age_seconds',
      help: 'Seconds since the completion of the newest checkpoint of each plan that has a copy at each site: what a restore from that site would lose (its recovery point), growing while copies fail.',
      labelNames: ['site', 'plan'],
      registers,
      collect() {
        this.reset();
        const at = nowMs();
        for (const c of lastCopied.values()) this.set({ site: c.site, plan: c.plan }, Math.max(0, (at - c.finishedAtUnixMs) / 1000));
      },
    });
    new Gauge({
      name: 'snapcoord_checkpoints_in_flight',
      help: 'Checkpoints this coordinator is running now.',
      registers,
      collect() {
        this.set(sources.inFlight());
      },
    });
    const lastSuccess = this.lastSuccess;
    const now = this.nowUnixMs;
    new Gauge({
      name: 'snapcoord_checkpoint_last_success_age_seconds',
      help: 'Seconds since the newest completed checkpoint of each plan that has one (read from the store at start-up, then kept up to date).',
      labelNames: ['plan'],
      registers,
      collect() {
        this.reset();
        const at = now();
        for (const [plan, finished] of lastSuccess) this.set({ plan }, Math.max(0, (at - finished) / 1000));
      },
    });
    // One read of the registry feeds both agent gauges: the first collect reads, the second reuses it.
    let agentsRead: Promise<readonly AgentInfo[]> | undefined;
    const agentsOnce = (): Promise<readonly AgentInfo[]> => {
      agentsRead ??= sources.agents().finally(() => setImmediate(() => (agentsRead = undefined)));
      return agentsRead;
    };
    new Gauge({
      name: 'snapcoord_agents_registered',
      help: 'Agents the coordinator tracks (registered, or seen by an event since it started).',
      registers,
      async collect() {
        this.set((await agentsOnce()).length);
      },
    });
    new Gauge({
      name: 'snapcoord_agents_stale',
      help: 'Tracked agents without a sign of life for longer than the late threshold, by status (late or offline).',
      labelNames: ['status'],
      registers,
      async collect() {
        const agents = await agentsOnce();
        for (const status of ['late', 'offline'] as const) this.set({ status }, agents.filter((a) => a.status === status).length);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** A checkpoint's run ended, completed or aborted. */
  checkpointEnded(record: CheckpointRecord): void {
    const plan = record.planId;
    const completed = record.state === 'completed';
    const result = completed ? 'completed' : 'aborted';
    const level = (completed ? record.levelAchieved : undefined) ?? record.levelRequested;
    this.checkpoints.inc({ plan, level, result });
    const stats = checkpointStats(record);
    if (stats.durationMs > 0) this.duration.observe({ plan, level, result }, stats.durationMs / 1000);
    if (!completed) {
      this.failures.inc({ plan, reason: record.failureReason ?? 'unknown' });
      return;
    }
    this.size.observe({ plan, level }, stats.sizeBytes);
    const finished = record.finishedAtUnixMs ?? this.nowUnixMs();
    if (finished > (this.lastSuccess.get(plan) ?? 0)) this.lastSuccess.set(plan, finished);
    if (level === 'app') {
      for (const a of stats.apps) {
        if (!a.acked) continue;
        this.alignment.observe({ plan }, a.alignmentMs / 1000);
        this.flush.observe({ plan }, a.syncMs / 1000);
      }
    }
    for (const s of record.servers ?? []) {
      if (s.frozenAtUnixMs !== undefined && s.thawedAtUnixMs !== undefined) this.freeze.observe({ plan }, Math.max(0, s.thawedAtUnixMs - s.frozenAtUnixMs) / 1000);
    }
  }

  /**
   * A plan's newest completed checkpoint as the store has it, read at start-up: the age gauge then
   * covers plans whose last success came before this coordinator started. A newer completion seen
   * meanwhile wins.
   */
  seedLastSuccess(planId: string, finishedAtUnixMs: number): void {
    if (finishedAtUnixMs > (this.lastSuccess.get(planId) ?? 0)) this.lastSuccess.set(planId, finishedAtUnixMs);
  }

  /**
   * The newest checkpoint of a plan with a copy at a site, as the store has it, read at start-up:
   * the copy-age gauge then covers copies made before this coordinator started. A newer copy seen
   * meanwhile wins.
   */
  seedCopied(site: string, planId: string, finishedAtUnixMs: number): void {
    const key = `${site}\u0000${planId}`;
    if ((this.lastCopied.get(key)?.finishedAtUnixMs ?? 0) < finishedAtUnixMs) this.lastCopied.set(key, { site, plan: planId, finishedAtUnixMs });
  }

  /** A copy of a checkpoint to a site ended (coordinator/sites/service.ts onCopyEnded). */
  copyEnded(site: string, record: CheckpointRecord, copy: CheckpointCopy): void {
    const plan = record.planId;
    this.copies.inc({ site, plan, result: copy.state });
    if (copy.state !== 'copied') return;
    this.copyLag.set({ site, plan }, copy.lagMs / 1000);
    this.seedCopied(site, plan, record.finishedAtUnixMs ?? copy.copiedAtUnixMs);
  }

  /** A rollback or restore call returned. */
  operationEnded(kind: OperationKind, succeeded: boolean): void {
    (kind === 'rollback' ? this.rollbacks : this.restores).inc({ result: succeeded ? 'succeeded' : 'failed' });
  }

  /** The text exposition format, and its content type. */
  async exposition(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
