/**
 * `memory`: the coordinator's RSS with N registered agents and one checkpoint in flight (every app's
 * snapshot held, so the checkpoint stays in flight while RSS is read), its peak RSS through the
 * commit once the snapshots are released, one agent process's RSS, and bytes per agent on each side.
 * The floor is plain NATS in the same kind of process: a Node process with one NATS connection, and
 * the bytes one plain NATS connection (with one subscription) costs in a process holding N of them.
 *
 * Processes: K agent workers (N-1 agents), one coordinator process, K floor workers (N plain
 * connections), one process with a single agent (s0, part of the plan), one with a single plain
 * connection. Heaps are collected (gc) before each reading; RSS is what the kernel reports.
 *
 * First, alone on the machine, the footprint an operator installs: the compiled agent
 * (dist/snapagent, the single executable of `npm run build`, built if missing) idle with one app,
 * against a bare Node process with one NATS connection and one subscription (DESIGN.md section 8:
 * within 1.3x). Neither process is told to collect its heap: both are read as they run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { agentConfig, isolatedPlan } from './lib/coordinator.js';
import { until, withEnv } from './lib/env.js';
import { atMost, type BenchResult } from './lib/report.js';
import { round } from './lib/stats.js';
import { spread } from './lib/workers.js';
import type { AgentSpec } from './worker.js';

export interface MemoryOptions {
  readonly agents: number;
  readonly workers: number;
  readonly logLevel: string;
}

type Mem = { rss: number; heapUsed: number };
const MiB = 1024 * 1024;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COMPILED_AGENT = join(ROOT, 'dist', 'snapagent');
/** DESIGN.md section 8: the agent's idle RSS within 1.3x of a Node process with one NATS connection. */
const AGENT_IDLE_RATIO_MAX = 1.3;
/** How long a process idles before its RSS is read, and how many readings (the median is kept). */
const IDLE_SETTLE_MS = 3_000;
const IDLE_SAMPLES = 5;
const IDLE_SAMPLE_INTERVAL_MS = 500;

/** The bare floor: Node, the nats package, one connection, one subscription, nothing else. */
const BARE_NATS_SCRIPT = `
import { connect } from 'nats';
const nc = await connect({ servers: process.env.BENCH_NATS_URL });
nc.subscribe('bench.idle.floor', { callback: () => undefined });
await nc.flush();
console.log('ready');
setInterval(() => undefined, 1 << 30);
`;

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

async function idleRss(child: ChildProcess, ready: Promise<void>): Promise<number> {
  await ready;
  await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
  const samples: number[] = [];
  for (let i = 0; i < IDLE_SAMPLES; i++) {
    if (child.exitCode !== null) throw new Error('the measured process exited');
    samples.push(rssOf(child.pid as number));
    await new Promise((r) => setTimeout(r, IDLE_SAMPLE_INTERVAL_MS));
  }
  return (samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)] as number);
}

function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** The compiled agent's idle RSS and the bare floor's, one process at a time. */
async function compiledAgentFootprint(natsUrl: string): Promise<{ agent: number; floor: number }> {
  if (!existsSync(COMPILED_AGENT)) execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const floorChild = spawn(process.execPath, ['--input-type=module', '-e', BARE_NATS_SCRIPT], { cwd: ROOT, env: { ...process.env, BENCH_NATS_URL: natsUrl }, stdio: ['ignore', 'pipe', 'inherit'] });
  const floorReady = new Promise<void>((resolve) => floorChild.stdout?.on('data', (b: Buffer) => b.toString().includes('ready') && resolve()));
  let floor: number;
  try {
    floor = await idleRss(floorChild, floorReady);
  } finally {
    await stopped(floorChild);
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-idle-'));
  const plan = isolatedPlan('idle', 1);
  const server = plan.servers[0] as string;
  const config = join(dir, 'agent.json');
  writeFileSync(config, JSON.stringify({ ...agentConfig(plan, server, natsUrl), stateDir: join(dir, 'state') }));
  // Registered is idle: the agent is connected, subscribed and has its app attached.
  const nc = await connect({ servers: natsUrl });
  const registered = new Promise<void>((resolve) => nc.subscribe(`snap.${plan.tenant}.evt.${server}`, { max: 1, callback: () => resolve() }));
  await nc.flush();
  const agentChild = spawn(COMPILED_AGENT, ['--config', config, '--demo-app', 'tokens', '--transfer-interval-ms', '0'], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    return { agent: await idleRss(agentChild, registered), floor };
  } finally {
    await stopped(agentChild);
    await nc.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runMemory(o: MemoryOptions): Promise<BenchResult> {
  if (o.agents < 2) throw new RangeError('memory needs at least 2 agents');
  const k = o.workers;
  const agentWorkers = Array.from({ length: k }, (_, i) => i);
  const coordinatorWorker = k;
  const floorWorkers = Array.from({ length: k }, (_, i) => k + 1 + i);
  const soloAgentWorker = 2 * k + 1;
  const soloPlainWorker = 2 * k + 2;
  return withEnv(2 * k + 3, async ({ nats, pool }) => {
    const idle = await compiledAgentFootprint(nats.url);
    const mem = (w: number): Promise<Mem> => pool.call<Mem>(w, 'memory', {});
    const sum = async (ws: number[]): Promise<number> => (await Promise.all(ws.map(mem))).reduce((s, m) => s + m.rss, 0);

    const baseAgents = await sum(agentWorkers);
    const baseFloor = await sum(floorWorkers);

    // ---- floor ----
    const names = Array.from({ length: o.agents }, (_, i) => `m${i}`);
    const byFloor = spread(names, k);
    await Promise.all(floorWorkers.map((w, i) => pool.call(w, 'floor.members', { url: nats.url, names: byFloor[i], broadcast: 'bench.mem.broadcast', reply: 'bench.mem.reply' })));
    await pool.call(soloPlainWorker, 'floor.members', { url: nats.url, names: ['solo'], broadcast: 'bench.mem.broadcast', reply: 'bench.mem.reply' });
    const perConnection = ((await sum(floorWorkers)) - baseFloor) / o.agents;
    const onePlain = (await mem(soloPlainWorker)).rss;

    // ---- project ----
    const plan = isolatedPlan('memory', o.agents);
    await pool.call(coordinatorWorker, 'coordinator.start', { url: nats.url, plan, timeoutMs: 600_000 });
    const coordinatorIdle = (await mem(coordinatorWorker)).rss;
    const specs: AgentSpec[] = plan.servers.map((server) => ({ config: agentConfig(plan, server, nats.url), app: { kind: 'trivial', stateBytes: 8, holdSnapshots: true } }));
    await pool.call(soloAgentWorker, 'agents.start', { specs: specs.slice(0, 1) });
    const bySpec = spread(specs.slice(1), k);
    await Promise.all(agentWorkers.map((w) => pool.call(w, 'agents.start', { specs: bySpec[w] })));
    await until(`${o.agents} agents registered`, async () => (await pool.call<number>(coordinatorWorker, 'coordinator.agents', {})) >= o.agents);
    const coordinatorRegistered = (await mem(coordinatorWorker)).rss;
    const id = await pool.call<number>(coordinatorWorker, 'coordinator.take', { planId: plan.id });
    const held = async (): Promise<number> => (await Promise.all([...agentWorkers, soloAgentWorker].map((w) => pool.call<number>(w, 'apps.heldSnapshots', {})))).reduce((s, n) => s + n, 0);
    await until(`every app of checkpoint ${id} snapshotting`, async () => (await held()) >= o.agents, 120_000);
    const coordinatorInFlight = (await mem(coordinatorWorker)).rss;
    const agentsRss = await sum(agentWorkers);
    const perAgent = (agentsRss - baseAgents) / (o.agents - 1);
    const oneAgent = (await mem(soloAgentWorker)).rss;
    await Promise.all([...agentWorkers, soloAgentWorker].map((w) => pool.call(w, 'apps.release', {})));
    const ended = await pool.call<{ state: string; ms: number }>(coordinatorWorker, 'coordinator.ended', {});
    const coordinatorPeak = await pool.call<number>(coordinatorWorker, 'memory.peak', {});

    const mib = (b: number): number => b / MiB;
    const headline = atMost(`coordinator RSS, ${o.agents} agents, 1 checkpoint in flight`, 'MiB', mib(onePlain), mib(coordinatorInFlight));
    return {
      benchmark: 'memory',
      params: { agents: o.agents, workers: k },
      headline,
      rows: [
        headline,
        atMost('coordinator peak RSS through the commit', 'MiB', mib(onePlain), mib(coordinatorPeak)),
        atMost('one agent process RSS (1 app)', 'MiB', mib(onePlain), mib(oneAgent)),
        atMost('agent-side bytes per agent (vs per plain connection)', 'bytes', perConnection, perAgent),
        atMost('compiled agent idle RSS (dist/snapagent, 1 app) vs Node + 1 NATS connection', 'MiB', mib(idle.floor), mib(idle.agent), AGENT_IDLE_RATIO_MAX),
      ],
      extra: {
        coordinatorIdleMiB: round(mib(coordinatorIdle)),
        coordinatorRegisteredMiB: round(mib(coordinatorRegistered)),
        coordinatorBytesPerAgentInFlight: Math.round((coordinatorInFlight - coordinatorIdle) / o.agents),
        coordinatorBytesPerAgentPeak: Math.round((coordinatorPeak - coordinatorIdle) / o.agents),
        checkpoint: { id, state: ended.state, msAfterRelease: round(ended.ms) },
      },
      notes: ['floor for whole processes: a Node process with one plain NATS connection; RSS includes the Node runtime (~40-50 MiB)'],
    };
  });
}
