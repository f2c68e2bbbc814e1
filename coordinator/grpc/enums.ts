/**
 * The proto enums and the model's string unions, side by side. A proto value is the model value
 * upper-cased, `-` as `_`, behind the enum's prefix (`in-band` <-> `CHANNEL_KIND_IN_BAND`); the
 * lists below are typed against the model so a value added to the model fails to compile until it
 * is listed, and a unit test checks every list against the .proto's descriptor.
 */
import { coordinatorDescriptor } from '../../src/wire/generated/coordinator-descriptor.js';
import type {
  AgentStatus,
  AlignmentMode,
  ChannelKind,
  CheckpointState,
  ConsistencyLevel,
  FailureReason,
  FallbackPolicy,
  ProgressEvent,
} from '../model.js';

export interface EnumTable<M extends string> {
  /** The proto enum's name, e.g. `ConsistencyLevel`. */
  readonly name: string;
  readonly unspecified: string;
  /** Every model value, in proto number order. */
  readonly values: readonly M[];
  toProto(value: M): string;
  /** The model value of a proto name or number; undefined for UNSPECIFIED and unknown values. */
  fromProto(value: string | number): M | undefined;
  /** Proto names a person may type or read in an error message, UNSPECIFIED left out. */
  readonly protoNames: readonly string[];
}

type Values<M extends string> = { readonly [K in M]: true };

/** The proto numbers of an enum, from the generated descriptor (the .proto is the source of truth). */
function protoNumbers(enumName: string): Readonly<Record<string, number>> {
  const nested = coordinatorDescriptor.nested.snapshot.nested.v1.nested as Record<string, { values?: Record<string, number> }>;
  const values = nested[enumName]?.values;
  if (values === undefined) throw new Error(`enum ${enumName} is not in coordinator.proto`);
  return values;
}

function table<M extends string>(name: string, prefix: string, all: Values<M>): EnumTable<M> {
  const numbers = protoNumbers(name);
  const toName = (m: M): string => `${prefix}_${m.toUpperCase().replace(/-/g, '_')}`;
  const values = (Object.keys(all) as M[]).sort((a, b) => (numbers[toName(a)] ?? 0) - (numbers[toName(b)] ?? 0));
  const byName = new Map<string, M>();
  const byNumber = new Map<number, M>();
  for (const m of values) {
    const n = numbers[toName(m)];
    if (n === undefined) throw new Error(`${name} has no value ${toName(m)} for ${m}`);
    byName.set(toName(m), m);
    byNumber.set(n, m);
  }
  return {
    name,
    unspecified: `${prefix}_UNSPECIFIED`,
    values,
    toProto: toName,
    fromProto: (v) => (typeof v === 'number' ? byNumber.get(v) : byName.get(v)),
    protoNames: values.map(toName),
  };
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

export const ALL_ENUM_TABLES: readonly EnumTable<string>[] = [
  consistencyLevels,
  channelKinds,
  alignmentModes,
  fallbackPolicies,
  checkpointStates,
  failureReasons,
  progressKinds,
  agentStatuses,
];
