/**
 * The crash level end to end, with real processes and real files: three agents each host a writer
 * app whose state lives on its volume (a directory); each app appends `rec <id>` and sends the id to
 * the next server, which appends `got <channel> <id>`. A crash-level checkpoint freezes every server
 * (a hook pauses the writer), the coordinator's directory backend copies the three volumes as one
 * group, then thaws. In every such checkpoint no volume holds a `got` whose `rec` is missing on the
 * sender's volume. The `none` baseline (each volume copied on its own, no freeze) does show such
 * orphans, which is what the checker is there to catch.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { orphansBetween, pauseFile, readRecords } from '../../agent/demo-apps/writer-app.js';
import { agentConfigFor, spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const SERVERS = ['s1', 's2', 's3'] as const;
let nats: NatsServerHandle;
let dir: string;
let coordinator: Child;
let client: CoordinatorClient;
let address: string;
let nc: NatsConnection;
let store: CoordinatorStore;
const agents: Child[] = [];
let plan: PlanInput;

const volumeOf = (server: string): string => join(dir, 'vol', server, 'W');
const ring = SERVERS.map((s, i) => ({ from: { server: s, app: 'W' }, to: { server: SERVERS[(i + 1) % 3] as string, app: 'W' }, kind: 'in-band' as const }));

beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'crash-level-'));
  coordinator = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn', '--volume-backend', `directory:${join(dir, 'snaps')}`]);
  address = (await coordinator.waitForOutput(/listening on (\S+)/))[1] as string;
  client = new CoordinatorClient(address, { callTimeoutMs: 20_000 });
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  plan = {
    id: 'crash',
    tenant: 'crash',
    servers: [...SERVERS],
    apps: SERVERS.map((s) => ({ server: s, app: 'W' })),
    channels: ring,
    volumes: SERVERS.map((s) => ({ id: `vol-${s}`, server: s, backendRef: volumeOf(s) })),
  };
  for (const s of SERVERS) {
    const hooks = join(dir, 'hooks', s);
    mkdirSync(hooks, { recursive: true });
    mkdirSync(volumeOf(s), { recursive: true });
    // The app's quiesce hook: the writer stops touching its volume while the pause file exists.
    // It fails on purpose while the fail flag exists, so the test can see a failing hook's stderr.
    const hook = join(hooks, '10-pause-writer');
    writeFileSync(
      hook,
      `#!/bin/sh\ncase "$1" in\n  freeze) if [ -e ${join(dir, 'fail-flag')} ]; then echo "flush failed: disk full on ${s}" >&2; exit 1; fi; touch ${pauseFile(volumeOf(s))} ;;\n  thaw) rm -f ${pauseFile(volumeOf(s))} ;;\nesac\n`,
    );
    chmodSync(hook, 0o755);
    const config = { ...agentConfigFor(plan, s, nats.url), freeze: { hooksDir: hooks, hookRetriesMax: 0 }, stateDir: join(dir, 'state', s) };
    const file = join(dir, `${s}.json`);
    writeFileSync(file, JSON.stringify(config));
    agents.push(spawnTsx(`agent ${s}`, 'agent/main.ts', ['--config', file, '--demo-app', 'writer', '--volume', join(dir, 'vol', s), '--transfer-interval-ms', '1']));
  }
  value(await client.registerPlan(plan, 0), 'registering the plan');
  await waitUntil('the agents to be online', async () => {
    const list = await client.listAgents('crash');
    return list.ok && SERVERS.every((s) => list.value.some((a) => a.server === s && a.status === 'online'));
  }, { timeoutMs: 60_000, intervalMs: 100 });
}, 120_000);

afterAll(async () => {
  client?.close();
  for (const a of agents) await a.stop();
  await coordinator?.stop();
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function takeAndWait(level: 'crash' | 'none') {
  const taken = value(await client.takeSnapshot({ planId: 'crash', level, options: { timeoutMs: 20_000, freezeDeadlineMs: 10_000 } }), `take ${level}`);
  return waitUntil(`checkpoint ${taken.id} to end`, async () => {
    const r = await store.checkpoints.get(taken.id);
    return r.ok && (r.value.record.state === 'completed' || r.value.record.state === 'aborted') ? r.value.record : undefined;
  }, { timeoutMs: 60_000, intervalMs: 50 });
}

function orphansIn(record: { volumes: readonly { server: string; snapshotRef: string }[] }): number {
  let orphans = 0;
  for (const c of ring) {
    const sender = record.volumes.find((v) => v.server === c.from.server);
    const receiver = record.volumes.find((v) => v.server === c.to.server);
    if (!sender || !receiver) throw new Error('a volume snapshot is missing from the record');
    orphans += orphansBetween(readRecords(sender.snapshotRef), readRecords(receiver.snapshotRef), `${c.from.server}/W->${c.to.server}/W`).length;
  }
  return orphans;
}

/**
 * Each volume's snapshot lies inside its own server's frozen window (frozen <= snapshot <= thawed,
 * as recorded beside the volume and on the server) and inside the common one (after the last
 * server froze, before the first thawed); no server thawed by its watchdog. The directory backend
 * copies the volumes one after another in plan order, so their times must not go backwards.
 */
function expectInsideFrozenWindows(r: CheckpointRecord): void {
  const servers = r.servers ?? [];
  expect(servers.map((f) => f.server).sort()).toEqual([...SERVERS]);
  for (const f of servers) {
    expect(f.frozenAtUnixMs, `${f.server} frozen`).toBeDefined();
    expect(f.thawedAtUnixMs, `${f.server} thawed`).toBeDefined();
    expect(f.byWatchdog ?? false).toBe(false);
  }
  const lastFrozen = Math.max(...servers.map((f) => f.frozenAtUnixMs ?? Infinity));
  const firstThawed = Math.min(...servers.map((f) => f.thawedAtUnixMs ?? -Infinity));
  for (const v of r.volumes) {
    const own = servers.find((f) => f.server === v.server);
    expect(v.frozenAtUnixMs, `${v.volumeId}: its server's freeze`).toBe(own?.frozenAtUnixMs);
    expect(v.thawedAtUnixMs, `${v.volumeId}: its server's thaw`).toBe(own?.thawedAtUnixMs);
    expect(v.snapshotAtUnixMs, `${v.volumeId} snapshotted after ${v.server} froze`).toBeGreaterThanOrEqual(v.frozenAtUnixMs);
    expect(v.thawedAtUnixMs, `${v.server} thawed after ${v.volumeId} was snapshotted`).toBeGreaterThanOrEqual(v.snapshotAtUnixMs);
    expect(v.snapshotAtUnixMs, `${v.volumeId} snapshotted after every server froze`).toBeGreaterThanOrEqual(lastFrozen);
    expect(v.snapshotAtUnixMs, `${v.volumeId} snapshotted before any server thawed`).toBeLessThanOrEqual(firstThawed);
  }
  const inPlanOrder = plan.volumes.map((pv) => r.volumes.find((v) => v.volumeId === pv.id)?.snapshotAtUnixMs ?? Number.NaN);
  expect(inPlanOrder).toEqual([...inPlanOrder].sort((a, b) => a - b));
}

describe('crash level with the directory volume backend', () => {
  it('every crash-level checkpoint is a group snapshot inside the common frozen window, with no orphan across volumes', async () => {
    let received = 0;
    for (let i = 0; i < 5; i++) {
      const r = await takeAndWait('crash');
      expect(r.state, r.failureDetail).toBe('completed');
      expect(r.levelAchieved).toBe('crash');
      expect(r.volumes).toHaveLength(3);
      expectInsideFrozenWindows(r);
      expect(orphansIn(r)).toBe(0);
      const verified = value(await client.verify(r.id), 'verify');
      expect(verified.problems).toEqual([]);
      received += r.volumes.map((v) => readRecords(v.snapshotRef).split('\n').filter((l) => l.startsWith('got ')).length).reduce((a, b) => a + b, 0);
    }
    // The check is only worth something if messages did cross between volumes.
    expect(received).toBeGreaterThan(50);
  });

  it('the none baseline, each volume copied on its own while the apps run, leaves orphans on some checkpoint', async () => {
    let orphans = 0;
    for (let i = 0; i < 12 && orphans === 0; i++) {
      const r = await takeAndWait('none');
      expect(r.state, r.failureDetail).toBe('completed');
      expect(r.levelAchieved).toBe('none');
      orphans += orphansIn(r);
    }
    expect(orphans).toBeGreaterThan(0);
  });

  it('a freeze hook that exits 1 aborts the checkpoint, every server is thawed, and snapctl show has its stderr', async () => {
    writeFileSync(join(dir, 'fail-flag'), '');
    try {
      const r = await takeAndWait('crash');
      expect(r.state).toBe('aborted');
      expect(r.failureReason).toBe('hook-failed');
      const hooks = (r.servers ?? []).flatMap((f) => f.hooks);
      expect(hooks.some((h) => h.exitCode === 1 && h.stderr.includes('flush failed: disk full'))).toBe(true);
      const show = spawnTsx('snapctl', 'coordinator/snapctl.ts', ['--address', address, 'show', String(r.id)]);
      const exit = await show.exited;
      expect(exit.code).toBe(0);
      expect(show.stdout()).toContain('10-pause-writer');
      expect(show.stdout()).toContain('flush failed: disk full');
      expect(show.stdout()).toContain('requested crash, achieved -');
    } finally {
      rmSync(join(dir, 'fail-flag'), { force: true });
    }
    // Every server was thawed: no writer is left paused.
    await waitUntil('every writer to be unpaused', () => SERVERS.every((s) => !existsSync(pauseFile(volumeOf(s)))), { timeoutMs: 10_000 });
    const next = await takeAndWait('crash');
    expect(next.state, next.failureDetail).toBe('completed');
  });

  it('rollback at crash level freezes every server, reverts the volumes as a group and thaws: what was written since is gone', async () => {
    const target = await takeAndWait('crash');
    expect(target.state, target.failureDetail).toBe('completed');
    const atTarget = new Map(SERVERS.map((s) => [s, readRecords(target.volumes.find((v) => v.server === s)?.snapshotRef ?? '')]));
    await waitUntil('the writers to write more after the checkpoint', () => SERVERS.every((s) => readRecords(volumeOf(s)).length > (atTarget.get(s) ?? '').length + 20), { timeoutMs: 10_000 });
    const before = new Map(SERVERS.map((s) => [s, readRecords(volumeOf(s))]));
    const rolled = value(await client.rollback(target.id, false), 'rollback');
    expect(rolled.safetyCheckpointId).toBeGreaterThan(target.id);
    for (const s of SERVERS) {
      const now = readRecords(volumeOf(s));
      const original = atTarget.get(s) ?? '';
      expect(now.startsWith(original), `${s} starts with the checkpoint's content`).toBe(true);
      const lost = (before.get(s) ?? '').slice(original.length).split('\n').filter((l) => l !== '');
      expect(lost.length).toBeGreaterThan(0);
      const lines = new Set(now.split('\n'));
      expect(lost.filter((l) => lines.has(l)), `${s}: lines written after the checkpoint are gone`).toEqual([]);
    }
    // The safety checkpoint kept the present, so the rollback itself could be undone.
    const safety = await store.checkpoints.get(rolled.safetyCheckpointId);
    expect(safety.ok && safety.value.record.levelAchieved).toBe('crash');
  });

  it('fallback downgrade: an app-level checkpoint that fails is followed by a crash-level one, recorded with both levels and the reason', async () => {
    // The same servers and volumes with an app no agent hosts: its app-level checkpoint cannot
    // complete. Only that app: an app belongs to at most one plan.
    const withGhost: PlanInput = { ...plan, id: 'crash-fallback', apps: [{ server: 's1', app: 'GHOST' }], channels: [] };
    value(await client.registerPlan(withGhost, 0), 'registering the plan with a ghost app');
    const taken = value(await client.takeSnapshot({ planId: 'crash-fallback', level: 'app', options: { timeoutMs: 3_000, fallbackPolicy: 'downgrade', freezeDeadlineMs: 10_000 } }), 'take');
    const failed = await waitUntil('the app-level checkpoint to end', async () => {
      const r = await store.checkpoints.get(taken.id);
      return r.ok && r.value.record.state === 'aborted' && /fell back/.test(r.value.record.failureDetail ?? '') ? r.value.record : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const replacement = Number(/crash-level checkpoint (\d+)/.exec(failed.failureDetail ?? '')?.[1]);
    const r = await waitUntil('the fallback checkpoint to end', async () => {
      const c = await store.checkpoints.get(replacement);
      return c.ok && (c.value.record.state === 'completed' || c.value.record.state === 'aborted') ? c.value.record : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    expect(r.state, r.failureDetail).toBe('completed');
    expect(r.levelRequested).toBe('app');
    expect(r.levelAchieved).toBe('crash');
    // Aborted because s1's agent hosts no GHOST (agent-unavailable), or at its timeout.
    expect(r.fallbackReason).toMatch(new RegExp(`app-level checkpoint ${taken.id} aborted \\((agent-unavailable|timeout)`));
    const show = spawnTsx('snapctl', 'coordinator/snapctl.ts', ['--address', address, 'show', String(r.id)]);
    expect((await show.exited).code).toBe(0);
    expect(show.stdout()).toContain('requested app, achieved crash');
    expect(show.stdout()).toContain('fallback ');
  });

  it('restore into other servers: the volume snapshots go onto the target plan\'s volumes, the originals are untouched', async () => {
    const TARGETS = ['t1', 't2', 't3'] as const;
    const targetVolume = (t: string): string => join(dir, 'vol', t, 'W');
    const copy: PlanInput = {
      id: 'crash-copy',
      tenant: 'crash',
      servers: [...TARGETS],
      apps: TARGETS.map((t) => ({ server: t, app: 'W' })),
      channels: TARGETS.map((t, i) => ({ from: { server: t, app: 'W' }, to: { server: TARGETS[(i + 1) % 3] as string, app: 'W' }, kind: 'in-band' as const })),
      volumes: TARGETS.map((t) => ({ id: `vol-${t}`, server: t, backendRef: targetVolume(t) })),
    };
    for (const t of TARGETS) {
      const hooks = join(dir, 'hooks', t);
      mkdirSync(hooks, { recursive: true });
      mkdirSync(targetVolume(t), { recursive: true });
      const hook = join(hooks, '10-pause-writer');
      writeFileSync(hook, `#!/bin/sh\ncase "$1" in\n  freeze) touch ${pauseFile(targetVolume(t))} ;;\n  thaw) rm -f ${pauseFile(targetVolume(t))} ;;\nesac\n`);
      chmodSync(hook, 0o755);
      const file = join(dir, `${t}.json`);
      writeFileSync(file, JSON.stringify({ ...agentConfigFor(copy, t, nats.url), freeze: { hooksDir: hooks, hookRetriesMax: 0 }, stateDir: join(dir, 'state', t) }));
      agents.push(spawnTsx(`agent ${t}`, 'agent/main.ts', ['--config', file, '--demo-app', 'writer', '--volume', join(dir, 'vol', t), '--transfer-interval-ms', '1']));
    }
    value(await client.registerPlan(copy, 0), 'registering the target plan');
    await waitUntil('the target agents to be online', async () => {
      const list = await client.listAgents('crash');
      return list.ok && TARGETS.every((t) => list.value.some((a) => a.server === t && a.status === 'online'));
    }, { timeoutMs: 60_000, intervalMs: 100 });
    const source = await takeAndWait('crash');
    expect(source.state, source.failureDetail).toBe('completed');
    const originalsBefore = SERVERS.map((s) => readRecords(volumeOf(s)).length);
    value(await client.restore({ checkpointId: source.id, servers: { s1: 't1', s2: 't2', s3: 't3' }, apps: [] }), 'restore');
    for (const [i, t] of TARGETS.entries()) {
      const snapshot = readRecords(source.volumes.find((v) => v.server === SERVERS[i])?.snapshotRef ?? '');
      expect(snapshot.length).toBeGreaterThan(0);
      expect(readRecords(targetVolume(t)).startsWith(snapshot), `${t} holds ${SERVERS[i]}'s snapshot`).toBe(true);
    }
    // The originals kept running and writing; nothing of theirs was replaced.
    SERVERS.forEach((s, i) => expect(readRecords(volumeOf(s)).length).toBeGreaterThanOrEqual(originalsBefore[i] as number));
  });
});
