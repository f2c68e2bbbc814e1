/**
 * Periodic checkpoints per plan, with the pacing options users of Flink expect: an interval, a
 * minimum pause between the end of one checkpoint and the start of the next, and a number of
 * tolerable consecutive failures after which the schedule stops (loudly) until a checkpoint of the
 * plan completes again. A manual request outranks a periodic one: the service cancels a periodic
 * checkpoint in flight to make room for it.
 */
import type { Logger } from 'pino';
import type { TakeSnapshotRequest } from './api.js';
import type { Result } from './errors.js';
import type { CheckpointRecord, ConsistencyLevel } from './model.js';

export interface ScheduleSpec {
  readonly planId: string;
  readonly level: ConsistencyLevel;
  readonly intervalMs: number;
  readonly minPauseMs: number;
  readonly tolerableFailures: number;
}

export type ScheduleParse = { ok: true; spec: ScheduleSpec } | { ok: false; message: string };

/** `plan=demo,interval=1000[,level=app][,min-pause=0][,tolerable-failures=3]` */
export function parseScheduleSpec(text: string): ScheduleParse {
  const fields = new Map<string, string>();
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    if (at <= 0) return { ok: false, message: `--schedule ${text}: expected key=value pairs, got ${JSON.stringify(part)}` };
    fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const known = new Set(['plan', 'interval', 'level', 'min-pause', 'tolerable-failures']);
  for (const k of fields.keys()) if (!known.has(k)) return { ok: false, message: `--schedule ${text}: unknown key ${k}; known: ${[...known].join(', ')}` };
  const planId = fields.get('plan');
  if (!planId || !/^[A-Za-z0-9_-]{1,64}$/.test(planId)) return { ok: false, message: `--schedule ${text}: plan=ID is required` };
  const level = (fields.get('level') ?? 'app') as ConsistencyLevel;
  if (!['none', 'crash', 'app'].includes(level)) return { ok: false, message: `--schedule ${text}: level must be none, crash or app` };
  const int = (key: string, fallback: number, min: number): number | string => {
    const raw = fields.get(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    return Number.isSafeInteger(n) && n >= min ? n : `--schedule ${text}: ${key} must be an integer >= ${min}`;
  };
  const intervalMs = int('interval', Number.NaN, 1);
  if (typeof intervalMs === 'string' || Number.isNaN(intervalMs)) return { ok: false, message: typeof intervalMs === 'string' ? intervalMs : `--schedule ${text}: interval=MS is required` };
  const minPauseMs = int('min-pause', 0, 0);
  if (typeof minPauseMs === 'string') return { ok: false, message: minPauseMs };
  const tolerableFailures = int('tolerable-failures', 3, 0);
  if (typeof tolerableFailures === 'string') return { ok: false, message: tolerableFailures };
  return { ok: true, spec: { planId, level, intervalMs, minPauseMs, tolerableFailures } };
}

export interface SchedulerDeps {
  readonly take: (request: TakeSnapshotRequest) => Promise<Result<CheckpointRecord>>;
  readonly waitFor: (id: number) => Promise<CheckpointRecord>;
  readonly logger: Logger;
}

export class PlanSchedule {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private consecutiveFailures = 0;
  private suspended = false;
  private readonly log: Logger;

  constructor(
    readonly spec: ScheduleSpec,
    private readonly deps: SchedulerDeps,
  ) {
    this.log = deps.logger.child({ component: 'schedule', plan: spec.planId });
  }

  start(): void {
    this.log.info({ ...this.spec }, 'periodic checkpoints scheduled');
    this.arm(this.spec.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** A checkpoint of the plan completed (maybe a manual one): a suspended schedule resumes. */
  noteCompleted(): void {
    this.consecutiveFailures = 0;
    if (this.suspended) {
      this.suspended = false;
      this.log.warn('a checkpoint completed: periodic checkpoints resume');
      this.arm(this.spec.intervalMs);
    }
  }

  private arm(afterMs: number): void {
    if (this.stopped || this.suspended) return;
    this.timer = setTimeout(() => void this.tick(), afterMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const started = Date.now();
    const taken = await this.deps.take({ planId: this.spec.planId, level: this.spec.level, options: {}, periodic: true });
    if (!taken.ok) {
      // A checkpoint already in flight (manual or late periodic) simply skips this tick.
      if (taken.error.reason !== 'PLAN_BUSY') this.failed(taken.error.message);
      this.arm(Math.max(this.spec.minPauseMs, this.spec.intervalMs - (Date.now() - started)));
      return;
    }
    const final = await this.deps.waitFor(taken.value.id);
    if (final.state === 'completed') this.noteCompleted();
    else this.failed(`checkpoint ${final.id} ${final.state}: ${final.failureDetail ?? ''}`);
    const elapsed = Date.now() - started;
    this.arm(Math.max(this.spec.minPauseMs, this.spec.intervalMs - elapsed));
  }

  private failed(reason: string): void {
    this.consecutiveFailures += 1;
    this.log.warn({ consecutiveFailures: this.consecutiveFailures, tolerable: this.spec.tolerableFailures }, `periodic checkpoint failed: ${reason}`);
    if (this.consecutiveFailures > this.spec.tolerableFailures) {
      this.suspended = true;
      if (this.timer) clearTimeout(this.timer);
      this.log.error(
        { consecutiveFailures: this.consecutiveFailures },
        `more than ${this.spec.tolerableFailures} consecutive periodic checkpoints failed: periodic checkpoints suspended until one completes (take one with snapctl)`,
      );
    }
  }
}
