/**
 * Retention as a pure decision: given a plan's completed checkpoints, which ones to delete. It keeps
 * the newest `keepNewest`, and besides them, whatever they are, every pinned checkpoint and every
 * protected one (the targets and safety checkpoints of the plan's last rollbacks, DESIGN.md section
 * 7: the way back from a rollback must not be deleted behind the operator's back). Kept checkpoints
 * of those kinds do not count against `keepNewest`, so pinning an old checkpoint never pushes a
 * recent one out (issue 9, defect 7: retention deleted a rollback's safety checkpoint and target).
 */

export type KeptBecause = 'newest' | 'pinned' | 'rollback-target' | 'rollback-safety';

export interface RetentionInput {
  /** The plan's completed checkpoints, in any order. */
  readonly completed: readonly { readonly id: number; readonly pinned: boolean }[];
  /** At least 1 (the service validates its retainedPerPlan at construction). */
  readonly keepNewest: number;
  readonly protectedIds: readonly { readonly id: number; readonly because: 'rollback-target' | 'rollback-safety' }[];
}

export interface RetentionDecision {
  /** Oldest first: the order to delete them in. */
  readonly delete: readonly number[];
  readonly kept: readonly { readonly id: number; readonly because: KeptBecause }[];
}

export function decideRetention(input: RetentionInput): RetentionDecision {
  const protectedWhy = new Map<number, KeptBecause>();
  for (const p of input.protectedIds) if (!protectedWhy.has(p.id)) protectedWhy.set(p.id, p.because);
  const newestFirst = [...input.completed].sort((a, b) => b.id - a.id);
  const kept: { id: number; because: KeptBecause }[] = [];
  const doomed: number[] = [];
  let newest = 0;
  for (const c of newestFirst) {
    const why: KeptBecause | undefined = c.pinned ? 'pinned' : protectedWhy.get(c.id);
    if (why !== undefined) kept.push({ id: c.id, because: why });
    else if (newest < input.keepNewest) {
      newest += 1;
      kept.push({ id: c.id, because: 'newest' });
    } else doomed.push(c.id);
  }
  return { delete: doomed.reverse(), kept };
}
