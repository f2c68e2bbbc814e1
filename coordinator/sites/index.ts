/**
 * The coordinator's sites, wired (docs/sites.md): the connections, the copy service behind
 * CopyCheckpoint, ListCheckpointCopies and RestoreSnapshot from_site, and the automatic copy of
 * every completed checkpoint of a plan that names sites in copy_to_sites. main.ts starts it.
 */
import type { Logger } from 'pino';
import type { StateObjects } from '../../adapters/state-store.js';
import type { RestoreRequest } from '../api.js';
import type { Result } from '../errors.js';
import type { CheckpointRecord } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import type { SiteConfig } from './config.js';
import { SiteLinks } from './links.js';
import { SiteCopies } from './service.js';

export { SiteCopies } from './service.js';
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
  deps.onEnded((record) => {
    if (record.state === 'completed') track(copyAfterCompletion(record, deps, copies));
  });
  deps.onDeleted?.((record) => {
    if ((record.copies ?? []).length > 0) track(copies.deleteCopies(record));
  });
  return {
    copies,
    names: () => links.names(),
    async close() {
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
