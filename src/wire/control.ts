/**
 * Control (coordinator -> agent): proto fields <-> `Control`. `readControl` validates; it serves
 * both the decoder (on a decoded message) and the encoder (on the fields it is about to write).
 */
import type { PolicyConfig } from '../core/types.js';
import { appStateFields, channelCountFields, type FieldReader, type Fields, objectRefFields, wireFormat } from './fields.js';
import { oneofCase } from './oneof.js';
import { policyTable, type WirePolicyKind } from './schema.js';
import type { AppRestore, Control, ControlHeader, ControlType } from './types.js';

/** The oneof's members, in .proto order; the TypeScript `type` of each is the member's name. */
export const controlTypes: readonly ControlType[] = [
  'trigger',
  'abort',
  'complete',
  'freeze',
  'thaw',
  'restore',
  'resume',
  'ping',
  'quiesce',
  'capture',
  'hello',
];

/** The policy fields of a Trigger or a PlanTrigger (`prefix`: where they sit, for error paths). */
export function readPolicy(reader: FieldReader, trigger: Fields, prefix = 'trigger.'): PolicyConfig {
  const kind = reader.enumValue(trigger.policy, `${prefix}policy`, policyTable.byNumber);
  const alignmentTimeoutMs = reader.uint32(trigger.alignment_timeout_ms, `${prefix}alignment_timeout_ms`);
  if (kind === undefined) return { kind: 'none' };
  if (kind === 'aligned') {
    return alignmentTimeoutMs > 0 ? { kind: 'aligned-timeout', alignmentTimeoutMs } : { kind: 'aligned' };
  }
  if (alignmentTimeoutMs > 0) reader.fail(`${prefix}alignment_timeout_ms`, 'is only allowed with POLICY_ALIGNED');
  return { kind };
}

function readAliases(reader: FieldReader, value: unknown, field: string): Record<string, string> {
  const aliases: Record<string, string> = {};
  reader.list(value, field).forEach((item, i) => {
    const alias = reader.message(item, `${field}[${i}]`);
    const recorded = reader.channel(alias.recorded, `${field}[${i}].recorded`);
    const current = reader.channel(alias.current, `${field}[${i}].current`);
    if (recorded === '') return;
    if (Object.hasOwn(aliases, recorded)) reader.fail(`${field}[${i}].recorded`, `repeats ${recorded}`);
    aliases[recorded] = current;
  });
  return aliases;
}

function readAppRestore(reader: FieldReader, value: unknown, field: string): AppRestore {
  const app = reader.message(value, field);
  const channelState = reader.optionalMessage(app.channel_state, `${field}.channel_state`);
  return {
    app: reader.name(app.app, `${field}.app`),
    state: reader.appState(app, field),
    ...(channelState === undefined ? {} : { channelState: reader.objectRef(channelState, `${field}.channel_state`) }),
    counts: {
      sent: reader.channelCounts(app.sent, `${field}.sent`),
      received: reader.channelCounts(app.received, `${field}.received`),
    },
    channelAliases: readAliases(reader, app.channel_aliases, `${field}.channel_aliases`),
  };
}

export function readControl(reader: FieldReader, message: Fields): Control {
  const header: ControlHeader = {
    requestId: reader.requestId(message.request_id, 'request_id'),
    tenant: reader.name(message.tenant, 'tenant'),
    server: reader.name(message.server, 'server'),
    plan: reader.optionalName(message.plan, 'plan') ?? '',
    epoch: reader.uint(message.epoch, 'epoch'),
  };
  // Each case adds its fields to the header with Object.assign: `{ ...header, type, ... }` takes a
  // slow path on Node 20 (a spread followed by more properties, about 2 µs) on every message.
  const type = oneofCase(reader, message, 'command', controlTypes);
  if (type === undefined || type === 'ping' || type === 'hello') {
    if (header.plan !== '') reader.fail('plan', `must be empty for ${type ?? 'ping'}`);
  }
  if (type === undefined) return Object.assign(header, { type: 'ping' as const });
  if (type !== 'ping' && type !== 'hello' && header.plan === '') reader.fail('plan', 'is required for every command but ping and hello');
  if (type === 'ping' || type === 'hello') {
    // Ping and hello are about no checkpoint; a non-zero id means the sender confused its commands.
    if (reader.uint(message.checkpoint_id, 'checkpoint_id') !== 0) reader.fail('checkpoint_id', `must be 0 for ${type}`);
    return Object.assign(header, { type });
  }
  const checkpointId = reader.positive(message.checkpoint_id, 'checkpoint_id');
  const body = reader.message(message[type], type);
  switch (type) {
    case 'trigger': {
      const apps = reader.names(body.apps, 'trigger.apps');
      return Object.assign(header, {
        type,
        checkpointId,
        policy: readPolicy(reader, body),
        timeoutMs: reader.positive(body.timeout_ms, 'trigger.timeout_ms', 32),
        initiatorApps: reader.names(body.initiator_apps, 'trigger.initiator_apps'),
        backEdgeChannels: reader.list(body.back_edge_channels, 'trigger.back_edge_channels').map((c, i) =>
          reader.channel(c, `trigger.back_edge_channels[${i}]`),
        ),
        inlineStateBytesMax: reader.uint32(body.inline_state_bytes_max, 'trigger.inline_state_bytes_max'),
        ...completedField(reader.uint(body.completed_checkpoint_id, 'trigger.completed_checkpoint_id'), checkpointId, reader, 'trigger.completed_checkpoint_id'),
        ...(apps.length > 0 ? { apps } : {}),
        ...optionalLayout(reader.optionalRequestId(body.layout, 'trigger.layout')),
      });
    }
    case 'abort':
      return Object.assign(header, { type, checkpointId, reason: reader.text(body.reason, 'abort.reason', wireFormat.detailCharsMax) });
    case 'freeze':
      return Object.assign(header, { type, checkpointId, deadlineMs: reader.positive(body.deadline_ms, 'freeze.deadline_ms', 32) });
    case 'restore': {
      const apps = reader.list(body.apps, 'restore.apps').map((app, i) => readAppRestore(reader, app, `restore.apps[${i}]`));
      if (apps.length === 0) reader.fail('restore.apps', 'must name at least one app');
      reader.unique(
        apps.map((app) => app.app),
        'restore.apps',
      );
      return Object.assign(header, { type, checkpointId, apps });
    }
    case 'thaw':
      return Object.assign(header, { type, checkpointId, afterRestore: reader.bool(body.after_restore, 'thaw.after_restore') });
    case 'complete':
      return Object.assign(header, { type, checkpointId });
    case 'resume': {
      const apps = reader.names(body.apps, 'resume.apps');
      reader.unique(apps, 'resume.apps');
      return Object.assign(header, { type, checkpointId, apps });
    }
    case 'quiesce': {
      const apps = reader.names(body.apps, 'quiesce.apps');
      if (apps.length === 0) reader.fail('quiesce.apps', 'must name at least one app');
      reader.unique(apps, 'quiesce.apps');
      return Object.assign(header, { type, checkpointId, apps, drainTo: reader.channelCounts(body.drain_to, 'quiesce.drain_to') });
    }
    case 'capture': {
      const apps = reader.names(body.apps, 'capture.apps');
      if (apps.length === 0) reader.fail('capture.apps', 'must name at least one app');
      reader.unique(apps, 'capture.apps');
      return Object.assign(header, { type, checkpointId, apps });
    }
  }
}

function optionalLayout(layout: string | undefined): { layout?: string } {
  return layout === undefined ? {} : { layout };
}

/** A trigger's completed_checkpoint_id: absent when 0; an earlier checkpoint than the one triggered. */
export function completedField(completed: number, checkpointId: number, reader: FieldReader, field: string): { completedCheckpointId?: number } {
  if (completed === 0) return {};
  if (completed >= checkpointId) reader.fail(field, `must be below the checkpoint triggered (${checkpointId}), got ${completed}`);
  return { completedCheckpointId: completed };
}

export function policyFields(policy: PolicyConfig): Fields {
  const kind: WirePolicyKind = policy.kind === 'aligned-timeout' ? 'aligned' : policy.kind;
  return {
    policy: policyTable.byName.get(kind),
    alignment_timeout_ms: policy.kind === 'aligned-timeout' ? policy.alignmentTimeoutMs : undefined,
  };
}

function commandFields(control: Control): Fields {
  switch (control.type) {
    case 'trigger':
      return Object.assign(policyFields(control.policy), {
        timeout_ms: control.timeoutMs,
        initiator_apps: control.initiatorApps,
        back_edge_channels: control.backEdgeChannels,
        inline_state_bytes_max: control.inlineStateBytesMax || undefined,
        completed_checkpoint_id: control.completedCheckpointId,
        apps: control.apps !== undefined && control.apps.length > 0 ? control.apps : undefined,
        layout: control.layout,
      });
    case 'abort':
      return { reason: control.reason };
    case 'freeze':
      return { deadline_ms: control.deadlineMs };
    case 'restore':
      return {
        apps: control.apps.map((app) => ({
          app: app.app,
          ...appStateFields(app.state),
          channel_state: app.channelState === undefined ? undefined : objectRefFields(app.channelState),
          sent: channelCountFields(app.counts.sent),
          received: channelCountFields(app.counts.received),
          channel_aliases: Object.entries(app.channelAliases).map(([recorded, current]) => ({ recorded, current })),
        })),
      };
    case 'thaw':
      return { after_restore: control.afterRestore || undefined };
    case 'resume':
      return { apps: control.apps };
    case 'quiesce':
      return { apps: control.apps, drain_to: channelCountFields(control.drainTo) };
    case 'capture':
      return { apps: control.apps };
    case 'complete':
    case 'ping':
    case 'hello':
      return {};
  }
}

/** The proto fields for `control`; not validated here (the encoder runs `readControl` on them). */
export function controlFields(control: Control): Fields {
  return {
    request_id: control.requestId,
    tenant: control.tenant,
    server: control.server,
    plan: control.plan === '' ? undefined : control.plan,
    checkpoint_id: control.type === 'ping' || control.type === 'hello' ? undefined : control.checkpointId,
    epoch: control.epoch === 0 ? undefined : control.epoch,
    [control.type]: commandFields(control),
  };
}

/** What the proto fields cannot express and so `readControl` cannot see: checked before encoding. */
export function controlEncodeProblem(control: Control): { field: string; message: string } | undefined {
  if (control.type === 'trigger') return policyEncodeProblem(control.policy, 'trigger.');
  return undefined;
}

/** An aligned-timeout policy whose timeout would travel as plain aligned. */
export function policyEncodeProblem(policy: PolicyConfig, prefix: string): { field: string; message: string } | undefined {
  if (policy.kind === 'aligned-timeout' && !(policy.alignmentTimeoutMs > 0)) {
    return {
      field: `${prefix}alignment_timeout_ms`,
      message: 'must be positive for policy aligned-timeout (0 would travel as plain aligned)',
    };
  }
  return undefined;
}
