/**
 * The live secured system the security suite attacks: a nats-server in operator mode with each
 * tenant an account and each agent a user of its own (examples/secured-nats.ts), the coordinator
 * daemon serving its gRPC API over TLS with a tokens file, and one agent daemon per server of each
 * tenant (the demo's diamond-and-cycle plan with token apps) connecting with its enrolled
 * credentials. Every daemon is a child process of its own, so that a crash is an exit the suite
 * sees; each writes its output to a log file in the work directory, where the suite reads the
 * daemons' bad-traffic lines.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Role } from '../../coordinator/grpc/auth.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { PlanInput } from '../../coordinator/model.js';
import { agentConfigJson, demoPlan } from '../../examples/demo/plan.js';
import { testPki } from '../../examples/pki.js';
import { startSecuredNats, type SecuredNats } from '../../examples/secured-nats.js';
import { agentInboxPrefix } from '../../src/wire/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The two tenants: each has the demo's plan on servers s1..s3, so server names repeat across tenants. */
export const TENANTS = ['acme', 'globex'] as const;
export type Tenant = (typeof TENANTS)[number];

export function otherTenant(t: Tenant): Tenant {
  return t === 'acme' ? 'globex' : 'acme';
}

/**
 * The nats-server's max_payload: twice the wire limit, so that an oversized message reaches the
 * daemons and they, not the server, must refuse it.
 */
export const NATS_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024;

export function planIdOf(tenant: Tenant): string {
  return `${tenant}-plan`;
}

/** The bearer tokens of the run; each is an entry of the coordinator's tokens file. */
export interface Tokens {
  /** Per tenant, one identity per role. */
  readonly byTenant: Readonly<Record<Tenant, Readonly<Record<Role, string>>>>;
  /** An admin of every tenant: the protection service. */
  readonly service: string;
  /** An admin of the first tenant whose entry expired. */
  readonly expired: string;
}

function tokensOfRun(): Tokens {
  const token = (name: string): string => `${name}-${Math.random().toString(36).slice(2)}-0123456789`;
  const roles = (t: Tenant): Record<Role, string> => ({ viewer: token(`${t}-viewer`), operator: token(`${t}-operator`), admin: token(`${t}-admin`) });
  return { byTenant: { acme: roles('acme'), globex: roles('globex') }, service: token('service'), expired: token('expired') };
}

function tokensFile(tokens: Tokens): unknown[] {
  return [
    ...TENANTS.flatMap((tenant) => Object.entries(tokens.byTenant[tenant]).map(([role, token]) => ({ token, identity: `${tenant}-${role}`, tenant, role }))),
    { token: tokens.service, identity: 'protection-service', tenant: '*', role: 'admin' },
    { token: tokens.expired, identity: 'former-admin', tenant: TENANTS[0], role: 'admin', expires: '2020-01-01T00:00:00Z' },
  ];
}

/** A daemon as a child process, its output going to a log file. */
export class Daemon {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stopping = false;

  constructor(
    readonly name: string,
    readonly logFile: string,
    args: readonly string[],
  ) {
    const fd = openSync(logFile, 'a');
    this.child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
      this.child.once('error', () => resolve({ code: null, signal: null }));
    });
    // A suite that dies without stopping its daemons must not leave them behind.
    const kill = (): void => void this.child.kill('SIGKILL');
    process.once('exit', kill);
    void this.exited.then(() => process.removeListener('exit', kill));
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Died without being told to stop: what the suite counts as a crash. */
  crashed(): boolean {
    return !this.alive() && !this.stopping;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    if (!this.alive()) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

export interface SecuredSystem {
  readonly dir: string;
  readonly nats: SecuredNats;
  readonly coordinator: Daemon;
  /** Per tenant, per server. */
  readonly agents: ReadonlyMap<string, Daemon>;
  /** The gRPC API's address (TLS). */
  readonly address: string;
  /** Trusts the API's certificate: for clients of the suite. */
  readonly tls: ChannelCredentials;
  readonly tokens: Tokens;
  readonly plans: Readonly<Record<Tenant, PlanInput>>;
  /** A client with the protection service's token (every tenant, admin). */
  readonly service: CoordinatorClient;
  /** A connection with the coordinator's credentials: what may publish control messages and plan triggers. */
  readonly asCoordinator: NatsConnection;
  /** A connection with the credentials of the agent of `server` of `tenant` (its own, not the daemon's). */
  asAgent(tenant: string, server: string): NatsConnection;
  daemons(): Daemon[];
  stop(keepDir: boolean): Promise<void>;
}

/**
 * Starts of one agent before the attacks: on a loaded machine an agent's first NATS connection can
 * time out, and the agent then exits (as it should); that is no crash under attack, so it is
 * started again. After the system is up, every exit counts.
 */
const AGENT_START_ATTEMPTS = 3;
/** Seven Node processes compiling TypeScript on a busy 2-core machine can take minutes to come up. */
const AGENTS_ONLINE_TIMEOUT_MS = 180_000;

export function agentKey(tenant: string, server: string): string {
  return `${tenant}/${server}`;
}

export async function startSecuredSystem(log: Logger): Promise<SecuredSystem> {
  const dir = mkdtempSync(join(tmpdir(), 'security-suite-'));
  const pki = testPki(dir);
  pki.ca('ca');
  pki.cert('ca', 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
  const tokens = tokensOfRun();
  writeFileSync(pki.file('tokens.json'), JSON.stringify(tokensFile(tokens)), { mode: 0o600 });
  const plans = { acme: demoPlan('acme', planIdOf('acme')), globex: demoPlan('globex', planIdOf('globex')) };
  const nats = await startSecuredNats({ dir: join(dir, 'nats'), maxPayloadBytes: NATS_MAX_PAYLOAD_BYTES, tenants: Object.fromEntries(TENANTS.map((t) => [t, plans[t].servers])) });
  const started: Daemon[] = [];
  const agents = new Map<string, Daemon>();
  const starters = new Map<string, { start: () => Daemon; left: number }>();
  const connections: NatsConnection[] = [];
  let service: CoordinatorClient | undefined;
  const stopAll = async (): Promise<void> => {
    service?.close();
    await Promise.all(started.map((d) => d.stop()));
    for (const nc of connections) await nc.close().catch(() => undefined);
    await nats.stop();
  };
  try {
    const coordinator = new Daemon('coordinator', join(dir, 'coordinator.log'), [
      'coordinator/main.ts',
      '--nats',
      nats.url,
      '--nats-creds',
      nats.coordinatorCreds,
      '--nats-tenant-creds-dir',
      nats.tenantCredsDir,
      '--listen',
      '127.0.0.1:0',
      '--tls-cert',
      pki.file('server.pem'),
      '--tls-key',
      pki.file('server.key'),
      '--auth-tokens',
      pki.file('tokens.json'),
      '--log-level',
      'warn',
    ]);
    started.push(coordinator);
    let address: string | undefined;
    await waitFor(
      'the coordinator to listen',
      () => {
        if (!coordinator.alive()) throw new Error(`the coordinator exited:\n${coordinator.log().slice(-3_000)}`);
        address = /listening on (\S+)/.exec(coordinator.log())?.[1];
        return address !== undefined;
      },
      60_000,
    );
    if (address === undefined) throw new Error('no address');
    // The name the certificate is for: TLS does not take an IP address as the server's name.
    address = address.replace(/^127\.0\.0\.1:/, 'localhost:');
    const tls = credentials.createSsl(readFileSync(pki.file('ca.pem')));
    service = new CoordinatorClient(address, { credentials: tls, token: tokens.service, callTimeoutMs: 20_000 });
    const asCoordinator = await nats.connect(nats.coordinatorCreds, { name: 'security suite as the coordinator' });
    connections.push(asCoordinator);
    const asAgents = new Map<string, NatsConnection>();
    for (const tenant of TENANTS) {
      for (const server of plans[tenant].servers) {
        const nc = await nats.connect(nats.agentCreds(tenant, server), { name: `security suite as ${tenant}/${server}`, inboxPrefix: agentInboxPrefix(tenant, server) });
        connections.push(nc);
        asAgents.set(agentKey(tenant, server), nc);
      }
    }
    for (const tenant of TENANTS) {
      const plan = plans[tenant];
      for (const { server, app } of plan.apps) {
        const file = join(dir, `agent-${tenant}-${server}.json`);
        const config = agentConfigJson(plan, server, app, nats.url, { logLevel: 'warn', heartbeatIntervalMs: 500, triggerWaitMs: 1_000 });
        writeFileSync(file, JSON.stringify({ ...config, nats: { servers: [nats.url], credsFile: nats.agentCreds(tenant, server) } }));
        const start = (): Daemon => {
          const agent = new Daemon(`agent ${tenant}/${server}`, join(dir, `agent-${tenant}-${server}.log`), ['agent/main.ts', '--config', file, '--demo-app', 'tokens', '--transfer-interval-ms', '20']);
          started.push(agent);
          agents.set(agentKey(tenant, server), agent);
          return agent;
        };
        starters.set(agentKey(tenant, server), { start, left: AGENT_START_ATTEMPTS - 1 });
        start();
      }
      const registered = await service.registerPlan(plan, 0);
      if (!registered.ok) throw new Error(`registering ${plan.id}: ${registered.error.codeName}: ${registered.error.message}`);
    }
    const client = service;
    for (const tenant of TENANTS) {
      await waitFor(
        `the agents of ${tenant} to be online`,
        async () => {
          if (!coordinator.alive()) throw new Error(`the coordinator exited:\n${coordinator.log().slice(-3_000)}`);
          for (const [key, agent] of agents) {
            if (agent.alive()) continue;
            const starter = starters.get(key);
            if (starter === undefined || starter.left === 0) throw new Error(`${agent.name} exited:\n${agent.log().slice(-3_000)}`);
            starter.left -= 1;
            log.warn({ agent: agent.name, log: agent.log().slice(-1_000) }, 'agent exited while starting: started again');
            starter.start();
          }
          const listed = await client.listAgents(tenant);
          return listed.ok && plans[tenant].servers.every((s) => listed.value.some((a) => a.server === s && a.status === 'online'));
        },
        AGENTS_ONLINE_TIMEOUT_MS,
      );
    }
    log.info({ dir, address, nats: nats.url }, 'secured system up: two tenants, three agents each');
    return {
      dir,
      nats,
      coordinator,
      agents,
      address,
      tls,
      tokens,
      plans,
      service: client,
      asCoordinator,
      asAgent: (tenant, server) => {
        const nc = asAgents.get(agentKey(tenant, server));
        if (nc === undefined) throw new Error(`no agent ${tenant}/${server}`);
        return nc;
      },
      daemons: () => [coordinator, ...agents.values()],
      stop: async (keepDir) => {
        await stopAll();
        if (!keepDir) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopAll();
    log.error({ logs: dir }, 'the secured system did not start: its logs are kept');
    throw error;
  }
}
