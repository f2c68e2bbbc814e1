/**
 * Copies of checkpoints at other sites (docs/sites.md): CopyCheckpoint, the listing of a site's
 * copies, the automatic copy after each completed checkpoint of a plan that names sites, and the
 * restore from a site's copy while this deployment's own store may hold nothing of it.
 *
 * A restore from a site imports the copy first: its objects are read at the site against their
 * digests, written into this deployment's state store and read back, and the record is created
 * here under a new id (pinned, with `importedFrom`). The restore itself is then the ordinary one
 * (coordinator/checkpoints/operations.ts), with its checks, phases and recovery.
 */
import type { Logger } from 'pino';
import type { StateObjects } from '../../adapters/state-store.js';
import type { CheckpointId } from '../../src/ids.js';
import { isCheckpointId } from '../../src/ids.js';
import type { CopyListing, FromSite, RestoreRequest, SitesApi } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { CheckpointCopy, CheckpointRecord, CopySource, PlanInput } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import { copyRetryDefault, moveParts, type CopyRetry } from './copy.js';
import { copyKey, type SiteCopy } from './copy-records.js';
import type { SiteEndpoint } from './links.js';

/** The sites a coordinator can reach (links.ts; a test may wrap one). */
export interface SiteDirectory {
  has(name: string): boolean;
  names(): string[];
  endpoint(name: string): Promise<Result<SiteEndpoint>>;
}

export interface SiteCopiesDeps {
  readonly store: Pick<CoordinatorStore, 'checkpoints' | 'plans'>;
  /** This deployment's state objects (where its agents read and write). */
  readonly objects: StateObjects;
  readonly sites: SiteDirectory;
  /** This deployment's own site name: the source of every copy it makes. */
  readonly siteName: string;
  readonly restore: (request: RestoreRequest) => Promise<Result<{ epoch: number }>>;
  readonly logger: Logger;
  readonly retry?: CopyRetry;
  /** Pauses before an automatic copy that failed for an unavailable site is made again; [] for none. */
  readonly autoRetryDelaysMs?: readonly number[];
  readonly nowUnixMs?: () => number;
}

/** An automatic copy the site refused for being unavailable is made again after these pauses. */
export const AUTO_COPY_RETRY_DELAYS_MS: readonly number[] = [10_000, 60_000, 300_000];

/** Where the objects of a copy live at the site: under the source site's name and the source id. */
export function copyPrefix(sourceSite: string, sourceCheckpointId: CheckpointId): string {
  return `copy/${sourceSite}/${sourceCheckpointId}/`;
}

export type CopyEndedListener = (site: string, record: CheckpointRecord, copy: CheckpointCopy) => void;

export class SiteCopies implements SitesApi {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly listeners: CopyEndedListener[] = [];
  /** One copy of a checkpoint to a site at a time: a second call for the same pair waits for the first and copies again. */
  private readonly running = new Map<string, Promise<Result<CheckpointCopy>>>();
  private closed = false;
  /** Wakes the pauses of automatic copies waiting to be made again (close). */
  private readonly sleepers = new Set<() => void>();

  constructor(private readonly deps: SiteCopiesDeps) {
    this.log = deps.logger.child({ component: 'sites' });
    this.now = deps.nowUnixMs ?? Date.now;
  }

  onCopyEnded(listener: CopyEndedListener): void {
    this.listeners.push(listener);
  }

  async copy(checkpointId: CheckpointId, site: string): Promise<Result<CheckpointCopy>> {
    const known = this.knownSite(site);
    if (!known.ok) return known;
    const got = await this.deps.store.checkpoints.get(checkpointId);
    if (!got.ok) return got;
    const record = got.value.record;
    if (record.state !== 'completed') return fail('failed-precondition', `checkpoint ${record.id} is ${record.state}; only a completed checkpoint is copied`);
    if (record.deleting === true) return fail('failed-precondition', `checkpoint ${record.id} is being deleted; it is not copied`);
    const key = `${site}|${record.id}`;
    const before = this.running.get(key) ?? Promise.resolve(ok(undefined));
    const run = before.then(() => this.copyNow(record, site));
    this.running.set(key, run);
    try {
      return await run;
    } finally {
      if (this.running.get(key) === run) this.running.delete(key);
    }
  }

  /**
   * The automatic copies of a completed checkpoint, one site after another; failures are recorded
   * and logged, not thrown. One that failed for an unavailable site (down, unreachable) is made
   * again after each of `autoRetryDelaysMs`, until it is made, fails otherwise, or `close`.
   */
  async copyCompleted(record: CheckpointRecord, sites: readonly string[]): Promise<void> {
    for (const site of sites) {
      if (!this.deps.sites.has(site)) {
        this.log.warn({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, site }, 'automatic copy not made: the plan names a site this coordinator does not have configured');
        continue;
      }
      let made = await this.copy(record.id, site);
      for (const delayMs of this.deps.autoRetryDelaysMs ?? AUTO_COPY_RETRY_DELAYS_MS) {
        if (made.ok || made.error.kind !== 'unavailable' || !(await this.pause(delayMs))) break;
        this.log.info({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, site, afterMs: delayMs }, 'automatic copy made again after the site was unavailable');
        made = await this.copy(record.id, site);
      }
    }
  }

  /** Whether `site` is configured on this coordinator. */
  hasSite(site: string): boolean {
    return this.deps.sites.has(site);
  }

  /** Stops the pauses of automatic copies waiting to be made again: they are not made. */
  close(): void {
    this.closed = true;
    for (const wake of this.sleepers) wake();
    this.sleepers.clear();
  }

  /** False when closed meanwhile. */
  private pause(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve(!this.closed);
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /**
   * A checkpoint deleted here (DeleteCheckpoint or retention) takes its copies with it at every
   * site its record names, so a site holds what the source's retention keeps and no more. The
   * record goes first, so a copy is never listed without its objects; then the objects, by their
   * prefix (a failed copy may have left some too). Best effort: what a site that does not answer
   * keeps is logged with what to remove by hand (docs/sites.md).
   */
  async deleteCopies(record: CheckpointRecord): Promise<void> {
    const sites = [...new Set((record.copies ?? []).map((c) => c.site))];
    for (const site of sites) {
      const at = { checkpointId: record.id, plan: record.planId, tenant: record.tenant, site };
      const removed = await this.deleteCopy(record, site);
      if (removed.ok) this.log.info({ ...at, objects: removed.value }, 'copy at the site deleted with its checkpoint');
      else this.log.warn({ ...at, error: removed.error.message, key: copyKey(this.deps.siteName, record.id), prefix: copyPrefix(this.deps.siteName, record.id) }, 'copy at the site not deleted with its checkpoint: remove it by hand');
    }
  }

  private async deleteCopy(record: CheckpointRecord, site: string): Promise<Result<number>> {
    if (!this.deps.sites.has(site)) return fail('not-found', `site ${site} is no longer configured`);
    const endpoint = await this.deps.sites.endpoint(site);
    if (!endpoint.ok) return endpoint;
    const unlisted = await endpoint.value.copies.delete(this.deps.siteName, record.id);
    if (!unlisted.ok) return unlisted;
    const names = await endpoint.value.objects.list(record.tenant, copyPrefix(this.deps.siteName, record.id));
    if (!names.ok) return fail('unavailable', `the copy's objects could not be listed: ${names.error.message}`);
    const gone = await endpoint.value.objects.delete(record.tenant, names.value);
    if (!gone.ok) return fail('unavailable', `the copy's objects could not be deleted: ${gone.error.message}`);
    return ok(names.value.length);
  }

  async listCopies(site: string, filter: { planId?: string; tenant?: string }): Promise<Result<CopyListing[]>> {
    const known = this.knownSite(site);
    if (!known.ok) return known;
    const endpoint = await this.deps.sites.endpoint(site);
    if (!endpoint.ok) return endpoint;
    const copies = await endpoint.value.copies.list({});
    if (!copies.ok) return copies;
    return ok(
      copies.value
        .filter((c) => (filter.planId === undefined || c.record.planId === filter.planId) && (filter.tenant === undefined || c.record.tenant === filter.tenant))
        .map((c) => ({ site, sourceSite: c.sourceSite, sourceCheckpointId: c.sourceCheckpointId, copiedAtUnixMs: c.copiedAtUnixMs, record: c.record, objects: c.objects, bytes: c.bytes })),
    );
  }

  async restoreFrom(request: RestoreRequest, from: FromSite, tenant?: string): Promise<Result<{ epoch: number; checkpointId: CheckpointId }>> {
    const known = this.knownSite(from.site);
    if (!known.ok) return known;
    const endpoint = await this.deps.sites.endpoint(from.site);
    if (!endpoint.ok) return endpoint;
    const found = await this.findCopy(endpoint.value, request.checkpointId, from.sourceSite, tenant);
    if (!found.ok) return found;
    const copy = found.value;
    const opaque = await this.opaqueWithoutPlan(copy);
    if (!opaque.ok) return opaque;
    const imported = await this.imported(endpoint.value, copy);
    if (!imported.ok) return imported;
    const restored = await this.deps.restore({ checkpointId: imported.value, servers: request.servers, apps: request.apps, ...(request.idempotencyKey !== undefined ? { idempotencyKey: request.idempotencyKey } : {}) });
    return restored.ok ? ok({ epoch: restored.value.epoch, checkpointId: imported.value }) : restored;
  }

  /**
   * An all-opaque plan's apps are restored in the order of its graph (docs/rollback.md), which the
   * restore reads from the plan registered here: without it they would be sent in-band restores.
   */
  private async opaqueWithoutPlan(copy: SiteCopy): Promise<Result<void>> {
    const channels = copy.plan?.channels ?? [];
    if (copy.record.levelAchieved !== 'app' || channels.length === 0 || !channels.every((c) => c.kind === 'opaque')) return ok(undefined);
    const here = await this.deps.store.plans.get(copy.record.planId);
    if (here.ok) return ok(undefined);
    if (here.error.kind !== 'not-found') return here;
    return fail('failed-precondition', `checkpoint ${copy.sourceCheckpointId} of site ${copy.sourceSite} is of plan ${copy.record.planId}, whose apps are all opaque: register a plan ${copy.record.planId} here (its graph orders their restore) before restoring it from a site`);
  }

  private knownSite(site: string): Result<void> {
    if (this.deps.sites.has(site)) return ok(undefined);
    const names = this.deps.sites.names();
    return fail('not-found', `site ${site} is not configured${names.length > 0 ? `; the configured sites are ${names.join(', ')}` : '; this coordinator has no sites (the sites key of its configuration file, docs/sites.md)'}`);
  }

  private async copyNow(record: CheckpointRecord, site: string): Promise<Result<CheckpointCopy>> {
    const log = this.log.child({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, site });
    const made = await this.writeCopy(record, site);
    const copy: CheckpointCopy = made.ok ? made.value : { site, state: 'failed', failedAtUnixMs: this.now(), detail: made.error.message };
    if (made.ok) log.info({ lagMs: made.value.state === 'copied' ? made.value.lagMs : undefined }, 'checkpoint copied to site');
    else log.warn({ error: made.error.message }, 'checkpoint not copied to site');
    // What the source's record says of its copies is for show, list and the lag; the copy at the
    // site is complete (or absent) whatever becomes of this write.
    const noted = await this.deps.store.checkpoints.update(record.id, (current) => ({ ...current, copies: [...(current.copies ?? []).filter((c) => c.site !== site), copy] }));
    if (!noted.ok) log.warn({ error: noted.error.message }, "the copy's outcome not written into the checkpoint record");
    for (const l of this.listeners) l(site, record, copy);
    return made;
  }

  private async writeCopy(record: CheckpointRecord, site: string): Promise<Result<CheckpointCopy>> {
    const endpoint = await this.deps.sites.endpoint(site);
    if (!endpoint.ok) return endpoint;
    const plan = await this.deps.store.plans.get(record.planId);
    if (!plan.ok && plan.error.kind !== 'not-found') return plan;
    const source = this.deps.siteName;
    const moved = await moveParts(record, {
      tenant: record.tenant,
      from: this.deps.objects,
      fromName: `site ${source}`,
      to: endpoint.value.objects,
      toName: `site ${site}`,
      rename: (name) => `${copyPrefix(source, record.id)}${name}`,
      retry: this.deps.retry ?? copyRetryDefault,
    });
    if (!moved.ok) return moved;
    const copiedAtUnixMs = this.now();
    const abandon = async (): Promise<void> => {
      const names = moved.value.parts.flatMap((p) => [p.state?.name, p.channelState?.name]).filter((n): n is string => n !== undefined);
      await endpoint.value.objects.delete(record.tenant, names);
    };
    const { copies: _copies, importedFrom: _importedFrom, ...rest } = record;
    const written = await endpoint.value.copies.put({
      sourceSite: source,
      sourceCheckpointId: record.id,
      copiedAtUnixMs,
      record: { ...rest, parts: moved.value.parts },
      ...(plan.ok ? { plan: planInputOf(plan.value) } : {}),
      objects: moved.value.objects,
      bytes: moved.value.bytes,
    });
    if (!written.ok) {
      // The record may have landed (a timeout): then the objects it names must stay.
      if (written.error.kind !== 'unavailable') await abandon();
      return written;
    }
    return ok({ site, state: 'copied', copiedAtUnixMs, lagMs: Math.max(0, copiedAtUnixMs - (record.finishedAtUnixMs ?? copiedAtUnixMs)) });
  }

  private async findCopy(endpoint: SiteEndpoint, id: CheckpointId, sourceSite: string, tenant: string | undefined): Promise<Result<SiteCopy>> {
    const where = `site ${endpoint.name}`;
    const listed = await endpoint.copies.list({ sourceCheckpointId: id, ...(sourceSite !== '' ? { sourceSite } : {}) });
    if (!listed.ok) return listed;
    const copies = listed.value.filter((c) => tenant === undefined || c.record.tenant === tenant);
    const from = sourceSite !== '' ? ` from site ${sourceSite}` : '';
    const first = copies[0];
    if (first === undefined) return fail('not-found', `${where} holds no copy of checkpoint ${id}${from} (snapctl copies ${endpoint.name} lists what it holds)`);
    if (copies.length > 1) {
      return fail('invalid-argument', `${where} holds copies of checkpoint ${id} from sites ${copies.map((c) => c.sourceSite).join(', ')}: name one as source_site (snapctl restore --source-site)`);
    }
    return ok(first);
  }

  /** The local id of the copy imported here: an earlier import of this very copy, or a new one. */
  private async imported(endpoint: SiteEndpoint, copy: SiteCopy): Promise<Result<CheckpointId>> {
    const source: CopySource = { site: endpoint.name, sourceSite: copy.sourceSite, sourceCheckpointId: copy.sourceCheckpointId, copiedAtUnixMs: copy.copiedAtUnixMs };
    const earlier = await this.findImport(copy.record.planId, source);
    if (!earlier.ok) return earlier;
    if (earlier.value !== undefined) return ok(earlier.value);
    const id = await this.deps.store.checkpoints.nextId();
    if (!id.ok) return id;
    const log = this.log.child({ checkpointId: id.value, plan: copy.record.planId, tenant: copy.record.tenant, site: endpoint.name });
    const moved = await moveParts(copy.record, {
      tenant: copy.record.tenant,
      from: endpoint.objects,
      fromName: `site ${endpoint.name}`,
      to: this.deps.objects,
      toName: `site ${this.deps.siteName}`,
      rename: (name) => `import/${endpoint.name}/${id.value}/${name}`,
      retry: this.deps.retry ?? copyRetryDefault,
    });
    if (!moved.ok) return moved;
    const { idempotencyKey: _key, pinned: _pinned, ...rest } = copy.record;
    // Pinned: retention must not delete the checkpoint a site's restore brought in.
    const record: CheckpointRecord = { ...rest, id: id.value, parts: moved.value.parts, pinned: true, importedFrom: source };
    const created = await this.deps.store.checkpoints.create(record);
    if (!created.ok) return created;
    log.info({ sourceSite: copy.sourceSite, sourceCheckpointId: copy.sourceCheckpointId, objects: moved.value.objects }, 'copy imported from site');
    return ok(id.value);
  }

  private async findImport(planId: string, source: CopySource): Promise<Result<CheckpointId | undefined>> {
    let token = '';
    do {
      const page = await this.deps.store.checkpoints.list({ planId, states: ['completed'] }, 100, token);
      if (!page.ok) return page;
      const hit = page.value.items.find(
        (r) =>
          r.importedFrom !== undefined &&
          r.importedFrom.site === source.site &&
          r.importedFrom.sourceSite === source.sourceSite &&
          r.importedFrom.sourceCheckpointId === source.sourceCheckpointId &&
          r.importedFrom.copiedAtUnixMs === source.copiedAtUnixMs,
      );
      if (hit !== undefined && isCheckpointId(hit.id)) return ok(hit.id);
      token = page.value.nextPageToken;
    } while (token !== '');
    return ok(undefined);
  }
}

function planInputOf(plan: PlanInput): PlanInput {
  const { id, tenant, servers, apps, channels, volumes, agentlessServers } = plan;
  return { id, tenant, servers, apps, channels, volumes, ...(agentlessServers !== undefined ? { agentlessServers } : {}) };
}
