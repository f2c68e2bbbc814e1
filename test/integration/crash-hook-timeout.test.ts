/**
 * A hook that hangs, end to end with the real coordinator and real agent processes (DESIGN.md
 * section 9: a guest left frozen is the worst failure of the field; a timeout that is missing or
 * ignored is the next one).
 *
 * Crash level: three agents host the writer demo app on directory volumes, as in crash-level.test.ts.
 * s1 has a second server-wide freeze hook that sleeps far longer than `hookTimeoutMs` while a flag
 * file exists. A crash-level checkpoint with fallback policy `fail` must abort with a reason that
 * names the hook and its timeout, the hook must be killed at its timeout (not when its sleep ends),
 * and every server must be thawed: the record has every server's thaw, every agent published
 * `thawed` and says `thawed` in its freeze status, and the writers keep writing.
 *
 * Fallback `downgrade`: app-level checkpoints of in-band apps run no hooks at all (the barrier goes
 * through the SDK), so a hanging hook cannot fail one. Only opaque apps are quiesced through their
 * hooks at level app. So the downgrade is driven with an all-opaque plan A (o1) -> B (o2) whose
 * quiesce hook hangs: the app-level checkpoint aborts at the hook's timeout, every quiesced app is
 * resumed, and a crash-level checkpoint replaces it, recorded with both levels and the reason. When
 * the hook hangs at the crash level too, the fallback aborts as well and every server is thawed.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection, type Subscription } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFreezeStatus } from '../../agent/freeze-status.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { pauseFile, readRecords } from '../../agent/demo-apps/writer-app.js';
import { decodeEvent, eventSubject, type AgentEvent } from '../../src/wire/index.js';
import { agentConfigFor, channelIdOf, spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

/** Short, so the test is quick; the hanging hook sleeps 20 times longer. */
const HOOK_TIMEOUT_MS = 1_500;
const HOOK_KILL_GRACE_MS = 500;
const HANG_S = 30;
const FREEZE = { hookTimeoutMs: HOOK_TIMEOUT_MS, hookKillGraceMs: HOOK_KILL_GRACE_MS, hookRetriesMax: 0 };
/** Far from the hook timeout: a thaw seen here is the coordinator's, not a watchdog's. */
const FREEZE_DEADLINE_MS = 15_000;

const TENANT = 'hang';
const SERVERS = ['s1', 's2', 's3'] as const;
const FB_TENANT = 'hangfb';
const OPAQUE = [
  { server: 'o1', app: 'A' },
  { server: 'o2', app: 'B' },
] as const;

let nats: NatsServerHandle;
let dir: string;
let coordinator: Child;
let client: CoordinatorClient;
let nc: NatsConnection;
let store: CoordinatorStore;
const agents: Child[] = [];
const subs: Subscription[] = [];
/** Every event of every agent of both tenants, as the test saw it on NATS. */
const events: AgentEvent[] = [];

const volumeOf = (server: string, app: string): string => join(dir, 'vol', server, app);
const stateDirOf = (server: string): string => join(dir, 'state', server);
const hooksOf = (server: string): string => join(dir, 'hooks', server);
const hangFlag = (): string => join(dir, 'hang');
const hangAppFlag = (): string => join(dir, 'hang-app');
const hookTrace = (): string => join(dir, 'hook-trace');

const ring = SERVERS.map((s, i) => ({ from: { server: s, app: 'W' }, to: { server: SERVERS[(i + 1) % 3] as string, app: 'W' }, kind: 'in-band' as const }));
let crashPlan: PlanInput;
let opaquePlan: PlanInput;

function executable(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

function watchEvents(tenant: string, server: string): void {
  subs.push(
    nc.subscribe(eventSubject(tenant, server), {
      callback: (_err, msg) => {
        const decoded = decodeEvent(msg.data);
        if (decoded.ok) events.push(decoded.value);
      },
    }),
  );
}

function startAgent(plan: PlanInput, server: string, args: readonly string[]): void {
  const config = { ...agentConfigFor(plan, server, nats.url), freeze: { hooksDir: hooksOf(server), ...FREEZE }, stateDir: stateDirOf(server) };
  const file = join(dir, `${server}.json`);
  writeFileSync(file, JSON.stringify(config));
  agents.push(spawnTsx(`agent ${server}`, 'agent/main.ts', ['--config', file, ...args]));
}

beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'crash-hook-timeout-'));
  coordinator = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn', '--volume-backend', `directory:${join(dir, 'snaps')}`]);
  const address = (await coordinator.waitForOutput(/listening on (\S+)/))[1] as string;
  client = new CoordinatorClient(address, { callTimeoutMs: 20_000 });
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  writeFileSync(hookTrace(), '');

  // The crash-level plan: writer apps on volumes, a pause hook on every server, the hanging hook on s1.
  crashPlan = {
    id: 'hang-crash',
    tenant: TENANT,
    servers: [...SERVERS],
    apps: SERVERS.map((s) => ({ server: s, app: 'W' })),
    channels: ring,
    volumes: SERVERS.map((s) => ({ id: `vol-${s}`, server: s, backendRef: volumeOf(s, 'W') })),
  };
  for (const s of SERVERS) {
    mkdirSync(hooksOf(s), { recursive: true });
    mkdirSync(volumeOf(s, 'W'), { recursive: true });
    executable(join(hooksOf(s), '10-pause-writer'), `case "$1" in\n  freeze) touch '${pauseFile(volumeOf(s, 'W'))}' ;;\n  thaw) rm -f '${pauseFile(volumeOf(s, 'W'))}' ;;\nesac\nexit 0`);
    if (s === 's1') {
      // Runs after the pause hook (lexical order), so there is something frozen to unwind.
      executable(join(hooksOf(s), '20-wait-for-db'), `if [ "$1" = freeze ] && [ -e '${hangFlag()}' ]; then echo "20-wait-for-db: waiting for the database lock" >&2; sleep ${HANG_S}; fi\nexit 0`);
    }
    watchEvents(TENANT, s);
    startAgent(crashPlan, s, ['--demo-app', 'writer', '--volume', join(dir, 'vol', s), '--transfer-interval-ms', '1']);
  }

  // The opaque plan: no demo app (the agents cannot see into opaque apps); each app's quiesce hook
  // traces what it did; A's hangs at level app while hang-app exists, at every level while hang exists.
  opaquePlan = {
    id: 'hang-opaque',
    tenant: FB_TENANT,
    servers: OPAQUE.map((o) => o.server),
    apps: [...OPAQUE],
    channels: [{ from: OPAQUE[0], to: OPAQUE[1], kind: 'opaque' }],
    volumes: OPAQUE.map((o) => ({ id: `vol-${o.server}`, server: o.server, backendRef: volumeOf(o.server, o.app) })),
  };
  for (const o of OPAQUE) {
    mkdirSync(join(hooksOf(o.server), o.app), { recursive: true });
    mkdirSync(volumeOf(o.server, o.app), { recursive: true });
    writeFileSync(join(volumeOf(o.server, o.app), 'data'), `${o.app}'s data\n`);
    const output = opaquePlan.channels.find((c) => c.from.app === o.app);
    const hang =
      o.app === 'A'
        ? `  if [ -e '${hangFlag()}' ] || { [ "$SNAP_LEVEL" = app ] && [ -e '${hangAppFlag()}' ]; }; then echo "A: drain did not finish" >&2; sleep ${HANG_S}; fi\n`
        : '';
    executable(
      join(hooksOf(o.server), o.app, '10-quiesce'),
      [
        `echo "$SNAP_CHECKPOINT_ID $SNAP_LEVEL $1 ${o.app}" >> '${hookTrace()}'`,
        'if [ "$1" = freeze ]; then',
        hang,
        output ? `  [ "$SNAP_LEVEL" = app ] && echo "position ${channelIdOf(output)} 0"` : '  :',
        'fi',
        'exit 0',
      ].join('\n'),
    );
    watchEvents(FB_TENANT, o.server);
    startAgent(opaquePlan, o.server, []);
  }
  await nc.flush();
  value(await client.registerPlan(crashPlan, 0), 'registering the crash plan');
  value(await client.registerPlan(opaquePlan, 0), 'registering the opaque plan');
  for (const [tenant, servers] of [[TENANT, SERVERS], [FB_TENANT, OPAQUE.map((o) => o.server)]] as const) {
    await waitUntil(`the agents of ${tenant} to be online`, async () => {
      for (const a of agents) if (!a.alive()) throw new Error(`${a.name} exited:\n${a.output().slice(-3000)}`);
      const list = await client.listAgents(tenant);
      return list.ok && servers.every((s) => list.value.some((a) => a.server === s && a.status === 'online'));
    }, { timeoutMs: 60_000, intervalMs: 100 });
  }
}, 120_000);

afterAll(async () => {
  for (const s of subs) s.unsubscribe();
  client?.close();
  for (const a of agents) await a.stop();
  await coordinator?.stop();
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function ended(id: number, timeoutMs = 60_000): Promise<CheckpointRecord> {
  return waitUntil(`checkpoint ${id} to end`, async () => {
    const r = await store.checkpoints.get(id);
    return r.ok && (r.value.record.state === 'completed' || r.value.record.state === 'aborted') ? r.value.record : undefined;
  }, { timeoutMs, intervalMs: 50 });
}

async function take(planId: string, level: 'crash' | 'app', fallbackPolicy: 'fail' | 'downgrade'): Promise<CheckpointRecord> {
  const taken = value(await client.takeSnapshot({ planId, level, options: { timeoutMs: 20_000, freezeDeadlineMs: FREEZE_DEADLINE_MS, fallbackPolicy } }), `take ${level} of ${planId}`);
  return ended(taken.id);
}

/** Every server of the record confirmed its thaw to the coordinator, and said so on NATS and in its status file. */
async function expectEveryServerThawed(r: CheckpointRecord, tenant: string, servers: readonly string[], causes: Readonly<Record<string, string>>): Promise<void> {
  expect((r.servers ?? []).map((f) => f.server).sort()).toEqual([...servers].sort());
  for (const f of r.servers ?? []) {
    expect(f.thawedAtUnixMs, `${f.server}: the record has its thaw`).toBeGreaterThan(0);
    expect(f.byWatchdog ?? false, `${f.server} was thawed by the coordinator, not its watchdog`).toBe(false);
    if (f.frozenAtUnixMs !== undefined) expect(f.thawedAtUnixMs).toBeGreaterThanOrEqual(f.frozenAtUnixMs);
  }
  for (const s of servers) {
    expect(events.some((e) => e.type === 'thawed' && e.tenant === tenant && e.server === s && e.checkpointId === r.id), `${s} published thawed for checkpoint ${r.id}`).toBe(true);
    const st = await waitUntil(`${s}'s status file to say thawed after checkpoint ${r.id}`, async () => {
      const read = await readFreezeStatus(stateDirOf(s));
      return read.ok && !read.status.frozen && read.status.lastThaw?.checkpointId === r.id ? read.status : undefined;
    }, { timeoutMs: 10_000 });
    expect(st.state).toBe('thawed');
    expect(st.lastThaw?.cause, s).toBe(causes[s]);
  }
}

function hungHookOf(r: CheckpointRecord, server: string, hook: string): { timedOut: boolean; signal?: string; durationMs: number; stderr: string } | undefined {
  return r.servers?.find((f) => f.server === server)?.hooks.find((h) => h.hook === hook && h.action === 'freeze');
}

describe('a freeze hook that hangs, with the real coordinator and agents', () => {
  it('fallback fail: the hook is killed at its timeout, the checkpoint aborts naming it, every server is thawed and the writers go on', async () => {
    writeFileSync(hangFlag(), '');
    let r: CheckpointRecord;
    const startedAtMs = Date.now();
    try {
      r = await take(crashPlan.id, 'crash', 'fail');
    } finally {
      rmSync(hangFlag(), { force: true });
    }
    // Well before the hook's own sleep would have ended: the timeout, not the hook, decided.
    expect(Date.now() - startedAtMs).toBeLessThan(HANG_S * 1_000);
    expect(r.state).toBe('aborted');
    expect(r.levelAchieved).toBeUndefined();
    expect(r.failureReason).toBe('hook-failed');
    expect(r.failureDetail).toMatch(new RegExp(`^s1 could not freeze \\(hook-failed\\): 20-wait-for-db freeze: timed out after \\d+ ms \\(SIGTERM\\): .*waiting for the database lock.*\\[agent\\] timed out after ${HOOK_TIMEOUT_MS} ms`, 's'));
    const hung = hungHookOf(r, 's1', '20-wait-for-db');
    expect(hung).toMatchObject({ timedOut: true, signal: 'SIGTERM' });
    expect(hung?.durationMs).toBeGreaterThanOrEqual(HOOK_TIMEOUT_MS);
    expect(hung?.durationMs).toBeLessThan(HOOK_TIMEOUT_MS + HOOK_KILL_GRACE_MS + 2_000);
    // s2 and s3 froze and were frozen while s1 hung; s1 unwound its own freeze before it declined.
    for (const s of ['s2', 's3']) expect(r.servers?.find((f) => f.server === s)?.frozenAtUnixMs, `${s} froze`).toBeGreaterThan(0);
    expect(r.servers?.find((f) => f.server === 's1')?.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['prepare 10-pause-writer', 'prepare 20-wait-for-db', 'freeze 10-pause-writer', 'freeze 20-wait-for-db', 'thaw 20-wait-for-db', 'thaw 10-pause-writer', 'resume 20-wait-for-db', 'resume 10-pause-writer']);
    expect(r.volumes).toEqual([]);
    expect(existsSync(join(dir, 'snaps', String(r.id)))).toBe(false);
    await expectEveryServerThawed(r, TENANT, SERVERS, { s1: 'failed-freeze', s2: 'command', s3: 'command' });
    // Thawed for real: no writer is paused, and each writes on.
    for (const s of SERVERS) expect(existsSync(pauseFile(volumeOf(s, 'W'))), `${s}'s writer paused`).toBe(false);
    const lengths = new Map(SERVERS.map((s) => [s, readRecords(volumeOf(s, 'W')).length]));
    await waitUntil('every writer to write on after the abort', () => SERVERS.every((s) => readRecords(volumeOf(s, 'W')).length > (lengths.get(s) ?? 0) + 100), { timeoutMs: 10_000 });
    // The hook is not hanging any more: the next checkpoint completes.
    const next = await take(crashPlan.id, 'crash', 'fail');
    expect(next.state, next.failureDetail).toBe('completed');
  }, 120_000);

  /** Takes an app-level checkpoint of the opaque plan with fallback `downgrade`; its record once it aborted naming the crash-level replacement. */
  async function appCheckpointThatFellBack(): Promise<CheckpointRecord> {
    // The previous test's fallback may still hold the plan's slot for a moment after its record is
    // final (its clean-up ends first): a busy plan is retried, as a client should.
    const taken = await waitUntil('the plan to admit an app-level checkpoint', async () => {
      const r = await client.takeSnapshot({ planId: opaquePlan.id, level: 'app', options: { timeoutMs: 20_000, freezeDeadlineMs: FREEZE_DEADLINE_MS, fallbackPolicy: 'downgrade' } });
      if (!r.ok && r.error.reason === 'PLAN_BUSY') return undefined;
      return value(r, 'take app');
    }, { timeoutMs: 15_000, intervalMs: 100 });
    return waitUntil(`checkpoint ${taken.id} to abort and name its replacement`, async () => {
      const c = await store.checkpoints.get(taken.id);
      return c.ok && c.value.record.state === 'aborted' && /fell back/.test(c.value.record.failureDetail ?? '') ? c.value.record : undefined;
    }, { timeoutMs: 60_000, intervalMs: 50 });
  }

  it('fallback downgrade: an opaque app\'s quiesce hook hangs, the app-level checkpoint aborts at its timeout, the apps are resumed, and a crash-level checkpoint replaces it', async () => {
    writeFileSync(hangAppFlag(), '');
    let failed: CheckpointRecord;
    try {
      failed = await appCheckpointThatFellBack();
    } finally {
      rmSync(hangAppFlag(), { force: true });
    }
    expect(failed.failureReason).toBe('hook-failed');
    expect(failed.failureDetail).toMatch(/10-quiesce.*timed out after \d+ ms/s);
    expect(failed.failureDetail).toContain('A: drain did not finish');
    // The hung app is resumed (the coordinator resumes every app it quiesced, this one included).
    // The resume is a command of its own that the agent carries out once the hung hook is killed,
    // which on a busy machine may come after the abort is recorded: wait for it, bounded.
    expect(readFileSync(hookTrace(), 'utf8')).toContain(`${failed.id} app freeze A\n`);
    await waitUntil('the hung app A to be resumed', () => readFileSync(hookTrace(), 'utf8').includes(`${failed.id} app resume A\n`), { timeoutMs: 15_000 });
    const replacement = Number(/crash-level checkpoint (\d+)/.exec(failed.failureDetail ?? '')?.[1]);
    const r = await ended(replacement);
    expect(r.state, r.failureDetail).toBe('completed');
    expect(r.levelRequested).toBe('app');
    expect(r.levelAchieved).toBe('crash');
    expect(r.fallbackReason).toMatch(new RegExp(`^app-level checkpoint ${failed.id} aborted \\(hook-failed: .*timed out after`, 's'));
    expect(r.volumes.map((v) => v.server).sort()).toEqual(OPAQUE.map((o) => o.server));
    for (const v of r.volumes) expect(readFileSync(join(v.snapshotRef, 'data'), 'utf8')).toBe(`${OPAQUE.find((o) => o.server === v.server)?.app}'s data\n`);
    await expectEveryServerThawed(r, FB_TENANT, OPAQUE.map((o) => o.server), { o1: 'command', o2: 'command' });
    // The crash level ran the same hook files, told apart by SNAP_LEVEL, and thawed every app.
    const after = readFileSync(hookTrace(), 'utf8');
    for (const o of OPAQUE) expect(after, `${o.app} frozen and thawed at the crash level`).toMatch(new RegExp(`${r.id} crash freeze ${o.app}\n(.*\n)*${r.id} crash thaw ${o.app}\n`));
  }, 120_000);

  it('fallback downgrade, the hook hanging at every level: the crash-level fallback aborts too, and every server is thawed', async () => {
    writeFileSync(hangFlag(), '');
    let failed: CheckpointRecord;
    let r: CheckpointRecord;
    try {
      failed = await appCheckpointThatFellBack();
      r = await ended(Number(/crash-level checkpoint (\d+)/.exec(failed.failureDetail ?? '')?.[1]));
    } finally {
      rmSync(hangFlag(), { force: true });
    }
    expect(failed.failureReason).toBe('hook-failed');
    expect(r.state).toBe('aborted');
    expect(r.levelRequested).toBe('app');
    expect(r.levelAchieved).toBeUndefined();
    expect(r.failureReason).toBe('hook-failed');
    expect(r.failureDetail).toMatch(/^o1 could not freeze \(hook-failed\): 10-quiesce \(app A\) freeze: timed out after \d+ ms/);
    expect(hungHookOf(r, 'o1', '10-quiesce')).toMatchObject({ timedOut: true, signal: 'SIGTERM' });
    await expectEveryServerThawed(r, FB_TENANT, OPAQUE.map((o) => o.server), { o1: 'failed-freeze', o2: 'command' });
    // A fallback is not itself fallen back from: nothing else was started for the plan.
    expect(r.failureDetail).not.toMatch(/fell back/);
  }, 120_000);
});
