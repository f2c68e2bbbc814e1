/**
 * The shell of per-plan admission: the pure step (src/control/admission.ts) over the plan's slots in
 * KV, written by compare-and-set (store/slots.ts). Each request first frees the slots this
 * coordinator holds for checkpoints it no longer runs (their record is final, or the request that
 * took the slot failed before its run started), then asks for one: both in the one atomic write.
 */
import type { Logger } from 'pino';
import { stepAdmission, type AdmissionConfig, type AdmissionEffect, type PlanSlots } from '../../src/control/admission.js';
import { failWith, ok, type Result } from '../errors.js';
import type { SlotStore } from '../store/index.js';

export interface Admitted {
  /** Periodic checkpoints whose slots this request took: the caller cancels them. */
  readonly preempted: readonly number[];
}

export class Admission {
  private readonly log: Logger;

  constructor(
    private readonly slots: SlotStore,
    /** This coordinator process (a boot id): the owner written on its slots. */
    private readonly owner: string,
    private readonly config: AdmissionConfig,
    logger: Logger,
    private readonly nowUnixMs: () => number,
  ) {
    this.log = logger.child({ component: 'admission' });
  }

  /**
   * A slot for checkpoint `checkpointId` of the plan, or RESOURCE_EXHAUSTED with the reason
   * PLAN_BUSY naming the checkpoints in the way. `liveIds`: the checkpoints this coordinator still
   * runs or is starting; its other slots are freed first.
   */
  async request(planId: string, checkpointId: number, periodic: boolean, maxConcurrent: number, liveIds: () => readonly number[]): Promise<Result<Admitted>> {
    let checked: PlanSlots | undefined;
    const step = await this.slots.transact(planId, (current) => {
      checked ??= current;
      const reclaimed = stepAdmission(current, { type: 'reclaim', owner: this.owner, liveIds: liveIds() }, this.config);
      const requested = stepAdmission(
        reclaimed.slots,
        { type: 'request', checkpointId, periodic, maxConcurrent, owner: this.owner, nowMs: this.nowUnixMs(), checked },
        this.config,
      );
      const changed = reclaimed.changed || requested.changed;
      return { next: changed ? requested.slots : undefined, out: { effects: [...reclaimed.effects, ...requested.effects], rejected: requested.rejected } };
    });
    if (!step.ok) return step;
    this.logEffects(planId, step.value.effects);
    if (step.value.rejected !== undefined && step.value.rejected.reason !== 'duplicate') {
      return { ok: false, error: { kind: 'invalid-argument', message: step.value.rejected.detail } };
    }
    const busy = step.value.effects.find((e): e is Extract<AdmissionEffect, { type: 'busy' }> => e.type === 'busy');
    if (busy !== undefined) {
      const ids = busy.inFlight.join(', ');
      return failWith(
        'resource-exhausted',
        'PLAN_BUSY',
        `checkpoint ${ids} of plan ${planId} ${busy.inFlight.length === 1 ? 'is' : 'are'} in flight (max_concurrent ${busy.maxConcurrent}); retry once ${busy.inFlight.length === 1 ? 'it has' : 'they have'} ended, or cancel ${busy.inFlight.length === 1 ? 'it' : 'them'}`,
        { plan_id: planId, in_flight: busy.inFlight.join(','), max_concurrent: String(busy.maxConcurrent) },
      );
    }
    return ok({ preempted: step.value.effects.flatMap((e) => (e.type === 'preempt' ? [e.checkpointId] : [])) });
  }

  /** Frees the slot of a checkpoint whose record is final (or that never started). */
  async release(planId: string, checkpointId: number): Promise<void> {
    const step = await this.slots.transact(planId, (current) => {
      const s = stepAdmission(current, { type: 'release', checkpointId }, this.config);
      return { next: s.changed ? s.slots : undefined, out: s };
    });
    if (!step.ok) {
      // Not fatal: the next request of this coordinator on the plan reclaims the slot.
      this.log.warn({ plan: planId, checkpointId, error: step.error.message }, 'admission slot not released; the next request reclaims it');
      return;
    }
    if (step.value.rejected) this.log.debug({ plan: planId, checkpointId, reason: step.value.rejected.reason }, 'no admission slot to release');
    else this.logEffects(planId, step.value.effects);
  }

  private logEffects(planId: string, effects: readonly AdmissionEffect[]): void {
    for (const e of effects) {
      if (e.type === 'reclaimed') this.log.warn({ plan: planId, checkpointIds: e.checkpointIds }, 'admission slots of checkpoints no longer running reclaimed');
      else if (e.type === 'preempt') this.log.info({ plan: planId, checkpointId: e.checkpointId, by: e.by }, 'periodic checkpoint preempted by a manual request');
      else if (e.type === 'busy') this.log.info({ plan: planId, checkpointId: e.checkpointId, inFlight: e.inFlight }, 'checkpoint refused: plan busy');
      else this.log.debug({ plan: planId, checkpointId: e.checkpointId, effect: e.type }, 'admission');
    }
  }
}
