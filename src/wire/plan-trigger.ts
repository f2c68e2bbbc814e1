/**
 * PlanTrigger (coordinator -> the plan's agents, once per checkpoint): proto fields <-> `PlanTrigger`.
 * `readPlanTrigger` validates, for the decoder and the encoder alike, as `readControl` does.
 */
import { completedField, policyEncodeProblem, policyFields, readPolicy } from './control.js';
import type { FieldReader, Fields } from './fields.js';
import type { PlanTrigger, ServerTrigger } from './types.js';

function readServer(reader: FieldReader, value: unknown, field: string): ServerTrigger {
  const s = reader.message(value, field);
  const apps = reader.names(s.apps, `${field}.apps`);
  if (apps.length === 0) reader.fail(`${field}.apps`, 'must name at least one app');
  const initiatorApps = reader.names(s.initiator_apps, `${field}.initiator_apps`);
  const outside = initiatorApps.find((a) => !apps.includes(a));
  if (outside !== undefined) reader.fail(`${field}.initiator_apps`, `names ${outside}, which is not one of the server's apps`);
  return {
    server: reader.name(s.server, `${field}.server`),
    apps,
    initiatorApps,
    backEdgeChannels: reader.list(s.back_edge_channels, `${field}.back_edge_channels`).map((c, i) => reader.channel(c, `${field}.back_edge_channels[${i}]`)),
  };
}

export function readPlanTrigger(reader: FieldReader, message: Fields): PlanTrigger {
  const checkpointId = reader.positive(message.checkpoint_id, 'checkpoint_id');
  const servers = reader.list(message.servers, 'servers').map((s, i) => readServer(reader, s, `servers[${i}]`));
  if (servers.length === 0) reader.fail('servers', 'must name at least one server');
  reader.unique(
    servers.map((s) => s.server),
    'servers',
  );
  return Object.assign(
    {
      requestId: reader.requestId(message.request_id, 'request_id'),
      tenant: reader.name(message.tenant, 'tenant'),
      plan: reader.name(message.plan, 'plan'),
      epoch: reader.uint(message.epoch, 'epoch'),
      checkpointId,
      policy: readPolicy(reader, message, ''),
      timeoutMs: reader.positive(message.timeout_ms, 'timeout_ms', 32),
      inlineStateBytesMax: reader.uint32(message.inline_state_bytes_max, 'inline_state_bytes_max'),
      servers,
    },
    completedField(reader.uint(message.completed_checkpoint_id, 'completed_checkpoint_id'), checkpointId, reader, 'completed_checkpoint_id'),
  );
}

/** The proto fields for `t`; not validated here (the encoder runs `readPlanTrigger` on them). */
export function planTriggerFields(t: PlanTrigger): Fields {
  return Object.assign(policyFields(t.policy), {
    request_id: t.requestId,
    tenant: t.tenant,
    plan: t.plan,
    epoch: t.epoch === 0 ? undefined : t.epoch,
    checkpoint_id: t.checkpointId,
    timeout_ms: t.timeoutMs,
    inline_state_bytes_max: t.inlineStateBytesMax || undefined,
    completed_checkpoint_id: t.completedCheckpointId,
    servers: t.servers.map((s) => ({ server: s.server, apps: s.apps, initiator_apps: s.initiatorApps, back_edge_channels: s.backEdgeChannels })),
  });
}

export function planTriggerEncodeProblem(t: PlanTrigger): { field: string; message: string } | undefined {
  return policyEncodeProblem(t.policy, '');
}
