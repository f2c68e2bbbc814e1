/**
 * The proto enums of coordinator.proto and the model's string unions, side by side, as tables of
 * src/wire/enum-table.ts (`in-band` <-> `CHANNEL_KIND_IN_BAND`): a value added on either side only
 * fails to compile or to load until the other side has it.
 */
import { type EnumTable, enumTable } from '../../src/wire/enum-table.js';
import { coordinatorDescriptor } from '../../src/wire/generated/coordinator-descriptor.js';
import type {
  AgentStatus,
  AlignmentMode,
  ChannelKind,
  CheckpointState,
  ConsistencyLevel,
  FailureReason,
  CheckpointCopy,
  FallbackPolicy,
  ProgressEvent,
} from '../model.js';

/** The table of one coordinator.proto enum, its numbers read from the generated descriptor. */
function table<M extends string>(name: string, prefix: string, all: Readonly<Record<M, true>>): EnumTable<M> {
  const nested = coordinatorDescriptor.nested.snapshot.nested.v1.nested as Record<string, { values?: Record<string, number> }>;
  const values = nested[name]?.values;
  if (values === undefined) throw new Error(`coordinator schema: enum ${name} is not in coordinator.proto`);
  return enumTable('coordinator schema', name, values, prefix, all);
}

export type ProgressKind = ProgressEvent['kind'];

export const consistencyLevels = table<ConsistencyLevel>('ConsistencyLevel', 'CONSISTENCY_LEVEL', { none: true, crash: true, app: true });
export const channelKinds = table<ChannelKind>('ChannelKind', 'CHANNEL_KIND', { 'in-band': true, log: true, opaque: true });
export const alignmentModes = table<AlignmentMode>('AlignmentMode', 'ALIGNMENT_MODE', { aligned: true, unaligned: true });
export const fallbackPolicies = table<FallbackPolicy>('FallbackPolicy', 'FALLBACK_POLICY', { fail: true, downgrade: true });
export const checkpointStates = table<CheckpointState>('CheckpointState', 'CHECKPOINT_STATE', {
  pending: true,
  triggering: true,
  collecting: true,
  held: true,
  committing: true,
  completed: true,
  aborting: true,
  aborted: true,
});
export const failureReasons = table<FailureReason>('FailureReason', 'FAILURE_REASON', {
  timeout: true,
  declined: true,
  'agent-unavailable': true,
  'channel-failed': true,
  subsumed: true,
  'store-failed': true,
  'freeze-failed': true,
  'volume-snapshot-failed': true,
  'hook-failed': true,
  'epoch-changed': true,
  cancelled: true,
  'too-many-failures': true,
  'coordinator-lost': true,
  internal: true,
});
export const progressKinds = table<ProgressKind>('ProgressKind', 'PROGRESS_KIND', {
  'state-changed': true,
  'app-progress': true,
  'app-acked': true,
  'app-declined': true,
  'server-frozen': true,
  'server-thawed': true,
  'volumes-snapshotted': true,
});
export const agentStatuses = table<AgentStatus>('AgentStatus', 'AGENT_STATUS', { online: true, late: true, offline: true });

export const copyStates = table<CheckpointCopy['state']>('CopyState', 'COPY_STATE', { copied: true, failed: true });

export const ALL_ENUM_TABLES: readonly EnumTable<string>[] = [
  consistencyLevels,
  channelKinds,
  alignmentModes,
  fallbackPolicies,
  checkpointStates,
  failureReasons,
  progressKinds,
  agentStatuses,
  copyStates,
];
