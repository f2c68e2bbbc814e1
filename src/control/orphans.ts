/**
 * Which stored objects no checkpoint owns any more, as a pure decision (docs/RELIABILITY.md, F11).
 * An agent stores its app's state under `cp/<id>/...` before it acks; when the checkpoint ended
 * without it (aborted, subsumed), the round's late sweep deletes what came after its clean-up. That
 * sweep is a timer of the coordinator that ran the round: if that coordinator dies first, or the
 * agent may not delete (a NATS credential has no purge right) and is killed before it asks, the
 * object stays with nothing to delete it. The leader therefore sweeps each tenant's objects again,
 * at takeover and then periodically, with this decision:
 * - an object of a checkpoint that has no record (deleted, or an id no round ever issued: a forged
 *   trigger's) is orphaned, and so is one in another tenant's bucket than its record's;
 * - one of a checkpoint that ended other than completed is orphaned once the agents' own timeout
 *   and the settle time have passed since it ended: an agent still in its upload until then would
 *   otherwise store after the sweep (the next sweep deletes that one);
 * - an object of a checkpoint in flight or completed is kept, and so is every object whose record
 *   could not be read (a store that is away is no proof of absence), and every name outside `cp/`
 *   (site copies live under `copy/`).
 * The caller lists the objects first and reads the records after: a checkpoint begun between the two
 * then has its record read, never an absence that was only the listing's age.
 */

export type OwnerState = 'in-flight' | 'completed' | 'ended-incomplete';

/** What the store said about the record of one checkpoint id. */
export type Owner =
  | { readonly kind: 'absent' }
  | { readonly kind: 'unreadable' }
  | {
      readonly kind: 'record';
      readonly tenant: string;
      readonly state: OwnerState;
      /** When it ended; absent for one in flight (and for records written before the field existed). */
      readonly finishedAtUnixMs?: number;
      /** How long its agents may still work on it after the trigger. */
      readonly timeoutMs: number;
    };

export type OrphanReason = 'no-record' | 'other-tenant' | 'ended-incomplete';

export interface OrphanSweepInput {
  readonly tenant: string;
  /** The names in the tenant's state bucket, as listed. */
  readonly names: readonly string[];
  readonly owners: ReadonlyMap<number, Owner>;
  readonly nowUnixMs: number;
  /** How long an abort waits for answers under way, added to each checkpoint's timeout. */
  readonly settleMs: number;
}

export interface OrphanedCheckpoint {
  readonly checkpointId: number;
  readonly reason: OrphanReason;
  readonly names: readonly string[];
}

const CHECKPOINT_OBJECT = /^cp\/([1-9][0-9]{0,15})\//;

/** The checkpoint id an object's name belongs to; undefined for a name outside `cp/<id>/`. */
export function checkpointOfObject(name: string): number | undefined {
  const m = CHECKPOINT_OBJECT.exec(name);
  if (!m) return undefined;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

/** The checkpoint ids the listed names belong to, each once, ascending: the records to read. */
export function checkpointIdsOf(names: readonly string[]): number[] {
  const ids = new Set<number>();
  for (const n of names) {
    const id = checkpointOfObject(n);
    if (id !== undefined) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

/** The orphaned objects of one tenant's bucket, grouped by checkpoint, ascending by id. */
export function findOrphans(input: OrphanSweepInput): OrphanedCheckpoint[] {
  const byId = new Map<number, string[]>();
  for (const n of input.names) {
    const id = checkpointOfObject(n);
    if (id === undefined) continue;
    const names = byId.get(id);
    if (names) names.push(n);
    else byId.set(id, [n]);
  }
  const out: OrphanedCheckpoint[] = [];
  for (const [checkpointId, names] of [...byId].sort((a, b) => a[0] - b[0])) {
    const reason = orphanReason(input.owners.get(checkpointId) ?? { kind: 'unreadable' }, input);
    if (reason !== undefined) out.push({ checkpointId, reason, names });
  }
  return out;
}

function orphanReason(owner: Owner, input: OrphanSweepInput): OrphanReason | undefined {
  switch (owner.kind) {
    case 'absent':
      return 'no-record';
    case 'unreadable':
      return undefined;
    case 'record':
      if (owner.tenant !== input.tenant) return 'other-tenant';
      if (owner.state !== 'ended-incomplete') return undefined;
      // Without its end time the age is unknown: kept (the round's own sweep covers it).
      if (owner.finishedAtUnixMs === undefined) return undefined;
      return input.nowUnixMs >= owner.finishedAtUnixMs + owner.timeoutMs + input.settleMs ? 'ended-incomplete' : undefined;
  }
}
