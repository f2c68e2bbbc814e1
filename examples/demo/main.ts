/**
 * The main job (`npm start`): a whole live system on this machine. It starts nats-server with
 * JetStream in a temporary directory (unless NATS_URL is set), the coordinator, and three agents as
 * separate processes hosting token-transfer apps on a graph with a diamond and a cycle
 * (APP1->APP2->APP3, APP1->APP3, APP3->APP1). While traffic flows it takes a checkpoint every second,
 * verifies each one and checks that tokens are conserved, rolls back to one of them, checks again,
 * prints a summary, and stops everything cleanly on Ctrl-C or after --duration.
 *
 * With --log-channel, APP2 -> APP3 is a log channel over a JetStream stream (docs/channels.md) instead
 * of an in-band one: the same checks pass, the tokens in flight on it read back from the stream.
 *
 * With --cluster 3 it starts a 3-node NATS cluster instead, two coordinators (a leader and a
 * standby, docs/ha.md) on it with 3 replicas, and SIGKILLs the leader mid-way: the standby takes
 * over, and the demo goes on through it with the same checks.
 *
 * Secured by default (docs/security.md): NATS in operator mode with two tenants as accounts and one
 * credential per agent (examples/secured-nats.ts), the gRPC API with TLS and bearer tokens
 * (security.ts); it checks that a tenant's credentials reach nothing of the other tenant.
 * `--insecure` runs the old way, without any of it, and says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import { JetStreamStateObjects, type TenantConnection } from '../../adapters/state-store.js';
import { TenantConnections } from '../../coordinator/nats-auth/tenant-connections.js';
import { agentInboxPrefix, eventSubject } from '../../src/wire/index.js';
import { startSecuredNats, type SecuredNats } from '../secured-nats.js';
import type { LogChannelRights } from '../../coordinator/nats-auth/permissions.js';
import { makeApiSecurity, type ApiSecurity } from './security.js';
import { readPartState } from '../../coordinator/checkpoints/part-state.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { openCoordinatorStore } from '../../coordinator/store/index.js';
import type { ConsistencyLevel, PlanInput } from '../../coordinator/model.js';
import { decodeStoredChannelState } from '../../src/wire/index.js';
import { readLogRange } from '../../adapters/log-range-reader.js';
import { startNatsCluster, type NatsClusterHandle } from '../nats-cluster.js';
import { startNatsServer, type NatsServerHandle } from '../nats-server.js';
import { decodeTokens } from '../../agent/demo-apps/token-app.js';
import { orphansBetween, pauseFile, readRecords } from '../../agent/demo-apps/writer-app.js';
import { createLogStreams } from './log-streams.js';
import { agentConfigJson, demoPlan, logSubjectOf } from './plan.js';

/** What the demo's exit code says. */
const EXIT = { passed: 0, failed: 1, usage: 2, interrupted: 130 } as const;

/**
 * Completed checkpoints the coordinator keeps of the demo's plan: an hour at one a second. Its own
 * default (20) would delete a checkpoint some 20 s after it was taken, before a user has had time to
 * pick its id from `snapctl list` and verify it. The states are a few bytes each, kept inline.
 */
const RETAINED_CHECKPOINTS = 3600;
/** A name in the API's certificate (security.ts): the address is an IP, which TLS does not use as a server name. */
const DEMO_TLS_SERVER_NAME = 'localhost';
/** With --level none, how long each token app takes to handle a message (agent --deliver-delay-ms). */
const NONE_LEVEL_DELIVER_DELAY_MS = 2;

const HELP = `npm start -- [options]: the live demo

options:
  --duration S        stop after S seconds (default: run until Ctrl-C)
  --interval-ms MS    time between checkpoints (default 1000)
  --level LEVEL       app (default): barrier checkpoints of token-transfer apps;
                      crash: writer apps keep their state on volumes (directories), frozen by a
                      hook, snapshotted as a group by the coordinator's directory backend;
                      none: the baseline without coordination, which the cut checker catches out
  --rollback-after N  roll back to the first checkpoint after N checkpoints (default 3)
  --tokens N          tokens each app starts with (default 1000)
  --grpc HOST:PORT    the coordinator's gRPC address (default 127.0.0.1:50051; port 0 picks a free one)
  --cluster N         run on an N-node NATS cluster (N >= 3; buckets with 3 replicas) with two
                      coordinators, and SIGKILL the leading one after the second checkpoint that
                      follows the rollback: the standby takes over within 10 s, the demo goes on
                      through it
  --metrics-port P    the coordinator serves Prometheus metrics at http://127.0.0.1:P/metrics
                      (default: no metrics endpoint)
  --insecure          no NATS accounts or credentials, and the gRPC API in plaintext without
                      tokens: the way before docs/security.md (development only; said loudly)
  --log-channel       APP2 -> APP3 is a log channel over the JetStream stream DEMO_LOG (made by
                      the demo, in the tenant's account) instead of an in-band one; levels app
                      and none. s2 and s3 are enrolled with their rights on the stream
  -h, --help          this help

Secured by default: nats-server in operator mode with two tenants (demo, and other with one agent
of its own) as NATS accounts, each agent with its own credential, and the coordinator's gRPC API
with TLS (a throwaway CA) and bearer tokens. The demo checks that the other tenant's agent
credential cannot publish on demo's subjects and that its API token sees none of demo's plans.
It writes the snapctl settings (address, CA, token) to a file it names at start.
With --cluster or NATS_URL the NATS part runs without accounts (the API stays secured).

NATS_URL=nats://host:port uses that NATS server (JetStream enabled) instead of starting one.
The coordinator keeps the last ${RETAINED_CHECKPOINTS} completed checkpoints of the plan (an hour at the default
interval), so an id from \`snapctl list\` can be verified, shown or rolled back to while the demo runs.

Ctrl-C ends the run like --duration: the current step finishes, the summary is printed, everything
is stopped, and the exit code is the verdict's (a second Ctrl-C quits at once; the processes the
demo started are stopped all the same).
exit codes: 0 every check passed, 1 a check failed, 2 usage or set-up error,
            130 interrupted before any checkpoint was taken`;

/** The issue's bound on a takeover: from the leader's death to the standby serving. */
const TAKEOVER_MS_MAX = 10_000;
/** How long the demo keeps asking the standby before it counts the takeover as failed. */
const TAKEOVER_WAIT_MS = 30_000;

/** A Ctrl-C this long after the first one means "quit at once" rather than being the same one relayed. */
const SECOND_INTERRUPT_AFTER_MS = 1_000;

const TENANT = 'demo';
const PLAN: PlanInput = demoPlan(TENANT);
/** The second tenant: one agent, one app, to show that tenants are kept apart. */
const OTHER_TENANT = 'other';
const OTHER_PLAN: PlanInput = { id: 'other', tenant: OTHER_TENANT, servers: ['s1'], apps: [{ server: 's1', app: 'APP1' }], channels: [], volumes: [] };
/** How long the demo waits for NATS to report a refused publish. */
const REFUSAL_WAIT_MS = 2_000;

interface Row {
  id: number;
  state: string;
  durationMs: number;
  tokens: number | undefined;
  orphans: number | undefined;
  verified: boolean;
  problems: number;
  note: string;
}

function volumeOf(workDir: string, server: string, app: string): string {
  return join(workDir, 'volumes', server, app);
}

/** The crash-level quiesce hook of one server: the writer pauses while its pause marker exists. */
function writePauseHook(workDir: string, server: string, volume: string): string {
  const dir = join(workDir, 'hooks', server);
  mkdirSync(dir, { recursive: true });
  const hook = join(dir, '10-pause-writer');
  writeFileSync(hook, `#!/bin/sh\ncase "$1" in\n  freeze) touch ${pauseFile(volume)} ;;\n  thaw) rm -f ${pauseFile(volume)} ;;\nesac\n`, { mode: 0o755 });
  return dir;
}

/** `got` records on a receiver's volume copy whose `rec` is missing on the sender's copy. */
function orphansAcrossVolumes(volumes: readonly { server: string; snapshotRef: string }[]): number {
  let orphans = 0;
  for (const c of PLAN.channels) {
    const sender = volumes.find((v) => v.server === c.from.server);
    const receiver = volumes.find((v) => v.server === c.to.server);
    if (!sender || !receiver) return Number.NaN;
    orphans += orphansBetween(readRecords(sender.snapshotRef), readRecords(receiver.snapshotRef), `${c.from.server}/${c.from.app}->${c.to.server}/${c.to.app}`).length;
  }
  return orphans;
}

/**
 * The processes the demo started. Each runs in a process group of its own (`detached`): a terminal's
 * Ctrl-C goes to the whole foreground group, and must reach the demo alone, which then finishes its
 * step, prints its summary and stops them itself. Should the demo die first, the reaper stops them.
 */
const children: { name: string; process: ChildProcess }[] = [];
let nats: NatsServerHandle | undefined;
let secured: SecuredNats | undefined;
let tenantConnections: TenantConnections | undefined;
let cluster: NatsClusterHandle | undefined;
let workDir: string | undefined;
let reaper: ChildProcess | undefined;
let stopping = false;
/** Processes the demo kills as part of the show (the leading coordinator with --cluster): their end is no problem. */
const killedOnPurpose = new Set<ChildProcess>();

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Starts the reaper (see reaper.ts), before anything it would have to clean up. */
function startReaper(): void {
  reaper = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'reaper.ts')], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  // A reaper that failed to start must not fail the demo; it only loses its safety net.
  reaper.on('error', () => undefined);
  reaper.stdin?.on('error', () => undefined);
  reaper.unref();
}

/** Tells the reaper what to clean up if the demo dies without stopping it. */
function leaveToReaper(line: string): void {
  reaper?.stdin?.write(`${line}\n`);
}

function startChild(name: string, args: string[], onLine?: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env }, detached: true });
  children.push({ name, process: child });
  if (child.pid !== undefined) leaveToReaper(`group ${child.pid}`);
  let buffer = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffer += d.toString();
    let at: number;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      onLine?.(line);
    }
  });
  let errors = '';
  child.stderr?.on('data', (d: Buffer) => {
    errors = (errors + d.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && code !== null && !stopping) say(`! ${name} exited with code ${code}${errors ? `:\n${errors}` : ''}`);
    else if (signal && !stopping && !killedOnPurpose.has(child)) say(`! ${name} was killed by ${signal}`);
  });
  return child;
}

/** "the agents, the coordinator and nats-server": what the demo started, for the closing lines. */
function startedText(): string {
  const names = [
    ...(children.some((c) => c.name.startsWith('agent')) ? ['the agents'] : []),
    ...(children.some((c) => c.name === 'coordinator standby') ? ['the coordinators'] : children.some((c) => c.name === 'coordinator') ? ['the coordinator'] : []),
    ...(nats !== undefined ? ['nats-server'] : []),
    ...(cluster !== undefined ? ['the NATS cluster'] : []),
  ];
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

function stopChild(c: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return resolve();
    const kill = setTimeout(() => c.kill('SIGKILL'), 5_000);
    c.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

/** Stops everything the demo started, saying so only when it started something. */
async function stopAll(): Promise<void> {
  stopping = true;
  const what = startedText();
  if (what !== '') say(`\nstopping ${what} ...`);
  await Promise.all(children.map((c) => stopChild(c.process)));
  await tenantConnections?.close();
  await nats?.stop();
  await cluster?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  // Everything is stopped: the reaper has nothing left to do. Waiting for it leaves no zombie behind.
  if (reaper !== undefined) await stopChild(reaper);
  if (what !== '') say('stopped.');
}

/**
 * The summary's lines: a header and one line per checkpoint, each column as wide as its widest cell
 * (ids and durations grow with a long run). Numbers are right-aligned, text left-aligned.
 */
function summaryTable(rows: readonly Row[], level: ConsistencyLevel): string[] {
  const columns: { header: string; right: boolean; cell: (r: Row) => string }[] = [
    { header: 'id', right: true, cell: (r) => String(r.id) },
    { header: 'state', right: false, cell: (r) => r.state.slice(0, 40) },
    { header: 'ms', right: true, cell: (r) => String(r.durationMs) },
    level === 'crash'
      ? { header: 'orphans', right: true, cell: (r) => String(r.orphans ?? '-') }
      : { header: 'tokens', right: true, cell: (r) => String(r.tokens ?? '-') },
    { header: 'cut checker', right: false, cell: (r) => (r.verified ? 'ok' : `${r.problems} violation${r.problems === 1 ? '' : 's'}`) },
    { header: 'note', right: false, cell: (r) => r.note },
  ];
  const cells = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.cell(r)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => (line[i] as string).length)));
  return cells.map((line) =>
    line
      .map((text, i) => (columns[i]?.right ? text.padStart(widths[i] as number) : text.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd(),
  );
}

/** Per server, its rights on the plan's log channels: publish on those it sends, read the streams of those it receives. */
function logChannelRights(plan: PlanInput): Map<string, LogChannelRights> {
  const rights = new Map<string, { publish: { stream: string; subject: string }[]; read: string[] }>();
  const of = (server: string): { publish: { stream: string; subject: string }[]; read: string[] } => {
    const r = rights.get(server) ?? { publish: [], read: [] };
    rights.set(server, r);
    return r;
  };
  for (const c of plan.channels) {
    if (c.kind !== 'log' || c.logStream === undefined) continue;
    of(c.from.server).publish.push({ stream: c.logStream, subject: logSubjectOf(c) });
    of(c.to.server).read.push(c.logStream);
  }
  return rights;
}

/**
 * The tokens in a checkpoint: in the apps' states plus in the channel states it recorded, the ranges
 * of log channels read back from their stream.
 */
async function tokensOf(nc: NatsConnection, states: TenantConnection, plan: PlanInput, id: number, replicas: number): Promise<number> {
  const objects = new JetStreamStateObjects(states, { replicas });
  const stored = await (await openCoordinatorStore(nc, { replicas })).checkpoints.get(id);
  if (!stored.ok) throw new Error(`checkpoint ${id}: ${stored.error.message}`);
  let total = 0;
  for (const p of stored.value.record.parts) {
    const state = await readPartState(TENANT, p, objects);
    if (!state.ok) throw new Error(`state of ${p.server}/${p.app} in checkpoint ${id}: ${state.message}`);
    total += decodeTokens(state.value);
    if (!p.channelState) continue;
    const bytes = await objects.get(TENANT, p.channelState);
    if (!bytes.ok) throw new Error(bytes.error.message);
    const decoded = decodeStoredChannelState(bytes.value);
    if (!decoded.ok) throw new Error(decoded.error.message);
    for (const msgs of Object.values(decoded.value.messages)) for (const m of msgs) total += decodeTokens(m.payload);
    for (const [channel, range] of Object.entries(decoded.value.logRanges)) {
      const c = plan.channels.find((x) => `${x.from.server}/${x.from.app}->${x.to.server}/${x.to.app}` === channel);
      if (c?.logStream === undefined) throw new Error(`checkpoint ${id} has a log range for ${channel}, not a log channel of the plan`);
      // The stream is the tenant's: in its account when NATS has accounts.
      const logs = typeof states === 'function' ? await states(TENANT) : states;
      for (const m of await readLogRange(logs, { stream: c.logStream, subject: logSubjectOf(c) }, channel, range)) total += decodeTokens(m.payload);
    }
  }
  return total;
}

/** The checkpoint's end as the demo prints it: "completed", or "aborted: why". */
function finalState(client: CoordinatorClient, id: number): Promise<string> {
  return new Promise<string>((resolve) => {
    const w = client.watchCheckpoint(id, (e) => {
      if (e.checkpoint.state === 'completed' || e.checkpoint.state === 'aborted') {
        w.cancel();
        resolve(e.checkpoint.state === 'aborted' ? `aborted: ${e.checkpoint.failureDetail ?? ''}` : 'completed');
      }
    });
    void w.done.then(() => resolve('watch ended'));
  });
}

/** Resolves true once NATS reports a permissions violation to this connection, false after REFUSAL_WAIT_MS. */
function permissionViolation(nc: NatsConnection): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), REFUSAL_WAIT_MS);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'error' && String(s.data) === 'PERMISSIONS_VIOLATION') {
          clearTimeout(timer);
          resolve(true);
        }
      }
    })();
  });
}

/**
 * The second tenant: its plan registered and one checkpoint of it taken beside demo's, then what
 * its credentials cannot reach (secured only): the API without a token, its viewer token on demo's
 * plan and on a checkpoint, its agent's NATS credential on demo's event subject. Returns the
 * number of checks that failed.
 */
async function otherTenant(client: CoordinatorClient, api: ApiSecurity | undefined, secured: SecuredNats | undefined, address: string): Promise<number> {
  let failures = 0;
  const check = (passed: boolean, text: string): void => {
    say(`  ${passed ? 'ok' : '!'} ${text}`);
    if (!passed) failures += 1;
  };
  const registered = await client.registerPlan(OTHER_PLAN, 0);
  if (!registered.ok) throw new Error(`registering the plan ${OTHER_PLAN.id} failed: ${registered.error.message}`);
  for (let i = 0; ; i++) {
    const agents = await client.listAgents(OTHER_TENANT);
    if (agents.ok && agents.value.some((x) => x.status === 'online')) break;
    if (i > 100) throw new Error(`the agent of tenant ${OTHER_TENANT} did not register within 20 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  say(`tenant ${OTHER_TENANT}:`);
  const taken = await client.takeSnapshot({ planId: OTHER_PLAN.id, level: 'app', options: { timeoutMs: 10_000 } });
  const final = taken.ok ? await finalState(client, taken.value.id) : `not taken: ${taken.error.message}`;
  check(final === 'completed', `checkpoint ${taken.ok ? taken.value.id : '-'} of its plan "${OTHER_PLAN.id}": ${final}`);
  const code = (r: { ok: true } | { ok: false; error: { codeName: string } }): string => (r.ok ? 'served' : r.error.codeName);
  if (api !== undefined) {
    const anonymous = new CoordinatorClient(address, { credentials: api.credentials, tlsServerName: DEMO_TLS_SERVER_NAME });
    const viewer = new CoordinatorClient(address, { credentials: api.credentials, tlsServerName: DEMO_TLS_SERVER_NAME, token: api.otherViewerToken });
    try {
      const noToken = await anonymous.listPlans(undefined, 100, '');
      check(code(noToken) === 'UNAUTHENTICATED', `the gRPC API without a token: ${code(noToken)}`);
      const listed = await viewer.listPlans(undefined, 100, '');
      const ids = listed.ok ? listed.value.items.map((p) => p.id).join(', ') : code(listed);
      check(ids === OTHER_PLAN.id, `its viewer token lists the plans: ${ids}`);
      const foreign = await viewer.getPlan(PLAN.id);
      check(code(foreign) === 'NOT_FOUND', `its viewer token asks for plan "${PLAN.id}": ${code(foreign)}`);
      const take = await viewer.takeSnapshot({ planId: OTHER_PLAN.id, level: 'app', options: {} });
      check(code(take) === 'PERMISSION_DENIED', `its viewer token takes a checkpoint: ${code(take)}`);
    } finally {
      anonymous.close();
      viewer.close();
    }
  }
  if (secured !== undefined) {
    const nc = await secured.connect(secured.agentCreds(OTHER_TENANT, 's1'), { inboxPrefix: agentInboxPrefix(OTHER_TENANT, 's1'), name: 'demo: the other tenant forging' });
    try {
      const refused = permissionViolation(nc);
      nc.publish(eventSubject(TENANT, 's1'), new Uint8Array([1]));
      await nc.flush();
      check(await refused, `its agent's NATS credential publishes on ${eventSubject(TENANT, 's1')}: ${(await refused) ? 'refused by NATS (permissions violation)' : 'NOT refused'}`);
    } finally {
      await nc.close();
    }
  }
  say('');
  return failures;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string' },
        'interval-ms': { type: 'string', default: '1000' },
        level: { type: 'string', default: 'app' },
        'rollback-after': { type: 'string', default: '3' },
        tokens: { type: 'string', default: '1000' },
        grpc: { type: 'string', default: '127.0.0.1:50051' },
        'metrics-port': { type: 'string' },
        cluster: { type: 'string' },
        insecure: { type: 'boolean', default: false },
        'log-channel': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return EXIT.usage;
  }
  if (values.help) {
    say(HELP);
    return EXIT.passed;
  }
  const level = values.level as ConsistencyLevel;
  if (level !== 'app' && level !== 'none' && level !== 'crash') {
    console.error(`--level must be app, crash or none, got ${values.level}`);
    return EXIT.usage;
  }
  const durationS = values.duration === undefined ? Infinity : Number(values.duration);
  const intervalMs = Number(values['interval-ms']);
  const rollbackAfter = Number(values['rollback-after']);
  const initialTokens = Number(values.tokens);
  if (!(durationS > 0) || !(intervalMs > 0) || !Number.isInteger(rollbackAfter) || rollbackAfter < 1 || !(initialTokens >= 0)) {
    console.error(`invalid option value\n\n${HELP}`);
    return EXIT.usage;
  }
  const clusterSize = values.cluster === undefined ? undefined : Number(values.cluster);
  if (clusterSize !== undefined && !(Number.isInteger(clusterSize) && clusterSize >= 3 && clusterSize <= 7)) {
    console.error(`--cluster must be a number of NATS nodes from 3 to 7, got ${values.cluster}`);
    return EXIT.usage;
  }
  if (clusterSize !== undefined && level === 'crash') {
    console.error('--cluster runs the app and none levels (the crash level keeps its volumes on this host)');
    return EXIT.usage;
  }
  if (clusterSize !== undefined && process.env['NATS_URL']) {
    console.error('--cluster starts its own NATS cluster: unset NATS_URL');
    return EXIT.usage;
  }
  if (values['log-channel'] && level === 'crash') {
    console.error('--log-channel runs the app and none levels (the crash level keeps its state on volumes)');
    return EXIT.usage;
  }
  const demo = values['log-channel'] ? demoPlan(TENANT, 'demo', { logChannel: true }) : PLAN;
  const replicas = clusterSize === undefined ? 1 : 3;
  const total = initialTokens * PLAN.apps.length;
  let interruptedAtMs: number | undefined;
  const interrupted = (): boolean => interruptedAtMs !== undefined;
  process.on('SIGINT', () => onInterrupt('SIGINT'));
  process.on('SIGTERM', () => onInterrupt('SIGTERM'));
  function onInterrupt(signal: NodeJS.Signals): void {
    if (interruptedAtMs === undefined) {
      interruptedAtMs = Date.now();
      if (signal === 'SIGINT') say('\n(Ctrl-C: finishing the current step, then the summary; Ctrl-C again quits at once)');
      return;
    }
    // One Ctrl-C can arrive twice: tsx's launcher (npm start) relays it to the demo unless the demo
    // confirmed it within 30 ms, which a busy machine misses. A second one a moment later is meant.
    if (Date.now() - interruptedAtMs < SECOND_INTERRUPT_AFTER_MS) return;
    say('\nquitting at once (the reaper stops what the demo started)');
    process.exit(EXIT.interrupted);
  }
  startReaper();
  workDir = mkdtempSync(join(tmpdir(), 'snapshot-demo-'));
  leaveToReaper(`dir ${workDir}`);
  const insecure = values.insecure === true;
  if (insecure) say('! INSECURE (--insecure): NATS without accounts or credentials, the gRPC API in plaintext without tokens: anyone who reaches them can read and change everything');

  let url = process.env['NATS_URL'];
  if (url) say(`using NATS at ${url}${insecure ? '' : ' (without NATS accounts: the demo cannot set up operator mode on a server it did not start)'}`);
  else if (clusterSize !== undefined) {
    say(`starting a ${clusterSize}-node NATS cluster with JetStream ...`);
    try {
      cluster = await startNatsCluster({ size: clusterSize, detached: true });
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
      return EXIT.usage;
    }
    for (const n of cluster.nodes) {
      leaveToReaper(`group ${n.pid() as number}`);
      leaveToReaper(`dir ${n.storeDir}`);
    }
    url = cluster.urls.join(',');
    say(`  nats-servers on ${url}${insecure ? '' : ' (without NATS accounts: operator mode on a cluster is in docs/security.md, not set up by the demo)'}`);
  } else if (!insecure) {
    say('starting nats-server with JetStream in operator mode: tenants demo and other as accounts, one credential per agent ...');
    try {
      secured = await startSecuredNats({ detached: true, dir: join(workDir, 'nats'), tenants: { [TENANT]: PLAN.servers, [OTHER_TENANT]: OTHER_PLAN.servers } });
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
      return EXIT.usage;
    }
    nats = secured.server;
    leaveToReaper(`group ${nats.pid}`);
    leaveToReaper(`dir ${nats.storeDir}`);
    url = nats.url;
    say(`  nats-server on ${url}`);
  } else {
    say('starting nats-server with JetStream ...');
    try {
      nats = await startNatsServer({ detached: true });
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
      return EXIT.usage;
    }
    leaveToReaper(`group ${nats.pid}`);
    leaveToReaper(`dir ${nats.storeDir}`);
    url = nats.url;
    say(`  nats-server on ${url}`);
  }
  const metricsPort = values['metrics-port'];
  if (metricsPort !== undefined && !(/^\d{1,5}$/.test(metricsPort) && Number(metricsPort) >= 1 && Number(metricsPort) <= 65_535)) {
    console.error(`--metrics-port must be a port from 1 to 65535, got ${metricsPort}`);
    return EXIT.usage;
  }
  let api: ApiSecurity | undefined;
  if (!insecure) {
    try {
      api = makeApiSecurity(join(workDir, 'api'), OTHER_TENANT);
    } catch (error) {
      console.error(`cannot make the gRPC API's certificates with openssl: ${error instanceof Error ? error.message : String(error)} (or run with --insecure)`);
      return EXIT.usage;
    }
  }
  const natsCredentials = secured !== undefined ? ['--nats-creds', secured.coordinatorCreds, '--nats-tenant-creds-dir', secured.tenantCredsDir] : [];

  const startCoordinator = (name: string, listen: string, extra: readonly string[]): Promise<{ address: string; child: ChildProcess }> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${name} did not start within 30 s`)), 30_000);
      const volumeBackend = level === 'crash' ? ['--volume-backend', `directory:${join(workDir as string, 'snapshots')}`] : [];
      const args = ['coordinator/main.ts', '--nats', url as string, '--replicas', String(replicas), '--listen', listen, '--log-level', 'warn', '--retain', String(RETAINED_CHECKPOINTS), ...natsCredentials, ...(api?.coordinatorArgs ?? []), ...volumeBackend, ...extra];
      const child = startChild(name, args, (line) => {
        const m = /^listening on (.+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve({ address: m[1] as string, child });
        }
      });
      child.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`the ${name} could not start on ${listen} (is the port taken? try --grpc 127.0.0.1:0)`));
      });
    });
  say('starting the coordinator ...');
  const leader = await startCoordinator('coordinator', values.grpc as string, metricsPort !== undefined ? ['--metrics-port', metricsPort] : []);
  const address = leader.address;
  if (api !== undefined) {
    const envFile = join(workDir, 'snapctl.env');
    writeFileSync(envFile, `export SNAPCTL_ADDRESS=${address} SNAPCTL_CA=${api.caFile} SNAPCTL_TLS_SERVER_NAME=${DEMO_TLS_SERVER_NAME} SNAPCTL_TOKEN=${api.adminToken}\n`, { mode: 0o600 });
    say(`  coordinator gRPC on ${address}, TLS and bearer tokens  (try: . ${envFile} && npm run -s snapctl -- list)`);
  } else say(`  coordinator gRPC on ${address}  (try: SNAPCTL_ADDRESS=${address} npm run -s snapctl -- list)`);
  let standby: { address: string; child: ChildProcess } | undefined;
  if (clusterSize !== undefined) {
    say('starting a second coordinator, which stands by ...');
    standby = await startCoordinator('coordinator standby', '127.0.0.1:0', []);
    say(`  standby coordinator gRPC on ${standby.address} (it answers UNAVAILABLE naming the leader until it leads)`);
  }
  if (metricsPort !== undefined) say(`  coordinator metrics on http://127.0.0.1:${metricsPort}/metrics`);

  say(`starting three agents (s1/APP1, s2/APP2, s3/APP3) with ${level === 'crash' ? 'writer apps on volumes' : 'token apps'} ...`);
  const plan: PlanInput = level === 'crash' ? { ...PLAN, volumes: PLAN.apps.map((a) => ({ id: `vol-${a.server}`, server: a.server, backendRef: volumeOf(workDir as string, a.server, a.app) })) } : demo;
  /** The agent's configuration with its credential, when NATS has accounts. */
  const withCreds = (config: Record<string, unknown>, tenant: string, server: string): Record<string, unknown> =>
    secured === undefined ? config : { ...config, nats: { ...(config['nats'] as Record<string, unknown>), credsFile: secured.agentCreds(tenant, server) } };
  if (demo !== PLAN) {
    // The operator's part of a log channel: its stream (in the tenant's account when NATS has
    // accounts), there before the agents open the channel, and the channel's agents enrolled with
    // their rights on it.
    const admin = secured !== undefined ? await secured.connect(join(secured.tenantCredsDir, TENANT, 'coordinator.creds'), { name: 'demo: log streams' }) : await connect({ servers: url.split(',') });
    try {
      await createLogStreams(admin, demo);
    } finally {
      await admin.close();
    }
    if (secured !== undefined) for (const [server, rights] of logChannelRights(demo)) await secured.enroll(TENANT, server, rights);
    say(`  log channel s2/APP2 -> s3/APP3 over the JetStream stream DEMO_LOG${secured !== undefined ? ' (s2 enrolled to publish on its subject, s3 to read the stream)' : ''}`);
  }
  // Messages handled in no time are almost never in transit at an instant the three agents share
  // (one trigger broadcast reaches them together): the baseline would often look consistent by luck.
  const noneLevelDelay = level === 'none' ? ['--deliver-delay-ms', String(NONE_LEVEL_DELIVER_DELAY_MS)] : [];
  for (const a of PLAN.apps) {
    const file = join(workDir, `${a.server}.json`);
    if (level === 'crash') {
      const hooks = writePauseHook(workDir, a.server, volumeOf(workDir, a.server, a.app));
      const config = agentConfigJson(PLAN, a.server, a.app, url as string, { logLevel: 'warn', freeze: { hooksDir: hooks }, stateDir: join(workDir, 'state', a.server) });
      writeFileSync(file, JSON.stringify(withCreds(config, TENANT, a.server), null, 2));
      startChild(`agent ${a.server}`, ['agent/main.ts', '--config', file, '--demo-app', 'writer', '--volume', join(workDir, 'volumes', a.server), '--transfer-interval-ms', '5']);
    } else {
      const config = agentConfigJson(demo, a.server, a.app, url as string, { logLevel: 'warn' });
      writeFileSync(file, JSON.stringify(withCreds(config, TENANT, a.server), null, 2));
      startChild(`agent ${a.server}`, ['agent/main.ts', '--config', file, '--demo-app', 'tokens', '--initial-tokens', String(initialTokens), ...noneLevelDelay]);
    }
  }
  if (noneLevelDelay.length > 0) say(`  level none: each app takes ${NONE_LEVEL_DELIVER_DELAY_MS} ms to handle a message, as real apps take time, so tokens are in transit when the uncoordinated snapshots are taken`);
  say(`starting the agent of tenant ${OTHER_TENANT} (s1/APP1, its own plan "${OTHER_PLAN.id}") ...`);
  const otherFile = join(workDir, `${OTHER_TENANT}-s1.json`);
  writeFileSync(otherFile, JSON.stringify(withCreds(agentConfigJson(OTHER_PLAN, 's1', 'APP1', url, { logLevel: 'warn' }), OTHER_TENANT, 's1'), null, 2));
  startChild(`agent ${OTHER_TENANT}/s1`, ['agent/main.ts', '--config', otherFile, '--demo-app', 'tokens', '--initial-tokens', String(initialTokens), '--transfer-interval-ms', '0']);

  const clientOptions = api !== undefined ? { token: api.adminToken, credentials: api.credentials, tlsServerName: DEMO_TLS_SERVER_NAME } : {};
  let client = new CoordinatorClient(address, clientOptions);
  const nc = secured !== undefined ? await secured.connect(secured.coordinatorCreds, { name: 'snapshot-demo' }) : await connect({ servers: url.split(',') });
  tenantConnections = secured !== undefined ? new TenantConnections(secured.tenantCredsDir, { servers: url.split(',') }) : undefined;
  const states: TenantConnection = tenantConnections !== undefined ? (t) => (tenantConnections as TenantConnections).get(t) : nc;
  /** After the leader's SIGKILL: when it happened and the client of the standby, until the first checkpoint through it. */
  let takeover: { killedAtMs: number; after: number } | undefined;
  let takeoverNote: string | undefined;
  let failures = 0;
  try {
    const registered = await client.registerPlan(plan, 0);
    if (!registered.ok) throw new Error(`registering the plan failed: ${registered.error.message}`);
    // Wait until every agent registered, so the first checkpoint does not time out on a late start.
    for (let i = 0; !interrupted(); i++) {
      const agents = await client.listAgents(TENANT);
      if (agents.ok && agents.value.filter((x) => x.status === 'online').length === PLAN.apps.length) break;
      if (i > 100) throw new Error('the agents did not register within 20 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!interrupted()) failures += await otherTenant(client, api, secured, address);
    const deadline = Date.now() + durationS * 1000;
    if (!interrupted()) say(`plan "demo" registered; agents online; ${level === 'crash' ? 'each app writes records to its volume and sends their ids downstream' : `${total} tokens in the system`}\n`);
    if (!interrupted()) say(`taking ${level}-level checkpoints every ${intervalMs} ms while the apps run${Number.isFinite(durationS) ? ` for ${durationS} s` : ' (Ctrl-C to stop)'}:`);

    const rows: Row[] = [];
    let rolledBackTo: number | undefined;
    while (!interrupted() && Date.now() < deadline) {
      const started = Date.now();
      const taken = await client.takeSnapshot({ planId: 'demo', level, options: { timeoutMs: 10_000 } });
      if (!taken.ok && takeover !== undefined && taken.error.codeName === 'UNAVAILABLE' && Date.now() - takeover.killedAtMs < TAKEOVER_WAIT_MS) {
        // The standby answers UNAVAILABLE until its lease is taken and its recovery done.
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (taken.ok && takeover !== undefined) {
        const ms = Date.now() - takeover.killedAtMs;
        takeoverNote = `the standby took over and accepted a checkpoint ${ms} ms after the leader's SIGKILL`;
        say(`  ${takeoverNote}`);
        if (ms > TAKEOVER_MS_MAX) failures += 1;
        takeover = undefined;
      }
      if (!taken.ok) {
        // A checkpoint or rollback started from snapctl meanwhile is not a failure of the demo.
        const busy = taken.error.reason === 'PLAN_BUSY';
        say(`  ${busy ? 'skipped: another checkpoint of the plan is running' : `! take failed: ${taken.error.message}`}`);
        if (!busy) failures += 1;
      } else {
        const id = taken.value.id;
        const final = await finalState(client, id);
        const durationMs = Date.now() - started;
        if (final !== 'completed') {
          failures += 1;
          rows.push({ id, state: final, durationMs, tokens: undefined, orphans: undefined, verified: false, problems: 0, note: '' });
          say(`  checkpoint ${id}: ${final}`);
        } else {
          const verified = await client.verify(id);
          const ok = verified.ok && verified.value.ok;
          const problems = verified.ok ? verified.value.problems.length : 0;
          const note = rolledBackTo !== undefined && rows.every((r) => r.note !== 'first after rollback') ? 'first after rollback' : '';
          let measure: string;
          let tokens: number | undefined;
          let orphans: number | undefined;
          if (level === 'crash') {
            const view = await client.getCheckpoint(id);
            orphans = view.ok ? orphansAcrossVolumes(view.value.volumes) : Number.NaN;
            if (!ok || orphans !== 0) failures += 1;
            measure = `orphans across volumes ${orphans}`;
          } else {
            tokens = await tokensOf(nc, states, plan, id, replicas);
            if (level === 'app' && (!ok || tokens !== total)) failures += 1;
            measure = `tokens ${tokens}/${total} ${tokens === total ? 'conserved' : 'NOT CONSERVED'}`;
          }
          rows.push({ id, state: 'completed', durationMs, tokens, orphans, verified: ok, problems, note });
          say(
            `  checkpoint ${String(id).padStart(3)}  completed in ${String(durationMs).padStart(4)} ms  ${measure}  cut checker ${ok ? 'ok' : `${problems} violation${problems === 1 ? '' : 's'}`}${note ? `  (${note})` : ''}`,
          );
          const completed = rows.filter((r) => r.state === 'completed');
          if (standby !== undefined && takeover === undefined && takeoverNote === undefined && rolledBackTo !== undefined && completed.length === rollbackAfter + 2) {
            say(`\nkilling the leading coordinator (SIGKILL) ...`);
            killedOnPurpose.add(leader.child);
            leader.child.kill('SIGKILL');
            takeover = { killedAtMs: Date.now(), after: id };
            client.close();
            client = new CoordinatorClient(standby.address, clientOptions);
          }
          if (level === 'crash' && completed.length === rollbackAfter) {
            // A crash-level rollback reverts the volumes; apps must then restart from them (restore
            // hooks), and messages in flight between them are not fenced at this level. The embedded
            // writer apps cannot restart, so the demo leaves it to test/integration/crash-level.test.ts.
            say('\n(a crash-level rollback reverts the volumes and restarts the apps through their restore hooks; the demo\'s embedded writer apps cannot restart, so it is not run here)\n');
          }
          if (level !== 'crash' && rolledBackTo === undefined && completed.length === rollbackAfter) {
            const target = completed[0] as Row;
            say(`\nrolling back every app to checkpoint ${target.id} (a safety checkpoint is taken first) ...`);
            const rolled = await client.rollback(target.id, false);
            if (!rolled.ok) {
              say(`  ! rollback failed: ${rolled.error.message}`);
              failures += 1;
            } else {
              rolledBackTo = target.id;
              say(`  rolled back to ${target.id}: safety checkpoint ${rolled.value.safetyCheckpointId}, now at epoch ${rolled.value.epoch}\n`);
            }
          }
        }
      }
      const wait = intervalMs - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
    }

    const completed = rows.filter((r) => r.state === 'completed');
    const conserved = completed.filter((r) => r.tokens === total).length;
    const violating = completed.filter((r) => !r.verified || (r.orphans ?? 0) > 0).length;
    say('\nsummary');
    for (const line of summaryTable(rows, level)) say(`  ${line}`);
    if (standby !== undefined) {
      if (takeoverNote !== undefined) say(`\n  leader coordinator killed: ${takeoverNote}`);
      else if (takeover !== undefined) {
        say(`\n  ! leader coordinator killed: the standby did not accept a checkpoint within ${TAKEOVER_WAIT_MS} ms`);
        failures += 1;
      } else say('\n  the leader coordinator was not killed: the run ended first (run longer, e.g. --duration 30)');
    }
    say(`\n  ${completed.length} of ${rows.length} checkpoints completed; rollback ${rolledBackTo !== undefined ? `to ${rolledBackTo} done` : level === 'crash' ? 'not run at this level' : 'not reached'}`);
    if (level === 'app') say(`  ${conserved} of ${completed.length} conserved all ${total} tokens (app states plus the messages recorded in flight)`);
    say(
      `  cut checker verdict for level ${level}: ${
        violating === 0
          ? `every checkpoint consistent${level === 'crash' ? ' (no orphan across volumes; messages in flight are lost, as after a power cut)' : ''}`
          : `${violating} of ${completed.length} checkpoints NOT consistent${level === 'none' ? ' (expected: level none takes each app and volume on its own)' : ''}`
      }`,
    );
    if (level === 'none' && rolledBackTo !== undefined && rows.some((r) => r.state.startsWith('aborted'))) {
      say('  after rolling back to an inconsistent checkpoint the apps disagree about what was sent and received:');
      say('  their channels fail and later checkpoints are declined, which is what level none costs');
    }
    if (interrupted() && rows.length === 0) {
      say('  verdict: none, interrupted before the first checkpoint');
      return EXIT.interrupted;
    }
    const passed = level === 'none' ? true : failures === 0 && completed.length > 0;
    say(`  verdict: ${passed ? 'every check passed' : 'SOME CHECKS FAILED'}`);
    return passed ? EXIT.passed : EXIT.failed;
  } finally {
    client.close();
    await nc.drain().catch(() => undefined);
  }
}

main()
  .catch((error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.failed;
  })
  .then(async (code) => {
    await stopAll();
    process.exit(code);
  });
