/**
 * Policy and PlanStats messages <-> model values, both ways (as convert.ts does for plans and
 * checkpoints): requests validated field by field for the server, responses for clients.
 */
import type { RetentionRules } from '../../src/control/retention.js';
import type { Result } from '../errors.js';
import type { PlanStats } from '../metrics/plan-stats.js';
import { TOLERABLE_FAILURES_DEFAULT, type Policy, type PolicyInput, type SchedulePolicy } from '../policies/model.js';
import { done, name, pageSize, pageToken, type RequestLimits } from './convert.js';
import { consistencyLevels, failureReasons } from './enums.js';
import { ProtoReader } from './fields.js';

function readSchedule(s: ProtoReader): SchedulePolicy {
  const tolerable = s.u32('tolerable_failures');
  return {
    intervalMs: s.u64('interval_ms'),
    cron: s.string('cron').trim(),
    level: s.enumValue('level', consistencyLevels, false) ?? 'app',
    windowStart: s.string('window_start'),
    windowEnd: s.string('window_end'),
    jitterMs: s.u64('jitter_ms'),
    minPauseMs: s.u64('min_pause_ms'),
    tolerableFailures: tolerable === 0 ? TOLERABLE_FAILURES_DEFAULT : tolerable,
  };
}

function readRetention(r: ProtoReader): RetentionRules {
  return { keepLast: r.u32('keep_last'), keepDaily: r.u32('keep_daily'), keepWeekly: r.u32('keep_weekly'), keepMonthly: r.u32('keep_monthly'), keepWithinMs: r.u64('keep_within_ms') };
}

function readPolicyInput(r: ProtoReader): PolicyInput {
  const planId = name(r, 'plan_id', true);
  const schedule = r.message('schedule');
  const retention = r.message('retention');
  return {
    planId,
    ...(schedule !== undefined ? { schedule: readSchedule(schedule) } : {}),
    ...(retention !== undefined ? { retention: readRetention(retention) } : {}),
  };
}

export function createPolicyRequestFromProto(request: unknown): Result<PolicyInput> {
  const r = ProtoReader.of(request, '');
  const policy = readPolicyInput(r.required('policy'));
  return done(r, policy);
}

export function updatePolicyRequestFromProto(request: unknown): Result<{ policy: PolicyInput; expectedRevision: number }> {
  const r = ProtoReader.of(request, '');
  const policy = readPolicyInput(r.required('policy'));
  const expectedRevision = r.u64('expected_revision');
  return done(r, { policy, expectedRevision });
}

export function listPoliciesRequestFromProto(request: unknown, limits: RequestLimits): Result<{ tenant: string | undefined; pageSize: number; pageToken: string }> {
  const r = ProtoReader.of(request, '');
  const tenant = name(r, 'tenant', false);
  const size = pageSize(r, 'page_size', limits);
  const token = pageToken(r, 'page_token', limits);
  return done(r, { tenant: tenant === '' ? undefined : tenant, pageSize: size, pageToken: token });
}

export function policyInputToProto(p: PolicyInput): Record<string, unknown> {
  const s = p.schedule;
  const r = p.retention;
  return {
    plan_id: p.planId,
    ...(s !== undefined
      ? {
          schedule: {
            interval_ms: s.intervalMs,
            cron: s.cron,
            level: consistencyLevels.toProto(s.level),
            window_start: s.windowStart,
            window_end: s.windowEnd,
            jitter_ms: s.jitterMs,
            min_pause_ms: s.minPauseMs,
            tolerable_failures: s.tolerableFailures,
          },
        }
      : {}),
    ...(r !== undefined
      ? { retention: { keep_last: r.keepLast, keep_daily: r.keepDaily, keep_weekly: r.keepWeekly, keep_monthly: r.keepMonthly, keep_within_ms: r.keepWithinMs } }
      : {}),
  };
}

export function policyToProto(p: Policy): Record<string, unknown> {
  return { ...policyInputToProto(p), tenant: p.tenant, revision: p.revision, created_at_unix_ms: p.createdAtUnixMs, updated_at_unix_ms: p.updatedAtUnixMs };
}

/** A Policy message from the coordinator (client side). */
export function policyFromProto(message: unknown): Result<Policy> {
  const r = ProtoReader.of(message, 'policy', 'internal');
  const input = readPolicyInput(r);
  return done(r, { ...input, tenant: r.string('tenant'), revision: r.u64('revision'), createdAtUnixMs: r.i64('created_at_unix_ms'), updatedAtUnixMs: r.i64('updated_at_unix_ms') });
}

export function planStatsToProto(s: PlanStats): Record<string, unknown> {
  return {
    plan_id: s.planId,
    checkpoints_total: s.checkpointsTotal,
    completed: s.completed,
    aborted: s.aborted,
    in_flight: s.inFlight,
    duration_min_ms: s.durationMinMs,
    duration_avg_ms: s.durationAvgMs,
    duration_max_ms: s.durationMaxMs,
    size_min_bytes: s.sizeMinBytes,
    size_avg_bytes: s.sizeAvgBytes,
    size_max_bytes: s.sizeMaxBytes,
    latest_completed_id: s.latestCompletedId,
    latest_completed_at_unix_ms: s.latestCompletedAtUnixMs,
    last_failure_id: s.lastFailure?.id ?? 0,
    last_failure_reason: s.lastFailure?.reason !== undefined ? failureReasons.toProto(s.lastFailure.reason) : 'FAILURE_REASON_UNSPECIFIED',
    last_failure_detail: s.lastFailure?.detail ?? '',
    last_failure_at_unix_ms: s.lastFailure?.atUnixMs ?? 0,
  };
}

export function planStatsFromProto(message: unknown): Result<PlanStats> {
  const r = ProtoReader.of(message, 'stats', 'internal');
  const failureId = r.u64('last_failure_id');
  const reason = r.enumValue('last_failure_reason', failureReasons, false);
  const stats: PlanStats = {
    planId: r.string('plan_id'),
    checkpointsTotal: r.u32('checkpoints_total'),
    completed: r.u32('completed'),
    aborted: r.u32('aborted'),
    inFlight: r.u32('in_flight'),
    durationMinMs: r.u64('duration_min_ms'),
    durationAvgMs: r.u64('duration_avg_ms'),
    durationMaxMs: r.u64('duration_max_ms'),
    sizeMinBytes: r.u64('size_min_bytes'),
    sizeAvgBytes: r.u64('size_avg_bytes'),
    sizeMaxBytes: r.u64('size_max_bytes'),
    latestCompletedId: r.u64('latest_completed_id'),
    latestCompletedAtUnixMs: r.i64('latest_completed_at_unix_ms'),
    ...(failureId > 0
      ? { lastFailure: { id: failureId, ...(reason !== undefined ? { reason } : {}), detail: r.string('last_failure_detail'), atUnixMs: r.i64('last_failure_at_unix_ms') } }
      : {}),
  };
  return done(r, stats);
}
