/**
 * Each plan's admission slots (src/control/admission.ts) in `snap-meta` under `slots.<planId>`: the
 * checkpoints of the plan in flight, whichever coordinator admitted them. `transact` reads the key,
 * lets a pure step decide, and writes the step's result only at the revision it read; on a conflict
 * (another coordinator wrote in between) it reads and decides again. So deciding and writing are one
 * atomic act, and the limit holds across coordinator processes.
 *
 * The calls of one process on one plan run one after another, so within a process there are no
 * conflicts at all; between processes every conflict means another caller's step landed, so the
 * retries have no cap: they end once the others are through.
 */
import type { KV } from 'nats';
import { EMPTY_SLOTS, type PlanSlots, type Slot } from '../../src/control/admission.js';
import { fail, ok, type Result } from '../errors.js';
import { pauseBeforeRetry, type CasRetry } from './counter.js';
import { decodeJsonObject, encodeJson } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';
import { getLive, listKeys } from './scan.js';

const PREFIX = 'slots.';
const PLAN_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function slotsKey(planId: string): string {
  return `${PREFIX}${planId}`;
}

export interface SlotStep<T> {
  /** The slots to write; undefined: leave the key as it is. */
  readonly next: PlanSlots | undefined;
  readonly out: T;
}

export interface SlotStore {
  read(planId: string): Promise<Result<PlanSlots>>;
  /** Reads the plan's slots, applies `step` (pure: it may run several times), writes `next` at that revision. */
  transact<T>(planId: string, step: (current: PlanSlots) => SlotStep<T>): Promise<Result<T>>;
  /** The plans that have a slots key (recovery reads them all). */
  plans(): Promise<Result<string[]>>;
}

function isSlot(v: unknown): v is Slot {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return typeof s['checkpointId'] === 'number' && typeof s['periodic'] === 'boolean' && typeof s['owner'] === 'string' && typeof s['admittedAtUnixMs'] === 'number';
}

export class JetStreamSlotStore implements SlotStore {
  private readonly queues = new Map<string, Promise<void>>();
  /**
   * Each plan's slots as this process last read or wrote them: the first attempt of a transaction
   * starts from here instead of a read (one round trip instead of two when no other coordinator
   * wrote since; a conflict falls back to reading), as the checkpoint id counter does.
   */
  private readonly known = new Map<string, { slots: PlanSlots; revision: number }>();
  private readonly retry: CasRetry;

  constructor(
    private readonly meta: KV,
    retry: CasRetry,
  ) {
    this.retry = { casAttemptsMax: Number.MAX_SAFE_INTEGER, casRetryDelayMsMax: Math.max(1, retry.casRetryDelayMsMax) };
  }

  async read(planId: string): Promise<Result<PlanSlots>> {
    const current = await this.readAt(planId);
    return current.ok ? ok(current.value.slots) : current;
  }

  transact<T>(planId: string, step: (current: PlanSlots) => SlotStep<T>): Promise<Result<T>> {
    if (!PLAN_ID.test(planId)) return Promise.resolve(fail('invalid-argument', `plan id ${JSON.stringify(planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`));
    const previous = this.queues.get(planId) ?? Promise.resolve();
    const result = previous.then(() => this.casLoop(planId, step));
    const settled = result.then(() => undefined);
    this.queues.set(planId, settled);
    // Forget the queue once it drained, so a coordinator of many plans keeps no map of them all.
    void settled.then(() => {
      if (this.queues.get(planId) === settled) this.queues.delete(planId);
    });
    return result;
  }

  async plans(): Promise<Result<string[]>> {
    const keys = await listKeys(this.meta, `${PREFIX}*`);
    return keys.ok ? ok(keys.value.map((k) => k.slice(PREFIX.length))) : keys;
  }

  private async casLoop<T>(planId: string, step: (current: PlanSlots) => SlotStep<T>): Promise<Result<T>> {
    for (let attempt = 1; ; attempt++) {
      const cached = attempt === 1 ? this.known.get(planId) : undefined;
      const current = cached !== undefined ? ok(cached) : await this.readAt(planId);
      if (!current.ok) return current;
      const { next, out } = step(current.value.slots);
      // Deciding on a cached state is only safe if it is written: nothing to write, so read first.
      if (next === undefined && cached !== undefined) {
        this.known.delete(planId);
        continue;
      }
      if (next === undefined) return ok(out);
      try {
        const bytes = encodeJson({ slots: next.slots });
        const revision = current.value.revision === 0 ? await this.meta.create(slotsKey(planId), bytes) : await this.meta.update(slotsKey(planId), bytes, current.value.revision);
        this.known.set(planId, { slots: next, revision });
        return ok(out);
      } catch (error) {
        this.known.delete(planId);
        if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `writing the admission slots of plan ${planId}`) };
      }
      // A conflict on the cached state is no contention: read again at once.
      if (cached === undefined) await pauseBeforeRetry(this.retry, attempt);
    }
  }

  private async readAt(planId: string): Promise<Result<{ slots: PlanSlots; revision: number }>> {
    const entry = await getLive(this.meta, slotsKey(planId));
    if (!entry.ok) return entry;
    // A deleted key reads as absent; `create` works on it again.
    if (entry.value === undefined) return ok({ slots: EMPTY_SLOTS, revision: 0 });
    const json = decodeJsonObject(entry.value.value, slotsKey(planId));
    if (!json.ok) return json;
    const slots = json.value['slots'];
    if (!Array.isArray(slots) || !slots.every(isSlot)) return fail('internal', `stored value of ${slotsKey(planId)} is not a list of admission slots`);
    return ok({ slots: { slots }, revision: entry.value.revision });
  }
}
