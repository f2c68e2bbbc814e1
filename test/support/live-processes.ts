/**
 * The live system as separate processes, for integration tests: a real nats-server per test file,
 * the coordinator daemon (`coordinator/main.ts`) and one agent daemon per server
 * (`agent/main.ts --demo-app tokens`) as child processes, driven through the coordinator's gRPC
 * client. The test keeps a NATS connection of its own to read the stored records and objects and
 * to publish raw bytes where a test wants to misbehave on purpose.
 *
 * Nothing here sleeps blindly: every wait polls a condition with a bounded time and says what it
 * waited for when the time is up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from 'nats';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import type { ChannelLimits } from '../../agent/channels/types.js';
import type { TakeSnapshotRequest } from '../../coordinator/api.js';
import type { CheckpointView } from '../../coordinator/checkpoint-view.js';
import { readPartState } from '../../coordinator/checkpoints/part-state.js';
import { CoordinatorClient, type CallResult } from '../../coordinator/grpc/client.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { decodeTokens } from '../../agent/demo-apps/token-app.js';
import type { CheckpointId } from '../../src/ids.js';
import { decodeChannelState, processId } from '../../src/wire/index.js';
import { freePort, startNatsServer, type NatsServerHandle } from './nats-server.js';
import { startNatsCluster, type NatsClusterHandle } from '../../examples/nats-cluster.js';
import { startSecuredNats, type SecuredNats } from '../../examples/secured-nats.js';
import { TenantConnections } from '../../coordinator/nats-auth/tenant-connections.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ---- waiting ------------------------------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until it returns something other than undefined/false; throws naming `what` after
 * `timeoutMs`. The probe may be async and may throw (a throw counts as "not yet" until the end).
 */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

export function value<T>(result: CallResult<T>, what = 'the call'): T {
  if (!result.ok) throw new Error(`${what} failed: ${result.error.codeName}: ${result.error.message}`);
  return result.value;
}

// ---- child processes ----------------------------------------------------------------------------

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** Everything it printed on stdout (pino logs go there) and stderr, so far. */
  stdout(): string;
  stderr(): string;
  /** stdout and stderr together. */
  output(): string;
  alive(): boolean;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `pattern` in the output, polling until `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGCONT (in case it was stopped), SIGTERM, SIGKILL after a grace period; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

const OUTPUT_CHARS_MAX = 8 * 1024 * 1024;

/** Spawns `node --import tsx SCRIPT ARGS` in the repository root. */
export function spawnTsx(name: string, script: string, args: readonly string[]): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out = (out + d.toString('utf8')).slice(-OUTPUT_CHARS_MAX);
  });
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString('utf8')).slice(-OUTPUT_CHARS_MAX);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  // A test runner that dies without stopping its children must not leave them behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  let stopping: Promise<void> | undefined;
  return {
    name,
    pid: child.pid ?? -1,
    process: child,
    stdout: () => out,
    stderr: () => err,
    output: () => `${out}${err}`,
    alive,
    exited,
    waitForOutput: (pattern, timeoutMs = 20_000) =>
      waitUntil(`${name} to print ${String(pattern)}`, () => {
        if (!alive() && !pattern.test(`${out}${err}`)) throw new Error(`${name} exited:\n${err.slice(-2000)}`);
        return pattern.exec(`${out}${err}`) ?? undefined;
      }, { timeoutMs, intervalMs: 25 }),
    stop: (graceMs = 5_000) =>
      (stopping ??= (async () => {
        if (!alive()) return;
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
        if (!done) {
          child.kill('SIGKILL');
          await exited;
        }
      })()),
  };
}

/** A daemon run the way its systemd unit runs it; `restarts` counts the runs after the first. */
export interface SupervisedChild extends Child {
  readonly restarts: number;
}

/**
 * Runs `script` as packaging/systemd/snapcoord.service does (Restart=on-failure, RestartSec=2s,
 * RestartPreventExitStatus=2): started again with the same arguments after an exit with any code
 * but 0 and 2, such as the code 3 of a leader deposed by a NATS fault (docs/ha.md, "One NATS node's
 * fault can depose the leader"), until `stop`. A kill by a signal is not restarted here: a test
 * that kills a daemon says what comes next. Output, exited and pid are those of the current run; the
 * output of every run is kept.
 */
export function superviseTsx(name: string, script: string, args: readonly string[], restartDelayMs = 2_000): SupervisedChild {
  let current = spawnTsx(name, script, args);
  let earlier = '';
  let restarts = 0;
  let stopped = false;
  const watch = (run: Child): void => {
    void run.exited.then(async ({ code }) => {
      if (stopped || code === null || code === 0 || code === 2) return;
      await sleep(restartDelayMs);
      if (stopped) return;
      earlier += `${run.output()}\n---- ${name} exited with code ${code}: started again\n`;
      restarts += 1;
      current = spawnTsx(name, script, args);
      watch(current);
    });
  };
  watch(current);
  return {
    name,
    get pid() {
      return current.pid;
    },
    get process() {
      return current.process;
    },
    get exited() {
      return current.exited;
    },
    get restarts() {
      return restarts;
    },
    stdout: () => current.stdout(),
    stderr: () => current.stderr(),
    output: () => `${earlier}${current.output()}`,
    alive: () => current.alive(),
    waitForOutput: (pattern, timeoutMs) => current.waitForOutput(pattern, timeoutMs),
    stop: (graceMs) => {
      stopped = true;
      return current.stop(graceMs);
    },
  };
}

// ---- plans and agent configurations -------------------------------------------------------------

/**
 * The demo's graph on three servers: APP1 -> APP2 -> APP3, APP1 -> APP3 (a diamond) and
 * APP3 -> APP1 (a cycle), APP<i> on servers[i-1].
 */
export function cyclicPlan(id: string, tenant: string, servers: readonly [string, string, string]): PlanInput {
  const [a, b, c] = servers;
  const ref = (server: string, app: string) => ({ server, app });
  return {
    id,
    tenant,
    servers: [a, b, c],
    apps: [ref(a, 'APP1'), ref(b, 'APP2'), ref(c, 'APP3')],
    channels: [
      { from: ref(a, 'APP1'), to: ref(b, 'APP2'), kind: 'in-band' },
      { from: ref(b, 'APP2'), to: ref(c, 'APP3'), kind: 'in-band' },
      { from: ref(a, 'APP1'), to: ref(c, 'APP3'), kind: 'in-band' },
      { from: ref(c, 'APP3'), to: ref(a, 'APP1'), kind: 'in-band' },
    ],
    volumes: [],
  };
}

export function channelIdOf(c: PlanInput['channels'][number]): string {
  return `${processId(c.from.server, c.from.app)}->${processId(c.to.server, c.to.app)}`;
}

export interface AgentConfigExtra {
  readonly channels?: Partial<ChannelLimits>;
  readonly heartbeatIntervalMs?: number;
  readonly triggerWaitMs?: number;
  readonly logLevel?: string;
}

/** The agent configuration (JSON) of one server of a plan: its apps with their channels. */
export function agentConfigFor(plan: PlanInput, server: string, natsUrl: string, extra: AgentConfigExtra = {}, credsFile?: string): Record<string, unknown> {
  return {
    tenant: plan.tenant,
    server,
    nats: { servers: [natsUrl], ...(credsFile !== undefined ? { credsFile } : {}) },
    logLevel: extra.logLevel ?? 'warn',
    heartbeatIntervalMs: extra.heartbeatIntervalMs ?? 500,
    triggerWaitMs: extra.triggerWaitMs ?? 1_000,
    ...(extra.channels ? { channels: extra.channels } : {}),
    apps: plan.apps
      .filter((a) => a.server === server)
      .map((a) => ({
        name: a.app,
        inputs: plan.channels.filter((c) => c.to.server === server && c.to.app === a.app).map(channelIdOf),
        outputs: plan.channels.filter((c) => c.from.server === server && c.from.app === a.app).map(channelIdOf),
      })),
  };
}

export interface AgentOptions {
  readonly initialTokens?: number;
  /** 0: the demo apps never transfer. Default 5. */
  readonly transferIntervalMs?: number;
  readonly deliverDelayMs?: number;
  readonly config?: AgentConfigExtra;
}

// ---- tokens -------------------------------------------------------------------------------------

/** Tokens of one checkpoint, read back from the object store (digests checked on read). */
export interface TokenCount {
  /** Per app (`server/app`): tokens in its state. */
  readonly state: Record<string, number>;
  /** Per app: tokens in the channel state it recorded on its inputs (what a rollback re-delivers to it). */
  readonly channelIn: Record<string, number>;
  /** Per app: state + channelIn, what the app holds right after a rollback to this checkpoint. */
  readonly byApp: Record<string, number>;
  /** Messages in the recorded channel states. */
  readonly channelMessages: number;
  readonly total: number;
}

// ---- the system ---------------------------------------------------------------------------------

export interface LiveSystemOptions {
  readonly plan: PlanInput;
  readonly agents?: AgentOptions;
  /** Per server, overriding `agents`. */
  readonly agentsByServer?: Readonly<Record<string, AgentOptions>>;
  /** Extra arguments of the coordinator; a function gets the URL of the nats-server started for it. */
  readonly coordinatorArgs?: readonly string[] | ((natsUrl: string) => readonly string[]);
  /**
   * NATS in operator mode (examples/secured-nats.ts): the plan's tenant an account, each agent
   * enrolled with its own credential, the coordinator with its credentials.
   */
  readonly secured?: boolean;
  /** A 3-node NATS cluster (examples/nats-cluster.ts; buckets with 3 replicas): every process gets every node's URL. Not with `secured`. */
  readonly cluster?: boolean;
}

export class LiveSystem {
  readonly agents = new Map<string, Child>();
  private readonly plans = new Map<string, PlanInput>();

  private constructor(
    private readonly server: NatsServerHandle | undefined,
    /** With `cluster`: its nodes, to kill and start. */
    readonly cluster: NatsClusterHandle | undefined,
    /** Every NATS URL the processes are given. */
    readonly urls: readonly string[],
    /** With `secured`: the key directory, credentials, enroll and revoke. */
    readonly secured: SecuredNats | undefined,
    private readonly tenantConnections: TenantConnections | undefined,
    readonly dir: string,
    /** Started again after a deposed leader's exit, as systemd does (superviseTsx). */
    readonly coordinator: SupervisedChild,
    readonly address: string,
    readonly client: CoordinatorClient,
    /** The test's own connection: reads records and objects, publishes raw bytes. */
    readonly nc: NatsConnection,
    readonly store: CoordinatorStore,
    readonly objects: JetStreamStateObjects,
  ) {}

  /** nats-server, the coordinator, one agent per server of the plan, the plan registered, every agent online. */
  static async start(o: LiveSystemOptions): Promise<LiveSystem> {
    if (o.secured === true && o.cluster === true) throw new Error('a secured system runs on one nats-server');
    const secured = o.secured === true ? await startSecuredNats({ tenants: { [o.plan.tenant]: o.plan.servers } }) : undefined;
    const cluster = o.cluster === true ? await startNatsCluster() : undefined;
    const nats = cluster === undefined ? (secured?.server ?? (await startNatsServer())) : undefined;
    const urls = cluster?.urls ?? [(nats as NatsServerHandle).url];
    const broker = secured ?? nats ?? (cluster as NatsClusterHandle);
    const dir = mkdtempSync(join(tmpdir(), 'live-processes-'));
    // A fixed port, so that a coordinator started again (below) is where the client looks.
    const grpcPort = await freePort();
    const coordinator = superviseTsx('coordinator', 'coordinator/main.ts', [
      '--nats',
      urls.join(','),
      ...(cluster !== undefined ? ['--replicas', '3'] : []),
      '--listen',
      `127.0.0.1:${grpcPort}`,
      '--log-level',
      'warn',
      ...(secured !== undefined ? ['--nats-creds', secured.coordinatorCreds, '--nats-tenant-creds-dir', secured.tenantCredsDir] : []),
      ...(typeof o.coordinatorArgs === 'function' ? o.coordinatorArgs(urls.join(',')) : (o.coordinatorArgs ?? [])),
    ]);
    let system: LiveSystem | undefined;
    try {
      const listening = await coordinator.waitForOutput(/listening on (\S+)/);
      const address = listening[1] as string;
      const nc = secured !== undefined ? await secured.connect(secured.coordinatorCreds, { name: 'live-processes test' }) : await connect({ servers: [...urls], name: 'live-processes test' });
      const store = await openCoordinatorStore(nc, { replicas: cluster !== undefined ? 3 : 1 });
      const tenantConnections = secured !== undefined ? new TenantConnections(secured.tenantCredsDir, { servers: [...urls] }) : undefined;
      const objects = new JetStreamStateObjects(tenantConnections !== undefined ? (t) => tenantConnections.get(t) : nc);
      system = new LiveSystem(nats, cluster, urls, secured, tenantConnections, dir, coordinator, address, new CoordinatorClient(address, { callTimeoutMs: 20_000 }), nc, store, objects);
      await system.startAgents(o.plan, o.agents ?? {}, o.agentsByServer ?? {});
      await system.register(o.plan);
      await system.waitOnline(o.plan.tenant, o.plan.servers);
      return system;
    } catch (error) {
      if (system) await system.stop();
      else {
        await coordinator.stop();
        await broker.stop();
        rmSync(dir, { recursive: true, force: true });
      }
      throw error;
    }
  }

  /** The one nats-server (of a system started without `cluster`). */
  get nats(): NatsServerHandle {
    if (this.server === undefined) throw new Error('this system runs on a NATS cluster: see cluster');
    return this.server;
  }

  plan(id: string): PlanInput {
    const p = this.plans.get(id);
    if (!p) throw new Error(`no plan ${id}`);
    return p;
  }

  /** Starts one agent process per server of `plan` (without registering the plan). */
  async startAgents(plan: PlanInput, options: AgentOptions, byServer: Readonly<Record<string, AgentOptions>> = {}): Promise<void> {
    for (const server of plan.servers) {
      const o = { ...options, ...byServer[server] };
      const file = join(this.dir, `${plan.tenant}-${server}.json`);
      const creds = this.secured?.agentCreds(plan.tenant, server);
      const config = { ...agentConfigFor(plan, server, this.urls[0] as string, o.config, creds) };
      config.nats = { ...(config.nats as object), servers: this.urls };
      writeFileSync(file, JSON.stringify(config, null, 2));
      const child = spawnTsx(`agent ${server}`, 'agent/main.ts', [
        '--config',
        file,
        '--demo-app',
        'tokens',
        '--initial-tokens',
        String(o.initialTokens ?? 1_000),
        '--transfer-interval-ms',
        String(o.transferIntervalMs ?? 5),
        '--deliver-delay-ms',
        String(o.deliverDelayMs ?? 0),
      ]);
      this.agents.set(server, child);
    }
  }

  async register(plan: PlanInput): Promise<void> {
    value(await this.client.registerPlan(plan, 0), `registering plan ${plan.id}`);
    this.plans.set(plan.id, plan);
  }

  /** Every server's agent registered (or heartbeated) recently. */
  async waitOnline(tenant: string, servers: readonly string[], timeoutMs = 30_000): Promise<void> {
    await waitUntil(
      `agents ${servers.join(', ')} of ${tenant} to be online`,
      async () => {
        for (const s of servers) {
          const child = this.agents.get(s);
          if (child && !child.alive()) throw new Error(`agent ${s} exited:\n${child.output().slice(-3000)}`);
        }
        const agents = await this.client.listAgents(tenant);
        return agents.ok && servers.every((s) => agents.value.some((a) => a.server === s && a.status === 'online'));
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  agent(server: string): Child {
    const a = this.agents.get(server);
    if (!a) throw new Error(`no agent ${server}`);
    return a;
  }

  /** Polls GetCheckpoint until the checkpoint completed or aborted. */
  async final(id: CheckpointId, timeoutMs = 20_000): Promise<CheckpointView> {
    return waitUntil(
      `checkpoint ${id} to finish`,
      async () => {
        const got = await this.client.getCheckpoint(id);
        return got.ok && (got.value.state === 'completed' || got.value.state === 'aborted') ? got.value : undefined;
      },
      { timeoutMs, intervalMs: 25 },
    );
  }

  /** TakeSnapshot and wait for the end. */
  async take(request: Partial<TakeSnapshotRequest> & { planId: string }, timeoutMs?: number): Promise<CheckpointView> {
    const taken = value(await this.client.takeSnapshot({ level: 'app', options: {}, ...request }), `TakeSnapshot of ${request.planId}`);
    return this.final(taken.id, timeoutMs);
  }

  /** The stored record with the parts' object refs and counts (what the gRPC view leaves out). */
  async record(id: CheckpointId): Promise<CheckpointRecord> {
    const r = await this.store.checkpoints.get(id);
    if (!r.ok) throw new Error(`record of checkpoint ${id}: ${r.error.message}`);
    return r.value.record;
  }

  async tokens(id: CheckpointId): Promise<TokenCount> {
    const record = await this.record(id);
    const state: Record<string, number> = {};
    const channelIn: Record<string, number> = {};
    const byApp: Record<string, number> = {};
    let channelMessages = 0;
    for (const p of record.parts) {
      const who = processId(p.server, p.app);
      const bytes = await readPartState(record.tenant, p, this.objects);
      if (!bytes.ok) throw new Error(`checkpoint ${id}: state of ${who}: ${bytes.message}`);
      state[who] = decodeTokens(bytes.value);
      channelIn[who] = 0;
      if (p.channelState) {
        const cs = await this.objects.get(record.tenant, p.channelState);
        if (!cs.ok) throw new Error(`checkpoint ${id}: channel state of ${who}: ${cs.error.message}`);
        const decoded = decodeChannelState(cs.value);
        if (!decoded.ok) throw new Error(`checkpoint ${id}: channel state of ${who}: ${decoded.error.message}`);
        for (const msgs of Object.values(decoded.value)) {
          for (const m of msgs) {
            channelIn[who] += decodeTokens(m.payload);
            channelMessages += 1;
          }
        }
      }
      byApp[who] = state[who] + (channelIn[who] ?? 0);
    }
    return { state, channelIn, byApp, channelMessages, total: Object.values(byApp).reduce((a, b) => a + b, 0) };
  }

  /** Messages each channel's sender had sent at the checkpoint (`sent` counts of the record). */
  async sentCounts(id: CheckpointId): Promise<Record<string, number>> {
    const record = await this.record(id);
    const out: Record<string, number> = {};
    for (const p of record.parts) Object.assign(out, p.counts?.sent ?? {});
    return out;
  }

  async receivedCounts(id: CheckpointId): Promise<Record<string, number>> {
    const record = await this.record(id);
    const out: Record<string, number> = {};
    for (const p of record.parts) Object.assign(out, p.counts?.received ?? {});
    return out;
  }

  /**
   * Stops the demo apps' transfers (SIGUSR2 toggles them) and waits until the traffic is quiet:
   * two checkpoints in a row with the same counts on every channel.
   */
  async quiesce(planId: string, servers: readonly string[]): Promise<CheckpointView> {
    for (const s of servers) this.agent(s).process.kill('SIGUSR2');
    let previous: string | undefined;
    return waitUntil(
      `the traffic of ${planId} to stop`,
      async () => {
        const c = await this.take({ planId });
        if (c.state !== 'completed') return undefined;
        const counts = JSON.stringify([await this.sentCounts(c.id), await this.receivedCounts(c.id)]);
        const quiet = counts === previous;
        previous = counts;
        return quiet ? c : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
  }

  /** Every child process still running. */
  deadChildren(): string[] {
    return [this.coordinator, ...this.agents.values()].filter((c) => !c.alive()).map((c) => c.name);
  }

  async stop(): Promise<void> {
    this.client.close();
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    await this.coordinator.stop();
    await this.nc.drain().catch(() => undefined);
    await this.tenantConnections?.close();
    await (this.secured ?? this.server ?? this.cluster)?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
