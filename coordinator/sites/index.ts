/**
 * The coordinator's sites, wired (docs/sites.md): the connections, the copy service behind
 * CopyCheckpoint, ListCheckpointCopies and RestoreSnapshot from_site, and the automatic copy of
 * every completed checkpoint of a plan that names sites in copy_to_sites. main.ts starts it.
 */
import type { Logger } from 'pino';
import type { StateObjects } from '../../adapters/state-store.js';
import type { RestoreRequest } from '../api.js';
import { ok, type Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import type { SiteConfig } from './config.js';
import { SiteLinks } from './links.js';
import { SiteCopies } from './service.js';

export { SiteCopies } from './service.js';

/** How often the leader looks for automatic copies that were never made (Sites.catchUp). */
export const COPY_CATCH_UP_INTERVAL_MS = 5 * 60_000;
export { SiteLinks } from './links.js';

export interface SitesDeps {
  readonly siteName: string;
  readonly sites: readonly SiteConfig[];
  readonly store: Pick<CoordinatorStore, 'checkpoints' | 'plans'>;
  readonly objects: StateObjects;
  readonly restore: (request: RestoreRequest) => Promise<Result<{ epoch: number }>>;
  /** Completed checkpoints of the rounds this coordinator runs (CheckpointService.onEnded). */
  readonly onEnded: (listener: (record: CheckpointRecord) => void) => void;
  /** Checkpoints this coordinator deleted (CheckpointService.onDeleted): their copies go too. */
  readonly onDeleted?: (listener: (record: CheckpointRecord) => void) => void;
  readonly logger: Logger;
}

export interface Sites {
  readonly copies: SiteCopies;
  readonly names: () => readonly string[];
  /**
   * For each plan with copy_to_sites, makes the automatic copies its newest completed checkpoint
   * lacks: those still failing after their pauses, and those a stopped coordinator left. The
   * leader runs it when it takes over and every COPY_CATCH_UP_INTERVAL_MS. Answers how many copies
   * it made, or why it could not look.
   */
  catchUp(): Promise<Result<number>>;
  /** Waits for the automatic copies and deletions under way, then closes the connections. */
  close(): Promise<void>;
}

export function startSites(deps: SitesDeps): Sites {
  const links = new SiteLinks(deps.sites, deps.logger.child({ component: 'sites' }));
  const copies = new SiteCopies({ store: deps.store, objects: deps.objects, sites: links, siteName: deps.siteName, restore: deps.restore, logger: deps.logger });
  const automatic = new Set<Promise<void>>();
  const track = (work: Promise<void>): void => {
    const run = work.finally(() => automatic.delete(run));
    automatic.add(run);
  };
  // The service keeps its listeners: once closed, these start nothing (a copy begun by a closed
  // instance would run beside the next one's copy of the same checkpoint, into the same objects).
  let closed = false;
  deps.onEnded((record) => {
    if (!closed && record.state === 'completed') track(copyAfterCompletion(record, deps, copies));
  });
  deps.onDeleted?.((record) => {
    if (!closed && (record.copies ?? []).length > 0) track(copies.deleteCopies(record));
  });
  return {
    copies,
    names: () => links.names(),
    catchUp: () => catchUpCopies(deps, copies),
    async close() {
      closed = true;
      copies.close();
      await Promise.allSettled([...automatic]);
      await links.close();
    },
  };
}

/** The plan's copy_to_sites as it is now: a site removed from the plan since is not copied to. */
async function copyAfterCompletion(record: CheckpointRecord, deps: SitesDeps, copies: SiteCopies): Promise<void> {
  const plan = await deps.store.plans.get(record.planId);
  if (!plan.ok) {
    if (plan.error.kind !== 'not-found') deps.logger.warn({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, error: plan.error.message }, 'plan not read: its automatic copies not made');
    return;
  }
  const sites = plan.value.copyToSites ?? [];
  if (sites.length > 0) await copies.copyCompleted(record, sites);
}

async function catchUpCopies(deps: SitesDeps, copies: SiteCopies): Promise<Result<number>> {
  if (deps.sites.length === 0) return ok(0);
  let made = 0;
  let token = '';
  do {
    const page = await deps.store.plans.list({}, 100, token);
    if (!page.ok) return page;
    for (const plan of page.value.items) {
      const sites = plan.copyToSites ?? [];
      if (sites.length === 0) continue;
      // Newest first: the newest completed checkpoint is what a copy's lag (the site's RPO) is about.
      const newest = await deps.store.checkpoints.list({ planId: plan.id, states: ['completed'] }, 1, '');
      if (!newest.ok) return newest;
      const record = newest.value.items[0];
      if (record === undefined || record.deleting === true) continue;
      const missing = sites.filter((site) => !(record.copies ?? []).some((c) => c.site === site && c.state === 'copied'));
      if (missing.length === 0) continue;
      for (const site of missing) {
        if (!copies.hasSite(site)) continue;
        // One try: a site still down is tried again at the next catch-up, not held here.
        const copied = await copies.copy(record.id, site);
        const at = { checkpointId: record.id, plan: plan.id, tenant: plan.tenant, site };
        if (copied.ok) made += 1;
        if (copied.ok) deps.logger.info(at, 'automatic copy that was missing made');
        else deps.logger.warn({ ...at, error: copied.error.message }, 'automatic copy that was missing not made: tried again at the next catch-up');
      }
    }
    token = page.value.nextPageToken;
  } while (token !== '');
  return ok(made);
}
