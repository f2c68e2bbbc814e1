/**
 * A plan's policy: its periodic checkpoints and its retention, as an API object (CreatePolicy ...
 * DeletePolicy in coordinator.proto), stored with the plans. One policy per plan, named by the
 * plan's id. Validation names the field as the .proto spells it.
 */
import type { RetentionRules } from '../../src/control/retention.js';
import { fail, ok, type Result } from '../errors.js';
import type { ConsistencyLevel } from '../model.js';
import type { ScheduleSpec } from '../schedule.js';
import { parseCron } from './cron.js';

export interface SchedulePolicy {
  /** 0 when `cron` is set. */
  readonly intervalMs: number;
  /** '' when `intervalMs` is set. */
  readonly cron: string;
  readonly level: ConsistencyLevel;
  /** "HH:MM" (UTC) or '' for no window; both or neither. */
  readonly windowStart: string;
  readonly windowEnd: string;
  readonly jitterMs: number;
  readonly minPauseMs: number;
  readonly tolerableFailures: number;
}

export interface PolicyInput {
  readonly planId: string;
  readonly schedule?: SchedulePolicy;
  readonly retention?: RetentionRules;
}

export interface Policy extends PolicyInput {
  /** The plan's tenant, copied when the policy is written. */
  readonly tenant: string;
  /** KV revision: the compare-and-set token of UpdatePolicy. */
  readonly revision: number;
  readonly createdAtUnixMs: number;
  readonly updatedAtUnixMs: number;
}

export const TOLERABLE_FAILURES_DEFAULT = 3;
/** A day: a longer jitter or pause than that is a mistake, not a schedule. */
const SCHEDULE_MS_MAX = 86_400_000;
const INTERVAL_MS_MAX = 366 * 86_400_000;
const KEEP_MAX = 100_000;
const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

function minuteOfDay(text: string): number | undefined {
  const m = HH_MM.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

/** The rules across fields; the proto conversion checked the types. Fields named as in the .proto. */
export function validatePolicyInput(p: PolicyInput): Result<PolicyInput> {
  const bad = (field: string, message: string): Result<PolicyInput> => fail('invalid-argument', `policy.${field} ${message}`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(p.planId)) return bad('plan_id', `${JSON.stringify(p.planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
  if (p.schedule === undefined && p.retention === undefined) return fail('invalid-argument', 'policy has neither schedule nor retention: give at least one');
  const s = p.schedule;
  if (s !== undefined) {
    if ((s.intervalMs > 0) === (s.cron !== '')) return bad('schedule', 'needs exactly one of interval and cron');
    if (s.intervalMs > INTERVAL_MS_MAX) return bad('schedule.interval', `${s.intervalMs} ms is more than a year`);
    if (s.cron !== '') {
      const c = parseCron(s.cron);
      if (!c.ok) return bad('schedule.cron', `is invalid: ${c.message}`);
    }
    if ((s.windowStart === '') !== (s.windowEnd === '')) return bad('schedule', 'needs both window_start and window_end, or neither');
    for (const [field, value] of [
      ['window_start', s.windowStart],
      ['window_end', s.windowEnd],
    ] as const) {
      if (value !== '' && minuteOfDay(value) === undefined) return bad(`schedule.${field}`, `${JSON.stringify(value.slice(0, 20))} must be HH:MM (UTC, 00:00 to 23:59)`);
    }
    if (s.windowStart !== '' && s.windowStart === s.windowEnd) return bad('schedule.window_end', 'equals window_start: the window would be empty');
    if (s.jitterMs > SCHEDULE_MS_MAX) return bad('schedule.jitter', `${s.jitterMs} ms is more than a day`);
    if (s.minPauseMs > SCHEDULE_MS_MAX) return bad('schedule.min_pause', `${s.minPauseMs} ms is more than a day`);
  }
  const r = p.retention;
  if (r !== undefined) {
    if (r.keepLast + r.keepDaily + r.keepWeekly + r.keepMonthly === 0 && r.keepWithinMs === 0) {
      return bad('retention', 'keeps nothing: set keep_last, keep_daily, keep_weekly, keep_monthly or keep_within');
    }
    for (const [field, v] of [
      ['keep_last', r.keepLast],
      ['keep_daily', r.keepDaily],
      ['keep_weekly', r.keepWeekly],
      ['keep_monthly', r.keepMonthly],
    ] as const) {
      if (v > KEEP_MAX) return bad(`retention.${field}`, `${v} is more than ${KEEP_MAX}`);
    }
  }
  return ok(p);
}

/** The schedule of a valid policy as PlanSchedule runs it. */
export function scheduleSpecOf(planId: string, s: SchedulePolicy): ScheduleSpec {
  const cron = s.cron === '' ? undefined : parseCron(s.cron);
  const start = minuteOfDay(s.windowStart);
  const end = minuteOfDay(s.windowEnd);
  return {
    planId,
    level: s.level,
    intervalMs: s.intervalMs,
    minPauseMs: s.minPauseMs,
    tolerableFailures: s.tolerableFailures,
    ...(cron?.ok ? { cron: cron.cron } : {}),
    ...(start !== undefined && end !== undefined ? { window: { startMinute: start, endMinute: end } } : {}),
    ...(s.jitterMs > 0 ? { jitterMs: s.jitterMs } : {}),
  };
}
