/**
 * PlanTrigger (coordinator -> the plan's agents, once per checkpoint): proto fields <-> `PlanTrigger`.
 * `readPlanTrigger` validates, for the decoder and the encoder alike, as `readControl` does.
 */
import { completedField, policyEncodeProblem, policyFields, readPolicy } from './control.js';
import type { FieldReader, Fields } from './fields.js';
import type { PlanTrigger } from './types.js';

export function readPlanTrigger(reader: FieldReader, message: Fields): PlanTrigger {
  const checkpointId = reader.positive(message.checkpoint_id, 'checkpoint_id');
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
      layout: reader.requestId(message.layout, 'layout'),
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
    layout: t.layout,
  });
}

export function planTriggerEncodeProblem(t: PlanTrigger): { field: string; message: string } | undefined {
  return policyEncodeProblem(t.policy, '');
}
