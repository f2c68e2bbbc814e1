/**
 * The protobuf types of wire.proto, loaded once from the generated descriptor, and the enum tables
 * that turn proto enum numbers into the string unions of ./types.ts.
 *
 * The enum numbers are read from the descriptor rather than written out again, so the .proto stays
 * the single source of truth; module load asserts that the TypeScript names and the proto values
 * cover each other, so adding an enum value on one side only fails every test at once.
 */
import protobuf from 'protobufjs/light.js';
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

export interface EnumTable<T extends string> {
  readonly byNumber: ReadonlyMap<number, T>;
  readonly byName: ReadonlyMap<T, number>;
}

/** `hook-failed` with prefix `DECLINE_REASON_` is `DECLINE_REASON_HOOK_FAILED`. */
function protoValueName(prefix: string, name: string): string {
  return prefix + name.toUpperCase().replaceAll('-', '_');
}

/**
 * Pairs each TypeScript name with its proto enum number. `names` is a record over the whole union
 * so the compiler checks that no name is forgotten; this function checks the proto side.
 */
function enumTable<T extends string>(enumName: string, prefix: string, names: Readonly<Record<T, true>>): EnumTable<T> {
  const values = root.lookupEnum(`${protoPackage}.${enumName}`).values;
  const byNumber = new Map<number, T>();
  const byName = new Map<T, number>();
  for (const name of Object.keys(names) as T[]) {
    const number = values[protoValueName(prefix, name)];
    if (number === undefined || number === 0) {
      throw new Error(`wire schema: ${enumName} has no value ${protoValueName(prefix, name)} for '${name}'`);
    }
    byNumber.set(number, name);
    byName.set(name, number);
  }
  for (const [valueName, number] of Object.entries(values)) {
    if (number !== 0 && !byNumber.has(number)) {
      throw new Error(`wire schema: ${enumName}.${valueName} has no TypeScript name`);
    }
  }
  return { byNumber, byName };
}

/** The proto Policy enum; `aligned-timeout` is `aligned` plus a timeout on the wire. */
export type WirePolicyKind = 'aligned' | 'unaligned' | 'sync' | 'none';

export const policyTable = enumTable<WirePolicyKind>('Policy', 'POLICY_', {
  aligned: true,
  unaligned: true,
  sync: true,
  none: true,
});

export const declineReasonTable = enumTable<WireDeclineReason>('DeclineReason', 'DECLINE_REASON_', {
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

export const progressPhaseTable = enumTable<ProgressPhase>('ProgressPhase', 'PROGRESS_PHASE_', {
  started: true,
  aligning: true,
  'snapshot-taken': true,
  uploading: true,
});
