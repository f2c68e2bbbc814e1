/**
 * The checkpoint service's calls on completed checkpoints, as coordinator/checkpoints/service.ts
 * makes them: delete, pin and unpin, and retention after each completion (src/control/retention.ts
 * decides which to delete).
 */
import { decideDeleteMark, decidePin, decideRetention } from '../../src/control/retention.js';
import type { CoordinatorHost, CoordinatorWorld } from './coordinator-host.js';
import { checkpointKey, liveVolumeRefs, type CheckpointRecord } from './records.js';

/** Completed checkpoints retention keeps per plan, besides pinned and protected ones. */
export const RETAINED_PER_PLAN = 3;

/**
 * DeleteCheckpoint as the checkpoint service does it (src/control/retention.ts decideDeleteMark):
 * the record marked `deleting` by compare-and-set first, then the parts, then the record, so a
 * pin cannot land in between and a delete cut short is finished by a retry or by recovery. A
 * checkpoint an operation uses (target, safety) is kept, as retention keeps them (defect 7).
 */
export function deleteCheckpoint(c: CoordinatorHost, w: CoordinatorWorld, id: number, answer: (ok: boolean, message: string) => void): void {
  if (w.protectedIds.has(id)) {
    answer(false, `checkpoint ${id} is the target or safety checkpoint of a rollback`);
    return;
  }
  let refusal = `checkpoint ${id} not found`;
  c.store.update<CheckpointRecord>(
    checkpointKey(id),
    (cur) => {
      if (cur === undefined) return undefined;
      const d = decideDeleteMark(cur);
      if (d.type === 'refused') refusal = `checkpoint ${id} is ${d.reason}`;
      return d.type === 'mark' ? Object.assign({}, cur, { deleting: true }) : undefined;
    },
    () =>
      // Marked now, or by an earlier attempt whose reply was lost: read what is there.
      c.store.read(checkpointKey(id), (entry) => {
        const r = entry?.value as CheckpointRecord | undefined;
        if (r === undefined || r.deleting !== true) return answer(false, refusal);
        w.deleting(id);
        c.deleteAll(r.parts.map((p) => p.ref.name), liveVolumeRefs(r), () =>
          c.store.retried(`delete ${checkpointKey(id)}`, () => w.kv.delete(checkpointKey(id)), () => {
            w.trace(`ckpt ${id} deleted`);
            answer(true, 'deleted');
          }),
        );
      }),
  );
}

/** Retention after a completion, as the service applies it: src/control/retention.ts decides, deletes go one by one. */
export function applyRetention(c: CoordinatorHost, w: CoordinatorWorld, planId: string): void {
  c.store.retried(
    `list completed of ${planId}`,
    () => w.kv.keys('ckpt.').map((k) => w.kv.get(k)?.value as CheckpointRecord).filter((r) => r.plan === planId && r.state === 'completed'),
    (completed) => {
      const decision = decideRetention({
        completed: completed.map((r) => ({ id: r.id, pinned: r.pinned })),
        keepNewest: RETAINED_PER_PLAN,
        protectedIds: completed.filter((r) => w.protectedIds.has(r.id)).map((r) => ({ id: r.id, because: 'rollback-target' as const })),
      });
      const next = (i: number): void => {
        const id = decision.delete[i];
        if (id === undefined) return;
        w.trace(`retention: deleting ckpt ${id} of ${planId}`);
        deleteCheckpoint(c, w, id, () => next(i + 1));
      };
      next(0);
    },
  );
}

/** PinCheckpoint / UnpinCheckpoint: the record's flag by compare-and-set, as src/control/retention.ts decidePin says. */
export function pinCheckpoint(c: CoordinatorHost, id: number, pinned: boolean, answer: (ok: boolean) => void): void {
  c.store.update<CheckpointRecord>(
    checkpointKey(id),
    (r) => (r !== undefined && decidePin(r, pinned).type === 'write' ? Object.assign({}, r, { pinned }) : undefined),
    (written) => answer(written !== undefined),
  );
}
