/**
 * Per-plan admission of checkpoints, as a pure step over the plan's slots: which checkpoints of the
 * plan are in flight, and whether one more may start. The shell keeps the slots in one KV key per
 * plan and writes a step's result only at the revision it read (compare-and-set), so the decision
 * and the write are one atomic act even across coordinator processes: the limit holds at every
 * instant, not only at the moment of a check (issue 9, defect 5: a check followed by awaits let 13
 * checkpoints of one plan run at once).
 *
 * Priorities: a manual request outranks a periodic one (DESIGN.md section 9, pacing). A manual
 * request that finds the plan full of periodic checkpoints takes the slot of the newest one (the one
 * with the least work to lose), which the shell cancels; it never displaces a manual checkpoint.
 *
 * The slot of a checkpoint is held from admission until its record is final (completed or aborted,
 * clean-up done), so `aborting` checkpoints still count.
 */
import type { NegativeControls } from './negative-controls.js';

export interface Slot {
  readonly checkpointId: number;
  readonly periodic: boolean;
  /** The coordinator process that admitted it (its boot id): only that one may reclaim it. */
  readonly owner: string;
  readonly admittedAtUnixMs: number;
}

export interface PlanSlots {
  /** Ascending by checkpoint id. */
  readonly slots: readonly Slot[];
}

export const EMPTY_SLOTS: PlanSlots = { slots: [] };

export interface AdmissionConfig {
  /** The largest max_concurrent a request may ask for. */
  readonly maxConcurrentMax: number;
  readonly negativeControls: NegativeControls;
}

export type AdmissionInput =
  /**
   * A request for a new checkpoint, under its already allocated id. `checked`: the slots as the
   * shell read them before it awaited anything; production passes the slots it is writing over,
   * only the `check-then-act-admission` control decides on an older read.
   */
  | {
      readonly type: 'request';
      readonly checkpointId: number;
      readonly periodic: boolean;
      readonly maxConcurrent: number;
      readonly owner: string;
      readonly nowMs: number;
      readonly checked?: PlanSlots;
    }
  /** The checkpoint's record is final: its slot is free. */
  | { readonly type: 'release'; readonly checkpointId: number }
  /**
   * Slots of `owner` whose checkpoints that coordinator neither runs nor is admitting any more (a
   * write that failed after the run ended, a request that failed between admission and start).
   */
  | { readonly type: 'reclaim'; readonly owner: string; readonly liveIds: readonly number[] };

/** In this order: `preempt` effects before the `admitted` they make room for. */
export type AdmissionEffect =
  /** Cancel this periodic checkpoint: a manual request took its slot. */
  | { readonly type: 'preempt'; readonly checkpointId: number; readonly by: number }
  | { readonly type: 'admitted'; readonly checkpointId: number }
  /** The plan is full: nothing changed. `inFlight` are the checkpoints in the way. */
  | { readonly type: 'busy'; readonly checkpointId: number; readonly inFlight: readonly number[]; readonly maxConcurrent: number }
  | { readonly type: 'released'; readonly checkpointId: number }
  | { readonly type: 'reclaimed'; readonly checkpointIds: readonly number[] };

export type AdmissionRejectReason = 'duplicate' | 'unknown-checkpoint' | 'invalid-limit';

export interface AdmissionStep {
  readonly slots: PlanSlots;
  /** Whether `slots` differ from the input's (the shell writes only then). */
  readonly changed: boolean;
  readonly effects: readonly AdmissionEffect[];
  readonly rejected?: { readonly reason: AdmissionRejectReason; readonly detail: string };
}

export function validateAdmissionConfig(config: AdmissionConfig): string | undefined {
  if (!Number.isSafeInteger(config.maxConcurrentMax) || config.maxConcurrentMax < 1) {
    return `maxConcurrentMax must be a positive integer, got ${config.maxConcurrentMax}`;
  }
  return undefined;
}

function unchanged(slots: PlanSlots, effects: readonly AdmissionEffect[], rejected?: AdmissionStep['rejected']): AdmissionStep {
  return { slots, changed: false, effects, ...(rejected ? { rejected } : {}) };
}

export function stepAdmission(current: PlanSlots, input: AdmissionInput, config: AdmissionConfig): AdmissionStep {
  switch (input.type) {
    case 'request':
      return request(current, input, config);
    case 'release': {
      if (!current.slots.some((s) => s.checkpointId === input.checkpointId)) {
        return unchanged(current, [], { reason: 'unknown-checkpoint', detail: `checkpoint ${input.checkpointId} holds no slot` });
      }
      return { slots: { slots: current.slots.filter((s) => s.checkpointId !== input.checkpointId) }, changed: true, effects: [{ type: 'released', checkpointId: input.checkpointId }] };
    }
    case 'reclaim': {
      const live = new Set(input.liveIds);
      const stale = current.slots.filter((s) => s.owner === input.owner && !live.has(s.checkpointId)).map((s) => s.checkpointId);
      if (stale.length === 0) return unchanged(current, []);
      return { slots: { slots: current.slots.filter((s) => !stale.includes(s.checkpointId)) }, changed: true, effects: [{ type: 'reclaimed', checkpointIds: stale }] };
    }
  }
}

function request(current: PlanSlots, input: Extract<AdmissionInput, { type: 'request' }>, config: AdmissionConfig): AdmissionStep {
  if (!Number.isSafeInteger(input.maxConcurrent) || input.maxConcurrent < 1 || input.maxConcurrent > config.maxConcurrentMax) {
    return unchanged(current, [], { reason: 'invalid-limit', detail: `max_concurrent must be from 1 to ${config.maxConcurrentMax}, got ${input.maxConcurrent}` });
  }
  if (current.slots.some((s) => s.checkpointId === input.checkpointId)) {
    return unchanged(current, [{ type: 'admitted', checkpointId: input.checkpointId }], { reason: 'duplicate', detail: `checkpoint ${input.checkpointId} already holds a slot` });
  }
  // The negative control decides on what was read before the awaits, then writes over what is there now.
  const decideOn = config.negativeControls.has('check-then-act-admission') && input.checked !== undefined ? input.checked : current;
  const room = input.maxConcurrent - decideOn.slots.length;
  const preempted: Slot[] = [];
  if (room <= 0 && !input.periodic) {
    const periodic = decideOn.slots.filter((s) => s.periodic).sort((a, b) => b.checkpointId - a.checkpointId);
    const needed = 1 - room;
    if (periodic.length >= needed) preempted.push(...periodic.slice(0, needed));
  }
  if (room <= 0 && preempted.length === 0) {
    return unchanged(current, [{ type: 'busy', checkpointId: input.checkpointId, inFlight: decideOn.slots.map((s) => s.checkpointId), maxConcurrent: input.maxConcurrent }]);
  }
  const gone = new Set(preempted.map((s) => s.checkpointId));
  const slot: Slot = { checkpointId: input.checkpointId, periodic: input.periodic, owner: input.owner, admittedAtUnixMs: input.nowMs };
  const slots = [...current.slots.filter((s) => !gone.has(s.checkpointId)), slot].sort((a, b) => a.checkpointId - b.checkpointId);
  return {
    slots: { slots },
    changed: true,
    effects: [...preempted.map((s): AdmissionEffect => ({ type: 'preempt', checkpointId: s.checkpointId, by: input.checkpointId })), { type: 'admitted', checkpointId: input.checkpointId }],
  };
}
