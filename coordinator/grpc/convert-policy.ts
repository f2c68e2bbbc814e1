/**
 * Policy and PlanStats messages <-> model values, both ways (as convert.ts does for plans and
 * checkpoints): requests validated field by field for the server, responses for clients.
 */
import type { RetentionRules } from '../../src/control/retention.js';
import type { Result } from '../errors.js';
import type { PlanStats } from '../metrics/plan-stats.js';
import { TOLERABLE_FAILURES_DEFAULT, type Policy, type PolicyInput, type SchedulePolicy } from '../policies/model.js';
import { done, dur, durOf, name, pageSize, pageToken, timeOf, ts, type RequestLimits } from './convert.js';
import { consistencyLevels, failureReasons } from './enums.js';
import { ProtoReader } from './fields.js';

function readSchedule(s: ProtoReader): SchedulePolicy {
  const tolerable = s.u32('tolerable_failures');
  return {
    intervalMs: durOf(s, 'interval'),
    cron: s.string('cron').trim(),
    level: s.enumValue('level', consistencyLevels, false) ?? 'app',
    windowStart: s.string('window_start'),
    windowEnd: s.string('window_end'),
    jitterMs: durOf(s, 'jitter'),
    minPauseMs: durOf(s, 'min_pause'),
    tolerableFailures: tolerable === 0 ? TOLERABLE_FAILURES_DEFAULT : tolerable,
  };
}

function readRetention(r: ProtoReader): RetentionRules {
  return { keepLast: r.u32('keep_last'), keepDaily: r.u32('keep_daily'), keepWeekly: r.u32('keep_weekly'), keepMonthly: r.u32('keep_monthly'), keepWithinMs: durOf(r, 'keep_within') };
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
            interval: dur(s.intervalMs),
            cron: s.cron,
            level: consistencyLevels.toProto(s.level),
            window_start: s.windowStart,
            window_end: s.windowEnd,
            jitter: dur(s.jitterMs),
            min_pause: dur(s.minPauseMs),
            tolerable_failures: s.tolerableFailures,
          },
        }
      : {}),
    ...(r !== undefined
      ? { retention: { keep_last: r.keepLast, keep_daily: r.keepDaily, keep_weekly: r.keepWeekly, keep_monthly: r.keepMonthly, keep_within: dur(r.keepWithinMs) } }
      : {}),
  };
}

export function policyToProto(p: Policy): Record<string, unknown> {
  return { ...policyInputToProto(p), tenant: p.tenant, revision: p.revision, created_at: ts(p.createdAtUnixMs), updated_at: ts(p.updatedAtUnixMs) };
}

/** A Policy message from the coordinator (client side). */
export function policyFromProto(message: unknown): Result<Policy> {
  const r = ProtoReader.of(message, 'policy', 'internal');
  const input = readPolicyInput(r);
  return done(r, { ...input, tenant: r.string('tenant'), revision: r.u64('revision'), createdAtUnixMs: (timeOf(r, 'created_at') ?? 0), updatedAtUnixMs: (timeOf(r, 'updated_at') ?? 0) });
}

export function planStatsToProto(s: PlanStats): Record<string, unknown> {
  return {
    plan_id: s.planId,
    checkpoints_total: s.checkpointsTotal,
    completed: s.completed,
    aborted: s.aborted,
    in_flight: s.inFlight,
    duration_min: dur(s.durationMinMs),
    duration_avg: dur(s.durationAvgMs),
    duration_max: dur(s.durationMaxMs),
    size_min_bytes: s.sizeMinBytes,
    size_avg_bytes: s.sizeAvgBytes,
    size_max_bytes: s.sizeMaxBytes,
    latest_completed_id: s.latestCompletedId,
    latest_completed_at: ts(s.latestCompletedAtUnixMs),
    last_failure_id: s.lastFailure?.id ?? 0,
    last_failure_reason: s.lastFailure?.reason !== undefined ? failureReasons.toProto(s.lastFailure.reason) : 'FAILURE_REASON_UNSPECIFIED',
    last_failure_detail: s.lastFailure?.detail ?? '',
    last_failure_at: ts(s.lastFailure?.atUnixMs ?? 0),
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
    durationMinMs: durOf(r, 'duration_min'),
    durationAvgMs: durOf(r, 'duration_avg'),
    durationMaxMs: durOf(r, 'duration_max'),
    sizeMinBytes: r.u64('size_min_bytes'),
    sizeAvgBytes: r.u64('size_avg_bytes'),
    sizeMaxBytes: r.u64('size_max_bytes'),
    latestCompletedId: r.u64('latest_completed_id'),
    latestCompletedAtUnixMs: (timeOf(r, 'latest_completed_at') ?? 0),
    ...(failureId > 0
      ? { lastFailure: { id: failureId, ...(reason !== undefined ? { reason } : {}), detail: r.string('last_failure_detail'), atUnixMs: (timeOf(r, 'last_failure_at') ?? 0) } }
      : {}),
  };
  return done(r, stats);
}
