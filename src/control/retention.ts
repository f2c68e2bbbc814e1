/**
 * Retention as a pure decision: given a plan's completed checkpoints, which ones to delete; and the
 * decisions of a delete and a pin on one record (decideDeleteMark, decidePin, below). Retention keeps
 * the newest `keepNewest`, and besides them, whatever they are, every pinned checkpoint and every
 * protected one (the targets and safety checkpoints of the plan's last rollbacks, DESIGN.md section
 * 7: the way back from a rollback must not be deleted behind the operator's back). Kept checkpoints
 * of those kinds do not count against `keepNewest`, so pinning an old checkpoint never pushes a
 * recent one out (issue 9, defect 7: retention deleted a rollback's safety checkpoint and target).
 * A plan's retention policy (RetentionRules) replaces `keepNewest` with its own rules; the pinned
 * and protected ones stay kept whatever the rules say.
 */

export type KeptBecause = 'newest' | 'pinned' | 'rollback-target' | 'rollback-safety' | 'daily' | 'weekly' | 'monthly' | 'within';

/**
 * A plan's retention policy (coordinator/policies/): a checkpoint is kept when any rule keeps it.
 * `keepLast` the newest N; `keepDaily`/`keepWeekly`/`keepMonthly` the newest checkpoint of each of
 * the last N days/weeks/months that have one (GFS, in UTC, weeks from Monday); `keepWithinMs`
 * every checkpoint finished at most that long before now. 0 turns a rule off.
 */
export interface RetentionRules {
  readonly keepLast: number;
  readonly keepDaily: number;
  readonly keepWeekly: number;
  readonly keepMonthly: number;
  readonly keepWithinMs: number;
}

export interface RetentionInput {
  /** The plan's completed checkpoints, in any order; `finishedAtUnixMs` is needed by the rules. */
  readonly completed: readonly { readonly id: number; readonly pinned: boolean; readonly finishedAtUnixMs?: number }[];
  /** At least 1 (the service validates its retainedPerPlan at construction); used when there are no rules. */
  readonly keepNewest: number;
  readonly protectedIds: readonly { readonly id: number; readonly because: 'rollback-target' | 'rollback-safety' }[];
  /** A plan's policy; absent: keep the newest `keepNewest`. */
  readonly rules?: RetentionRules;
  /** For `keepWithinMs`. */
  readonly nowUnixMs?: number;
}

export interface RetentionDecision {
  /** Oldest first: the order to delete them in. */
  readonly delete: readonly number[];
  readonly kept: readonly { readonly id: number; readonly because: KeptBecause }[];
}

const DAY_MS = 86_400_000;

/** The GFS period a finish time falls in: a UTC day, a week starting Monday (1970-01-01 was a Thursday), a month. */
function period(kind: 'daily' | 'weekly' | 'monthly', unixMs: number): number {
  const day = Math.floor(unixMs / DAY_MS);
  if (kind === 'daily') return day;
  if (kind === 'weekly') return Math.floor((day + 3) / 7);
  return utcMonthOf(unixMs);
}

/**
 * The UTC month of a time as `year * 12 + month (0-11)`, by arithmetic on the day count
 * (H. Hinnant's civil_from_days) rather than a Date: src/ reads no clock and builds no Date.
 */
export function utcMonthOf(unixMs: number): number {
  const z = Math.floor(unixMs / DAY_MS) + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1_460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const marchMonth = Math.floor((5 * dayOfYear + 2) / 153);
  const month = marchMonth < 10 ? marchMonth + 2 : marchMonth - 10;
  const year = yearOfEra + era * 400 + (month <= 1 ? 1 : 0);
  return year * 12 + month;
}

/** Whether a rule keeps this checkpoint, and which; `newest` counts against keepLast (or keepNewest). */
type Keeper = (c: { readonly finishedAtUnixMs?: number }) => KeptBecause | undefined;

function ruleKeeper(rules: RetentionRules | undefined, keepNewest: number, nowUnixMs: number): Keeper {
  let newest = 0;
  const keepLast = rules === undefined ? keepNewest : rules.keepLast;
  const gfs = (['daily', 'weekly', 'monthly'] as const).map((kind) => ({
    kind,
    left: rules === undefined ? 0 : kind === 'daily' ? rules.keepDaily : kind === 'weekly' ? rules.keepWeekly : rules.keepMonthly,
    last: undefined as number | undefined,
  }));
  return (c) => {
    let why: KeptBecause | undefined;
    if (newest < keepLast) {
      newest += 1;
      why = 'newest';
    }
    // Every GFS period is counted even when an earlier rule keeps the checkpoint already: the
    // newest of a day is that day's, whatever else keeps it.
    if (c.finishedAtUnixMs !== undefined) {
      for (const g of gfs) {
        if (g.left === 0) continue;
        const p = period(g.kind, c.finishedAtUnixMs);
        if (p === g.last) continue;
        g.last = p;
        g.left -= 1;
        why ??= g.kind;
      }
      if (why === undefined && rules !== undefined && rules.keepWithinMs > 0 && nowUnixMs - c.finishedAtUnixMs <= rules.keepWithinMs) why = 'within';
    }
    return why;
  };
}

export function decideRetention(input: RetentionInput): RetentionDecision {
  const protectedWhy = new Map<number, KeptBecause>();
  for (const p of input.protectedIds) if (!protectedWhy.has(p.id)) protectedWhy.set(p.id, p.because);
  const newestFirst = [...input.completed].sort((a, b) => b.id - a.id);
  const kept: { id: number; because: KeptBecause }[] = [];
  const doomed: number[] = [];
  const keeps = ruleKeeper(input.rules, input.keepNewest, input.nowUnixMs ?? 0);
  for (const c of newestFirst) {
    const why: KeptBecause | undefined = c.pinned ? 'pinned' : protectedWhy.get(c.id);
    if (why !== undefined) kept.push({ id: c.id, because: why });
    else {
      const rule = keeps(c);
      if (rule !== undefined) kept.push({ id: c.id, because: rule });
      else doomed.push(c.id);
    }
  }
  return { delete: doomed.reverse(), kept };
}

/**
 * What a delete and a pin need of a checkpoint's record. A delete marks the record first
 * (`deleting`), by compare-and-set, and only then removes the parts and the record: the mark and a
 * pin are writes of the one record, so of a delete and a pin that race exactly one wins (the
 * loser's compare-and-set fails, it reads again and is refused). A delete cut short leaves the
 * mark, which tells a retry and the next coordinator's recovery to finish it (DeleteCheckpoint
 * used to check the pin, delete the parts, and change the record only at the end: a pin landing in
 * between succeeded on a checkpoint without parts, and a crash in between left a completed record
 * without parts that nothing finished).
 */
export interface DeletableRecord {
  readonly state: string;
  readonly pinned?: boolean;
  /** Set once a delete has begun: the parts may be gone; the record goes last. */
  readonly deleting?: boolean;
}

export type DeleteMarkDecision =
  /** Write the mark (compare-and-set), then delete the parts, then the record. */
  | { readonly type: 'mark' }
  /** Marked already (a retry, or a delete cut short): finish it, parts then record. */
  | { readonly type: 'finish' }
  | { readonly type: 'refused'; readonly reason: 'in-flight' | 'pinned' };

export function decideDeleteMark(r: DeletableRecord): DeleteMarkDecision {
  if (r.deleting === true) return { type: 'finish' };
  if (r.state !== 'completed' && r.state !== 'aborted') return { type: 'refused', reason: 'in-flight' };
  if (r.pinned === true) return { type: 'refused', reason: 'pinned' };
  return { type: 'mark' };
}

export type PinDecision =
  | { readonly type: 'write' }
  /** Pinned (or unpinned) already. */
  | { readonly type: 'unchanged' }
  | { readonly type: 'refused'; readonly reason: 'not-completed' | 'deleting' };

export function decidePin(r: DeletableRecord, pinned: boolean): PinDecision {
  // A checkpoint being deleted may have lost parts already: pinning it would keep a husk.
  if (r.deleting === true) return { type: 'refused', reason: 'deleting' };
  if (r.state !== 'completed') return { type: 'refused', reason: 'not-completed' };
  return (r.pinned === true) === pinned ? { type: 'unchanged' } : { type: 'write' };
}
