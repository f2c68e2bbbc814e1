/**
 * Defect 6 of issue 9, over real NATS: a crash-level checkpoint aborted while the volume backend is
 * still snapshotting must not leave the snapshots the backend finishes afterwards. The backend here
 * is a `command:` backend whose snapshot command sleeps far longer than the freeze deadline; the
 * agents (stand-ins on their own NATS connection, speaking the wire protocol) freeze at once and
 * thaw by their watchdog at the deadline, which aborts the checkpoint in the middle of the snapshot.
 * Once the backend is done, every snapshot it made is deleted through it, and the aborted record
 * says which. With the negative control `leak-late-volume-snapshots` they stay, as before the fix.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService } from '../../coordinator/checkpoints/service.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { createVolumeBackend, type VolumeBackend } from '../../coordinator/volumes/backend.js';
import { controlSubject, decodeControl, encodeEvent, eventSubject, type AgentEvent, type Control } from '../../src/wire/index.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const TENANT = 'late';
const SERVERS = ['s1', 's2'] as const;
const FREEZE_DEADLINE_MS = 300;
/** Each volume's snapshot command takes this long: the watchdogs thaw well before the group is done. */
const SNAPSHOT_SLEEP_S = 1;

const log = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
let nats: NatsServerHandle;
let dir: string;
let nc: NatsConnection;
let agentsNc: NatsConnection;
let store: CoordinatorStore;
let backend: VolumeBackend;
const buses: ControlBus[] = [];

const snapsDir = (): string => join(dir, 'snaps');
const snapshotsOnBackend = (): string[] => readdirSync(snapsDir()).sort();

function plan(id: string): PlanInput {
  return {
    id,
    tenant: TENANT,
    servers: [...SERVERS],
    apps: SERVERS.map((s) => ({ server: s, app: 'W' })),
    channels: [],
    volumes: SERVERS.map((s) => ({ id: `vol-${s}`, server: s, backendRef: `${id}-${s}` })),
  };
}

/**
 * A guest agent as far as freezing goes: `frozen` at once, and its watchdog's `thawed` at the
 * deadline unless a thaw command came first (which it answers).
 */
function standInAgent(server: string): void {
  const watchdogs = new Map<number, NodeJS.Timeout>();
  let seq = 0;
  const publish = (c: Control, body: Record<string, unknown>, inReplyTo?: string): void => {
    const event = { requestId: `${server}:${++seq}`, ...(inReplyTo ? { inReplyTo } : {}), tenant: TENANT, server, epoch: c.epoch, ...body } as AgentEvent;
    const bytes = encodeEvent(event);
    if (!bytes.ok) throw new Error(bytes.error.message);
    agentsNc.publish(eventSubject(TENANT, server), bytes.value);
  };
  agentsNc.subscribe(controlSubject(TENANT, server), {
    callback: (_err, msg) => {
      const decoded = decodeControl(msg.data);
      if (!decoded.ok) return;
      const c = decoded.value;
      if (c.type === 'freeze') {
        publish(c, { type: 'frozen', checkpointId: c.checkpointId, frozenAtUnixMs: Date.now(), hooksMs: 0, hooks: [] });
        watchdogs.set(
          c.checkpointId,
          setTimeout(() => {
            watchdogs.delete(c.checkpointId);
            publish(c, { type: 'thawed', checkpointId: c.checkpointId, thawedAtUnixMs: Date.now(), byWatchdog: true, hooks: [], frozenAtUnixMs: 0 });
          }, c.deadlineMs),
        );
      } else if (c.type === 'thaw') {
        clearTimeout(watchdogs.get(c.checkpointId));
        const byWatchdog = !watchdogs.delete(c.checkpointId);
        publish(c, { type: 'thawed', checkpointId: c.checkpointId, thawedAtUnixMs: Date.now(), byWatchdog, hooks: [], frozenAtUnixMs: 0 }, c.requestId);
      }
    },
  });
}

async function service(negativeControls?: ReadonlySet<string>): Promise<CheckpointService> {
  const bus = new ControlBus(nc, log);
  await bus.start();
  buses.push(bus);
  return new CheckpointService(store, new JetStreamStateObjects(nc), bus, log, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: 20_000, freezeDeadlineMs: FREEZE_DEADLINE_MS },
    volumes: backend,
    // The options of the code before the fix have no such field; it is ignored there.
    ...(negativeControls ? { negativeControls } : {}),
  } as typeof CHECKPOINT_SERVICE_DEFAULTS);
}

async function abortedCheckpoint(s: CheckpointService, planId: string): Promise<CheckpointRecord> {
  const created = await store.plans.create({ ...plan(planId), createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
  if (!created.ok) throw new Error(created.error.message);
  const taken = await s.take({ planId, level: 'crash', options: {} });
  if (!taken.ok) throw new Error(taken.error.message);
  const final = await s.waitFor(taken.value.id);
  expect(final.state).toBe('aborted');
  expect(final.failureReason).toBe('freeze-failed');
  return final;
}

/** Until the backend ran every snapshot command it was given (each logs when it is done). */
async function backendDone(planId: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  const done = (): number => (existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8').split('\n').filter((l) => l.startsWith(`snap ${planId}-`)).length : 0);
  while (done() < SERVERS.length) {
    if (Date.now() > deadline) throw new Error(`the backend did not finish the snapshots of ${planId}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function storedRecord(id: number): Promise<CheckpointRecord> {
  const r = await store.checkpoints.get(id);
  if (!r.ok) throw new Error(r.error.message);
  return r.value.record;
}

beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'late-volumes-'));
  const script = join(dir, 'vol.sh');
  // snap NAME: takes its time, then the snapshot exists; rm NAME: it is gone.
  writeFileSync(
    script,
    `#!/bin/sh\nmkdir -p '${snapsDir()}'\ncase "$1" in\n  snap) sleep ${SNAPSHOT_SLEEP_S}; touch '${snapsDir()}'/"$2"; echo "snap $2" >> '${join(dir, 'log')}' ;;\n  rm) rm -f '${snapsDir()}'/"$2"; echo "rm $2" >> '${join(dir, 'log')}' ;;\nesac\nexit 0\n`,
  );
  chmodSync(script, 0o755);
  const templates = join(dir, 'templates.json');
  writeFileSync(templates, JSON.stringify({ snapshot: [script, 'snap', '{snapshot}'], revert: [script, 'revert'], delete: [script, 'rm', '{snapshot}'], snapshotName: '{ref}@cp-{checkpoint}' }));
  const created = await createVolumeBackend(`command:${templates}`, log);
  if (!created.ok) throw new Error(created.error.message);
  backend = created.value;
  nc = await connect({ servers: nats.url });
  agentsNc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  for (const s of SERVERS) standInAgent(s);
  await agentsNc.flush();
}, 30_000);

afterAll(async () => {
  for (const b of buses) b.stop();
  await agentsNc?.drain().catch(() => undefined);
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('defect 6: volume snapshots a backend finishes after the abort', () => {
  it('a crash-level checkpoint aborted by the watchdog mid-snapshot deletes the snapshots that arrive afterwards, and its record says which', async () => {
    const s = await service();
    const aborted = await abortedCheckpoint(s, 'fixed');
    await backendDone('fixed');
    const deadline = Date.now() + 10_000;
    while (snapshotsOnBackend().some((n) => n.startsWith('fixed-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(snapshotsOnBackend().filter((n) => n.startsWith('fixed-'))).toEqual([]);
    const record = await storedRecord(aborted.id);
    expect(record.volumes.map((v) => [v.volumeId, v.snapshotRef, typeof v.deletedAtUnixMs, v.deleteError])).toEqual(
      SERVERS.map((server) => [`vol-${server}`, `fixed-${server}@cp-${aborted.id}`, 'number', undefined]),
    );
    expect(record.failureDetail).toContain(`volume snapshots deleted: vol-s1 of s1 (fixed-s1@cp-${aborted.id}), vol-s2 of s2 (fixed-s2@cp-${aborted.id})`);
  }, 40_000);

  it('negative control leak-late-volume-snapshots: the same abort leaves them on the backend', async () => {
    const s = await service(new Set(['leak-late-volume-snapshots']));
    const aborted = await abortedCheckpoint(s, 'leaky');
    await backendDone('leaky');
    // Give a deletion every chance to happen: it must not.
    await new Promise((r) => setTimeout(r, 500));
    expect(snapshotsOnBackend().filter((n) => n.startsWith('leaky-'))).toEqual(SERVERS.map((server) => `leaky-${server}@cp-${aborted.id}`));
  }, 40_000);
});
