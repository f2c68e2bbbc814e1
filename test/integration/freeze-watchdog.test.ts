/**
 * The freeze watchdog end to end: a real nats-server and a real agent daemon as a child process
 * (`node --import tsx agent/main.ts --config F`). The test plays the coordinator: it publishes
 * encoded `freeze` / `thaw` controls on the agent's control subject and reads the agent's events.
 * Hooks are shell scripts in a temporary hook directory; a thaw hook writes the wall-clock time it
 * ran into a marker file, so the test sees when the guest was thawed without asking the agent.
 *
 * One describe puts the real coordinator process in front of the agent instead, and SIGKILLs it
 * while the agent is frozen.
 *
 * Pins down: freeze answers `frozen` with its hook results; the agent thaws by itself at the
 * deadline when no thaw ever comes, when the coordinator process that froze it is killed, and when
 * NATS itself is stopped (the measured overshoots are printed); the watchdog thaw is reported as
 * `thawed {byWatchdog}`;
 * a hook that hangs is killed at its timeout and the freeze declined as hook-failed with every app
 * thawed; a hook that exits 1 has its stderr in the decline; a thaw command answers `thawed`;
 * SIGTERM while frozen thaws before the agent exits; `snapagent status` prints the freeze status.
 * The watchdog process (agent/freeze-watchdog.ts) thaws by the deadline while the agent process is
 * stopped with SIGSTOP (the agent, continued, reports its steps and runs none twice) and after it is
 * SIGKILLed (the status file says so, and the restarted agent finds nothing left to do).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection, type Subscription } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FREEZE_DEFAULTS } from '../../agent/config.js';
import { readFreezeStatus, type FreezeStatus } from '../../agent/freeze-status.js';
import { WATCHDOG_DIR } from '../../agent/freeze-watchdog.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { controlSubject, decodeEvent, encodeControl, eventSubject, type AgentEvent, type ControlCommand } from '../../src/wire/index.js';
import { HookWorld } from '../support/hooks.js';
import { ROOT, spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const TENANT = 'wd';
const APPS = ['APP1', 'APP2'];
/** Generous: the CI machine has two cores and other test files run beside this one. */
const EVENT_WAIT_MS = 20_000;

/** One agent daemon under test, with its hook directory, its config file and the test's view of its events. */
class AgentUnderTest {
  private counter = 0;
  private constructor(
    readonly events: AgentEvent[],
    readonly server: string,
    readonly world: HookWorld,
    readonly configPath: string,
    readonly child: Child,
    private readonly nc: NatsConnection,
    private readonly sub: Subscription,
  ) {}

  static async start(server: string, nats: NatsServerHandle, nc: NatsConnection, freeze: Record<string, unknown>, setup: (w: HookWorld) => void): Promise<AgentUnderTest> {
    const world = new HookWorld(`snap-wd-${server}-`);
    setup(world);
    const configPath = join(world.root, 'agent.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        tenant: TENANT,
        server,
        nats: { servers: [nats.url] },
        apps: APPS.map((name) => ({ name, inputs: [], outputs: [] })),
        logLevel: 'info',
        heartbeatIntervalMs: 500,
        stateDir: world.stateDir,
        freeze: { hooksDir: world.hooksDir, sync: false, hookTimeoutMs: 5_000, hookRetriesMax: 0, hookKillGraceMs: 500, ...freeze },
      }),
    );
    const events: AgentEvent[] = [];
    const sub = nc.subscribe(eventSubject(TENANT, server), {
      callback: (_err, msg) => {
        const decoded = decodeEvent(msg.data);
        if (decoded.ok) events.push(decoded.value);
      },
    });
    await nc.flush();
    const child = spawnTsx(`agent ${server}`, 'agent/main.ts', ['--config', configPath]);
    const agent = new AgentUnderTest(events, server, world, configPath, child, nc, sub);
    await waitUntil(`${server} to register`, () => {
      if (!child.alive()) throw new Error(`agent exited:\n${child.output().slice(-3000)}`);
      return events.some((e) => e.type === 'register');
    }, { timeoutMs: 30_000 });
    return agent;
  }

  /** Publishes a control (as the coordinator does) and returns its request id. */
  send(command: ControlCommand): string {
    this.counter += 1;
    const requestId = `test:${this.server}:${this.counter}`;
    const encoded = encodeControl({ requestId, tenant: TENANT, server: this.server, plan: command.type === 'ping' ? '' : 'demo', epoch: 0, ...command });
    if (!encoded.ok) throw new Error(encoded.error.message);
    this.nc.publish(controlSubject(TENANT, this.server), encoded.value);
    return requestId;
  }

  async reply<T extends AgentEvent['type']>(requestId: string, type?: T): Promise<Extract<AgentEvent, { type: T }>> {
    const e = await waitUntil(`the answer to ${requestId}`, () => {
      if (!this.child.alive()) throw new Error(`agent exited:\n${this.child.output().slice(-3000)}`);
      return this.events.find((x) => x.inReplyTo === requestId);
    }, { timeoutMs: EVENT_WAIT_MS, intervalMs: 10 });
    if (type !== undefined && e.type !== type) throw new Error(`expected ${type} in reply to ${requestId}, got ${JSON.stringify(e)}`);
    return e as Extract<AgentEvent, { type: T }>;
  }

  async stop(): Promise<void> {
    this.sub.unsubscribe();
    await this.child.stop();
    this.world.remove();
  }
}

/** A thaw hook that writes the wall-clock time (ms) it ran to `marker`. */
function markerHook(world: HookWorld, rel: string, marker: string): void {
  world.hook(rel, `[ "$1" = thaw ] && date +%s%3N > '${marker}'\nexit 0`);
}

async function waitForMarker(marker: string, timeoutMs = EVENT_WAIT_MS): Promise<number> {
  return waitUntil(`the thaw marker ${marker}`, () => (existsSync(marker) && readFileSync(marker, 'utf8').trim() !== '' ? Number(readFileSync(marker, 'utf8').trim()) : undefined), { timeoutMs, intervalMs: 10 });
}

function printOvershoot(what: string, markerMs: number, sentAtMs: number, deadlineMs: number): number {
  const overshootMs = markerMs - (sentAtMs + deadlineMs);
  console.log(`watchdog (${what}, agent process, deadline ${deadlineMs} ms): the thaw hook ran ${overshootMs} ms after the deadline (measured from the moment the test published freeze, so NATS delivery is included)`);
  return overshootMs;
}

describe('freeze watchdog with a real agent process: no thaw ever comes', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agent: AgentUnderTest;
  let marker: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    agent = await AgentUnderTest.start('s1', nats, nc, { hookTimeoutMs: 800 }, (w) => {
      marker = join(w.root, 'thawed-at');
      markerHook(w, '50-marker', marker);
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('freeze with a 1000 ms deadline, never thawed: the agent thaws by itself at the deadline and reports it', async () => {
    const sentAtMs = Date.now();
    const rid = agent.send({ type: 'freeze', checkpointId: 1, deadlineMs: 1_000 });
    const frozen = await agent.reply(rid, 'frozen');
    expect(frozen.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['prepare 50-marker', 'freeze 50-marker']);
    expect(frozen.frozenAtUnixMs).toBeGreaterThanOrEqual(sentAtMs);
    // Frozen, as the status file says (written asynchronously, so it may lag the answer a little).
    await waitUntil('the status file to say frozen', async () => {
      const st = await readFreezeStatus(agent.world.stateDir);
      return st.ok && st.status.frozen && st.status.checkpointId === 1;
    }, { timeoutMs: 900, intervalMs: 10 });
    // Nobody sends thaw (the test plays a coordinator that went quiet; the next describe kills a real one).
    const markerMs = await waitForMarker(marker);
    const overshootMs = printOvershoot('no thaw sent', markerMs, sentAtMs, 1_000);
    expect(overshootMs).toBeGreaterThanOrEqual(0);
    expect(overshootMs).toBeLessThan(3_000);
    const thawed = await waitUntil('thawed {byWatchdog}', () => agent.events.find((e) => e.type === 'thawed' && e.checkpointId === 1), { timeoutMs: EVENT_WAIT_MS });
    expect(thawed).toMatchObject({ type: 'thawed', byWatchdog: true, frozenAtUnixMs: frozen.frozenAtUnixMs });
    if (thawed.type === 'thawed') expect(thawed.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['thaw 50-marker', 'resume 50-marker']);
    // The heartbeat says thawed again, and `snapagent status` shows the watchdog's thaw.
    const status = spawnSync(process.execPath, ['--import', 'tsx', 'agent/main.ts', 'status', '--config', agent.configPath], { cwd: ROOT, encoding: 'utf8' });
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ frozen: false, state: 'thawed', agentRunning: true, lastThaw: { checkpointId: 1, cause: 'watchdog', frozenAtUnixMs: frozen.frozenAtUnixMs } });
  }, 60_000);

  it('a thaw command thaws at once and answers thawed with the thaw hooks; a second thaw is a no-op', async () => {
    rmSync(marker, { force: true });
    const rid = agent.send({ type: 'freeze', checkpointId: 2, deadlineMs: 30_000 });
    const frozen = await agent.reply(rid, 'frozen');
    await waitUntil('a heartbeat saying frozen', () => agent.events.some((e) => e.type === 'heartbeat' && e.frozen), { timeoutMs: EVENT_WAIT_MS });
    const thawed = await agent.reply(agent.send({ type: 'thaw', checkpointId: 2, afterRestore: false }), 'thawed');
    expect(thawed).toMatchObject({ byWatchdog: false, frozenAtUnixMs: frozen.frozenAtUnixMs });
    expect(thawed.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['thaw 50-marker', 'resume 50-marker']);
    expect(existsSync(marker)).toBe(true);
    const again = await agent.reply(agent.send({ type: 'thaw', checkpointId: 2, afterRestore: false }), 'thawed');
    expect(again).toMatchObject({ byWatchdog: false, frozenAtUnixMs: frozen.frozenAtUnixMs, thawedAtUnixMs: thawed.thawedAtUnixMs, hooks: [] });
  }, 60_000);

  it('a hook that hangs is killed at its timeout; the freeze is declined as hook-failed and every app is thawed', async () => {
    const w = agent.world;
    w.hook('APP1/10-app');
    w.hook('APP2/10-app');
    w.hook('20-hang', `[ "$1" = freeze ] && { echo "20-hang: stuck waiting for the app" >&2; sleep 30; }\nexit 0`);
    const before = w.lines().length;
    const rid = agent.send({ type: 'freeze', checkpointId: 3, deadlineMs: 20_000 });
    const decline = await agent.reply(rid, 'decline');
    expect(decline.reason).toBe('hook-failed');
    expect(decline.app).toBeUndefined();
    expect(decline.detail).toMatch(/^20-hang freeze: timed out after \d+ ms \(SIGTERM\): .*stuck waiting for the app.*\[agent\] timed out after 800 ms/s);
    const hung = decline.hooks?.find((h) => h.hook === '20-hang' && h.action === 'freeze');
    expect(hung).toMatchObject({ timedOut: true, signal: 'SIGTERM', exitCode: -1 });
    expect(hung?.stderr).toContain('stuck waiting for the app');
    // Every app thawed: the thaw and resume hooks of both apps (and the server's) ran, in reverse.
    expect(w.lines().slice(before).filter((l) => l.startsWith('thaw') || l.startsWith('resume'))).toEqual([
      'thaw - 20-hang',
      'thaw APP2 10-app',
      'thaw APP1 10-app',
      'resume - 50-marker',
      'resume - 20-hang',
      'resume APP2 10-app',
      'resume APP1 10-app',
    ]);
    // The status file follows shortly after the answer (written asynchronously).
    await waitUntil('the status file to say thawed', async () => {
      const st = await readFreezeStatus(w.stateDir);
      return st.ok && !st.status.frozen && st.status.lastThaw?.checkpointId === 3 && st.status.lastThaw.cause === 'failed-freeze';
    }, { timeoutMs: EVENT_WAIT_MS });
    rmSync(join(w.hooksDir, '20-hang'));
  }, 60_000);

  it('a hook that exits 1: the freeze is declined and its stderr is in the decline', async () => {
    const w = agent.world;
    w.hook('APP2/20-fail', `[ "$1" = freeze ] && { echo "APP2: flush failed: disk quota exceeded" >&2; exit 1; }\nexit 0`);
    const decline = await agent.reply(agent.send({ type: 'freeze', checkpointId: 4, deadlineMs: 20_000 }), 'decline');
    expect(decline.reason).toBe('hook-failed');
    expect(decline.detail).toMatch(/20-fail \(app APP2\) freeze: exit 1: APP2: flush failed: disk quota exceeded/);
    expect(decline.hooks?.find((h) => h.hook === '20-fail' && h.action === 'freeze')).toMatchObject({
      app: 'APP2',
      exitCode: 1,
      timedOut: false,
      stderr: expect.stringContaining('APP2: flush failed: disk quota exceeded'),
    });
    rmSync(join(w.hooksDir, 'APP2', '20-fail'));
  }, 60_000);
});

describe('freeze watchdog with a real coordinator process: the coordinator is SIGKILLed while frozen', () => {
  const PLAN_ID = 'wd-kill';
  const DEADLINE_MS = 3_000;
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let coordinator: Child;
  let client: CoordinatorClient;
  let agent: AgentUnderTest;
  let marker: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    coordinator = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn']);
    client = new CoordinatorClient((await coordinator.waitForOutput(/listening on (\S+)/))[1] as string, { callTimeoutMs: 20_000 });
    agent = await AgentUnderTest.start('s4', nats, nc, {}, (w) => {
      marker = join(w.root, 'thawed-at');
      markerHook(w, '50-marker', marker);
    });
    // s5 has no agent, so the coordinator waits for its `frozen` and holds s4 frozen meanwhile:
    // the window in which the test kills it. Nothing else of the coordinator's is needed.
    value(await client.registerPlan({ id: PLAN_ID, tenant: TENANT, servers: ['s4', 's5'], apps: [{ server: 's4', app: 'APP1' }], channels: [], volumes: [] }, 0), 'registering the plan');
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    await coordinator?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it(`freeze through the coordinator with a ${DEADLINE_MS} ms deadline, SIGKILL the coordinator while frozen: the agent thaws by itself by the deadline`, async () => {
    const requestedAtMs = Date.now();
    const taken = value(await client.takeSnapshot({ planId: PLAN_ID, level: 'crash', options: { timeoutMs: 60_000, freezeDeadlineMs: DEADLINE_MS } }), 'take crash');
    const frozen = await waitUntil('s4 to answer frozen to the coordinator', () => agent.events.find((e) => e.type === 'frozen' && e.checkpointId === taken.id), { timeoutMs: EVENT_WAIT_MS, intervalMs: 10 });
    // The agent's own deadline (its clock is the test's: one machine), from its status file.
    const frozenStatus = await waitUntil('the status file to say frozen', async () => {
      const st = await readFreezeStatus(agent.world.stateDir);
      return st.ok && st.status.frozen && st.status.checkpointId === taken.id && st.status.deadlineAtUnixMs !== undefined ? st.status : undefined;
    }, { timeoutMs: DEADLINE_MS, intervalMs: 10 });
    const deadlineAtUnixMs = frozenStatus.deadlineAtUnixMs as number;
    coordinator.process.kill('SIGKILL');
    const exit = await coordinator.exited;
    const killedAtMs = Date.now();
    expect(exit.signal).toBe('SIGKILL');
    // Killed inside the frozen window, with the guest still frozen: only the agent can thaw it now.
    expect(killedAtMs).toBeLessThan(deadlineAtUnixMs);
    expect(existsSync(marker)).toBe(false);
    const markerMs = await waitForMarker(marker);
    const overshootMs = markerMs - deadlineAtUnixMs;
    console.log(
      `watchdog (coordinator process SIGKILLed ${deadlineAtUnixMs - killedAtMs} ms before the deadline, agent process, deadline ${DEADLINE_MS} ms): the thaw hook ran ${overshootMs} ms after the agent's deadline (${markerMs - (requestedAtMs + DEADLINE_MS)} ms after TakeSnapshot was called + the deadline)`,
    );
    expect(overshootMs).toBeGreaterThanOrEqual(0);
    expect(overshootMs).toBeLessThan(3_000);
    // The deadline counts from the agent receiving the freeze, which came after the request.
    expect(deadlineAtUnixMs).toBeGreaterThanOrEqual(requestedAtMs + DEADLINE_MS);
    const thawed = await waitUntil('thawed {byWatchdog}', () => agent.events.find((e) => e.type === 'thawed' && e.checkpointId === taken.id), { timeoutMs: EVENT_WAIT_MS });
    expect(thawed).toMatchObject({ type: 'thawed', byWatchdog: true, frozenAtUnixMs: frozen.type === 'frozen' ? frozen.frozenAtUnixMs : -1 });
    if (thawed.type === 'thawed') expect(thawed.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['thaw 50-marker', 'resume 50-marker']);
    await waitUntil('the status file to say thawed by the watchdog', async () => {
      const st = await readFreezeStatus(agent.world.stateDir);
      return st.ok && !st.status.frozen && st.status.lastThaw?.checkpointId === taken.id && st.status.lastThaw.cause === 'watchdog';
    }, { timeoutMs: EVENT_WAIT_MS });
    expect(agent.child.alive()).toBe(true);
  }, 60_000);
});

describe('freeze watchdog with a real agent process: NATS goes away', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agent: AgentUnderTest;
  let marker: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url, reconnect: false });
    agent = await AgentUnderTest.start('s2', nats, nc, {}, (w) => {
      marker = join(w.root, 'thawed-at');
      markerHook(w, '50-marker', marker);
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    if (!nc?.isClosed()) await nc?.close();
    await nats?.stop();
  });

  it('freeze with a 1000 ms deadline, then nats-server stopped: the agent still thaws by the deadline', async () => {
    const sentAtMs = Date.now();
    const rid = agent.send({ type: 'freeze', checkpointId: 1, deadlineMs: 1_000 });
    await agent.reply(rid, 'frozen');
    await nats.stop();
    const markerMs = await waitForMarker(marker);
    const overshootMs = printOvershoot('nats-server stopped', markerMs, sentAtMs, 1_000);
    expect(overshootMs).toBeGreaterThanOrEqual(0);
    expect(overshootMs).toBeLessThan(3_000);
    // Still alive (reconnecting), thawed, and it says so in its status and its log.
    expect(agent.child.alive()).toBe(true);
    await waitUntil('the status file to say thawed', async () => {
      const s = await readFreezeStatus(agent.world.stateDir);
      return s.ok && !s.status.frozen && s.status.lastThaw?.cause === 'watchdog';
    }, { timeoutMs: EVENT_WAIT_MS });
    await agent.child.waitForOutput(/thawed by the agent itself at the freeze deadline/);
  }, 60_000);
});

/** The status file once it says frozen for `checkpointId` with a watchdog process armed. */
async function frozenWithWatchdog(agent: AgentUnderTest, checkpointId: number): Promise<FreezeStatus & { deadlineAtUnixMs: number; watchdog: { pid: number; id: string } }> {
  return waitUntil('the status file to say frozen, with the watchdog process', async () => {
    const st = await readFreezeStatus(agent.world.stateDir);
    return st.ok && st.status.state === 'frozen' && st.status.checkpointId === checkpointId && st.status.watchdog !== undefined && st.status.deadlineAtUnixMs !== undefined
      ? (st.status as FreezeStatus & { deadlineAtUnixMs: number; watchdog: { pid: number; id: string } })
      : undefined;
  }, { timeoutMs: EVENT_WAIT_MS, intervalMs: 10 });
}

describe('freeze watchdog process with a real agent process: the agent is stopped (SIGSTOP) past the deadline', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agent: AgentUnderTest;
  let marker: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    agent = await AgentUnderTest.start('s6', nats, nc, {}, (w) => {
      marker = join(w.root, 'thawed-at');
      markerHook(w, '50-marker', marker);
    });
  }, 60_000);

  afterAll(async () => {
    agent?.child.process.kill('SIGCONT');
    await agent?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('the watchdog process thaws at the deadline while the agent cannot run; continued, the agent reports thawed {byWatchdog} with those steps and runs none twice', async () => {
    const DEADLINE_MS = 1_500;
    const frozen = await agent.reply(agent.send({ type: 'freeze', checkpointId: 1, deadlineMs: DEADLINE_MS }), 'frozen');
    const status = await frozenWithWatchdog(agent, 1);
    agent.child.process.kill('SIGSTOP');
    let markerMs: number;
    try {
      markerMs = await waitForMarker(marker);
      // Still stopped when the guest was thawed: nothing of the agent's did it.
      expect(readFileSync(`/proc/${agent.child.pid}/stat`, 'utf8').split(') ')[1]?.[0]).toBe('T');
    } finally {
      agent.child.process.kill('SIGCONT');
    }
    const overshootMs = markerMs - status.deadlineAtUnixMs;
    console.log(`watchdog process (agent process stopped with SIGSTOP, deadline ${DEADLINE_MS} ms): the thaw hook ran ${overshootMs} ms after the agent's deadline`);
    expect(overshootMs).toBeGreaterThanOrEqual(0);
    expect(overshootMs).toBeLessThan(3_000);
    const thawed = await waitUntil('thawed {byWatchdog}', () => agent.events.find((e) => e.type === 'thawed' && e.checkpointId === 1), { timeoutMs: EVENT_WAIT_MS });
    expect(thawed).toMatchObject({ type: 'thawed', byWatchdog: true, frozenAtUnixMs: frozen.frozenAtUnixMs });
    if (thawed.type === 'thawed') {
      expect(thawed.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['thaw 50-marker', 'resume 50-marker']);
      expect(thawed.hooks.every((h) => h.stderr.includes('run by the freeze watchdog process'))).toBe(true);
    }
    expect(agent.world.lines().filter((l) => l.startsWith('thaw') || l.startsWith('resume'))).toEqual(['thaw - 50-marker', 'resume - 50-marker']);
    await waitUntil('the status file to say thawed by the watchdog', async () => {
      const st = await readFreezeStatus(agent.world.stateDir);
      return st.ok && !st.status.frozen && st.status.watchdog === undefined && st.status.lastThaw?.cause === 'watchdog';
    }, { timeoutMs: EVENT_WAIT_MS });
    expect(agent.child.alive()).toBe(true);
  }, 60_000);
});

describe('freeze watchdog process with a real agent process: the agent is SIGKILLed while frozen', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agent: AgentUnderTest;
  let again: Child | undefined;
  let marker: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    agent = await AgentUnderTest.start('s7', nats, nc, {}, (w) => {
      marker = join(w.root, 'thawed-at');
      markerHook(w, '50-marker', marker);
    });
  }, 60_000);

  afterAll(async () => {
    await again?.stop();
    await agent?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('the watchdog process thaws at the deadline and records it; snapagent status says so, and the restarted agent finds nothing left to do', async () => {
    const DEADLINE_MS = 1_500;
    const frozen = await agent.reply(agent.send({ type: 'freeze', checkpointId: 1, deadlineMs: DEADLINE_MS }), 'frozen');
    const status = await frozenWithWatchdog(agent, 1);
    agent.child.process.kill('SIGKILL');
    expect((await agent.child.exited).signal).toBe('SIGKILL');
    expect(existsSync(marker)).toBe(false);
    const markerMs = await waitForMarker(marker);
    const overshootMs = markerMs - status.deadlineAtUnixMs;
    console.log(`watchdog process (agent process SIGKILLed while frozen, deadline ${DEADLINE_MS} ms): the thaw hook ran ${overshootMs} ms after the agent's deadline`);
    expect(overshootMs).toBeGreaterThanOrEqual(0);
    expect(overshootMs).toBeLessThan(3_000);
    await waitUntil('the watchdog process to end', () => !existsSync(`/proc/${status.watchdog.pid}`) || readFileSync(`/proc/${status.watchdog.pid}/stat`, 'utf8').split(') ')[1]?.[0] === 'Z', { timeoutMs: EVENT_WAIT_MS });
    const shown = spawnSync(process.execPath, ['--import', 'tsx', 'agent/main.ts', 'status', '--config', agent.configPath], { cwd: ROOT, encoding: 'utf8' });
    expect(shown.status, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ frozen: false, state: 'thawed', agentRunning: false, lastThaw: { checkpointId: 1, cause: 'watchdog', frozenAtUnixMs: frozen.frozenAtUnixMs } });
    // A supervisor restarts the agent: it takes the dead one's watchdog over and has nothing to thaw.
    const registered = agent.events.filter((e) => e.type === 'register').length;
    again = spawnTsx('agent s7 again', 'agent/main.ts', ['--config', agent.configPath]);
    await waitUntil('the restarted agent to register', () => agent.events.filter((e) => e.type === 'register').length > registered, { timeoutMs: 30_000 });
    await again.waitForOutput(/the freeze watchdog process of a dead agent process thawed this server: nothing left to do/);
    expect(agent.world.lines().filter((l) => l.startsWith('thaw') || l.startsWith('resume'))).toEqual(['thaw - 50-marker', 'resume - 50-marker']);
    expect(readdirSync(join(agent.world.stateDir, WATCHDOG_DIR))).toEqual([]);
  }, 60_000);
});

describe('SIGTERM while frozen', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agent: AgentUnderTest;
  let marker: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    agent = await AgentUnderTest.start('s3', nats, nc, {}, (w) => {
      marker = join(w.root, 'thawed-at');
      markerHook(w, '50-marker', marker);
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('the agent thaws (and reports it) before it exits, long before the deadline', async () => {
    await agent.reply(agent.send({ type: 'freeze', checkpointId: 1, deadlineMs: 60_000 }), 'frozen');
    const killedAtMs = Date.now();
    agent.child.process.kill('SIGTERM');
    const exit = await agent.child.exited;
    expect(exit.code, agent.child.output().slice(-2000)).toBe(0);
    const markerMs = await waitForMarker(marker, 1_000);
    expect(markerMs - killedAtMs).toBeLessThan(20_000);
    const thawed = await waitUntil('thawed on shutdown', () => agent.events.find((e) => e.type === 'thawed'), { timeoutMs: EVENT_WAIT_MS });
    expect(thawed).toMatchObject({ checkpointId: 1, byWatchdog: true });
    const status = await readFreezeStatus(agent.world.stateDir);
    expect(status).toMatchObject({ ok: true, status: { frozen: false, lastThaw: { cause: 'shutdown' } } });
  }, 60_000);
});

describe('snapagent command line', () => {
  it('--help names every freeze limit with its default, and the status command', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const [key, value] of Object.entries(FREEZE_DEFAULTS)) expect(r.stdout).toMatch(new RegExp(`freeze\\.${key} .*default ${String(value)}`));
    for (const key of ['freeze.hooksDir', 'freeze.mounts', 'stateDir', 'snapagent status --config FILE']) expect(r.stdout).toContain(key);
  });

  it('a freeze setup that cannot work is a configuration error (exit 2) at start-up, not at the first freeze', () => {
    const w = new HookWorld('snap-wd-cli-');
    try {
      const config = join(w.root, 'agent.json');
      writeFileSync(config, JSON.stringify({ tenant: TENANT, server: 'sx', nats: { servers: ['nats://127.0.0.1:1'] }, apps: [{ name: 'APP1' }], stateDir: w.stateDir, freeze: { hooksDir: join(w.root, 'missing') } }));
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--config', config], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/freeze.hooksDir .*missing does not exist/);
      const status = spawnSync(process.execPath, ['--import', 'tsx', 'agent/main.ts', 'status', '--config', config], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
      expect(status.status).toBe(1);
      expect(status.stderr).toMatch(/no freeze status at/);
    } finally {
      w.remove();
    }
  }, 60_000);
});
