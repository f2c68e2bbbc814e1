/**
 * A checkpoint as callers of the API see it: the record without the stored-part details (object
 * refs, per-channel counts), with the Flink-style statistics (DESIGN.md section 9) computed from
 * its parts. The gRPC `Checkpoint` message carries exactly this, so snapctl and tests work on it.
 *
 * Durations and sizes are plain numbers (0 when not measured, as in the proto); timestamps that
 * may not have happened yet are optional.
 */
import type { CheckpointRecord } from './model.js';
import type { FailureReason } from './model.js';

export interface AppStatsView {
  readonly server: string;
  readonly app: string;
  readonly acked: boolean;
  readonly ackedAtUnixMs?: number;
  readonly startDelayMs: number;
  readonly alignmentMs: number;
  readonly syncMs: number;
  readonly asyncMs: number;
  /** State plus channel state. */
  readonly sizeBytes: number;
  readonly channelStateBytes: number;
  readonly finishedUnaligned: boolean;
  readonly failureReason?: FailureReason;
  readonly failureDetail?: string;
}

export interface CheckpointStatsView {
  readonly acked: number;
  readonly total: number;
  readonly triggeredAtUnixMs?: number;
  readonly lastAckAtUnixMs?: number;
  /** From trigger to the end; 0 while in flight. */
  readonly durationMs: number;
  readonly sizeBytes: number;
  readonly channelStateBytes: number;
  readonly apps: readonly AppStatsView[];
}

/** Exactly what coordinator.proto's Checkpoint message carries; the parts' stored-object details are left out. */
export type CheckpointView = Pick<
  CheckpointRecord,
  | 'id'
  | 'planId'
  | 'tenant'
  | 'levelRequested'
  | 'levelAchieved'
  | 'state'
  | 'failureReason'
  | 'failureDetail'
  | 'epoch'
  | 'options'
  | 'idempotencyKey'
  | 'createdAtUnixMs'
  | 'finishedAtUnixMs'
  | 'volumes'
  | 'safety'
  | 'fallbackReason'
  | 'pinned'
  | 'copies'
  | 'importedFrom'
> & { readonly stats: CheckpointStatsView; readonly servers: NonNullable<CheckpointRecord['servers']> };

export function checkpointStats(record: CheckpointRecord): CheckpointStatsView {
  const apps = record.parts.map((p): AppStatsView => {
    const stateBytes = p.state?.sizeBytes ?? p.inlineState?.sizeBytes ?? 0;
    const channelStateBytes = p.channelState?.sizeBytes ?? 0;
    return {
      server: p.server,
      app: p.app,
      acked: p.acked,
      ...(p.ackedAtUnixMs !== undefined && p.ackedAtUnixMs > 0 ? { ackedAtUnixMs: p.ackedAtUnixMs } : {}),
      startDelayMs: p.startDelayMs ?? 0,
      alignmentMs: p.alignmentMs ?? 0,
      syncMs: p.syncMs ?? 0,
      asyncMs: p.asyncMs ?? 0,
      sizeBytes: stateBytes + channelStateBytes,
      channelStateBytes,
      finishedUnaligned: p.finishedUnaligned ?? false,
      ...(p.failureReason !== undefined ? { failureReason: p.failureReason } : {}),
      ...(p.failureDetail !== undefined && p.failureDetail !== '' ? { failureDetail: p.failureDetail } : {}),
    };
  });
  const ackTimes = apps.map((a) => a.ackedAtUnixMs ?? 0).filter((t) => t > 0);
  const triggered = record.triggeredAtUnixMs !== undefined && record.triggeredAtUnixMs > 0 ? record.triggeredAtUnixMs : undefined;
  const finished = record.finishedAtUnixMs !== undefined && record.finishedAtUnixMs > 0 ? record.finishedAtUnixMs : undefined;
  return {
    acked: apps.filter((a) => a.acked).length,
    total: apps.length,
    ...(triggered !== undefined ? { triggeredAtUnixMs: triggered } : {}),
    ...(ackTimes.length > 0 ? { lastAckAtUnixMs: Math.max(...ackTimes) } : {}),
    durationMs: triggered !== undefined && finished !== undefined ? Math.max(0, finished - triggered) : 0,
    sizeBytes: apps.reduce((sum, a) => sum + a.sizeBytes, 0),
    channelStateBytes: apps.reduce((sum, a) => sum + a.channelStateBytes, 0),
    apps,
  };
}

/** The view of a record, field by field (so a field added to the record is not shown by accident); empty optional fields are left out, as the proto round trip does. */
export function checkpointView(r: CheckpointRecord): CheckpointView {
  const present = <T>(v: T | undefined): v is T => v !== undefined && v !== '' && v !== 0;
  return {
    id: r.id,
    planId: r.planId,
    tenant: r.tenant,
    levelRequested: r.levelRequested,
    ...(present(r.levelAchieved) ? { levelAchieved: r.levelAchieved } : {}),
    state: r.state,
    ...(present(r.failureReason) ? { failureReason: r.failureReason } : {}),
    ...(present(r.failureDetail) ? { failureDetail: r.failureDetail } : {}),
    epoch: r.epoch,
    // max_concurrent 0 on the wire means 1, so a record written before the option shows 1.
    options: { ...r.options, maxConcurrent: r.options.maxConcurrent ?? 1 },
    ...(present(r.idempotencyKey) ? { idempotencyKey: r.idempotencyKey } : {}),
    createdAtUnixMs: r.createdAtUnixMs,
    ...(present(r.finishedAtUnixMs) ? { finishedAtUnixMs: r.finishedAtUnixMs } : {}),
    volumes: r.volumes,
    safety: r.safety,
    ...(present(r.fallbackReason) ? { fallbackReason: r.fallbackReason } : {}),
    ...(r.pinned === true ? { pinned: true } : {}),
    ...(r.copies !== undefined && r.copies.length > 0 ? { copies: r.copies } : {}),
    ...(r.importedFrom !== undefined ? { importedFrom: r.importedFrom } : {}),
    servers: r.servers ?? [],
    stats: checkpointStats(r),
  };
}
