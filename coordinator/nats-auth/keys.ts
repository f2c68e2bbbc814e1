/**
 * The NATS key directory on the coordinator's host: the operator's key, the system account's, the
 * coordinator's account and one account per tenant, and the credentials the coordinator and
 * `snapctl` connect with. Every seed and `.creds` file is written with mode 0600 and every
 * directory with 0700: whoever reads this directory can sign any account or user.
 *
 *   DIR/operator.nk, DIR/operator.jwt
 *   DIR/system/account.nk, account.jwt, user.creds          (pushes account JWTs to the resolver)
 *   DIR/coordinator/account.nk, account.jwt, user.creds     (the coordinator's own connection)
 *   DIR/tenants/T/account.nk, account.jwt
 *   DIR/tenants/T/coordinator.creds                          (the coordinator's user in T: T's JetStream)
 *   DIR/tenants/T/agents/S.pub                               (the public key of S's current credential)
 *
 * Events cross from a tenant's account to the coordinator's by a stream export and import, and
 * commands and triggers the other way; nothing else crosses (docs/security.md). Every account JWT is
 * signed by the operator, so an account imports only what this directory gives it.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isLogSubject, isName } from '../../src/wire/index.js';
import { SUBJECT_ROOT } from '../../src/wire/subjects.js';
import { err, ok, type Result } from '../../src/result.js';
import { accountJwt, claimsOf, credsFile, nkeys, operatorJwt, userJwt, type AccountSpec, type KeyPair } from './jwt.js';
import { agentPermissions, coordinatorInTenantPermissions, type LogChannelRights } from './permissions.js';

export const OPERATOR_NAME = 'snap';
const COORDINATOR_ACCOUNT = 'snap-coordinator';

export interface AccountUpdate {
  /** Account JWTs to push to the resolver, in this order. */
  readonly jwts: readonly string[];
}

export interface Enrolled extends AccountUpdate {
  /** The agent's `.creds` file content (its JWT and seed). */
  readonly creds: string;
  /** The previous credential of the same server, revoked by this enrollment. */
  readonly replaced: boolean;
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

function privateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
}

function seedOf(kp: KeyPair): string {
  return new TextDecoder().decode(kp.getSeed());
}

function loadKey(path: string): KeyPair {
  return nkeys.fromSeed(new TextEncoder().encode(readFileSync(path, 'utf8').trim()));
}

/** The stream exports an account JWT holds, and its imports and revocations, read back to re-sign it. */
function specOf(jwt: string): AccountSpec {
  const c = claimsOf(jwt);
  const limits = (c.nats['limits'] ?? {}) as Record<string, unknown>;
  return {
    name: String(c['name']),
    jetstream: limits['disk_storage'] !== 0 && limits['disk_storage'] !== undefined,
    exports: ((c.nats['exports'] ?? []) as { name: string; subject: string }[]).map((e) => ({ name: e.name, subject: e.subject })),
    imports: ((c.nats['imports'] ?? []) as { name: string; subject: string; account: string }[]).map((i) => ({ name: i.name, subject: i.subject, account: i.account })),
    revocations: (c.nats['revocations'] ?? {}) as Record<string, number>,
  };
}

export class NatsKeys {
  private constructor(readonly dir: string) {}

  /** A new key directory: operator, system account and user, the coordinator's account and user. */
  static init(dir: string): Result<NatsKeys, string> {
    if (existsSync(join(dir, 'operator.nk'))) return err(`${dir} already holds NATS keys (operator.nk): not overwritten`);
    privateDir(dir);
    const operator = nkeys.createOperator();
    const system = nkeys.createAccount();
    const coordinator = nkeys.createAccount();
    const t = nowSec();
    writeSecret(join(dir, 'operator.nk'), seedOf(operator));
    writeFileSync(join(dir, 'operator.jwt'), operatorJwt(operator, OPERATOR_NAME, system.getPublicKey(), t));
    const keys = new NatsKeys(dir);
    keys.newAccount(join(dir, 'system'), system, operator, { name: 'SYS', jetstream: false, exports: [], imports: [], revocations: {} });
    keys.newAccount(join(dir, 'coordinator'), coordinator, operator, {
      name: COORDINATOR_ACCOUNT,
      jetstream: true,
      // Imported by each tenant's account for its own tenant only (tenantSpec).
      exports: [
        { name: 'commands', subject: `${SUBJECT_ROOT}.*.ctl.*` },
        { name: 'plan-triggers', subject: `${SUBJECT_ROOT}.*.plan.*.trg` },
      ],
      imports: [],
      revocations: {},
    });
    writeSecret(join(dir, 'system', 'user.creds'), keys.newUser(system, 'snap-system', undefined));
    writeSecret(join(dir, 'coordinator', 'user.creds'), keys.newUser(coordinator, 'snap-coordinator', undefined));
    return ok(keys);
  }

  static open(dir: string): Result<NatsKeys, string> {
    for (const f of ['operator.nk', 'operator.jwt', 'system/account.jwt', 'coordinator/account.jwt']) {
      if (!existsSync(join(dir, f))) return err(`${dir} is not a NATS key directory (no ${f}): create it with snapctl nats init --keys-dir ${dir}`);
    }
    return ok(new NatsKeys(dir));
  }

  get operatorJwtFile(): string {
    return join(this.dir, 'operator.jwt');
  }

  get systemCredsFile(): string {
    return join(this.dir, 'system', 'user.creds');
  }

  get coordinatorCredsFile(): string {
    return join(this.dir, 'coordinator', 'user.creds');
  }

  /** Where the coordinator finds `T/coordinator.creds` for each tenant (its natsTenantCredsDir). */
  get tenantCredsDir(): string {
    return join(this.dir, 'tenants');
  }

  systemAccount(): string {
    return claimsOf(this.read('system/account.jwt'))['sub'] as string;
  }

  /**
   * The nats-server configuration of operator mode: the operator, the system account, a `full`
   * resolver (account JWTs pushed to it take effect at once, no restart) and the two accounts
   * every server needs from the start.
   */
  serverConfig(resolverDir: string): string {
    const preload = ['system', 'coordinator'].map((a) => {
      const jwt = this.read(`${a}/account.jwt`);
      return `  ${claimsOf(jwt)['sub'] as string}: "${jwt}"`;
    });
    return [
      `operator: "${this.operatorJwtFile}"`,
      `system_account: ${this.systemAccount()}`,
      `resolver: { type: full, dir: "${resolverDir}", allow_delete: false, interval: "2m" }`,
      'resolver_preload: {',
      ...preload,
      '}',
      '',
    ].join('\n');
  }

  tenants(): string[] {
    if (!existsSync(this.tenantCredsDir)) return [];
    return readdirSync(this.tenantCredsDir).filter((t) => isName(t) && existsSync(join(this.tenantCredsDir, t, 'account.jwt'))).sort();
  }

  /** A tenant's account (exporting its agents' events, importing its own commands and triggers) and the coordinator's user in it. */
  createTenant(tenant: string): Result<AccountUpdate, string> {
    if (!isName(tenant)) return err(`tenant ${JSON.stringify(tenant)} is not a name of [A-Za-z0-9_-]{1,64}`);
    const dir = join(this.tenantCredsDir, tenant);
    if (existsSync(join(dir, 'account.jwt'))) return err(`tenant ${tenant} exists already`);
    const operator = loadKey(join(this.dir, 'operator.nk'));
    const account = nkeys.createAccount();
    const coordinatorAccount = claimsOf(this.read('coordinator/account.jwt'))['sub'] as string;
    privateDir(this.tenantCredsDir);
    const root = `${SUBJECT_ROOT}.${tenant}`;
    const tenantJwt = this.newAccount(dir, account, operator, {
      name: tenant,
      jetstream: true,
      exports: [{ name: 'events', subject: `${root}.evt.*` }],
      imports: [
        { name: 'commands', subject: `${root}.ctl.*`, account: coordinatorAccount },
        { name: 'plan-triggers', subject: `${root}.plan.*.trg`, account: coordinatorAccount },
      ],
      revocations: {},
    });
    writeSecret(join(dir, 'coordinator.creds'), this.newUser(account, `snap-coordinator@${tenant}`, coordinatorInTenantPermissions()));
    privateDir(join(dir, 'agents'));
    const coordinatorJwt = this.resignAccount('coordinator', (spec) => ({
      ...spec,
      imports: [...spec.imports.filter((i) => i.name !== `events-${tenant}`), { name: `events-${tenant}`, subject: `${root}.evt.*`, account: account.getPublicKey() }],
    }));
    return ok({ jwts: [tenantJwt, coordinatorJwt] });
  }

  /**
   * A credential for the agent of `server`: a new user key, its JWT with the agent's exact
   * permissions (permissions.ts). A server has one credential at a time: enrolling it again revokes
   * the previous one.
   */
  enrollAgent(tenant: string, server: string, logs?: LogChannelRights): Result<Enrolled, string> {
    const dir = this.tenantDir(tenant);
    if (!dir.ok) return dir;
    if (!isName(server)) return err(`server ${JSON.stringify(server)} is not a name of [A-Za-z0-9_-]{1,64}`);
    for (const stream of [...(logs?.publish ?? []).map((p) => p.stream), ...(logs?.read ?? [])]) {
      if (!isName(stream)) return err(`log stream ${JSON.stringify(stream)} is not a name of [A-Za-z0-9_-]{1,64}`);
    }
    for (const { subject } of logs?.publish ?? []) {
      if (!isLogSubject(subject)) return err(`log subject ${JSON.stringify(subject)} must be dot-separated tokens of [A-Za-z0-9_-], no wildcards`);
    }
    const account = loadKey(join(dir.value, 'account.nk'));
    const user = nkeys.createUser();
    const previous = this.agentKey(tenant, server);
    const jwts = previous === undefined ? [] : [this.revoke(tenant, previous)];
    const creds = credsFile(userJwt(account, user.getPublicKey(), `${tenant}/${server}`, agentPermissions({ tenant, server, ...(logs !== undefined ? { logs } : {}) }), nowSec()), user.getSeed());
    writeFileSync(join(dir.value, 'agents', `${server}.pub`), user.getPublicKey());
    return ok({ creds, jwts, replaced: previous !== undefined });
  }

  /** Revokes the server's credential: the tenant's account JWT with the user revoked, to push. */
  revokeAgent(tenant: string, server: string): Result<AccountUpdate, string> {
    const dir = this.tenantDir(tenant);
    if (!dir.ok) return dir;
    const key = this.agentKey(tenant, server);
    if (key === undefined) return err(`no agent of server ${server} is enrolled in tenant ${tenant}`);
    const jwt = this.revoke(tenant, key);
    rmSync(join(dir.value, 'agents', `${server}.pub`));
    return ok({ jwts: [jwt] });
  }

  /** The servers of a tenant with a credential in force. */
  agents(tenant: string): string[] {
    const dir = join(this.tenantCredsDir, tenant, 'agents');
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => f.endsWith('.pub')).map((f) => f.slice(0, -'.pub'.length)).sort();
  }

  /** Every account JWT of the directory: what a resolver that lost its state needs pushed again. */
  allAccountJwts(): string[] {
    return [this.read('system/account.jwt'), ...this.tenants().map((t) => this.read(`tenants/${t}/account.jwt`)), this.read('coordinator/account.jwt')];
  }

  private tenantDir(tenant: string): Result<string, string> {
    if (!isName(tenant)) return err(`tenant ${JSON.stringify(tenant)} is not a name of [A-Za-z0-9_-]{1,64}`);
    const dir = join(this.tenantCredsDir, tenant);
    if (!existsSync(join(dir, 'account.nk'))) return err(`tenant ${tenant} does not exist: create it with snapctl tenant create ${tenant}`);
    return ok(dir);
  }

  private agentKey(tenant: string, server: string): string | undefined {
    const file = join(this.tenantCredsDir, tenant, 'agents', `${server}.pub`);
    return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
  }

  private revoke(tenant: string, userKey: string): string {
    // Revokes every JWT of this user issued up to now; the next second is safe for nothing else,
    // since each enrollment makes a new user key.
    return this.resignAccount(`tenants/${tenant}`, (spec) => ({ ...spec, revocations: { ...spec.revocations, [userKey]: nowSec() } }));
  }

  private resignAccount(path: string, change: (spec: AccountSpec) => AccountSpec): string {
    const operator = loadKey(join(this.dir, 'operator.nk'));
    const current = this.read(`${path}/account.jwt`);
    const jwt = accountJwt(operator, claimsOf(current)['sub'] as string, change(specOf(current)), nowSec());
    writeFileSync(join(this.dir, path, 'account.jwt'), jwt);
    return jwt;
  }

  private newAccount(dir: string, account: KeyPair, operator: KeyPair, spec: AccountSpec): string {
    privateDir(dir);
    writeSecret(join(dir, 'account.nk'), seedOf(account));
    const jwt = accountJwt(operator, account.getPublicKey(), spec, nowSec());
    writeFileSync(join(dir, 'account.jwt'), jwt);
    return jwt;
  }

  private newUser(account: KeyPair, name: string, permissions: Parameters<typeof userJwt>[3]): string {
    const user = nkeys.createUser();
    return credsFile(userJwt(account, user.getPublicKey(), name, permissions, nowSec()), user.getSeed());
  }

  private read(path: string): string {
    return readFileSync(join(this.dir, path), 'utf8').trim();
  }
}
