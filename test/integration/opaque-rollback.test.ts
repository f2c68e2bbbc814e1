/**
 * Rollback and restore of opaque apps end to end, over a real nats-server with real processes and
 * shell hooks: the chain A (s1) -> B (s2) -> C (s3) of opaque-chain.test.ts, whose apps can also
 * reload their state. Each app's hook quiesces it (action `freeze`), puts a restored state back
 * (action `restore`: the stored state.json becomes the app's, and its output file is written again
 * up to what it had produced at the cut, so what it sent after the cut is gone from the channel
 * too) and resumes it.
 *
 * A checkpoint is taken, the apps run on, the plan is rolled back: every app holds the captured
 * state again (the restore hook saw it), the restores went downstream first, the chain runs on from
 * there without losing or repeating an item (the sums stay 1 + 2 + ... + n). A restore hook that
 * exits 1 fails the rollback naming the app, the hook and its stderr, on the call and on the
 * operation's record, and every app is resumed; a second rollback repairs the plan. A restore into
 * a second chain on t1..t3 puts the captured states there, downstream first, and leaves s1..s3 alone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackState } from '../../agent/opaque.js';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { agentConfigFor, channelIdOf, spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const CHAIN = [
  { server: 's1', app: 'A' },
  { server: 's2', app: 'B' },
  { server: 's3', app: 'C' },
] as const;
const SERVERS = CHAIN.map((c) => c.server);

/** The app of opaque-chain.test.ts, plus `reload`: take state.json back from the file (the restore hook wrote it). */
const APP_PROGRAM = `
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const [dir, inFile, outFile] = process.argv.slice(2);
const statePath = join(dir, 'state.json');
const st = { consumed: 0, produced: 0, sum: 0 };
const write = (path, text) => { writeFileSync(path + '.tmp', text); renameSync(path + '.tmp', path); };
const save = () => write(statePath, JSON.stringify(st));
const emit = (n) => { appendFileSync(outFile, n + '\\n'); st.produced += 1; };
function consume(limit) {
  if (!inFile || !existsSync(inFile)) return;
  const text = readFileSync(inFile, 'utf8');
  const lines = text.slice(0, text.lastIndexOf('\\n') + 1).split('\\n').slice(0, -1);
  while (st.consumed < lines.length && st.consumed < limit) {
    const n = Number(lines[st.consumed]);
    st.consumed += 1;
    st.sum += n;
    if (outFile) emit(n);
  }
}
save();
setInterval(() => {
  const reload = join(dir, 'reload');
  if (existsSync(reload)) { Object.assign(st, JSON.parse(readFileSync(statePath, 'utf8'))); rmSync(reload); return; }
  const drain = join(dir, 'drain');
  const ack = join(dir, 'ack');
  if (existsSync(drain)) {
    if (existsSync(ack)) return;
    const target = Number(readFileSync(drain, 'utf8').trim());
    if (inFile) consume(target);
    if (!inFile || st.consumed >= target) { save(); write(ack, String(st.produced)); }
    return;
  }
  if (!inFile) { emit(st.produced + 1); emit(st.produced + 1); }
  else consume(st.consumed + 1);
  save();
}, 3);
`;

let nats: NatsServerHandle;
let dir: string;
let coordinator: Child;
let client: CoordinatorClient;
let nc: NatsConnection;
let store: CoordinatorStore;
let objects: JetStreamStateObjects;
const agents: Child[] = [];
const apps: ChildProcess[] = [];
let plan: PlanInput;

/** Each app's directory, by server: the plan's apps run on s1..s3, a restore's targets on t1..t3. */
const appDir = (server: string, app: string): string => join(dir, 'apps', server, app);
const outFile = (server: string, app: string): string => join(appDir(server, app), 'out.log');
type AppState = { consumed: number; produced: number; sum: number };
const liveState = (server: string, app: string): AppState => JSON.parse(readFileSync(join(appDir(server, app), 'state.json'), 'utf8'));
/** Every state a restore hook put back into the app, in order (one JSON line each). */
const restoredStates = (server: string, app: string): AppState[] => {
  const path = join(appDir(server, app), 'restored.log');
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AppState) : [];
};
/** `server/app action level checkpoint` of every restore hook run, in order. */
const restoreOrder = (): string[] => (existsSync(join(dir, 'restore-order.log')) ? readFileSync(join(dir, 'restore-order.log'), 'utf8').trim().split('\n') : []);

/** The chain's three apps on `servers` (A, B, C in order), each with its agent and hook. */
function startChain(servers: readonly string[]): void {
  const chain = CHAIN.map((c, i) => ({ server: servers[i] as string, app: c.app }));
  const layout: PlanInput = { ...plan, servers: [...servers], apps: chain, channels: plan.channels.map((c, i) => ({ ...c, from: chain[i] as (typeof chain)[number], to: chain[i + 1] as (typeof chain)[number] })) };
  chain.forEach(({ server, app }, i) => {
    const D = appDir(server, app);
    mkdirSync(D, { recursive: true });
    const upstream = i > 0 ? outFile(servers[i - 1] as string, chain[i - 1]?.app as string) : '';
    const downstream = i < chain.length - 1 ? outFile(server, app) : '';
    const output = layout.channels.find((c) => c.from.app === app);
    const hooks = join(dir, 'hooks', server);
    mkdirSync(join(hooks, app), { recursive: true });
    const hook = join(hooks, app, '10-app');
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        'set -e',
        `D='${D}'`,
        'case "$1" in',
        '  freeze)',
        '    t=-1',
        '    if [ -n "$SNAP_DRAIN_TO" ]; then t="${SNAP_DRAIN_TO##*=}"; fi',
        '    rm -f "$D/ack"',
        '    echo "$t" > "$D/drain.tmp" && mv "$D/drain.tmp" "$D/drain"',
        '    i=0',
        '    while [ ! -e "$D/ack" ]; do sleep 0.01; i=$((i+1)); if [ $i -gt 2000 ]; then echo "app did not stop" >&2; exit 1; fi; done',
        '    cp "$D/state.json" "$SNAP_STATE_DIR/state.json"',
        output ? `    echo "position ${channelIdOf(output)} $(cat "$D/ack")"` : '    :',
        '    ;;',
        '  restore)',
        `    if [ -e '${join(dir, `fail-restore-${app}`)}' ]; then echo "cannot load the state of ${app}: simulated failure" >&2; exit 1; fi`,
        `    echo "$SNAP_SERVER/${app} $SNAP_ACTION $SNAP_LEVEL $SNAP_CHECKPOINT_ID" >> '${join(dir, 'restore-order.log')}'`,
        '    cp "$SNAP_STATE_DIR/state.json" "$D/state.json"',
        '    tr -d "\\n" < "$SNAP_STATE_DIR/state.json" >> "$D/restored.log"; echo >> "$D/restored.log"',
        // The channel is the app's own: what it sent after the cut goes too. Its output holds the
        // items 1, 2, ... in order, so it is written again up to what it had produced at the cut.
        downstream ? '    p=$(sed -e \'s/.*"produced":\\([0-9]*\\).*/\\1/\' "$SNAP_STATE_DIR/state.json"); seq 1 "$p" > "$D/out.tmp"; mv "$D/out.tmp" "$D/out.log"' : '    :',
        '    touch "$D/reload"',
        '    i=0',
        '    while [ -e "$D/reload" ]; do sleep 0.01; i=$((i+1)); if [ $i -gt 2000 ]; then echo "app did not reload" >&2; exit 1; fi; done',
        '    ;;',
        '  resume) rm -f "$D/drain" "$D/ack" ;;',
        'esac',
        'exit 0',
        '',
      ].join('\n'),
    );
    chmodSync(hook, 0o755);
    const config = { ...agentConfigFor(layout, server, nats.url), freeze: { hooksDir: hooks, hookRetriesMax: 0, hookTimeoutMs: 20_000 }, stateDir: join(dir, 'state', server) };
    const file = join(dir, `${server}.json`);
    writeFileSync(file, JSON.stringify(config));
    agents.push(spawnTsx(`agent ${server}`, 'agent/main.ts', ['--config', file]));
    apps.push(spawn(process.execPath, [join(dir, 'opaque-app.mjs'), D, upstream, downstream], { stdio: 'ignore' }));
  });
}

async function agentsOnline(servers: readonly string[]): Promise<void> {
  await waitUntil('the agents to be online', async () => {
    const list = await client.listAgents('opaque-rb');
    return list.ok && servers.every((server) => list.value.some((a) => a.server === server && a.status === 'online'));
  }, { timeoutMs: 60_000, intervalMs: 100 });
}

beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'opaque-rollback-'));
  coordinator = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn', '--restore-timeout-ms', '20000']);
  const address = (await coordinator.waitForOutput(/listening on (\S+)/))[1] as string;
  client = new CoordinatorClient(address, { callTimeoutMs: 20_000, restoreCallTimeoutMs: 120_000 });
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  objects = new JetStreamStateObjects(nc);
  plan = {
    id: 'opaque-rb',
    tenant: 'opaque-rb',
    servers: CHAIN.map((c) => c.server),
    apps: [...CHAIN],
    channels: [
      { from: CHAIN[0], to: CHAIN[1], kind: 'opaque' },
      { from: CHAIN[1], to: CHAIN[2], kind: 'opaque' },
    ],
    volumes: [],
  };
  writeFileSync(join(dir, 'opaque-app.mjs'), APP_PROGRAM);
  startChain(SERVERS);
  value(await client.registerPlan(plan, 0), 'registering the plan');
  await agentsOnline(SERVERS);
  await waitUntil('items to flow to C', () => existsSync(join(appDir('s3', 'C'), 'state.json')) && liveState('s3', 'C').consumed > 50, { timeoutMs: 20_000 });
}, 120_000);

afterAll(async () => {
  client?.close();
  for (const a of apps) a.kill('SIGKILL');
  for (const a of agents) await a.stop();
  await coordinator?.stop();
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function takeAndWait(): Promise<CheckpointRecord> {
  const taken = value(await client.takeSnapshot({ planId: 'opaque-rb', level: 'app', options: { timeoutMs: 20_000 } }), 'take');
  return waitUntil(`checkpoint ${taken.id} to end`, async () => {
    const r = await store.checkpoints.get(taken.id);
    return r.ok && (r.value.record.state === 'completed' || r.value.record.state === 'aborted') ? r.value.record : undefined;
  }, { timeoutMs: 60_000, intervalMs: 50 });
}

async function capturedState(record: CheckpointRecord, app: string): Promise<AppState> {
  const part = record.parts.find((p) => p.app === app);
  if (!part?.state) throw new Error(`${app} has no state in checkpoint ${record.id}`);
  const bytes = await objects.get(record.tenant, part.state);
  if (!bytes.ok) throw new Error(bytes.error.message);
  return JSON.parse((unpackState(bytes.value)['state.json'] as Buffer).toString('utf8'));
}

const triangular = (n: number): number => (n * (n + 1)) / 2;

/** Every app of the chain on `servers` resumed and running on, each sum still 1 + 2 + ... + consumed. */
async function expectRunningOn(servers: readonly string[] = SERVERS): Promise<void> {
  const [, b, c] = servers as [string, string, string];
  await waitUntil('every app to be resumed', () => CHAIN.every(({ app }, i) => !existsSync(join(appDir(servers[i] as string, app), 'drain'))), { timeoutMs: 10_000 });
  const before = liveState(c, 'C').consumed;
  await waitUntil('the chain to run again', () => liveState(c, 'C').consumed > before + 20, { timeoutMs: 10_000 });
  for (const [server, app] of [
    [b, 'B'],
    [c, 'C'],
  ] as const) {
    const st = liveState(server, app);
    expect(st.sum, `${server}/${app} consumed 1..${st.consumed} once each`).toBe(triangular(st.consumed));
  }
}

const inOrder = (servers: readonly string[], id: number): string[] => [`${servers[2]}/C restore app ${id}`, `${servers[1]}/B restore app ${id}`, `${servers[0]}/A restore app ${id}`];

describe('rollback and restore of a chain of opaque apps', () => {
  it('a rollback puts every captured state back, downstream first, and the chain runs on from the cut', async () => {
    const cp = await takeAndWait();
    expect(cp.state, cp.failureDetail).toBe('completed');
    const captured = { A: await capturedState(cp, 'A'), B: await capturedState(cp, 'B'), C: await capturedState(cp, 'C') };
    // The apps move well past the checkpoint: their live state differs from the captured one.
    await waitUntil('C to consume past the checkpoint', () => liveState('s3', 'C').consumed > captured.C.consumed + 100, { timeoutMs: 20_000 });
    const order = restoreOrder().length;
    const rolled = value(await client.rollback(cp.id, true), 'rollback');
    expect(rolled.epoch).toBe(1);
    for (const { server, app } of CHAIN) expect(restoredStates(server, app)).toEqual([captured[app]]);
    expect(restoreOrder().slice(order)).toEqual(inOrder(SERVERS, cp.id));
    const ops = await store.operations.list('opaque-rb');
    if (!ops.ok) throw new Error(ops.error.message);
    expect(ops.value[0]?.state).toBe('completed');
    await expectRunningOn();
    // The plan checkpoints again at the new epoch.
    const next = await takeAndWait();
    expect(next.state, next.failureDetail).toBe('completed');
    const c = await capturedState(next, 'C');
    expect(c.sum).toBe(triangular(c.consumed));
  });

  it('a restore hook that exits 1 fails the rollback visibly, every app is resumed, and a second rollback repairs the plan', async () => {
    const cp = await takeAndWait();
    expect(cp.state, cp.failureDetail).toBe('completed');
    const order = restoreOrder().length;
    writeFileSync(join(dir, 'fail-restore-B'), '');
    let failed;
    try {
      failed = await client.rollback(cp.id, true);
    } finally {
      rmSync(join(dir, 'fail-restore-B'), { force: true });
    }
    expect(failed.ok).toBe(false);
    const message = failed.ok ? '' : failed.error.message;
    expect(message).toContain('10-app (app B) restore: exit 1');
    expect(message).toContain('cannot load the state of B: simulated failure');
    expect(message).toContain('every app quiesced was resumed');
    // C (downstream) was restored before B failed; A (upstream) never was.
    expect(restoreOrder().slice(order)).toEqual([`s3/C restore app ${cp.id}`]);
    const ops = await store.operations.list('opaque-rb');
    if (!ops.ok) throw new Error(ops.error.message);
    expect(ops.value[0]?.state).toBe('needs-repair');
    expect(ops.value[0]?.detail).toContain('cannot load the state of B: simulated failure');
    await waitUntil('every app to be resumed', () => CHAIN.every(({ server, app }) => !existsSync(join(appDir(server, app), 'drain'))), { timeoutMs: 10_000 });
    const repaired = value(await client.rollback(cp.id, true), 'the repairing rollback');
    expect(repaired.epoch).toBeGreaterThan(1);
    expect(restoreOrder().slice(order + 1)).toEqual(inOrder(SERVERS, cp.id));
    await expectRunningOn();
    const next = await takeAndWait();
    expect(next.state, next.failureDetail).toBe('completed');
  });

  it('a restore into other servers puts the captured states into the apps there, downstream first, and leaves the plan running', async () => {
    const targets = ['t1', 't2', 't3'];
    startChain(targets);
    await agentsOnline(targets);
    const cp = await takeAndWait();
    expect(cp.state, cp.failureDetail).toBe('completed');
    const captured = { A: await capturedState(cp, 'A'), B: await capturedState(cp, 'B'), C: await capturedState(cp, 'C') };
    const order = restoreOrder().length;
    const sourceBefore = liveState('s3', 'C').consumed;
    const sourceRestores = CHAIN.map(({ server, app }) => restoredStates(server, app).length);
    value(await client.restore({ checkpointId: cp.id, servers: { s1: 't1', s2: 't2', s3: 't3' }, apps: [] }), 'restore');
    CHAIN.forEach(({ app }, i) => expect(restoredStates(targets[i] as string, app)).toEqual([captured[app]]));
    expect(restoreOrder().slice(order)).toEqual(inOrder(targets, cp.id));
    await expectRunningOn(targets);
    // The plan's own apps were left alone: they ran on, and were never restored again.
    expect(CHAIN.map(({ server, app }) => restoredStates(server, app).length)).toEqual(sourceRestores);
    expect(liveState('s3', 'C').consumed).toBeGreaterThan(sourceBefore);
    await expectRunningOn(SERVERS);
  });
});
