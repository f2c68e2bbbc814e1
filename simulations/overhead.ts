/**
 * Figures that compare coordinated and rollback checkpointing on one scale, computed from a run's
 * metrics (so the engine's results stay as they were).
 *
 * `overhead` is the checkpointing work per data message delivered, counted in messages: the
 * barriers sent, the messages recorded as channel state, the messages held back by alignment, one
 * per local snapshot, and the piggybacked checkpoint indexes in message-sized units (24 bytes, the
 * size a simulated message stands for). A coordinated run's local snapshots are those of its
 * completed checkpoints (one per process each); a rollback run counts every local checkpoint it took,
 * forced ones included. A recovery's replayed messages are not part of it: they are a cost of the
 * failure, reported with the recovery figures.
 */
import type { SimResult } from './types.js';

const MESSAGE_BYTES = 24;

export function overheadOf(result: SimResult): number {
  const m = result.metrics;
  const rollback = m.localCheckpoints !== undefined;
  const snapshots = rollback ? (m.localCheckpoints ?? 0) : m.checkpointsCompleted * result.processes.length;
  const recorded = rollback ? 0 : m.channelStateMessagesTotal + m.bufferedMessagesTotal;
  const work = m.barriersSent + recorded + snapshots + (m.piggybackBytes ?? 0) / MESSAGE_BYTES;
  return m.messagesDelivered === 0 ? Number.NaN : work / m.messagesDelivered;
}

/** The recovery figures of a rollback run, by CSV name; NaN (printed `-`) for a coordinated run. */
export const RECOVERY_FIGURES = [
  { name: 'lost_work', key: 'lostWork' },
  { name: 'replayed_msgs', key: 'replayedMessages' },
  { name: 'domino_depth', key: 'dominoDepth' },
  { name: 'recovery_time_ms', key: 'recoveryTimeMs' },
  { name: 'local_checkpoints', key: 'localCheckpoints' },
  { name: 'forced_checkpoints', key: 'forcedCheckpoints' },
  { name: 'piggyback_bytes', key: 'piggybackBytes' },
] as const;

export function recoveryFigure(result: SimResult, key: (typeof RECOVERY_FIGURES)[number]['key']): number {
  return result.metrics[key] ?? Number.NaN;
}
