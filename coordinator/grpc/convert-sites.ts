/**
 * CopyCheckpoint and ListCheckpointCopies messages <-> model values (docs/sites.md), as convert.ts
 * does for plans and checkpoints: requests validated field by field for the server, responses for
 * clients.
 */
import type { CheckpointId } from '../../src/ids.js';
import type { CopyListing } from '../api.js';
import type { CheckpointView } from '../checkpoint-view.js';
import type { Result } from '../errors.js';
import type { CheckpointCopy } from '../model.js';
import { checkpointCopyFromProto, checkpointFromProto, checkpointId, checkpointToProto, done, name, siteName, timeOf, ts, type PbCheckpoint, type PbCheckpointCopy, type PbTimestamp } from './convert.js';
import { ProtoReader } from './fields.js';

export function copyCheckpointRequestFromProto(request: unknown): Result<{ checkpointId: CheckpointId; site: string }> {
  const r = ProtoReader.of(request, '');
  const id = checkpointId(r, 'checkpoint_id');
  const site = siteName(r, 'site', true);
  return done(r, { checkpointId: id, site });
}

export function listCopiesRequestFromProto(request: unknown): Result<{ site: string; planId?: string }> {
  const r = ProtoReader.of(request, '');
  const site = siteName(r, 'site', true);
  const planId = name(r, 'plan_id', false);
  return done(r, { site, ...(planId !== '' ? { planId } : {}) });
}

interface PbSiteCopy {
  site: string;
  source_site: string;
  source_checkpoint_id: number;
  copied_at: PbTimestamp | null;
  checkpoint: PbCheckpoint;
  objects: number;
  size_bytes: number;
}

export function siteCopyToProto(c: CopyListing): PbSiteCopy {
  return {
    site: c.site,
    source_site: c.sourceSite,
    source_checkpoint_id: c.sourceCheckpointId,
    copied_at: ts(c.copiedAtUnixMs),
    checkpoint: checkpointToProto(c.record),
    objects: c.objects,
    size_bytes: c.bytes,
  };
}

export type { PbCheckpointCopy };

/** A copy as a client sees it: the record as a CheckpointView. */
export interface CopyView {
  readonly site: string;
  readonly sourceSite: string;
  readonly sourceCheckpointId: number;
  readonly copiedAtUnixMs: number;
  readonly checkpoint: CheckpointView;
  readonly objects: number;
  readonly bytes: number;
}

export function siteCopyFromProto(message: unknown): Result<CopyView> {
  const r = ProtoReader.of(message, 'copy', 'internal');
  const checkpoint = checkpointFromProto(typeof message === 'object' && message !== null ? (message as { checkpoint?: unknown }).checkpoint : undefined);
  if (!checkpoint.ok) return checkpoint;
  const view: CopyView = {
    site: r.string('site'),
    sourceSite: r.string('source_site'),
    sourceCheckpointId: r.u64('source_checkpoint_id'),
    copiedAtUnixMs: timeOf(r, 'copied_at') ?? 0,
    checkpoint: checkpoint.value,
    objects: r.u64('objects'),
    bytes: r.u64('size_bytes'),
  };
  return done(r, view);
}

export function copyFromProto(message: unknown): Result<CheckpointCopy> {
  const r = ProtoReader.of(message, 'copy', 'internal');
  return done(r, checkpointCopyFromProto(r));
}
