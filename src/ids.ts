/**
 * Identifiers shared by every layer. A process is an app endpoint `server/app` (or any simple name in
 * the simulator); a channel is the directed edge `from->to` between two processes.
 */

export type ProcessId = string;
export type ChannelId = string;
/** Checkpoint ids are positive integers that strictly increase per plan (or per initiator in CL). */
export type CheckpointId = number;
/** Incremented at every rollback/restore; messages of an older epoch are fenced off. */
export type Epoch = number;

export interface ChannelEnds {
  readonly from: ProcessId;
  readonly to: ProcessId;
}

const ARROW = '->';

export function channelId(from: ProcessId, to: ProcessId): ChannelId {
  return `${from}${ARROW}${to}`;
}

/** Splits `a->b`; returns undefined for anything else so callers decide how to report it. */
export function parseChannelId(id: ChannelId): ChannelEnds | undefined {
  const at = id.indexOf(ARROW);
  if (at <= 0 || at !== id.lastIndexOf(ARROW) || at + ARROW.length >= id.length) return undefined;
  return { from: id.slice(0, at), to: id.slice(at + ARROW.length) };
}

export function isCheckpointId(value: unknown): value is CheckpointId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}
