/**
 * The plan registry: PlansApi over a PlanStore, with the validation of plan-validation.ts in front
 * and the checkpoint side plugged in through two callbacks (the registry knows nothing about how
 * checkpoints are kept, only whether a plan still has some and how to have them deleted).
 */
import type { Logger } from 'pino';
import type { Page, PlansApi } from './api.js';
import { fail, failWith, ok, type Result } from './errors.js';
import type { Plan, PlanInput } from './model.js';
import { planLimitsDefault, validatePlan, validatePlanLimits, type PlanLimits } from './plan-validation.js';
import type { PlanStore } from './store/index.js';

export interface PlanRegistryDeps {
  readonly store: PlanStore;
  /** Whether any checkpoint of the plan exists (in flight or finished). */
  readonly hasCheckpoints: (planId: string) => Promise<Result<boolean>>;
  /**
   * Deletes every checkpoint of the plan and its stored parts; FAILED_PRECONDITION if one is in
   * flight and cannot be cancelled.
   */
  readonly deleteCheckpoints: (planId: string) => Promise<Result<void>>;
  readonly now?: () => number;
  readonly logger: Logger;
  readonly limits?: Partial<PlanLimits>;
  /** The sites this coordinator has (docs/sites.md): a plan's copy_to_sites must name only these. */
  readonly siteNames?: () => readonly string[];
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function checkPlanId(planId: string): Result<string> {
  if (planId === '') return fail('invalid-argument', 'plan_id is required');
  return NAME.test(planId) ? ok(planId) : fail('invalid-argument', `plan_id ${JSON.stringify(planId.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
}

/** The fields a caller may set, in a fixed order, so stored plans never carry stray properties. */
function planValue(input: PlanInput, createdAtUnixMs: number, updatedAtUnixMs: number): Omit<Plan, 'revision'> {
  return {
    id: input.id,
    tenant: input.tenant,
    servers: [...input.servers],
    apps: input.apps.map((a) => ({ server: a.server, app: a.app })),
    channels: input.channels.map((c) => ({
      from: { server: c.from.server, app: c.from.app },
      to: { server: c.to.server, app: c.to.app },
      kind: c.kind,
      ...(c.kind === 'log' && c.logStream !== undefined ? { logStream: c.logStream } : {}),
      ...(c.kind === 'log' && c.logSubject !== undefined ? { logSubject: c.logSubject } : {}),
    })),
    volumes: input.volumes.map((v) => ({ id: v.id, server: v.server, backendRef: v.backendRef })),
    ...(input.agentlessServers !== undefined && input.agentlessServers.length > 0
      ? { agentlessServers: input.agentlessServers.map((a) => ({ server: a.server, backendRef: a.backendRef, ...(a.guestAgentRef !== undefined ? { guestAgentRef: a.guestAgentRef } : {}) })) }
      : {}),
    ...(input.copyToSites !== undefined && input.copyToSites.length > 0 ? { copyToSites: [...input.copyToSites] } : {}),
    createdAtUnixMs,
    updatedAtUnixMs,
  };
}

export class PlanRegistry implements PlansApi {
  private readonly limits: PlanLimits;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly deps: PlanRegistryDeps) {
    this.limits = { ...planLimitsDefault, ...deps.limits };
    const invalid = validatePlanLimits(this.limits);
    if (invalid !== undefined) throw new Error(`invalid plan limits: ${invalid}`);
    this.log = deps.logger.child({ component: 'plans' });
    this.now = deps.now ?? Date.now;
  }

  async register(input: PlanInput, expectedRevision: number): Promise<Result<Plan>> {
    if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
      return fail('invalid-argument', `expected_revision must be 0 (create) or a revision, got ${expectedRevision}`);
    }
    const valid = validatePlan(input, this.limits);
    if (!valid.ok) {
      this.log.info({ planId: input.id, tenant: input.tenant, reason: valid.error.message }, 'plan rejected');
      return valid;
    }
    const sites = this.checkCopySites(input);
    if (!sites.ok) return sites;
    const shared = await this.appsInOtherPlans(input);
    if (!shared.ok) return shared;
    const at = this.now();
    let stored: Result<Plan>;
    if (expectedRevision === 0) {
      stored = await this.deps.store.create(planValue(input, at, at));
    } else {
      const current = await this.deps.store.get(input.id);
      if (!current.ok) {
        return current.error.kind === 'not-found'
          ? fail('not-found', `plan ${input.id} does not exist, so it cannot be replaced; register it with expected_revision 0 to create it`)
          : current;
      }
      if (current.value.tenant !== input.tenant) {
        // Its checkpoints live in the old tenant's bucket and its agents on the old tenant's subjects.
        return fail('invalid-argument', `tenant cannot change: plan ${input.id} belongs to tenant ${current.value.tenant}, not ${input.tenant}`);
      }
      stored = await this.deps.store.update(planValue(input, current.value.createdAtUnixMs, at), expectedRevision);
    }
    if (stored.ok) {
      this.log.info({ planId: input.id, tenant: input.tenant, revision: stored.value.revision, created: expectedRevision === 0 }, 'plan registered');
    } else {
      this.log.info({ planId: input.id, tenant: input.tenant, kind: stored.error.kind, reason: stored.error.message }, 'plan not registered');
    }
    return stored;
  }

  /** Automatic copies go to configured sites only: a name that is not one would fail every copy after every checkpoint. */
  private checkCopySites(input: PlanInput): Result<void> {
    const wanted = input.copyToSites ?? [];
    if (wanted.length === 0) return ok(undefined);
    const known = this.deps.siteNames?.() ?? [];
    const unknown = wanted.filter((s) => !known.includes(s));
    if (unknown.length === 0) return ok(undefined);
    const have = known.length > 0 ? `the configured sites are ${known.join(', ')}` : 'this coordinator has no sites configured (docs/sites.md)';
    return fail('invalid-argument', `plan.copy_to_sites names ${unknown.join(', ')}, which ${unknown.length === 1 ? 'is not a configured site' : 'are not configured sites'}; ${have}`);
  }

  /**
   * An app belongs to at most one plan (decided in docs/api.md): its epoch, its fencing and its
   * checkpoints would otherwise be the business of two plans that roll back independently, and a
   * rollback of one would put the app back behind the other's back. Checked across the tenant's
   * plans before the write; two registrations racing with the same app can both pass, which the
   * leader of issue 11, the only writer of plans, rules out.
   */
  private async appsInOtherPlans(input: PlanInput): Promise<Result<void>> {
    const mine = new Set(input.apps.map((a) => `${a.server}/${a.app}`));
    let token = '';
    do {
      const page = await this.deps.store.list({ tenant: input.tenant }, 100, token);
      if (!page.ok) return page;
      for (const other of page.value.items) {
        if (other.id === input.id) continue;
        const both = other.apps.map((a) => `${a.server}/${a.app}`).filter((a) => mine.has(a));
        if (both.length > 0) {
          this.log.info({ planId: input.id, tenant: input.tenant, other: other.id, apps: both.slice(0, 10) }, 'plan rejected: apps in another plan');
          const shown = both.slice(0, 5).join(', ') + (both.length > 5 ? ` and ${both.length - 5} more` : '');
          return failWith(
            'failed-precondition',
            'APP_IN_ANOTHER_PLAN',
            `plan ${input.id} includes ${shown}, already in plan ${other.id}: an app belongs to at most one plan; remove it from plan ${other.id} first (or from this one)`,
            { plan_id: input.id, other_plan_id: other.id, apps: both.slice(0, 20).join(',') },
          );
        }
      }
      token = page.value.nextPageToken;
    } while (token !== '');
    return ok(undefined);
  }

  async get(planId: string): Promise<Result<Plan>> {
    const id = checkPlanId(planId);
    if (!id.ok) return id;
    return this.deps.store.get(planId);
  }

  async list(tenant: string | undefined, pageSize: number, pageToken: string): Promise<Result<Page<Plan>>> {
    if (tenant !== undefined && !NAME.test(tenant)) return fail('invalid-argument', `tenant ${JSON.stringify(tenant.slice(0, 80))} must match [A-Za-z0-9_-]{1,64}`);
    return this.deps.store.list(tenant === undefined ? {} : { tenant }, pageSize, pageToken);
  }

  async delete(planId: string, deleteCheckpoints: boolean): Promise<Result<void>> {
    const id = checkPlanId(planId);
    if (!id.ok) return id;
    const plan = await this.deps.store.get(planId);
    if (!plan.ok) return plan;
    if (deleteCheckpoints) {
      const deleted = await this.deps.deleteCheckpoints(planId);
      if (!deleted.ok) return deleted;
    } else {
      const has = await this.deps.hasCheckpoints(planId);
      if (!has.ok) return has;
      if (has.value) {
        return fail('failed-precondition', `plan ${planId} still has checkpoints: delete them first, or delete the plan with delete_checkpoints set`);
      }
    }
    // At the revision read: a plan replaced meanwhile is not deleted behind its writer's back.
    const deleted = await this.deps.store.delete(planId, plan.value.revision);
    if (deleted.ok) this.log.info({ planId, tenant: plan.value.tenant, withCheckpoints: deleteCheckpoints }, 'plan deleted');
    return deleted;
  }
}
