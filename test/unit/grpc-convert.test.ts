/**
 * Proto <-> model conversion, through the real protobuf encoding with the server's proto-loader
 * options (so 64-bit fields really arrive as strings and enums as names): every message the API
 * sends comes back as the same value, and every request a client builds is read back unchanged.
 */
import { copyCheckpointRequestFromProto, listCopiesRequestFromProto } from '../../coordinator/grpc/convert-sites.js';
import { describe, expect, it } from 'vitest';
import type { RestoreRequest, TakeSnapshotRequest } from '../../coordinator/api.js';
import { checkpointView } from '../../coordinator/checkpoint-view.js';
import type { AgentInfo, CheckpointRecord, Plan, ProgressEvent } from '../../coordinator/model.js';
import {
  agentFromProto,
  agentToProto,
  checkpointFromProto,
  checkpointToProto,
  listCheckpointsRequestFromProto,
  listCheckpointsRequestToProto,
  planFromProto,
  planInputToProto,
  planToProto,
  progressFromProto,
  progressToProto,
  progressView,
  registerPlanRequestFromProto,
  requestLimitsDefault,
  restoreRequestFromProto,
  restoreRequestToProto,
  takeSnapshotRequestFromProto,
  takeSnapshotRequestToProto,
  verifyReportFromProto,
  verifyReportToProto,
  checkpointIdRequestFromProto,
} from '../../coordinator/grpc/convert.js';
import { coordinatorGrpc } from '../../coordinator/grpc/descriptor.js';
import { ALL_ENUM_TABLES } from '../../coordinator/grpc/enums.js';
import { coordinatorDescriptor } from '../../src/wire/generated/coordinator-descriptor.js';
import { checkpointRecord, planInput } from '../support/coordinator-fixtures.js';

interface MethodDef {
  requestSerialize(value: unknown): Buffer;
  requestDeserialize(bytes: Buffer): Record<string, unknown>;
  responseSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): Record<string, unknown>;
}

function method(name: string): MethodDef {
  return coordinatorGrpc().service[name] as unknown as MethodDef;
}

/** A response as the server encodes it and a client decodes it. */
function overTheWire(methodName: string, response: unknown): Record<string, unknown> {
  const m = method(methodName);
  return m.responseDeserialize(m.responseSerialize(response));
}

/** A request as a client encodes it and the server decodes it. */
function requestOverTheWire(methodName: string, request: unknown): Record<string, unknown> {
  const m = method(methodName);
  return m.requestDeserialize(m.requestSerialize(request));
}

const fullRecord: CheckpointRecord = checkpointRecord({
  id: 9_007_199_254_740_991,
  levelRequested: 'app',
  levelAchieved: 'crash',
  state: 'completed',
  failureDetail: 'downgraded: srv2/APP2 declined',
  epoch: 7,
  options: { timeoutMs: 90_000, alignmentMode: 'aligned', alignmentTimeoutMs: 250, fallbackPolicy: 'downgrade', freezeDeadlineMs: 10_000 },
  idempotencyKey: 'karbor-op-1',
  triggeredAtUnixMs: 1_700_000_000_100,
  finishedAtUnixMs: 1_700_000_000_900,
  parts: [
    {
      server: 'srv1',
      app: 'APP1',
      acked: true,
      ackedAtUnixMs: 1_700_000_000_500,
      state: { name: 'cp/demo/1/srv1/APP1/state', digest: 'SHA-256=a', sizeBytes: 1_000 },
      channelState: { name: 'cp/demo/1/srv1/APP1/channels', digest: 'SHA-256=b', sizeBytes: 24 },
      counts: { sent: { 'srv1/APP1->srv2/APP2': 3 }, received: {} },
      startDelayMs: 0,
      alignmentMs: 12,
      syncMs: 3,
      asyncMs: 40,
      finishedUnaligned: true,
    },
    { server: 'srv2', app: 'APP2', acked: false, failureReason: 'hook-failed', failureDetail: 'exit 1: disk full' },
  ],
  volumes: [{ volumeId: 'vol1', server: 'srv1', snapshotRef: 'pool/vol1@cp1', frozenAtUnixMs: 1, snapshotAtUnixMs: 2, thawedAtUnixMs: 3 }],
  // Not carried by the proto (yet): must not break the round trip.
  servers: [{ server: 'srv1', frozenAtUnixMs: 1, thawedAtUnixMs: 3, hooks: [] }],
  fallbackReason: 'srv2/APP2 declined',
  safety: true,
  copies: [
    { site: 'dr', state: 'copied', copiedAtUnixMs: 1_700_000_001_900, lagMs: 1_000 },
    { site: 'far', state: 'failed', failedAtUnixMs: 1_700_000_002_000, detail: 'site far (nats://far:4222) cannot be reached: TIMEOUT' },
  ],
  importedFrom: { site: 'dr', sourceSite: 'primary', sourceCheckpointId: 42, copiedAtUnixMs: 1_700_000_000_950 },
});

describe('proto enums', () => {
  it('every proto enum value but UNSPECIFIED has exactly one model value, by name and by number', () => {
    const nested = coordinatorDescriptor.nested.snapshot.nested.v1.nested as Record<string, { values?: Record<string, number> }>;
    for (const table of ALL_ENUM_TABLES) {
      const values = nested[table.name]?.values ?? {};
      const names = Object.keys(values).filter((n) => n !== table.unspecified);
      expect([...table.protoNames].sort(), table.name).toEqual(names.sort());
      for (const m of table.values) {
        expect(table.fromProto(table.toProto(m))).toBe(m);
        expect(table.fromProto(values[table.toProto(m)] ?? -1)).toBe(m);
      }
      expect(table.fromProto(table.unspecified)).toBeUndefined();
      expect(table.fromProto(0)).toBeUndefined();
      expect(table.fromProto(999)).toBeUndefined();
    }
  });
});

describe('responses round-trip through the wire', () => {
  it('a plan comes back equal, 64-bit revision, times, copy sites and a log channel included', () => {
    const base = planInput();
    const [first, ...rest] = base.channels;
    if (first === undefined) throw new Error('the fixture plan has no channel');
    const channels = [{ ...first, kind: 'log' as const, logStream: 'ORDERS', logSubject: 'ORDERS.a.b' }, ...rest];
    const plan: Plan = { ...base, channels, copyToSites: ['dr', 'far'], revision: 123_456_789_012, createdAtUnixMs: 1_700_000_000_000, updatedAtUnixMs: 1_700_000_000_001 };
    const wire = overTheWire('GetPlan', { plan: planToProto(plan) });
    expect(typeof (wire.plan as Record<string, unknown>).revision).toBe('string');
    expect(planFromProto(wire.plan)).toEqual({ ok: true, value: plan });
  });

  it('a checkpoint with every field set comes back as its view (stats computed from the parts)', () => {
    const wire = overTheWire('GetCheckpoint', { checkpoint: checkpointToProto(fullRecord) });
    const back = checkpointFromProto(wire.checkpoint);
    expect(back).toEqual({ ok: true, value: checkpointView(fullRecord) });
    expect(back.ok && back.value.stats).toMatchObject({ acked: 1, total: 2, durationMs: 800, sizeBytes: 1_024, channelStateBytes: 24, lastAckAtUnixMs: 1_700_000_000_500 });
  });

  it('a fresh pending checkpoint with nothing optional set comes back equal', () => {
    const record = checkpointRecord({ id: 5 });
    const wire = overTheWire('TakeSnapshot', { checkpoint_id: 5, checkpoint: checkpointToProto(record) });
    expect(wire.checkpoint_id).toBe('5');
    expect(checkpointFromProto(wire.checkpoint)).toEqual({ ok: true, value: checkpointView(record) });
  });

  it('a progress event comes back equal', () => {
    const event: ProgressEvent = { kind: 'app-declined', atUnixMs: 1_700_000_000_123, server: 'srv2', app: 'APP2', detail: 'hook-failed', checkpoint: fullRecord };
    const m = method('WatchCheckpoint');
    const wire = m.responseDeserialize(m.responseSerialize(progressToProto(event)));
    expect(progressFromProto(wire)).toEqual({ ok: true, value: progressView(event) });
  });

  it('an agent and a verify report come back equal', () => {
    const agent: AgentInfo = { tenant: 'acme', server: 'srv1', apps: ['APP1', 'APP2'], version: '1.0.0', status: 'late', registeredAtUnixMs: 1, lastHeartbeatAtUnixMs: 2, frozen: true };
    const agents = overTheWire('ListAgents', { agents: [agentToProto(agent)] }).agents as unknown[];
    expect(agentFromProto(agents[0])).toEqual({ ok: true, value: agent });
    const report = { ok: false, problems: [{ part: 'srv1/APP1 state', detail: 'digest mismatch' }] };
    expect(verifyReportFromProto(overTheWire('VerifyCheckpoint', verifyReportToProto(report)))).toEqual({ ok: true, value: report });
  });
});

describe('requests round-trip through the wire', () => {
  it('RegisterPlan: the plan input and expected revision come back equal', () => {
    const plan = planInput();
    const wire = requestOverTheWire('RegisterPlan', { plan: planInputToProto(plan), expected_revision: 42 });
    expect(registerPlanRequestFromProto(wire)).toEqual({ ok: true, value: { plan, expectedRevision: 42 } });
  });

  it('RegisterPlan: servers without an agent come back equal, the guest agent only where set', () => {
    const base = planInput();
    const plan = {
      ...base,
      servers: [...base.servers, 'vm1', 'vm2'],
      volumes: [...base.volumes, { id: 'vm1-sys', server: 'vm1', backendRef: 'sys' }, { id: 'vm2-sys', server: 'vm2', backendRef: 'sys' }],
      agentlessServers: [
        { server: 'vm1', backendRef: '/run/vm1.qmp' },
        { server: 'vm2', backendRef: '/run/vm2.qmp', guestAgentRef: '/run/vm2.qga' },
      ],
    };
    const wire = requestOverTheWire('RegisterPlan', { plan: planInputToProto(plan), expected_revision: 0 });
    expect(registerPlanRequestFromProto(wire)).toEqual({ ok: true, value: { plan, expectedRevision: 0 } });
  });

  it('TakeSnapshot with every option set comes back equal', () => {
    const request: TakeSnapshotRequest = {
      planId: 'demo',
      level: 'app',
      options: { timeoutMs: 5_000, alignmentMode: 'aligned', alignmentTimeoutMs: 100, fallbackPolicy: 'downgrade', freezeDeadlineMs: 2_000 },
      idempotencyKey: 'op-7',
    };
    const wire = requestOverTheWire('TakeSnapshot', takeSnapshotRequestToProto(request));
    expect(takeSnapshotRequestFromProto(wire, requestLimitsDefault)).toEqual({ ok: true, value: request });
  });

  it('TakeSnapshot with UNSPECIFIED enums and zero durations leaves them to the coordinator, except alignment timeout 0 (never)', () => {
    const wire = requestOverTheWire('TakeSnapshot', takeSnapshotRequestToProto({ planId: 'demo', level: 'crash', options: {} }));
    expect(takeSnapshotRequestFromProto(wire, requestLimitsDefault)).toEqual({ ok: true, value: { planId: 'demo', level: 'crash', options: { alignmentTimeoutMs: 0 } } });
  });

  it('TakeSnapshot without options leaves every option to the coordinator', () => {
    const wire = requestOverTheWire('TakeSnapshot', { plan_id: 'demo', level: 'CONSISTENCY_LEVEL_NONE' });
    expect(takeSnapshotRequestFromProto(wire, requestLimitsDefault)).toEqual({ ok: true, value: { planId: 'demo', level: 'none', options: {} } });
  });

  it('ListCheckpoints with a state filter comes back equal', () => {
    const args = { filter: { planId: 'demo', states: ['completed', 'aborted'] as const }, pageSize: 20, pageToken: 'tok' };
    const wire = requestOverTheWire('ListCheckpoints', listCheckpointsRequestToProto({ ...args, filter: { ...args.filter, states: [...args.filter.states] } }));
    expect(listCheckpointsRequestFromProto(wire, requestLimitsDefault)).toEqual({ ok: true, value: { ...args, filter: { planId: 'demo', states: ['completed', 'aborted'] } } });
  });

  it('RestoreSnapshot mappings come back equal', () => {
    const request: RestoreRequest = {
      checkpointId: 12,
      servers: { srv1: 'new1', srv2: 'new2' },
      apps: [{ source: { server: 'srv3', app: 'APP3' }, target: { server: 'new3', app: 'APP3b' } }],
      idempotencyKey: 'restore-1',
    };
    const wire = requestOverTheWire('RestoreSnapshot', restoreRequestToProto(request));
    expect(restoreRequestFromProto(wire, requestLimitsDefault)).toEqual({ ok: true, value: { request } });
    const fromSite = requestOverTheWire('RestoreSnapshot', restoreRequestToProto(request, { site: 'dr', sourceSite: 'primary' }));
    expect(restoreRequestFromProto(fromSite, requestLimitsDefault)).toEqual({ ok: true, value: { request, fromSite: { site: 'dr', sourceSite: 'primary' } } });
  });

  it('RestoreSnapshot: source_site without from_site, and a malformed site name, are INVALID_ARGUMENT naming the field', () => {
    const base = restoreRequestToProto({ checkpointId: 12, servers: { srv1: 'new1' }, apps: [] });
    const alone = restoreRequestFromProto(requestOverTheWire('RestoreSnapshot', { ...base, source_site: 'primary' }), requestLimitsDefault);
    expect(alone.ok ? 'accepted' : alone.error).toMatchObject({ kind: 'invalid-argument', field: 'source_site', message: expect.stringMatching(/source_site applies only with from_site/) });
    const bad = restoreRequestFromProto(requestOverTheWire('RestoreSnapshot', { ...base, from_site: 'dr site' }), requestLimitsDefault);
    expect(bad.ok ? 'accepted' : bad.error).toMatchObject({ kind: 'invalid-argument', field: 'from_site' });
  });

  it('CopyCheckpoint needs a site; ListCheckpointCopies takes an optional plan', () => {
    expect(copyCheckpointRequestFromProto(requestOverTheWire('CopyCheckpoint', { checkpoint_id: 7, site: 'dr' }))).toEqual({ ok: true, value: { checkpointId: 7, site: 'dr' } });
    const noSite = copyCheckpointRequestFromProto(requestOverTheWire('CopyCheckpoint', { checkpoint_id: 7 }));
    expect(noSite.ok ? 'accepted' : noSite.error).toMatchObject({ kind: 'invalid-argument', field: 'site', message: expect.stringMatching(/site is required/) });
    expect(listCopiesRequestFromProto(requestOverTheWire('ListCheckpointCopies', { site: 'dr' }))).toEqual({ ok: true, value: { site: 'dr' } });
    expect(listCopiesRequestFromProto(requestOverTheWire('ListCheckpointCopies', { site: 'dr', plan_id: 'demo' }))).toEqual({ ok: true, value: { site: 'dr', planId: 'demo' } });
  });
});

describe('64-bit ids and unknown enum values', () => {
  it('the largest safe id is accepted and the next one is refused, not rounded', () => {
    expect(checkpointIdRequestFromProto(requestOverTheWire('GetCheckpoint', { checkpoint_id: '9007199254740991' }))).toEqual({ ok: true, value: 9_007_199_254_740_991 });
    const over = checkpointIdRequestFromProto(requestOverTheWire('GetCheckpoint', { checkpoint_id: '9007199254740992' }));
    expect(over.ok ? '' : over.error.message).toMatch(/checkpoint_id: 9007199254740992 is beyond the largest integer handled exactly/);
  });

  it('an enum number the coordinator does not know is refused with the accepted names', () => {
    const wire = requestOverTheWire('TakeSnapshot', { plan_id: 'demo', level: 7, options: { fallback_policy: 9 } });
    expect(wire.level).toBe(7);
    const result = takeSnapshotRequestFromProto(wire, requestLimitsDefault);
    expect(result.ok ? '' : result.error).toEqual({
      kind: 'invalid-argument',
      field: 'level',
      message: 'level: unknown ConsistencyLevel value 7; expected one of CONSISTENCY_LEVEL_NONE, CONSISTENCY_LEVEL_CRASH, CONSISTENCY_LEVEL_APP',
    });
  });

  it('a channel without a kind is refused: CHANNEL_KIND_UNSPECIFIED has no default', () => {
    const plan = planInputToProto(planInput());
    const channels = plan.channels.map((c, i) => (i === 1 ? { ...c, kind: 'CHANNEL_KIND_UNSPECIFIED' } : c));
    const result = registerPlanRequestFromProto(requestOverTheWire('RegisterPlan', { plan: { ...plan, channels } }));
    expect(result.ok ? '' : result.error.message).toBe('plan.channels[1].kind is required: one of CHANNEL_KIND_IN_BAND, CHANNEL_KIND_LOG, CHANNEL_KIND_OPAQUE');
  });

  it('an idempotency key longer than the limit is refused', () => {
    const result = takeSnapshotRequestFromProto({ plan_id: 'demo', level: 'CONSISTENCY_LEVEL_APP', idempotency_key: 'k'.repeat(129) }, requestLimitsDefault);
    expect(result.ok ? '' : result.error.message).toBe('idempotency_key is longer than 128 characters');
  });
});
