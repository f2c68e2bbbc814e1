/**
 * Opaque apps end to end, with real processes and real files: a chain A (s1) -> B (s2) -> C (s3)
 * of apps the agents cannot see into. Each app is a small node program started by the test; the
 * "sockets" between them are files (A appends numbers 1, 2, 3, ... to a file B reads; B forwards
 * each number it consumes to a file C reads), and each app keeps its state (consumed, produced,
 * sum) in a file of its own directory. Each app's quiesce hook asks the app to consume its input up
 * to SNAP_DRAIN_TO and stop, copies its state into SNAP_STATE_DIR and prints its output position.
 *
 * An app-level checkpoint of the all-opaque plan must complete, pass VerifyCheckpoint, and hold
 * states consistent with the positions reported: B's captured `consumed` is A's reported position on
 * A->B, C's is B's on B->C. Afterwards the apps run again. A quiesce hook that exits 1 aborts the
 * checkpoint and every quiesced app is resumed.
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

const APP_PROGRAM = `
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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
  const drain = join(dir, 'drain');
  const ack = join(dir, 'ack');
  if (existsSync(drain)) {
    if (existsSync(ack)) return;
    const target = Number(readFileSync(drain, 'utf8').trim());
    if (inFile) consume(target);
    if (!inFile || st.consumed >= target) { save(); write(ack, String(st.produced)); }
    return;
  }
  // Downstream lags on purpose (A sends 2 items a tick, B and C take 1), so a quiesce has to drain.
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

const appDir = (app: string): string => join(dir, 'apps', app);
const outFile = (app: string): string => join(appDir(app), 'out.log');
const liveState = (app: string): { consumed: number; produced: number; sum: number } => JSON.parse(readFileSync(join(appDir(app), 'state.json'), 'utf8'));

beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'opaque-chain-'));
  coordinator = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  const address = (await coordinator.waitForOutput(/listening on (\S+)/))[1] as string;
  client = new CoordinatorClient(address, { callTimeoutMs: 20_000 });
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  objects = new JetStreamStateObjects(nc);
  plan = {
    id: 'opaque',
    tenant: 'opaque',
    servers: CHAIN.map((c) => c.server),
    apps: [...CHAIN],
    channels: [
      { from: CHAIN[0], to: CHAIN[1], kind: 'opaque' },
      { from: CHAIN[1], to: CHAIN[2], kind: 'opaque' },
    ],
    volumes: [],
  };
  const program = join(dir, 'opaque-app.mjs');
  writeFileSync(program, APP_PROGRAM);
  CHAIN.forEach(({ server, app }, i) => {
    mkdirSync(appDir(app), { recursive: true });
    const upstream = i > 0 ? outFile(CHAIN[i - 1]?.app as string) : '';
    const downstream = i < CHAIN.length - 1 ? outFile(app) : '';
    const output = plan.channels.find((c) => c.from.app === app);
    // The app's quiesce hook: ask the app to drain to SNAP_DRAIN_TO and stop, wait for it, hand its
    // state over, report its output position. `fail-<app>` makes it fail on purpose. `set -e`: a
    // copy into SNAP_STATE_DIR that fails must fail the quiesce (and name the error in the
    // checkpoint's failure), never leave a state that silently lacks a file.
    const hooks = join(dir, 'hooks', server);
    mkdirSync(join(hooks, app), { recursive: true });
    const hook = join(hooks, app, '10-quiesce');
    const D = appDir(app);
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        'set -e',
        `D='${D}'`,
        'case "$1" in',
        '  freeze)',
        `    if [ -e '${join(dir, `fail-${app}`)}' ]; then echo "cannot stop ${app}: simulated failure" >&2; exit 1; fi`,
        '    t=-1',
        '    if [ -n "$SNAP_DRAIN_TO" ]; then t="${SNAP_DRAIN_TO##*=}"; fi',
        '    cp "$D/state.json" "$SNAP_STATE_DIR/before-drain.json"',
        '    rm -f "$D/ack"',
        '    echo "$t" > "$D/drain.tmp" && mv "$D/drain.tmp" "$D/drain"',
        '    i=0',
        '    while [ ! -e "$D/ack" ]; do sleep 0.01; i=$((i+1)); if [ $i -gt 2000 ]; then echo "app did not stop" >&2; exit 1; fi; done',
        '    cp "$D/state.json" "$SNAP_STATE_DIR/state.json"',
        '    echo "$SNAP_DRAIN_TO" > "$SNAP_STATE_DIR/drain-to"',
        output ? `    echo "position ${channelIdOf(output)} $(cat "$D/ack")"` : '    :',
        '    ;;',
        '  resume) rm -f "$D/drain" "$D/ack" ;;',
        'esac',
        'exit 0',
        '',
      ].join('\n'),
    );
    chmodSync(hook, 0o755);
    const config = { ...agentConfigFor(plan, server, nats.url), freeze: { hooksDir: hooks, hookRetriesMax: 0, hookTimeoutMs: 20_000 }, stateDir: join(dir, 'state', server) };
    const file = join(dir, `${server}.json`);
    writeFileSync(file, JSON.stringify(config));
    agents.push(spawnTsx(`agent ${server}`, 'agent/main.ts', ['--config', file]));
    apps.push(spawn(process.execPath, [program, D, upstream, downstream], { stdio: 'ignore' }));
  });
  value(await client.registerPlan(plan, 0), 'registering the plan');
  await waitUntil('the agents to be online', async () => {
    const list = await client.listAgents('opaque');
    return list.ok && CHAIN.every((c) => list.value.some((a) => a.server === c.server && a.status === 'online'));
  }, { timeoutMs: 60_000, intervalMs: 100 });
  await waitUntil('items to flow to C', () => existsSync(join(appDir('C'), 'state.json')) && liveState('C').consumed > 50, { timeoutMs: 20_000 });
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
  const taken = value(await client.takeSnapshot({ planId: 'opaque', level: 'app', options: { timeoutMs: 20_000 } }), 'take');
  return waitUntil(`checkpoint ${taken.id} to end`, async () => {
    const r = await store.checkpoints.get(taken.id);
    return r.ok && (r.value.record.state === 'completed' || r.value.record.state === 'aborted') ? r.value.record : undefined;
  }, { timeoutMs: 60_000, intervalMs: 50 });
}

async function capturedState(record: CheckpointRecord, app: string, file = 'state.json'): Promise<{ consumed: number; produced: number; sum: number }> {
  const part = record.parts.find((p) => p.app === app);
  if (!part?.state) throw new Error(`${app} has no state in checkpoint ${record.id}`);
  const bytes = await objects.get(record.tenant, part.state);
  if (!bytes.ok) throw new Error(bytes.error.message);
  const files = unpackState(bytes.value);
  return JSON.parse((files[file] as Buffer).toString('utf8'));
}

const AB = 's1/A->s2/B';
const BC = 's2/B->s3/C';

describe('opaque chain of three apps', () => {
  it('captured states are consistent with the positions reported', async () => {
    let drained = 0;
    for (let round = 0; round < 3; round++) {
      const r = await takeAndWait();
      expect(r.state, r.failureDetail).toBe('completed');
      expect(r.levelAchieved).toBe('app');
      const verify = value(await client.verify(r.id), 'verify');
      expect(verify.problems).toEqual([]);
      expect(verify.ok).toBe(true);
      const [a, b, c] = [await capturedState(r, 'A'), await capturedState(r, 'B'), await capturedState(r, 'C')];
      drained += (await capturedState(r, 'B', 'before-drain.json')).consumed < a.produced ? 1 : 0;
      const part = (app: string) => r.parts.find((p) => p.app === app);
      // The positions the hooks reported are the counts of the cut.
      expect(part('A')?.counts?.sent[AB]).toBe(a.produced);
      expect(part('B')?.counts?.received[AB]).toBe(a.produced);
      expect(part('B')?.counts?.sent[BC]).toBe(b.produced);
      expect(part('C')?.counts?.received[BC]).toBe(b.produced);
      // Each downstream state consumed exactly what its upstream had sent at the cut: nothing lost, nothing extra.
      expect(b.consumed).toBe(a.produced);
      expect(c.consumed).toBe(b.produced);
      expect(b.produced).toBe(b.consumed);
      // A sends 1, 2, 3, ...: the sums say the right items were consumed, in order.
      expect(b.sum).toBe((a.produced * (a.produced + 1)) / 2);
      expect(c.sum).toBe(b.sum);
      expect(a.produced).toBeGreaterThan(0);
      // The stall of the synchronous baseline is recorded per app. B is quiesced before C and stays
      // quiesced until C is captured, so it stalls at least as long as C; A runs again as soon as B
      // (still quiesced) is captured, so A's stall may be shorter than either.
      for (const app of ['A', 'B', 'C']) expect(part(app)?.alignmentMs).toBeGreaterThanOrEqual(0);
      expect(part('B')?.alignmentMs ?? 0).toBeGreaterThanOrEqual(part('C')?.alignmentMs ?? 0);
      // The apps run again afterwards.
      await waitUntil('C to consume past the checkpoint', () => liveState('C').consumed > c.consumed + 20, { timeoutMs: 10_000 });
      for (const app of ['A', 'B', 'C']) expect(existsSync(join(appDir(app), 'drain'))).toBe(false);
    }
    // B lagged behind A when it was told to quiesce: the drain to A's position did work.
    expect(drained).toBeGreaterThan(0);
  });

  it('a quiesce hook that exits 1 aborts the checkpoint and every quiesced app is resumed', async () => {
    writeFileSync(join(dir, 'fail-C'), '');
    try {
      const r = await takeAndWait();
      expect(r.state).toBe('aborted');
      expect(r.failureReason).toBe('hook-failed');
      expect(r.failureDetail).toContain('s3/C');
      expect(r.failureDetail).toContain('cannot stop C: simulated failure');
      const c = r.parts.find((p) => p.app === 'C');
      expect(c?.failureReason).toBe('hook-failed');
      // A and B were quiesced (and captured) before C failed: they were resumed.
      for (const app of ['A', 'B']) expect(r.parts.find((p) => p.app === app)?.alignmentMs).toBeGreaterThanOrEqual(0);
      // Nothing of the aborted checkpoint is left in the object store.
      await waitUntil('the aborted states to be deleted', async () => {
        const listed = await objects.list('opaque', `cp/${r.id}/`);
        return listed.ok && listed.value.length === 0;
      }, { timeoutMs: 10_000 });
    } finally {
      rmSync(join(dir, 'fail-C'), { force: true });
    }
    await waitUntil('every app to be resumed', () => ['A', 'B', 'C'].every((app) => !existsSync(join(appDir(app), 'drain'))), { timeoutMs: 10_000 });
    const before = liveState('C').consumed;
    const produced = liveState('A').produced;
    await waitUntil('the chain to run again', () => liveState('C').consumed > before + 20 && liveState('A').produced > produced + 20, { timeoutMs: 10_000 });
    const next = await takeAndWait();
    expect(next.state, next.failureDetail).toBe('completed');
  });
});
