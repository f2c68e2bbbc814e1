/**
 * A checkpoint record is one KV value, so it must fit the server's max_payload. Two things pin that
 * down, on a nats-server with max_payload 32 KiB: the inline-state budget shrinks to what the
 * server takes (states that would have gone inline are stored as objects), and a record that still
 * does not fit (a plan of many apps) aborts the checkpoint at its commit instead of reporting it
 * completed while the stored record says otherwise (invariant 6, atomic commit).
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { parseAgentConfig } from '../../agent/config.js';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { TrivialApp } from '../../bench/lib/apps.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService } from '../../coordinator/checkpoints/service.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { encodeEvent, eventSubject } from '../../src/wire/index.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const TENANT = 'limits';
const MAX_PAYLOAD_BYTES = 32 * 1024;
const silent = pino({ level: 'silent' });

let nats: NatsServerHandle;
let nc: NatsConnection;
let store: CoordinatorStore;
let bus: ControlBus;
let service: CheckpointService;
const agents: Agent[] = [];

/** `servers` servers with `appsPerServer` apps each, no channels, every app holding `stateBytes`. */
async function isolatedPlan(id: string, servers: number, appsPerServer: number, stateBytes: number): Promise<PlanInput> {
  const names = Array.from({ length: servers }, (_, i) => `${id}-s${i}`);
  const appNames = Array.from({ length: appsPerServer }, (_, i) => `a${i}`);
  const plan: PlanInput = { id, tenant: TENANT, servers: names, apps: names.flatMap((server) => appNames.map((app) => ({ server, app }))), channels: [], volumes: [] };
  const created = await store.plans.create({ ...plan, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
  if (!created.ok) throw new Error(created.error.message);
  for (const server of names) {
    const parsed = parseAgentConfig({ tenant: TENANT, server, nats: { servers: [nats.url] }, apps: appNames.map((name) => ({ name, inputs: [], outputs: [] })), logLevel: 'silent' });
    if (!parsed.ok) throw new Error(parsed.problems.join('; '));
    const agent = await Agent.start(parsed.config, silent);
    for (const app of appNames) {
      const attached = agent.attach(app, new TrivialApp(`${server}/${app}`, stateBytes));
      if (!attached.ok) throw new Error(attached.error.message);
    }
    await agent.ready();
    agents.push(agent);
  }
  return plan;
}

async function checkpoint(planId: string): Promise<CheckpointRecord> {
  const taken = await service.take({ planId, level: 'app', options: { timeoutMs: 10_000 } });
  if (!taken.ok) throw new Error(taken.error.message);
  return service.waitFor(taken.value.id);
}

beforeAll(async () => {
  nats = await startNatsServer({ maxPayloadBytes: MAX_PAYLOAD_BYTES });
  nc = await connect({ servers: nats.url });
  store = await openCoordinatorStore(nc);
  bus = new ControlBus(nc, silent);
  await bus.start();
  service = new CheckpointService(store, new JetStreamStateObjects(nc), bus, silent, CHECKPOINT_SERVICE_DEFAULTS);
}, 30_000);

afterAll(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  bus?.stop();
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
});

describe('an ack above the inline limit the trigger set', () => {
  it('is a protocol violation: the checkpoint aborts saying so, and nothing of it is stored as completed', async () => {
    // A plan whose one agent is not running: the test plays it and acks with too much inline state.
    const plan: PlanInput = { id: 'forged', tenant: TENANT, servers: ['forged-s0'], apps: [{ server: 'forged-s0', app: 'a0' }], channels: [], volumes: [] };
    const created = await store.plans.create({ ...plan, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
    if (!created.ok) throw new Error(created.error.message);
    const taken = await service.take({ planId: 'forged', level: 'app', options: { timeoutMs: 10_000 } });
    if (!taken.ok) throw new Error(taken.error.message);
    // One app, max_payload 32 KiB: the limit is a quarter of that, 8 KiB.
    const ack = encodeEvent({
      requestId: 'forged-1',
      tenant: TENANT,
      server: 'forged-s0',
      epoch: 0,
      type: 'ack',
      checkpointId: taken.value.id,
      app: 'a0',
      counts: { sent: {}, received: {} },
      state: { kind: 'inline', bytes: new Uint8Array(9_000) },
      stats: { startDelayMs: 0, alignmentMs: 0, syncMs: 0, asyncMs: 0, bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false },
    });
    if (!ack.ok) throw new Error(ack.error.message);
    nc.publish(eventSubject(TENANT, 'forged-s0'), ack.value);
    const done = await service.waitFor(taken.value.id);
    expect(done.state).toBe('aborted');
    expect(done.failureDetail).toMatch(/acked 9000 bytes of state inline, above the trigger's limit of 8192/);
  }, 30_000);
});

describe('the checkpoint record and the server max_payload', () => {
  it('the inline budget follows the server: 10 KiB states that the default limits would inline are stored as objects, and the checkpoint completes', async () => {
    expect(bus.maxPayloadBytes).toBe(MAX_PAYLOAD_BYTES);
    await isolatedPlan('big-states', 3, 1, 10 * 1024);
    const done = await checkpoint('big-states');
    expect(done.state, done.failureDetail).toBe('completed');
    expect(done.parts.every((p) => p.state !== undefined && p.inlineState === undefined)).toBe(true);
    const verified = await service.verify(done.id);
    expect(verified.ok && verified.value).toEqual({ ok: true, problems: [] });
  }, 60_000);

  it('a completed record that does not fit aborts the checkpoint at its commit, and the store never says completed', async () => {
    await isolatedPlan('many-apps', 1, 150, 8);
    const done = await checkpoint('many-apps');
    expect(done.state).toBe('aborted');
    expect(done.failureReason).toBe('store-failed');
    expect(done.failureDetail).toMatch(/MAX_PAYLOAD_EXCEEDED.*the commit did not land/);
    const stored = await store.checkpoints.get(done.id);
    expect(stored.ok && stored.value.record.state).not.toBe('completed');
  }, 60_000);
});
