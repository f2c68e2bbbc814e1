/**
 * Periodic checkpoints per plan, with the pacing options users of Flink expect: an interval (or a
 * cron expression, from a plan's policy), a minimum pause between the end of one checkpoint and the
 * start of the next, and a number of tolerable consecutive failures after which the schedule stops
 * (loudly) until a checkpoint of the plan completes again. A policy may also give a daily window
 * (UTC) outside of which no checkpoint starts, and a jitter: a random delay up to that long added to
 * each start, so that plans on the same schedule do not all freeze at once. A manual request
 * outranks a periodic one: the service cancels a periodic checkpoint in flight to make room for it.
 */
import type { Logger } from 'pino';
import type { TakeSnapshotRequest } from './api.js';
import type { Result } from './errors.js';
import type { CheckpointRecord, ConsistencyLevel } from './model.js';
import { nextFire, type CronExpression } from './policies/cron.js';

export interface ScheduleSpec {
  readonly planId: string;
  readonly level: ConsistencyLevel;
  /** Ignored when `cron` is given. */
  readonly intervalMs: number;
  readonly minPauseMs: number;
  readonly tolerableFailures: number;
  /** Start times from a cron expression (UTC) rather than every intervalMs. */
  readonly cron?: CronExpression;
  /** Minutes of the UTC day [start, end) in which a checkpoint may start; end < start wraps past midnight. */
  readonly window?: { readonly startMinute: number; readonly endMinute: number };
  /** Up to this much random delay added to each start. */
  readonly jitterMs?: number;
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
  /** Default Date.now; the cron and the window are read on this clock. */
  readonly nowUnixMs?: () => number;
  /** Default Math.random; in [0, 1), for the jitter. */
  readonly random?: () => number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** setTimeout's largest delay; a later start is reached in steps. */
const TIMER_MS_MAX = 2 ** 31 - 1;

function inWindow(window: NonNullable<ScheduleSpec['window']>, unixMs: number): boolean {
  const minute = Math.floor((unixMs % DAY_MS) / MINUTE_MS);
  const { startMinute: a, endMinute: b } = window;
  return a < b ? minute >= a && minute < b : minute >= a || minute < b;
}

/** The first instant at or after `unixMs` inside the window (the window's next start if outside it). */
function intoWindow(window: NonNullable<ScheduleSpec['window']>, unixMs: number): number {
  if (inWindow(window, unixMs)) return unixMs;
  const dayStart = unixMs - (unixMs % DAY_MS);
  const start = dayStart + window.startMinute * MINUTE_MS;
  return start >= unixMs ? start : start + DAY_MS;
}

/**
 * When the next periodic checkpoint starts, given when it may start at the earliest (the interval or
 * the minimum pause since the last one): the cron's next fire time, moved into the window, plus the
 * jitter. Undefined when the cron never fires again (or never inside the window).
 */
export function nextStart(spec: ScheduleSpec, earliestUnixMs: number, random: number): number | undefined {
  const jitter = Math.floor(random * (spec.jitterMs ?? 0));
  if (!spec.cron) return (spec.window ? intoWindow(spec.window, earliestUnixMs) : earliestUnixMs) + jitter;
  let at = earliestUnixMs;
  // A cron that fires only outside the window never starts a checkpoint: give up after a long search.
  for (let i = 0; i < 2_000; i++) {
    // The cron fires at whole minutes: earliest itself counts when it is one.
    const fire = nextFire(spec.cron, at - 1);
    if (fire === undefined) return undefined;
    if (!spec.window || inWindow(spec.window, fire)) return fire + jitter;
    at = intoWindow(spec.window, fire);
  }
  return undefined;
}

export class PlanSchedule {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private consecutiveFailures = 0;
  private suspended = false;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(
    readonly spec: ScheduleSpec,
    private readonly deps: SchedulerDeps,
  ) {
    this.log = deps.logger.child({ component: 'schedule', plan: spec.planId });
    this.now = deps.nowUnixMs ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  start(): void {
    const { cron, window, ...rest } = this.spec;
    this.log.info({ ...rest, ...(cron ? { cron: cron.text } : {}), ...(window ? { window } : {}) }, 'periodic checkpoints scheduled');
    this.arm(this.spec.cron ? 0 : this.spec.intervalMs);
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
      this.arm(this.spec.cron ? this.spec.minPauseMs : this.spec.intervalMs);
    }
  }

  /** Arms the next start no sooner than `afterMs` from now (then the cron, the window and the jitter decide). */
  private arm(afterMs: number): void {
    this.armFrom(this.now() + afterMs);
  }

  private armFrom(earliestUnixMs: number): void {
    if (this.stopped || this.suspended) return;
    const at = nextStart(this.spec, earliestUnixMs, this.random());
    if (at === undefined) {
      this.log.error({ cron: this.spec.cron?.text }, 'the cron expression never fires again: periodic checkpoints stopped');
      return;
    }
    this.armAt(at);
  }

  private armAt(atUnixMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, atUnixMs - this.now());
    this.timer = setTimeout(() => (delay > TIMER_MS_MAX ? this.armAt(atUnixMs) : void this.tick()), Math.min(delay, TIMER_MS_MAX));
    this.timer.unref();
  }

  /** How long after a start the next one may come: the interval (cron: none) but at least the minimum pause. */
  private rearm(started: number): void {
    const now = this.now();
    // A cron start never comes twice in the minute it started in.
    if (this.spec.cron) this.armFrom(Math.max(now + this.spec.minPauseMs, (Math.floor(started / MINUTE_MS) + 1) * MINUTE_MS));
    else this.arm(Math.max(this.spec.minPauseMs, this.spec.intervalMs - (now - started)));
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const started = this.now();
    const taken = await this.deps.take({ planId: this.spec.planId, level: this.spec.level, options: {}, periodic: true });
    if (!taken.ok) {
      // A checkpoint already in flight (manual or late periodic) simply skips this tick.
      if (taken.error.reason !== 'PLAN_BUSY') this.failed(taken.error.message);
      this.rearm(started);
      return;
    }
    const final = await this.deps.waitFor(taken.value.id);
    if (final.state === 'completed') this.noteCompleted();
    else this.failed(`checkpoint ${final.id} ${final.state}: ${final.failureDetail ?? ''}`);
    this.rearm(started);
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
