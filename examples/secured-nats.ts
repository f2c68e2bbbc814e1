/**
 * A nats-server in operator mode with tenants and enrolled agents, for tests, the demo and the
 * security suite: the same key directory, JWTs and pushes as `snapctl nats init`, `snapctl tenant
 * create` and `snapctl agent enroll` (coordinator/nats-auth/), on a real server.
 *
 *   const nats = await startSecuredNats({ tenants: { acme: ['s1', 's2'], globex: ['s1'] } });
 *   nats.agentCreds('acme', 's1')       // the .creds file of acme's agent on s1
 *   nats.coordinatorCreds               // the coordinator's own; nats.tenantCredsDir for its tenant users
 *   await nats.revoke('acme', 's1');     // pushed: the agent is disconnected
 *   await nats.stop();
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from 'nats';
import { NatsKeys } from '../coordinator/nats-auth/keys.js';
import type { LogChannelRights } from '../coordinator/nats-auth/permissions.js';
import { connectWithCreds, pushAccountJwts } from '../coordinator/nats-auth/push.js';
import { ensureStateBucket } from '../adapters/state-store.js';
import { startNatsServer, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';

export interface SecuredNatsOptions extends Omit<NatsServerOptions, 'configText' | 'readyCheck'> {
  /** Tenant -> the servers whose agents are enrolled at start. */
  readonly tenants?: Readonly<Record<string, readonly string[]>>;
  /** Where the key directory and the agents' .creds files go; default a new temporary directory (removed by stop). */
  readonly dir?: string;
}

export interface SecuredNats {
  readonly url: string;
  readonly server: NatsServerHandle;
  readonly keys: NatsKeys;
  /** The key directory (`snapctl --keys-dir`). */
  readonly keysDir: string;
  /** The coordinator's own credentials (its natsCredsFile). */
  readonly coordinatorCreds: string;
  /** The coordinator's natsTenantCredsDir. */
  readonly tenantCredsDir: string;
  /** The system account's user: what pushes account JWTs. */
  readonly systemCreds: string;
  createTenant(tenant: string): Promise<void>;
  /** Enrolls (again) the agent of `server`; resolves to its .creds file's path. */
  enroll(tenant: string, server: string, logs?: LogChannelRights): Promise<string>;
  /** The .creds file of an enrolled agent. */
  agentCreds(tenant: string, server: string): string;
  revoke(tenant: string, server: string): Promise<void>;
  /** A connection with these credentials (an agent's: pass its inbox prefix, as the agent does). */
  connect(credsFile: string, options?: { readonly inboxPrefix?: string; readonly name?: string }): Promise<NatsConnection>;
  stop(): Promise<void>;
}

function must<T>(r: { ok: true; value: T } | { ok: false; error: string }): T {
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

export async function startSecuredNats(options: SecuredNatsOptions = {}): Promise<SecuredNats> {
  const owned = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'snap-secured-nats-'));
  const keysDir = join(dir, 'keys');
  const credsDir = join(dir, 'agents');
  const resolverDir = join(dir, 'resolver');
  mkdirSync(credsDir, { recursive: true, mode: 0o700 });
  mkdirSync(resolverDir, { recursive: true });
  const keys = must(NatsKeys.init(keysDir));
  const server = await startNatsServer({
    ...options,
    configText: keys.serverConfig(resolverDir),
    readyCheck: async (url) => {
      const nc = await connectWithCreds(url, keys.coordinatorCredsFile, 'ready-check', { timeout: 1_000, reconnect: false });
      try {
        await nc.jetstreamManager({ timeout: 1_000 });
      } finally {
        await nc.close();
      }
    },
  });
  const push = async (jwts: readonly string[]): Promise<void> => must(await pushAccountJwts(server.url, keys.systemCredsFile, jwts));
  const agentCreds = (tenant: string, s: string): string => join(credsDir, `${tenant}-${s}.creds`);
  const secured: SecuredNats = {
    url: server.url,
    server,
    keys,
    keysDir,
    coordinatorCreds: keys.coordinatorCredsFile,
    tenantCredsDir: keys.tenantCredsDir,
    systemCreds: keys.systemCredsFile,
    createTenant: async (tenant) => {
      await push(must(keys.createTenant(tenant)).jwts);
      const nc = await connectWithCreds(server.url, join(keys.tenantCredsDir, tenant, 'coordinator.creds'), 'tenant-setup');
      try {
        await ensureStateBucket(nc, tenant);
      } finally {
        await nc.close();
      }
    },
    enroll: async (tenant, s, logs) => {
      const enrolled = must(keys.enrollAgent(tenant, s, logs));
      await push(enrolled.jwts);
      writeFileSync(agentCreds(tenant, s), enrolled.creds, { mode: 0o600 });
      return agentCreds(tenant, s);
    },
    agentCreds,
    revoke: async (tenant, s) => push(must(keys.revokeAgent(tenant, s)).jwts),
    connect: async (credsFile, o = {}) => {
      return connect({ servers: server.url, name: o.name ?? 'secured-nats-client', authenticator: credsAuthenticator(readFileSync(credsFile)), ...(o.inboxPrefix !== undefined ? { inboxPrefix: o.inboxPrefix } : {}) });
    },
    stop: async () => {
      await server.stop();
      if (owned) rmSync(dir, { recursive: true, force: true });
    },
  };
  for (const [tenant, servers] of Object.entries(options.tenants ?? {})) {
    await secured.createTenant(tenant);
    for (const s of servers) await secured.enroll(tenant, s);
  }
  return secured;
}
