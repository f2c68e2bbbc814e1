/**
 * Proto messages <-> model values, both ways:
 * - requests (proto -> model) for the server, validating every field: a bad request is an
 *   INVALID_ARGUMENT whose message names the field as the .proto spells it;
 * - responses (model -> proto) for the server;
 * - responses (proto -> view) and requests (model -> proto) for clients (snapctl, tests).
 *
 * Enums: UNSPECIFIED in a request means the coordinator's default where coordinator.proto documents
 * one (alignment mode, fallback policy, and the 0 durations) and is rejected where it does not
 * (level, channel kind, checkpoint state filters). Unknown numbers are rejected.
 */
import type { CheckpointId } from '../../src/ids.js';
import { isName } from '../../src/wire/fields.js';
import type { HookAction } from '../../src/wire/index.js';
import type { BeginCheckpointRequest, DeleteOutcome, FinishCheckpointRequest, FromSite, GivenVolumeSnapshot, RestoreRequest, TakeSnapshotRequest, VerifyReport } from '../api.js';
import { ok, type Result } from '../errors.js';
import type { AgentInfo, AgentlessServer, AppRef, CheckpointCopy, CheckpointRecord, CheckpointState, CopySource, Plan, PlanChannel, PlanInput, ProgressEvent, SnapshotOptions, VolumeSnapshot } from '../model.js';
import { SITE_NAME } from '../sites/config.js';
import { checkpointStats, checkpointView, type AppStatsView, type CheckpointView } from '../checkpoint-view.js';
import {
  agentStatuses,
  alignmentModes,
  channelKinds,
  checkpointStates,
  consistencyLevels,
  copyStates,
  failureReasons,
  fallbackPolicies,
  progressKinds,
  type ProgressKind,
} from './enums.js';
import { ProtoReader } from './fields.js';

// ------------------------------------------------------------------------------------------------
// Proto shapes, as proto-loader accepts them for encoding (numbers for 64-bit fields, enum names)
// ------------------------------------------------------------------------------------------------

export interface PbAppRef {
  server: string;
  app: string;
}
export interface PbChannel {
  from_app: PbAppRef;
  to_app: PbAppRef;
  kind: string;
  log_stream: string;
  log_subject: string;
}
export interface PbVolume {
  id: string;
  server: string;
  backend_ref: string;
}
export interface PbAgentlessServer {
  server: string;
  backend_ref: string;
  guest_agent_ref: string;
}
export interface PbPlan {
  id: string;
  tenant: string;
  servers: string[];
  apps: PbAppRef[];
  channels: PbChannel[];
  volumes: PbVolume[];
  agentless_servers: PbAgentlessServer[];
  copy_to_sites: string[];
  revision: number;
  created_at: PbTimestamp | null;
  updated_at: PbTimestamp | null;
}
export interface PbSnapshotOptions {
  timeout: PbDuration;
  alignment_mode: string;
  alignment_timeout: PbDuration;
  fallback_policy: string;
  freeze_deadline: PbDuration;
  max_concurrent: number;
}
export interface PbAppStats {
  server: string;
  app: string;
  acked: boolean;
  acked_at: PbTimestamp | null;
  start_delay: PbDuration;
  alignment_duration: PbDuration;
  sync_duration: PbDuration;
  async_duration: PbDuration;
  size_bytes: number;
  channel_state_bytes: number;
  finished_unaligned: boolean;
  failure_reason: string;
  failure_detail: string;
}
export interface PbCheckpointStats {
  acked: number;
  total: number;
  triggered_at: PbTimestamp | null;
  last_ack_at: PbTimestamp | null;
  duration: PbDuration;
  size_bytes: number;
  channel_state_bytes: number;
  apps: PbAppStats[];
}
export interface PbVolumeSnapshot {
  volume_id: string;
  server: string;
  snapshot_ref: string;
  frozen_at: PbTimestamp | null;
  snapshot_at: PbTimestamp | null;
  thawed_at: PbTimestamp | null;
}
export interface PbCheckpointCopy {
  site: string;
  state: string;
  copied_at: PbTimestamp | null;
  lag: PbDuration | null;
  failed_at: PbTimestamp | null;
  detail: string;
}
export interface PbCopySource {
  site: string;
  source_site: string;
  source_checkpoint_id: number;
  copied_at: PbTimestamp | null;
}
export interface PbCheckpoint {
  id: number;
  plan_id: string;
  tenant: string;
  level_requested: string;
  level_achieved: string;
  state: string;
  failure_reason: string;
  failure_detail: string;
  epoch: number;
  options: PbSnapshotOptions;
  idempotency_key: string;
  created_at: PbTimestamp | null;
  finished_at: PbTimestamp | null;
  stats: PbCheckpointStats;
  volumes: PbVolumeSnapshot[];
  safety: boolean;
  fallback_reason: string;
  servers: PbServerFreeze[];
  pinned: boolean;
  hold_deadline: PbDuration | null;
  caller_volumes: PbVolumeSnapshot[];
  copies: PbCheckpointCopy[];
  imported_from: PbCopySource | null;
}
/** google.protobuf.Duration and Timestamp, as proto-loader takes them. */
export interface PbDuration {
  seconds: number;
  nanos: number;
}
export type PbTimestamp = PbDuration;
export interface PbHookRun {
  hook: string;
  action: string;
  exit_code: number;
  signal: string;
  timed_out: boolean;
  duration: PbDuration;
  stderr: string;
  attempts: number;
  app: string;
}
export interface PbServerFreeze {
  server: string;
  frozen_at: PbTimestamp | null;
  thawed_at: PbTimestamp | null;
  agent_frozen_at: PbTimestamp | null;
  agent_thawed_at: PbTimestamp | null;
  by_watchdog: boolean;
  hooks: PbHookRun[];
}
export interface PbProgress {
  kind: string;
  at: PbTimestamp | null;
  server: string;
  app: string;
  detail: string;
  checkpoint: PbCheckpoint;
}
export interface PbAgent {
  tenant: string;
  server: string;
  apps: string[];
  version: string;
  status: string;
  registered_at: PbTimestamp | null;
  last_heartbeat_at: PbTimestamp | null;
  frozen: boolean;
  channels: PbChannel[];
}
export interface PbVerifyResponse {
  ok: boolean;
  problems: { part: string; detail: string }[];
}

// ------------------------------------------------------------------------------------------------
// Limits a request is checked against
// ------------------------------------------------------------------------------------------------

export interface RequestLimits {
  /** page_size 0 means this. */
  readonly pageSizeDefault: number;
  /** A larger page_size is INVALID_ARGUMENT (not silently clamped: the caller would miss items). */
  readonly pageSizeMax: number;
  readonly idempotencyKeyCharsMax: number;
  readonly pageTokenCharsMax: number;
}

export const requestLimitsDefault: RequestLimits = {
  pageSizeDefault: 100,
  pageSizeMax: 1_000,
  idempotencyKeyCharsMax: 128,
  pageTokenCharsMax: 512,
};

export function validateRequestLimits(l: RequestLimits): string | undefined {
  for (const [name, value] of Object.entries(l)) {
    if (!Number.isSafeInteger(value) || value < 1) return `${name} must be a positive integer, got ${String(value)}`;
  }
  if (l.pageSizeDefault > l.pageSizeMax) return `pageSizeDefault (${l.pageSizeDefault}) must not exceed pageSizeMax (${l.pageSizeMax})`;
  return undefined;
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export function done<T>(reader: ProtoReader, value: T): Result<T> {
  return reader.error === undefined ? ok(value) : { ok: false, error: reader.error };
}

export function name(r: ProtoReader, field: string, required: boolean): string {
  const v = r.string(field);
  if (v === '') {
    if (required) r.fail(field, `${r.at(field)} is required`);
    return '';
  }
  if (!isName(v)) r.fail(field, `${r.at(field)} ${JSON.stringify(v.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
  return v;
}

export function checkpointId(r: ProtoReader, field: string): CheckpointId {
  const id = r.u64(field);
  if (r.error === undefined && id === 0) r.fail(field, `${r.at(field)} is required (a positive checkpoint id)`);
  return id;
}

export function pageSize(r: ProtoReader, field: string, limits: RequestLimits): number {
  const size = r.u32(field);
  if (size > limits.pageSizeMax) r.fail(field, `${r.at(field)} ${size} is more than the maximum of ${limits.pageSizeMax}`);
  return size === 0 ? limits.pageSizeDefault : size;
}

export function pageToken(r: ProtoReader, field: string, limits: RequestLimits): string {
  const token = r.string(field);
  if (token.length > limits.pageTokenCharsMax) r.fail(field, `${r.at(field)} is not one this coordinator issued`);
  return token;
}

function idempotencyKey(r: ProtoReader, field: string, limits: RequestLimits): string | undefined {
  const key = r.string(field);
  if (key === '') return undefined;
  if (key.length > limits.idempotencyKeyCharsMax) r.fail(field, `${r.at(field)} is longer than ${limits.idempotencyKeyCharsMax} characters`);
  else if (CONTROL_CHARS.test(key)) r.fail(field, `${r.at(field)} contains control characters`);
  return key;
}

/** Milliseconds as a google.protobuf.Duration. */
export function dur(ms: number): PbDuration {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

/** Unix milliseconds as a google.protobuf.Timestamp; absent (null) for "not yet" (undefined or 0). */
export function ts(unixMs: number | undefined): PbTimestamp | null {
  return unixMs === undefined || unixMs === 0 ? null : dur(unixMs);
}

/** A Timestamp field in Unix milliseconds, or undefined when absent. */
export function timeOf(r: ProtoReader, field: string): number | undefined {
  return wellKnownMs(r, field);
}

/** A Duration field in milliseconds; absent is 0, negative is refused. */
export function durOf(r: ProtoReader, field: string): number {
  const ms = wellKnownMs(r, field) ?? 0;
  if (ms < 0) r.fail(field, `${r.at(field)} must not be negative`);
  return ms;
}

/**
 * A google.protobuf.Duration or Timestamp field in milliseconds (sub-millisecond nanos dropped), or
 * undefined when absent; nanos outside 0..999,999,999 are refused, as the well-known type defines.
 */
function wellKnownMs(r: ProtoReader, field: string): number | undefined {
  const m = r.message(field);
  if (m === undefined) return undefined;
  const seconds = m.i64('seconds');
  const nanos = m.i32('nanos');
  if (nanos < 0 || nanos > 999_999_999) m.fail('nanos', `${m.at('nanos')} ${nanos} is out of range: from 0 to 999999999`);
  const ms = seconds * 1000 + Math.floor(nanos / 1_000_000);
  if (!Number.isSafeInteger(ms)) m.fail('seconds', `${m.at('seconds')} is too large`);
  return ms;
}

function appRef(r: ProtoReader | undefined, field: string, parent: ProtoReader): AppRef {
  if (r === undefined) {
    parent.fail(field, `${parent.at(field)} is required`);
    return { server: '', app: '' };
  }
  return { server: name(r, 'server', true), app: name(r, 'app', true) };
}

// ------------------------------------------------------------------------------------------------
// Plans
// ------------------------------------------------------------------------------------------------

/**
 * The caller-supplied part of a Plan message. Formats of single fields are checked here; the rules
 * across fields (apps on listed servers, the graph, ...) are plan-validation.ts's.
 */
function readPlanInput(r: ProtoReader): PlanInput {
  const channels = r.messages('channels').map((c): PlanChannel => {
    const kind = c.enumValue('kind', channelKinds, true) ?? 'in-band';
    const logStream = c.string('log_stream');
    const logSubject = c.string('log_subject');
    return {
      from: appRef(c.message('from_app'), 'from_app', c),
      to: appRef(c.message('to_app'), 'to_app', c),
      kind,
      ...(logStream !== '' ? { logStream } : {}),
      ...(logSubject !== '' ? { logSubject } : {}),
    };
  });
  return {
    id: r.string('id'),
    tenant: r.string('tenant'),
    servers: r.list('servers').map((s, i) => {
      if (typeof s !== 'string') r.fail('servers', `${r.at('servers')}[${i}] must be a string`);
      return typeof s === 'string' ? s : '';
    }),
    apps: r.messages('apps').map((a) => ({ server: a.string('server'), app: a.string('app') })),
    channels,
    volumes: r.messages('volumes').map((v) => ({ id: v.string('id'), server: v.string('server'), backendRef: v.string('backend_ref') })),
    ...agentlessField(
      r.messages('agentless_servers').map((a): AgentlessServer => {
        const guestAgentRef = a.string('guest_agent_ref');
        return guestAgentRef === '' ? { server: a.string('server'), backendRef: a.string('backend_ref') } : { server: a.string('server'), backendRef: a.string('backend_ref'), guestAgentRef };
      }),
    ),
    ...copyToSitesField(r),
  };
}

/** Absent rather than empty, as agentlessField; each a site name, none twice (configured or not is the registry's check). */
function copyToSitesField(r: ProtoReader): { copyToSites?: string[] } {
  const sites = r.list('copy_to_sites').map((s, i) => {
    const at = `${r.at('copy_to_sites')}[${i}]`;
    if (typeof s !== 'string' || !SITE_NAME.test(s)) r.fail(`copy_to_sites[${i}]`, `${at} must be a site name ([A-Za-z0-9_-]{1,64})`);
    return typeof s === 'string' ? s : '';
  });
  const twice = sites.find((s, i) => sites.indexOf(s) !== i);
  if (twice !== undefined) r.fail('copy_to_sites', `${r.at('copy_to_sites')} names site ${twice} twice`);
  return sites.length === 0 ? {} : { copyToSites: sites };
}

/** Absent rather than empty: a plan without agentless servers reads as before. */
function agentlessField(servers: AgentlessServer[]): { agentlessServers?: AgentlessServer[] } {
  return servers.length === 0 ? {} : { agentlessServers: servers };
}

export function registerPlanRequestFromProto(request: unknown): Result<{ plan: PlanInput; expectedRevision: number }> {
  const r = ProtoReader.of(request, '');
  const planReader = r.required('plan');
  const plan = readPlanInput(planReader);
  const expectedRevision = r.u64('expected_revision');
  return done(r, { plan, expectedRevision });
}

export function planIdRequestFromProto(request: unknown): Result<string> {
  const r = ProtoReader.of(request, '');
  const planId = name(r, 'plan_id', true);
  return done(r, planId);
}

export function listPlansRequestFromProto(request: unknown, limits: RequestLimits): Result<{ tenant: string | undefined; pageSize: number; pageToken: string }> {
  const r = ProtoReader.of(request, '');
  const tenant = name(r, 'tenant', false);
  const size = pageSize(r, 'page_size', limits);
  const token = pageToken(r, 'page_token', limits);
  return done(r, { tenant: tenant === '' ? undefined : tenant, pageSize: size, pageToken: token });
}

export function deletePlanRequestFromProto(request: unknown): Result<{ planId: string; deleteCheckpoints: boolean }> {
  const r = ProtoReader.of(request, '');
  const planId = name(r, 'plan_id', true);
  const deleteCheckpoints = r.bool('delete_checkpoints');
  return done(r, { planId, deleteCheckpoints });
}

function appRefToProto(a: AppRef): PbAppRef {
  return { server: a.server, app: a.app };
}

export function planInputToProto(plan: PlanInput): Omit<PbPlan, 'revision' | 'created_at' | 'updated_at'> {
  return {
    id: plan.id,
    tenant: plan.tenant,
    servers: [...plan.servers],
    apps: plan.apps.map(appRefToProto),
    channels: plan.channels.map(channelToProto),
    volumes: plan.volumes.map((v) => ({ id: v.id, server: v.server, backend_ref: v.backendRef })),
    agentless_servers: (plan.agentlessServers ?? []).map((a) => ({ server: a.server, backend_ref: a.backendRef, guest_agent_ref: a.guestAgentRef ?? '' })),
    copy_to_sites: [...(plan.copyToSites ?? [])],
  };
}

function channelToProto(c: PlanChannel): PbChannel {
  return { from_app: appRefToProto(c.from), to_app: appRefToProto(c.to), kind: channelKinds.toProto(c.kind), log_stream: c.logStream ?? '', log_subject: c.logSubject ?? '' };
}

export function planToProto(plan: Plan): PbPlan {
  return {
    ...planInputToProto(plan),
    revision: plan.revision,
    created_at: ts(plan.createdAtUnixMs),
    updated_at: ts(plan.updatedAtUnixMs),
  };
}

/** A Plan message from the coordinator (client side). */
export function planFromProto(message: unknown): Result<Plan> {
  const r = ProtoReader.of(message, 'plan', 'internal');
  const input = readPlanInput(r);
  const plan: Plan = {
    ...input,
    revision: r.u64('revision'),
    createdAtUnixMs: (timeOf(r, 'created_at') ?? 0),
    updatedAtUnixMs: (timeOf(r, 'updated_at') ?? 0),
  };
  return done(r, plan);
}

// ------------------------------------------------------------------------------------------------
// Checkpoints: requests
// ------------------------------------------------------------------------------------------------

export function takeSnapshotRequestFromProto(request: unknown, limits: RequestLimits): Result<TakeSnapshotRequest> {
  const r = ProtoReader.of(request, '');
  const planId = name(r, 'plan_id', true);
  const level = r.enumValue('level', consistencyLevels, true) ?? 'none';
  const options = readOptions(r.message('options'));
  const key = idempotencyKey(r, 'idempotency_key', limits);
  return done(r, { planId, level, options, ...(key !== undefined ? { idempotencyKey: key } : {}) });
}

/** SnapshotOptions of a request: the fields set, the rest left to the coordinator's defaults. */
function readOptions(o: ProtoReader | undefined): Partial<SnapshotOptions> {
  const options: { -readonly [K in keyof SnapshotOptions]?: SnapshotOptions[K] } = {};
  if (o !== undefined) {
    const timeoutMs = durOf(o, 'timeout');
    if (timeoutMs > 0) options.timeoutMs = timeoutMs;
    const alignmentMode = o.enumValue('alignment_mode', alignmentModes, false);
    if (alignmentMode !== undefined) options.alignmentMode = alignmentMode;
    // 0 is a meaningful value here ("never switch to unaligned"), so it is always passed on.
    options.alignmentTimeoutMs = durOf(o, 'alignment_timeout');
    if (alignmentMode === 'unaligned' && options.alignmentTimeoutMs > 0) {
      o.fail('alignment_timeout', 'options.alignment_timeout applies only to ALIGNMENT_MODE_ALIGNED; leave it unset with ALIGNMENT_MODE_UNALIGNED');
    }
    const fallbackPolicy = o.enumValue('fallback_policy', fallbackPolicies, false);
    if (fallbackPolicy !== undefined) options.fallbackPolicy = fallbackPolicy;
    const freezeDeadlineMs = durOf(o, 'freeze_deadline');
    if (freezeDeadlineMs > 0) options.freezeDeadlineMs = freezeDeadlineMs;
    const maxConcurrent = o.u32('max_concurrent');
    if (maxConcurrent > 0) options.maxConcurrent = maxConcurrent;
  }
  return options;
}

export function beginCheckpointRequestFromProto(request: unknown, limits: RequestLimits): Result<BeginCheckpointRequest> {
  const r = ProtoReader.of(request, '');
  const planId = name(r, 'plan_id', true);
  const level = r.enumValue('level', consistencyLevels, true);
  if (level !== undefined && level !== 'crash' && level !== 'app') r.fail('level', `level must be CONSISTENCY_LEVEL_CRASH (freeze) or CONSISTENCY_LEVEL_APP (barrier); a staged checkpoint holds nothing at ${consistencyLevels.toProto(level)}`);
  const holdMs = durOf(r, 'hold_deadline');
  const options = readOptions(r.message('options'));
  const key = idempotencyKey(r, 'idempotency_key', limits);
  return done(r, { planId, level: level === 'app' ? 'app' : 'crash', holdMs, options, ...(key !== undefined ? { idempotencyKey: key } : {}) });
}

export function finishCheckpointRequestFromProto(request: unknown): Result<FinishCheckpointRequest> {
  const r = ProtoReader.of(request, '');
  const id = checkpointId(r, 'checkpoint_id');
  const volumes = r.messages('volumes').map((v): GivenVolumeSnapshot => {
    const volumeId = name(v, 'volume_id', true);
    const server = name(v, 'server', true);
    const snapshotRef = v.string('snapshot_ref');
    if (snapshotRef === '') v.fail('snapshot_ref', `${v.at('snapshot_ref')} is required`);
    else if (snapshotRef.length > 1024 || CONTROL_CHARS.test(snapshotRef)) v.fail('snapshot_ref', `${v.at('snapshot_ref')} must be at most 1024 characters, none of them control characters`);
    const startedAt = timeOf(v, 'started_at');
    const endedAt = timeOf(v, 'ended_at');
    if (startedAt === undefined) v.fail('started_at', `${v.at('started_at')} is required`);
    if (endedAt === undefined) v.fail('ended_at', `${v.at('ended_at')} is required`);
    return { volumeId, server, snapshotRef, startedAtUnixMs: startedAt ?? 0, endedAtUnixMs: endedAt ?? 0 };
  });
  return done(r, { checkpointId: id, volumes });
}

export function finishCheckpointRequestToProto(request: FinishCheckpointRequest): Record<string, unknown> {
  return {
    checkpoint_id: request.checkpointId,
    volumes: request.volumes.map((v) => ({
      volume_id: v.volumeId,
      server: v.server,
      snapshot_ref: v.snapshotRef,
      started_at: dur(v.startedAtUnixMs),
      ended_at: dur(v.endedAtUnixMs),
    })),
  };
}

export function takeSnapshotRequestToProto(request: TakeSnapshotRequest): Record<string, unknown> {
  const o = request.options;
  return {
    plan_id: request.planId,
    level: consistencyLevels.toProto(request.level),
    options: {
      timeout: dur(o.timeoutMs ?? 0),
      alignment_mode: o.alignmentMode === undefined ? alignmentModes.unspecified : alignmentModes.toProto(o.alignmentMode),
      alignment_timeout: dur(o.alignmentTimeoutMs ?? 0),
      fallback_policy: o.fallbackPolicy === undefined ? fallbackPolicies.unspecified : fallbackPolicies.toProto(o.fallbackPolicy),
      freeze_deadline: dur(o.freezeDeadlineMs ?? 0),
      max_concurrent: o.maxConcurrent ?? 0,
    },
    idempotency_key: request.idempotencyKey ?? '',
  };
}

export function checkpointIdRequestFromProto(request: unknown): Result<CheckpointId> {
  const r = ProtoReader.of(request, '');
  const id = checkpointId(r, 'checkpoint_id');
  return done(r, id);
}

/** DeleteCheckpoint, CancelCheckpoint, PinCheckpoint and UnpinCheckpoint: a checkpoint and an optional key. */
export interface KeyedCheckpointArgs {
  readonly checkpointId: CheckpointId;
  readonly idempotencyKey?: string;
}

export function keyedCheckpointRequestFromProto(request: unknown, limits: RequestLimits): Result<KeyedCheckpointArgs> {
  const r = ProtoReader.of(request, '');
  const id = checkpointId(r, 'checkpoint_id');
  const key = idempotencyKey(r, 'idempotency_key', limits);
  return done(r, { checkpointId: id, ...(key !== undefined ? { idempotencyKey: key } : {}) });
}

export function deleteOutcomeToProto(o: DeleteOutcome): { deleted_objects: number; deleted_volume_snapshots: string[] } {
  return { deleted_objects: u32(o.deletedObjects), deleted_volume_snapshots: [...o.deletedVolumeSnapshots] };
}

export function deleteOutcomeFromProto(message: unknown): Result<DeleteOutcome> {
  const r = ProtoReader.of(message, '', 'internal');
  const deletedObjects = r.u32('deleted_objects');
  const deletedVolumeSnapshots = r.list('deleted_volume_snapshots').map((s) => String(s));
  return done(r, { deletedObjects, deletedVolumeSnapshots });
}

export interface ListCheckpointsArgs {
  readonly filter: { planId?: string; states?: readonly CheckpointState[] };
  readonly pageSize: number;
  readonly pageToken: string;
}

export function listCheckpointsRequestFromProto(request: unknown, limits: RequestLimits): Result<ListCheckpointsArgs> {
  const r = ProtoReader.of(request, '');
  const planId = name(r, 'plan_id', false);
  const states = r.list('states').map((s, i) => {
    if (s === 0 || s === checkpointStates.unspecified) r.fail(`states[${i}]`, `states[${i}] is ${checkpointStates.unspecified}; filter on real states or leave states empty for all`);
    return r.enumOf(s, `states[${i}]`, checkpointStates, true) ?? 'pending';
  });
  const size = pageSize(r, 'page_size', limits);
  const token = pageToken(r, 'page_token', limits);
  const filter = { ...(planId !== '' ? { planId } : {}), ...(states.length > 0 ? { states } : {}) };
  return done(r, { filter, pageSize: size, pageToken: token });
}

export function listCheckpointsRequestToProto(args: ListCheckpointsArgs): Record<string, unknown> {
  return {
    plan_id: args.filter.planId ?? '',
    states: (args.filter.states ?? []).map((s) => checkpointStates.toProto(s)),
    page_size: args.pageSize,
    page_token: args.pageToken,
  };
}

export interface RollbackArgs {
  readonly checkpointId: CheckpointId;
  readonly skipSafetyCheckpoint: boolean;
  readonly idempotencyKey?: string;
}

export function rollbackRequestFromProto(request: unknown, limits: RequestLimits): Result<RollbackArgs> {
  const r = ProtoReader.of(request, '');
  const id = checkpointId(r, 'checkpoint_id');
  const skipSafetyCheckpoint = r.bool('skip_safety_checkpoint');
  const key = idempotencyKey(r, 'idempotency_key', limits);
  return done(r, { checkpointId: id, skipSafetyCheckpoint, ...(key !== undefined ? { idempotencyKey: key } : {}) });
}

/** A RestoreSnapshot request: what to restore where, and with from_site, the site whose copy it is. */
export interface RestoreArgs {
  readonly request: RestoreRequest;
  readonly fromSite?: FromSite;
}

export function restoreRequestFromProto(request: unknown, limits: RequestLimits): Result<RestoreArgs> {
  const r = ProtoReader.of(request, '');
  const id = checkpointId(r, 'checkpoint_id');
  const servers: Record<string, string> = {};
  for (const m of r.messages('servers')) {
    const source = name(m, 'source_server', true);
    const target = name(m, 'target_server', true);
    if (source === '' || target === '') continue;
    if (source in servers) m.fail('source_server', `${m.at('source_server')} ${source} is mapped twice`);
    else if (source === target) m.fail('target_server', `${m.at('target_server')} ${target} is the source itself: that is a rollback, not a restore`);
    servers[source] = target;
  }
  const apps: { source: AppRef; target: AppRef }[] = [];
  const seen = new Set<string>();
  for (const m of r.messages('apps')) {
    const source = appRef(m.message('source'), 'source', m);
    const target = appRef(m.message('target'), 'target', m);
    const key = `${source.server}/${source.app}`;
    if (seen.has(key)) m.fail('source', `${m.at('source')} ${key} is mapped twice`);
    seen.add(key);
    apps.push({ source, target });
  }
  if (r.error === undefined && Object.keys(servers).length === 0 && apps.length === 0) {
    r.fail('servers', 'servers or apps must map the checkpoint\'s servers or apps to their targets');
  }
  const key = idempotencyKey(r, 'idempotency_key', limits);
  const site = siteName(r, 'from_site', false);
  const sourceSite = siteName(r, 'source_site', false);
  if (site === '' && sourceSite !== '') r.fail('source_site', 'source_site applies only with from_site: name the site that holds the copy');
  const restore: RestoreRequest = { checkpointId: id, servers, apps, ...(key !== undefined ? { idempotencyKey: key } : {}) };
  return done(r, { request: restore, ...(site !== '' ? { fromSite: { site, sourceSite } } : {}) });
}

/** A site name field (docs/sites.md): INVALID_ARGUMENT naming it when malformed. */
export function siteName(r: ProtoReader, field: string, required: boolean): string {
  const value = r.string(field);
  if (value === '') {
    if (required) r.fail(field, `${r.at(field)} is required: the name of a configured site`);
    return '';
  }
  if (!SITE_NAME.test(value)) r.fail(field, `${r.at(field)} ${JSON.stringify(value.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
  return value;
}

export function restoreRequestToProto(request: RestoreRequest, fromSite?: FromSite): Record<string, unknown> {
  return {
    checkpoint_id: request.checkpointId,
    servers: Object.entries(request.servers).map(([source_server, target_server]) => ({ source_server, target_server })),
    apps: request.apps.map((m) => ({ source: appRefToProto(m.source), target: appRefToProto(m.target) })),
    idempotency_key: request.idempotencyKey ?? '',
    from_site: fromSite?.site ?? '',
    source_site: fromSite?.sourceSite ?? '',
  };
}

export function listAgentsRequestFromProto(request: unknown): Result<string | undefined> {
  const r = ProtoReader.of(request, '');
  const tenant = name(r, 'tenant', false);
  return done(r, tenant === '' ? undefined : tenant);
}

// ------------------------------------------------------------------------------------------------
// Checkpoints: responses (model -> proto)
// ------------------------------------------------------------------------------------------------

function optionsToProto(o: SnapshotOptions): PbSnapshotOptions {
  return {
    timeout: dur(o.timeoutMs),
    alignment_mode: alignmentModes.toProto(o.alignmentMode),
    alignment_timeout: dur(o.alignmentTimeoutMs),
    fallback_policy: fallbackPolicies.toProto(o.fallbackPolicy),
    freeze_deadline: dur(o.freezeDeadlineMs),
    max_concurrent: o.maxConcurrent ?? 1,
  };
}

function appStatsToProto(a: AppStatsView): PbAppStats {
  return {
    server: a.server,
    app: a.app,
    acked: a.acked,
    acked_at: ts(a.ackedAtUnixMs ?? 0),
    start_delay: dur(a.startDelayMs),
    alignment_duration: dur(a.alignmentMs),
    sync_duration: dur(a.syncMs),
    async_duration: dur(a.asyncMs),
    size_bytes: a.sizeBytes,
    channel_state_bytes: a.channelStateBytes,
    finished_unaligned: a.finishedUnaligned,
    failure_reason: a.failureReason === undefined ? failureReasons.unspecified : failureReasons.toProto(a.failureReason),
    failure_detail: a.failureDetail ?? '',
  };
}

function volumeToProto(v: VolumeSnapshot): PbVolumeSnapshot {
  return {
    volume_id: v.volumeId,
    server: v.server,
    snapshot_ref: v.snapshotRef,
    frozen_at: ts(v.frozenAtUnixMs),
    snapshot_at: ts(v.snapshotAtUnixMs),
    thawed_at: ts(v.thawedAtUnixMs),
  };
}

/** uint32 duration fields: a longer duration than 49 days is shown as the maximum, not wrapped. */
function u32(n: number): number {
  return Math.min(Math.max(0, Math.round(n)), 0xffff_ffff);
}

export function checkpointCopyToProto(c: CheckpointCopy): PbCheckpointCopy {
  return c.state === 'copied'
    ? { site: c.site, state: copyStates.toProto(c.state), copied_at: ts(c.copiedAtUnixMs), lag: dur(c.lagMs), failed_at: null, detail: '' }
    : { site: c.site, state: copyStates.toProto(c.state), copied_at: null, lag: null, failed_at: ts(c.failedAtUnixMs), detail: c.detail };
}

function copySourceToProto(s: CopySource): PbCopySource {
  return { site: s.site, source_site: s.sourceSite, source_checkpoint_id: s.sourceCheckpointId, copied_at: ts(s.copiedAtUnixMs) };
}

export function checkpointCopyFromProto(c: ProtoReader): CheckpointCopy {
  const site = c.string('site');
  return c.enumValue('state', copyStates, true) === 'failed'
    ? { site, state: 'failed', failedAtUnixMs: timeOf(c, 'failed_at') ?? 0, detail: c.string('detail') }
    : { site, state: 'copied', copiedAtUnixMs: timeOf(c, 'copied_at') ?? 0, lagMs: durOf(c, 'lag') };
}

export function checkpointToProto(record: CheckpointRecord): PbCheckpoint {
  const stats = checkpointStats(record);
  return {
    id: record.id,
    plan_id: record.planId,
    tenant: record.tenant,
    level_requested: consistencyLevels.toProto(record.levelRequested),
    level_achieved: record.levelAchieved === undefined ? consistencyLevels.unspecified : consistencyLevels.toProto(record.levelAchieved),
    state: checkpointStates.toProto(record.state),
    failure_reason: record.failureReason === undefined ? failureReasons.unspecified : failureReasons.toProto(record.failureReason),
    failure_detail: record.failureDetail ?? '',
    epoch: record.epoch,
    options: optionsToProto(record.options),
    idempotency_key: record.idempotencyKey ?? '',
    created_at: ts(record.createdAtUnixMs),
    finished_at: ts(record.finishedAtUnixMs ?? 0),
    stats: {
      acked: stats.acked,
      total: stats.total,
      triggered_at: ts(stats.triggeredAtUnixMs ?? 0),
      last_ack_at: ts(stats.lastAckAtUnixMs ?? 0),
      duration: dur(stats.durationMs),
      size_bytes: stats.sizeBytes,
      channel_state_bytes: stats.channelStateBytes,
      apps: stats.apps.map((a) => appStatsToProto({ ...a, startDelayMs: u32(a.startDelayMs), alignmentMs: u32(a.alignmentMs), syncMs: u32(a.syncMs), asyncMs: u32(a.asyncMs) })),
    },
    volumes: record.volumes.map(volumeToProto),
    safety: record.safety,
    fallback_reason: record.fallbackReason ?? '',
    pinned: record.pinned === true,
    hold_deadline: record.holdMs === undefined ? null : dur(record.holdMs),
    caller_volumes: (record.callerVolumes ?? []).map(volumeToProto),
    copies: (record.copies ?? []).map(checkpointCopyToProto),
    imported_from: record.importedFrom === undefined ? null : copySourceToProto(record.importedFrom),
    servers: (record.servers ?? []).map((f) => ({
      server: f.server,
      frozen_at: ts(f.frozenAtUnixMs ?? 0),
      thawed_at: ts(f.thawedAtUnixMs ?? 0),
      agent_frozen_at: ts(f.agentFrozenAtUnixMs ?? 0),
      agent_thawed_at: ts(f.agentThawedAtUnixMs ?? 0),
      by_watchdog: f.byWatchdog ?? false,
      hooks: f.hooks.map((h) => ({
        hook: h.hook,
        action: h.action,
        exit_code: h.exitCode,
        signal: h.signal ?? '',
        timed_out: h.timedOut,
        duration: dur(u32(h.durationMs)),
        stderr: h.stderr,
        attempts: h.attempts,
        app: h.app ?? '',
      })),
    })),
  };
}

export function progressToProto(event: ProgressEvent): PbProgress {
  return {
    kind: progressKinds.toProto(event.kind),
    at: ts(event.atUnixMs),
    server: event.server ?? '',
    app: event.app ?? '',
    detail: event.detail ?? '',
    checkpoint: checkpointToProto(event.checkpoint),
  };
}

/** Each server's channels in these plans: those that start or end at one of its apps. */
export function channelsByServer(plans: readonly Plan[]): Map<string, PlanChannel[]> {
  const out = new Map<string, PlanChannel[]>();
  for (const p of plans) {
    for (const c of p.channels) {
      for (const server of new Set([c.from.server, c.to.server])) out.set(server, [...(out.get(server) ?? []), c]);
    }
  }
  return out;
}

export function agentToProto(a: AgentInfo, channels: readonly PlanChannel[] = []): PbAgent {
  return {
    tenant: a.tenant,
    server: a.server,
    apps: [...a.apps],
    version: a.version,
    status: agentStatuses.toProto(a.status),
    registered_at: ts(a.registeredAtUnixMs),
    last_heartbeat_at: ts(a.lastHeartbeatAtUnixMs),
    frozen: a.frozen,
    channels: channels.map(channelToProto),
  };
}

export function verifyReportToProto(report: VerifyReport): PbVerifyResponse {
  return { ok: report.ok, problems: report.problems.map((p) => ({ part: p.part, detail: p.detail })) };
}

// ------------------------------------------------------------------------------------------------
// Checkpoints: responses (proto -> view), for clients
// ------------------------------------------------------------------------------------------------

function optional<K extends string, V>(key: K, value: V | undefined, empty: V): { [P in K]?: V } {
  return (value === undefined || value === empty ? {} : { [key]: value }) as { [P in K]?: V };
}

function readCheckpoint(r: ProtoReader): CheckpointView {
  const o = r.required('options');
  const s = r.required('stats');
  const apps = s.messages('apps').map(
    (a): AppStatsView => ({
      server: a.string('server'),
      app: a.string('app'),
      acked: a.bool('acked'),
      ...optional('ackedAtUnixMs', (timeOf(a, 'acked_at') ?? 0), 0),
      startDelayMs: durOf(a, 'start_delay'),
      alignmentMs: durOf(a, 'alignment_duration'),
      syncMs: durOf(a, 'sync_duration'),
      asyncMs: durOf(a, 'async_duration'),
      sizeBytes: a.u64('size_bytes'),
      channelStateBytes: a.u64('channel_state_bytes'),
      finishedUnaligned: a.bool('finished_unaligned'),
      ...optional('failureReason', a.enumValue('failure_reason', failureReasons, false), undefined),
      ...optional('failureDetail', a.string('failure_detail'), ''),
    }),
  );
  return {
    id: r.u64('id'),
    planId: r.string('plan_id'),
    tenant: r.string('tenant'),
    levelRequested: r.enumValue('level_requested', consistencyLevels, true) ?? 'none',
    ...optional('levelAchieved', r.enumValue('level_achieved', consistencyLevels, false), undefined),
    state: r.enumValue('state', checkpointStates, true) ?? 'pending',
    ...optional('failureReason', r.enumValue('failure_reason', failureReasons, false), undefined),
    ...optional('failureDetail', r.string('failure_detail'), ''),
    epoch: r.u64('epoch'),
    options: {
      timeoutMs: durOf(o, 'timeout'),
      alignmentMode: o.enumValue('alignment_mode', alignmentModes, false) ?? 'aligned',
      alignmentTimeoutMs: durOf(o, 'alignment_timeout'),
      fallbackPolicy: o.enumValue('fallback_policy', fallbackPolicies, false) ?? 'fail',
      freezeDeadlineMs: durOf(o, 'freeze_deadline'),
      maxConcurrent: o.u32('max_concurrent') || 1,
    },
    ...optional('idempotencyKey', r.string('idempotency_key'), ''),
    createdAtUnixMs: (timeOf(r, 'created_at') ?? 0),
    ...optional('finishedAtUnixMs', (timeOf(r, 'finished_at') ?? 0), 0),
    stats: {
      acked: s.u32('acked'),
      total: s.u32('total'),
      ...optional('triggeredAtUnixMs', (timeOf(s, 'triggered_at') ?? 0), 0),
      ...optional('lastAckAtUnixMs', (timeOf(s, 'last_ack_at') ?? 0), 0),
      durationMs: durOf(s, 'duration'),
      sizeBytes: s.u64('size_bytes'),
      channelStateBytes: s.u64('channel_state_bytes'),
      apps,
    },
    volumes: r.messages('volumes').map((v) => ({
      volumeId: v.string('volume_id'),
      server: v.string('server'),
      snapshotRef: v.string('snapshot_ref'),
      frozenAtUnixMs: (timeOf(v, 'frozen_at') ?? 0),
      snapshotAtUnixMs: (timeOf(v, 'snapshot_at') ?? 0),
      thawedAtUnixMs: (timeOf(v, 'thawed_at') ?? 0),
    })),
    safety: r.bool('safety'),
    ...optional('fallbackReason', r.string('fallback_reason'), ''),
    ...(r.bool('pinned') ? { pinned: true } : {}),
    ...copiesOf(r),
    servers: r.messages('servers').map((f) => ({
      server: f.string('server'),
      ...optional('frozenAtUnixMs', (timeOf(f, 'frozen_at') ?? 0), 0),
      ...optional('thawedAtUnixMs', (timeOf(f, 'thawed_at') ?? 0), 0),
      ...optional('agentFrozenAtUnixMs', (timeOf(f, 'agent_frozen_at') ?? 0), 0),
      ...optional('agentThawedAtUnixMs', (timeOf(f, 'agent_thawed_at') ?? 0), 0),
      ...(f.bool('by_watchdog') ? { byWatchdog: true } : {}),
      hooks: f.messages('hooks').map((h) => {
        const signal = h.string('signal');
        const app = h.string('app');
        return {
          hook: h.string('hook'),
          action: h.string('action') as HookAction,
          exitCode: h.i32('exit_code'),
          ...(signal !== '' ? { signal } : {}),
          timedOut: h.bool('timed_out'),
          durationMs: durOf(h, 'duration'),
          stderr: h.string('stderr'),
          attempts: h.u32('attempts'),
          ...(app !== '' ? { app } : {}),
        };
      }),
    })),
  };
}

/** The copies and import source of a Checkpoint message, left out when empty (as checkpointView does). */
function copiesOf(r: ProtoReader): Pick<CheckpointView, 'copies' | 'importedFrom'> {
  const copies = r.messages('copies').map(checkpointCopyFromProto);
  const from = r.message('imported_from');
  return {
    ...(copies.length > 0 ? { copies } : {}),
    ...(from !== undefined
      ? { importedFrom: { site: from.string('site'), sourceSite: from.string('source_site'), sourceCheckpointId: from.u64('source_checkpoint_id'), copiedAtUnixMs: timeOf(from, 'copied_at') ?? 0 } }
      : {}),
  };
}

export function checkpointFromProto(message: unknown): Result<CheckpointView> {
  const r = ProtoReader.of(message, 'checkpoint', 'internal');
  const view = readCheckpoint(r);
  return done(r, view);
}

export interface ProgressView {
  readonly kind: ProgressKind;
  readonly atUnixMs: number;
  readonly server?: string;
  readonly app?: string;
  readonly detail?: string;
  readonly checkpoint: CheckpointView;
}

export function progressView(event: ProgressEvent): ProgressView {
  return {
    kind: event.kind,
    atUnixMs: event.atUnixMs,
    ...optional('server', event.server, ''),
    ...optional('app', event.app, ''),
    ...optional('detail', event.detail, ''),
    checkpoint: checkpointView(event.checkpoint),
  };
}

export function progressFromProto(message: unknown): Result<ProgressView> {
  const r = ProtoReader.of(message, 'progress', 'internal');
  const view: ProgressView = {
    kind: r.enumValue('kind', progressKinds, true) ?? 'state-changed',
    atUnixMs: (timeOf(r, 'at') ?? 0),
    ...optional('server', r.string('server'), ''),
    ...optional('app', r.string('app'), ''),
    ...optional('detail', r.string('detail'), ''),
    checkpoint: readCheckpoint(r.required('checkpoint')),
  };
  return done(r, view);
}

export function agentFromProto(message: unknown): Result<AgentInfo> {
  const r = ProtoReader.of(message, 'agent', 'internal');
  const agent: AgentInfo = {
    tenant: r.string('tenant'),
    server: r.string('server'),
    apps: r.list('apps').filter((a): a is string => typeof a === 'string'),
    version: r.string('version'),
    status: r.enumValue('status', agentStatuses, true) ?? 'offline',
    registeredAtUnixMs: (timeOf(r, 'registered_at') ?? 0),
    lastHeartbeatAtUnixMs: (timeOf(r, 'last_heartbeat_at') ?? 0),
    frozen: r.bool('frozen'),
  };
  return done(r, agent);
}

export function verifyReportFromProto(message: unknown): Result<VerifyReport> {
  const r = ProtoReader.of(message, 'verify', 'internal');
  const report: VerifyReport = { ok: r.bool('ok'), problems: r.messages('problems').map((p) => ({ part: p.string('part'), detail: p.string('detail') })) };
  return done(r, report);
}
