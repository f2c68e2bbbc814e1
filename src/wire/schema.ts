/**
 * The protobuf types of wire.proto, loaded once from the generated descriptor, and the enum tables
 * (./enum-table.ts) that turn proto enum numbers into the string unions of ./types.ts.
 */
import protobuf from 'protobufjs/light.js';
import { type EnumTable, enumTable } from './enum-table.js';
import { wireDescriptor } from './generated/wire-descriptor.js';
import type { ProgressPhase, WireDeclineReason } from './types.js';

const protoPackage = 'snapshot.v1';

const root = protobuf.Root.fromJSON(wireDescriptor);

function messageType(name: string): protobuf.Type {
  return root.lookupType(`${protoPackage}.${name}`);
}

export const controlType = messageType('Control');
export const agentEventType = messageType('AgentEvent');
export const envelopeType = messageType('Envelope');
export const creditType = messageType('Credit');
export const channelStateType = messageType('ChannelState');
export const planTriggerType = messageType('PlanTrigger');

function wireEnum<T extends string>(enumName: string, prefix: string, names: Readonly<Record<T, true>>): EnumTable<T> {
  return enumTable('wire schema', enumName, root.lookupEnum(`${protoPackage}.${enumName}`).values, prefix, names);
}

/** The proto Policy enum; `aligned-timeout` is `aligned` plus a timeout on the wire. */
export type WirePolicyKind = 'aligned' | 'unaligned' | 'sync' | 'none';

export const policyTable = wireEnum<WirePolicyKind>('Policy', 'POLICY', {
  aligned: true,
  unaligned: true,
  sync: true,
  none: true,
});

export const declineReasonTable = wireEnum<WireDeclineReason>('DeclineReason', 'DECLINE_REASON', {
  subsumed: true,
  'channel-failed': true,
  busy: true,
  'hook-failed': true,
  timeout: true,
  'store-failed': true,
  'unknown-app': true,
  'unknown-checkpoint': true,
  'stale-epoch': true,
  'restore-failed': true,
  'freeze-failed': true,
  internal: true,
});

export const progressPhaseTable = wireEnum<ProgressPhase>('ProgressPhase', 'PROGRESS_PHASE', {
  started: true,
  aligning: true,
  'snapshot-taken': true,
  uploading: true,
});
