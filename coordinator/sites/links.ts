/**
 * Connections to the configured sites, opened on first use and kept: a site that is down when the
 * coordinator starts must not stop it, and a copy to it then fails as UNAVAILABLE (retry later).
 * A connection that failed is dropped, so the next call connects again.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { JetStreamStateObjects, type StateObjects } from '../../adapters/state-store.js';
import { fail, ok, type Result } from '../errors.js';
import { bucketOptionsDefault, opener } from '../store/kv.js';
import { errorText } from '../store/nats-errors.js';
import type { SiteConfig } from './config.js';
import { BUCKET_SITE_COPIES, SiteCopyRecords } from './copy-records.js';

/** What the copy code uses of a site: its objects and its copy records. */
export interface SiteEndpoint {
  readonly name: string;
  readonly objects: StateObjects;
  readonly copies: SiteCopyRecords;
}

/** Copies are written once and replaced whole; no history is worth keeping. */
const COPIES_HISTORY = 1;

export interface SiteLinksOptions {
  /** How long connecting to a site may take before the call fails as UNAVAILABLE. */
  readonly connectTimeoutMs: number;
  /** How long one JetStream call at a site may take. */
  readonly requestTimeoutMs: number;
}

export const siteLinksOptionsDefault: SiteLinksOptions = { connectTimeoutMs: 5_000, requestTimeoutMs: 10_000 };

export class SiteLinks {
  private readonly open = new Map<string, Promise<Result<{ nc: NatsConnection; endpoint: SiteEndpoint }>>>();
  private readonly byName: ReadonlyMap<string, SiteConfig>;

  constructor(
    sites: readonly SiteConfig[],
    private readonly logger: Logger,
    private readonly options: SiteLinksOptions = siteLinksOptionsDefault,
  ) {
    this.byName = new Map(sites.map((s) => [s.name, s]));
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** NOT_FOUND naming the configured sites for a name that is not one; UNAVAILABLE when the site cannot be reached. */
  async endpoint(name: string): Promise<Result<SiteEndpoint>> {
    const site = this.byName.get(name);
    if (site === undefined) {
      const known = this.names();
      return fail('not-found', `site ${name} is not configured${known.length > 0 ? `; the configured sites are ${known.join(', ')}` : '; this coordinator has no sites (the sites key of its configuration file)'}`);
    }
    let opening = this.open.get(name);
    if (opening === undefined) {
      opening = this.connect(site);
      this.open.set(name, opening);
    }
    const opened = await opening;
    if (!opened.ok) {
      this.open.delete(name);
      return opened;
    }
    if (opened.value.nc.isClosed()) {
      this.open.delete(name);
      return this.endpoint(name);
    }
    return ok(opened.value.endpoint);
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const opening of all) {
      const opened = await opening;
      if (opened.ok) await opened.value.nc.drain().catch(() => undefined);
    }
  }

  private async connect(site: SiteConfig): Promise<Result<{ nc: NatsConnection; endpoint: SiteEndpoint }>> {
    const log = this.logger.child({ site: site.name });
    let options: ConnectionOptions;
    try {
      options = {
        servers: site.natsUrl.split(','),
        name: `snapshot-coordinator-site-${site.name}`,
        timeout: this.options.connectTimeoutMs,
        // A copy in progress survives a short drop of the site; a site down for good fails the
        // copy by its request timeouts, and the connection keeps trying for the next one.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        ...(site.credsFile !== undefined ? { authenticator: credsAuthenticator(readFileSync(site.credsFile)) } : {}),
        ...(site.token !== undefined ? { token: site.token } : {}),
        ...(site.tlsCaFile !== undefined || site.tlsCertFile !== undefined
          ? { tls: { ...(site.tlsCaFile !== undefined ? { caFile: site.tlsCaFile } : {}), ...(site.tlsCertFile !== undefined ? { certFile: site.tlsCertFile, keyFile: site.tlsKeyFile } : {}) } }
          : {}),
      };
    } catch (error) {
      return fail('failed-precondition', `site ${site.name}: cannot read its credentials file ${site.credsFile ?? ''}: ${errorText(error)}`);
    }
    let nc: NatsConnection;
    try {
      nc = await connect(options);
    } catch (error) {
      log.warn({ natsUrl: site.natsUrl, error: errorText(error) }, 'site not reachable');
      return fail('unavailable', `site ${site.name} (${site.natsUrl}) cannot be reached: ${errorText(error)}`);
    }
    try {
      const bucketOptions = { ...bucketOptionsDefault, replicas: site.replicas, requestTimeoutMs: this.options.requestTimeoutMs };
      const kv = await opener(nc, bucketOptions)(BUCKET_SITE_COPIES, COPIES_HISTORY);
      const objects = new JetStreamStateObjects(nc, { replicas: site.replicas, requestTimeoutMs: this.options.requestTimeoutMs });
      log.info({ natsUrl: site.natsUrl }, 'site connected');
      return ok({ nc, endpoint: { name: site.name, objects, copies: new SiteCopyRecords(kv) } });
    } catch (error) {
      await nc.close().catch(() => undefined);
      log.warn({ natsUrl: site.natsUrl, error: errorText(error) }, 'site reached but its JetStream did not answer');
      return fail('unavailable', `site ${site.name} (${site.natsUrl}): its JetStream did not answer: ${errorText(error)}`);
    }
  }
}
