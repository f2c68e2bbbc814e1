/**
 * Policies as API objects (PoliciesApi): validated, stored with the plans, and applied as they
 * change: each write restarts the plan's periodic checkpoints from its schedule (PlanSchedule) and
 * changes the rules the checkpoint service's retention asks for (`retentionFor`). At start-up
 * `start()` reads every stored policy, so policies survive a restart.
 */
import type { Logger } from 'pino';
import type { RetentionRules } from '../../src/control/retention.js';
import type { Page, PlansApi, PoliciesApi, TakeSnapshotRequest } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import { PlanSchedule } from '../schedule.js';
import type { PlanStore } from '../store/plans.js';
import type { PolicyStore } from '../store/policies.js';
import { scheduleSpecOf, validatePolicyInput, type Policy, type PolicyInput } from './model.js';

export interface PolicyRegistryDeps {
  readonly store: PolicyStore;
  readonly plans: Pick<PlanStore, 'get'>;
  readonly logger: Logger;
  /** What a schedule starts checkpoints with (the checkpoint service). */
  readonly take: (request: TakeSnapshotRequest) => Promise<Result<CheckpointRecord>>;
  readonly waitFor: (id: number) => Promise<CheckpointRecord>;
  readonly nowUnixMs?: () => number;
}

export class PolicyRegistry implements PoliciesApi {
  private readonly schedules = new Map<string, PlanSchedule>();
  private readonly retention = new Map<string, RetentionRules>();
  private readonly log: Logger;
  private readonly now: () => number;
  private started = false;

  constructor(private readonly deps: PolicyRegistryDeps) {
    this.log = deps.logger.child({ component: 'policies' });
    this.now = deps.nowUnixMs ?? Date.now;
  }

  /** Reads every stored policy and applies it: schedules start, retention rules hold. */
  async start(): Promise<Result<number>> {
    this.started = true;
    let token = '';
    let count = 0;
    do {
      const page = await this.deps.store.list({}, 500, token);
      if (!page.ok) return page;
      for (const p of page.value.items) {
        this.apply(p.planId, p);
        count += 1;
      }
      token = page.value.nextPageToken;
    } while (token !== '');
    this.log.info({ policies: count }, 'policies applied');
    return ok(count);
  }

  stop(): void {
    this.started = false;
    for (const s of this.schedules.values()) s.stop();
    this.schedules.clear();
  }

  /** The retention rules of a plan's policy; undefined: the coordinator's default. */
  retentionFor(planId: string): RetentionRules | undefined {
    return this.retention.get(planId);
  }

  /** A checkpoint of the plan completed: its schedule, if suspended, resumes. */
  noteCompleted(planId: string): void {
    this.schedules.get(planId)?.noteCompleted();
  }

  async create(input: PolicyInput): Promise<Result<Policy>> {
    const valid = validatePolicyInput(input);
    if (!valid.ok) return valid;
    const tenant = await this.tenantOf(input.planId);
    if (!tenant.ok) return tenant;
    const at = this.now();
    const created = await this.deps.store.create({ ...input, tenant: tenant.value, createdAtUnixMs: at, updatedAtUnixMs: at });
    if (created.ok) this.changed(created.value, 'policy created');
    return created;
  }

  get(planId: string): Promise<Result<Policy>> {
    return this.deps.store.get(planId);
  }

  list(tenant: string | undefined, pageSize: number, pageToken: string): Promise<Result<Page<Policy>>> {
    return this.deps.store.list(tenant === undefined ? {} : { tenant }, pageSize, pageToken);
  }

  async update(input: PolicyInput, expectedRevision: number): Promise<Result<Policy>> {
    const valid = validatePolicyInput(input);
    if (!valid.ok) return valid;
    const current = await this.deps.store.get(input.planId);
    if (!current.ok) return current;
    const tenant = await this.tenantOf(input.planId);
    if (!tenant.ok) return tenant;
    const updated = await this.deps.store.update(
      { ...input, tenant: tenant.value, createdAtUnixMs: current.value.createdAtUnixMs, updatedAtUnixMs: this.now() },
      expectedRevision,
    );
    if (updated.ok) this.changed(updated.value, 'policy updated');
    return updated;
  }

  async delete(planId: string): Promise<Result<void>> {
    const deleted = await this.deps.store.delete(planId);
    if (deleted.ok) {
      this.apply(planId, undefined);
      this.log.info({ plan: planId }, 'policy deleted: periodic checkpoints stopped, default retention');
    }
    return deleted;
  }

  /** The plan is gone: so is its policy (its schedule stops). A plan without a policy changes nothing. */
  async planDeleted(planId: string): Promise<Result<void>> {
    const deleted = await this.delete(planId);
    return deleted.ok || deleted.error.kind === 'not-found' ? ok(undefined) : deleted;
  }

  private async tenantOf(planId: string): Promise<Result<string>> {
    const plan = await this.deps.plans.get(planId);
    if (plan.ok) return ok(plan.value.tenant);
    return plan.error.kind === 'not-found' ? fail('not-found', `plan ${planId} does not exist; register it before giving it a policy`) : plan;
  }

  private changed(p: Policy, message: string): void {
    this.apply(p.planId, p);
    this.log.info({ plan: p.planId, tenant: p.tenant, revision: p.revision, schedule: p.schedule, retention: p.retention }, message);
  }

  private apply(planId: string, p: Policy | undefined): void {
    this.schedules.get(planId)?.stop();
    this.schedules.delete(planId);
    if (p?.retention !== undefined) this.retention.set(planId, p.retention);
    else this.retention.delete(planId);
    if (p?.schedule !== undefined && this.started) {
      const s = new PlanSchedule(scheduleSpecOf(planId, p.schedule), { take: this.deps.take, waitFor: this.deps.waitFor, logger: this.deps.logger, nowUnixMs: this.now });
      this.schedules.set(planId, s);
      s.start();
    }
  }
}

/** The plans API whose DeletePlan also deletes the plan's policy (after the plan, so a refused delete keeps both). */
export function deletingPolicies(plans: PlansApi, policies: Pick<PolicyRegistry, 'planDeleted'>): PlansApi {
  return {
    register: (plan, expectedRevision) => plans.register(plan, expectedRevision),
    get: (planId) => plans.get(planId),
    list: (tenant, pageSize, pageToken) => plans.list(tenant, pageSize, pageToken),
    delete: async (planId, deleteCheckpoints) => {
      const deleted = await plans.delete(planId, deleteCheckpoints);
      return deleted.ok ? policies.planDeleted(planId) : deleted;
    },
  };
}
