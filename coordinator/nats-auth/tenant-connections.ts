/**
 * The coordinator's connections into tenants' NATS accounts (docs/security.md): one per tenant,
 * opened on first use with `<dir>/<tenant>/coordinator.creds` (written by `snapctl tenant create`),
 * used only for the tenant's JetStream (its state bucket). Events and commands do not go through
 * them: they cross accounts by stream exports and imports to the coordinator's own connection.
 *
 * Why not JetStream across accounts: reading an object runs an ordered push consumer, whose
 * deliveries and flow-control replies would each need their own export and import per tenant; a
 * plain client inside the tenant's account needs none.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import { isName } from '../../src/wire/index.js';

export class TenantConnections {
  private readonly open = new Map<string, Promise<NatsConnection>>();

  constructor(
    private readonly credsDir: string,
    private readonly connectOptions: ConnectionOptions,
  ) {}

  /** The connection into the tenant's account; rejects with an operator's message when it has no credentials. */
  get(tenant: string): Promise<NatsConnection> {
    let nc = this.open.get(tenant);
    if (nc === undefined) {
      nc = this.connect(tenant);
      // A failed connect (NATS down, tenant not created yet) is tried again by the next call.
      nc.catch(() => this.open.delete(tenant));
      this.open.set(tenant, nc);
    }
    return nc;
  }

  private async connect(tenant: string): Promise<NatsConnection> {
    if (!isName(tenant)) throw new Error(`tenant ${JSON.stringify(tenant.slice(0, 80))} is not a name`);
    const path = join(this.credsDir, tenant, 'coordinator.creds');
    let creds: Buffer;
    try {
      creds = readFileSync(path);
    } catch (error) {
      throw new Error(`no NATS credentials for tenant ${tenant} (${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}): create the tenant with snapctl tenant create ${tenant}`);
    }
    return connect({ ...this.connectOptions, name: `snapshot-coordinator@${tenant}`, authenticator: credsAuthenticator(creds) });
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const nc of all) await (await nc.catch(() => undefined))?.drain().catch(() => undefined);
  }
}
