/**
 * The artifacts of `npm run build` (scripts/build.mjs) run on their own: the single executables
 * dist/snapcoord and dist/snapagent print the package version, and against a real nats-server the
 * coordinator executable and two agent executables complete an app-consistent checkpoint. The
 * agent's stdout holds JSON log lines only, each with one `component` and pino's numeric level.
 *
 * The build runs once, here (about 10 s): the test checks what an operator installs, not the
 * TypeScript the other tests run through tsx.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { PlanInput } from '../../coordinator/model.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';
import { agentConfigFor, ROOT, value, waitUntil } from '../support/live-processes.js';

const run = promisify(execFile);
const SNAPCOORD = join(ROOT, 'dist', 'snapcoord');
const SNAPAGENT = join(ROOT, 'dist', 'snapagent');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

const plan: PlanInput = {
  id: 'artifacts',
  tenant: 'acme',
  servers: ['s1', 's2'],
  apps: [
    { server: 's1', app: 'APP1' },
    { server: 's2', app: 'APP2' },
  ],
  channels: [{ from: { server: 's1', app: 'APP1' }, to: { server: 's2', app: 'APP2' }, kind: 'in-band' }],
  volumes: [],
};

interface Proc {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
}

function start(file: string, args: readonly string[]): Proc {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, stdout: '', stderr: '' };
  child.stdout?.on('data', (b: Buffer) => (p.stdout += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (p.stderr += b.toString()));
  return p;
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((resolve) => p.child.once('exit', resolve));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

let nats: NatsServerHandle | undefined;
const procs: Proc[] = [];
const dir = mkdtempSync(join(tmpdir(), 'snap-artifacts-'));

beforeAll(async () => {
  await run(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, timeout: 110_000 });
  nats = await startNatsServer();
});

afterAll(async () => {
  for (const p of procs) await stop(p);
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('npm run build: the single executables', () => {
  it('each prints the package version', async () => {
    for (const exe of [SNAPCOORD, SNAPAGENT]) {
      const r = await run(exe, ['--version']);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  it('coordinator and agents as executables complete a checkpoint over a real nats-server; the agent logs JSON lines only', async () => {
    const url = (nats as NatsServerHandle).url;
    const coordinator = start(SNAPCOORD, ['--nats', url, '--listen', '127.0.0.1:0', '--log-level', 'warn']);
    procs.push(coordinator);
    const address = await waitUntil('the coordinator executable to listen', () => {
      if (coordinator.child.exitCode !== null) throw new Error(`snapcoord exited: ${coordinator.stderr}`);
      return /listening on (\S+)/.exec(coordinator.stdout)?.[1];
    }, { timeoutMs: 30_000 });
    for (const server of plan.servers) {
      const config = join(dir, `${server}.json`);
      writeFileSync(config, JSON.stringify({ ...agentConfigFor(plan, server, url), logLevel: 'info', stateDir: join(dir, 'state', server) }));
      procs.push(start(SNAPAGENT, ['--config', config, '--demo-app', 'tokens', '--transfer-interval-ms', '5']));
    }
    const client = new CoordinatorClient(address, { callTimeoutMs: 20_000 });
    try {
      value(await client.registerPlan(plan, 0), 'registering the plan');
      await waitUntil('both agent executables online', async () => {
        const agents = await client.listAgents(plan.tenant);
        return agents.ok && plan.servers.every((s) => agents.value.some((a) => a.server === s && a.status === 'online'));
      }, { timeoutMs: 30_000, intervalMs: 100 });
      const taken = value(await client.takeSnapshot({ planId: plan.id, level: 'app', options: {} }), 'TakeSnapshot');
      const final = await waitUntil('the checkpoint to end', async () => {
        const got = await client.getCheckpoint(taken.id);
        return got.ok && (got.value.state === 'completed' || got.value.state === 'aborted') ? got.value : undefined;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      expect(final.state, JSON.stringify(final)).toBe('completed');
    } finally {
      client.close();
    }
    const agent = procs[1] as Proc;
    const lines = agent.stdout.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const parsed = JSON.parse(line) as { level: unknown };
      expect(typeof parsed.level, line).toBe('number');
      expect(line.split('"component":').length - 1, line).toBeLessThanOrEqual(1);
    }
  });
});

describe('npm run build: the core as a library', () => {
  it("dist/core.mjs is what `import ... from 'snapshot-coordinator/core'` gets: a participant steps, and checkpoint id 0 is refused for what it is", async () => {
    const script = [
      "import { Participant } from 'snapshot-coordinator/core';",
      "const p = Participant.create({ id: 'p', inputs: [], outputs: ['p->q'], policy: { kind: 'aligned' } }).participant;",
      'const mark = p.effects.length;',
      "const first = p.step({ type: 'trigger', checkpointId: 1 });",
      'const types = []; for (let i = mark; i < p.effects.length; i++) types.push(p.effects.at(i).type);',
      "console.log(JSON.stringify({ first: first ?? null, types, zero: p.step({ type: 'trigger', checkpointId: 0 })?.reason }));",
    ].join('\n');
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    expect(JSON.parse(r.stdout)).toEqual({ first: null, types: ['snapshot', 'send-barrier'], zero: 'invalid-checkpoint-id' });
  });
});
