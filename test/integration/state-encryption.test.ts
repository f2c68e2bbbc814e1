/**
 * State encryption at rest against a real nats-server (docs/security.md): agents with a key store
 * only sealed bytes (the app state object, the inline state in the ack and the record, the channel
 * state object), a rollback puts the plaintext back, VerifyCheckpoint passes without the key, and an
 * agent with another key (or none) refuses the restore by name, deleting nothing.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import type { AppHandler, AppLink } from '../../agent/app.js';
import { parseAgentConfig } from '../../agent/config.js';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { isSealed, parseSealedHeader, SEALED_MAGIC } from '../../adapters/state-crypto.js';
import { sha256Digest } from '../../adapters/state-store.js';
import { verifyCheckpoint } from '../../coordinator/checkpoints/verify.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService, inlineStateBytesMax } from '../../coordinator/checkpoints/service.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore } from '../../coordinator/store/index.js';
import { agentConfigJson } from '../../examples/demo/plan.js';
import { silent } from '../support/live-fixture.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const TENANT = 'sealed';
const OUT: Record<string, string> = { A: 's1/A->s2/B', B: 's2/B->s1/A' };
const plan: PlanInput = {
  id: 'enc',
  tenant: TENANT,
  servers: ['s1', 's2'],
  apps: [
    { server: 's1', app: 'A' },
    { server: 's2', app: 'B' },
  ],
  // A cycle: the initiator's input from B is recorded at an unaligned cut while B still sends.
  channels: [
    { from: { server: 's1', app: 'A' }, to: { server: 's2', app: 'B' }, kind: 'in-band' },
    { from: { server: 's2', app: 'B' }, to: { server: 's1', app: 'A' }, kind: 'in-band' },
  ],
  volumes: [],
};

const text = (b: Uint8Array): string => Buffer.from(b).toString();
const contains = (b: Uint8Array, s: string): boolean => Buffer.from(b).includes(Buffer.from(s));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An app whose state is text with a marker the test looks for in the stored bytes. */
class SecretApp implements AppHandler {
  link: AppLink | undefined;
  readonly delivered: string[] = [];
  constructor(public state: string) {}
  deliver(_channel: string, payload: Uint8Array): void {
    this.delivered.push(text(payload));
  }
  snapshot(): Uint8Array {
    return Buffer.from(this.state);
  }
  restore(state: Uint8Array): void {
    this.state = text(state);
  }
}

let nats: NatsServerHandle;
let nc: NatsConnection;
let objects: JetStreamStateObjects;
let bus: ControlBus;
let service: CheckpointService;
let keyDir: string;
const agents = new Map<string, Agent>();
const apps = new Map<string, SecretApp>();

async function keyFile(name: string): Promise<string> {
  const file = join(keyDir, name);
  await writeFile(file, randomBytes(32).toString('base64'));
  return file;
}

async function startAgent(server: string, app: string, handler: SecretApp, stateEncryption: Record<string, unknown> | undefined): Promise<void> {
  const parsed = parseAgentConfig(agentConfigJson(plan, server, app, nats.url, { heartbeatIntervalMs: 500, triggerWaitMs: 500, ...(stateEncryption ? { stateEncryption } : {}) }));
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  const agent = await Agent.start(parsed.config, silent);
  const attached = agent.attach(app, handler);
  if (!attached.ok) throw new Error(attached.error.message);
  handler.link = attached.link;
  await agent.ready();
  agents.set(server, agent);
  apps.set(app, handler);
}

async function replaceAgent(server: string, app: string, stateEncryption: Record<string, unknown> | undefined): Promise<void> {
  await agents.get(server)?.stop();
  await startAgent(server, app, new SecretApp(`secret-${app}:replacement`), stateEncryption);
}

let k1: string;
const STATE_A = `secret-A:${'a'.repeat(40_000)}`;
const STATE_B = 'secret-B:0';

beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'state-enc-'));
  k1 = await keyFile('k1');
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  const store = await openCoordinatorStore(nc);
  objects = new JetStreamStateObjects(nc);
  bus = new ControlBus(nc, silent);
  await bus.start();
  service = new CheckpointService(store, objects, bus, silent, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: 10_000 },
    restoreTimeoutMs: 10_000,
  });
  const created = await store.plans.create({ ...plan, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
  if (!created.ok) throw new Error(created.error.message);
  const keys = { current: 'k1', keys: [{ id: 'k1', file: k1 }] };
  // A's state is far above the inline limit (an object); B's is a few bytes (inline in the ack).
  await startAgent('s1', 'A', new SecretApp(STATE_A), keys);
  await startAgent('s2', 'B', new SecretApp(STATE_B), keys);
}, 30_000);

afterAll(async () => {
  for (const a of agents.values()) await a.stop();
  bus?.stop();
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
});

async function take(): Promise<CheckpointRecord> {
  const taken = await service.take({ planId: plan.id, level: 'app', options: { alignmentMode: 'unaligned' } });
  if (!taken.ok) throw new Error(taken.error.message);
  const done = await service.waitFor(taken.value.id);
  expect(done.state, done.failureDetail).toBe('completed');
  return done;
}

async function stored(record: CheckpointRecord, app: string, kind: 'state' | 'channels'): Promise<Uint8Array> {
  const part = record.parts.find((p) => p.app === app);
  const ref = kind === 'state' ? part?.state : part?.channelState;
  if (!ref) throw new Error(`${app} has no ${kind} object`);
  const bytes = await objects.get(TENANT, ref);
  if (!bytes.ok) throw new Error(bytes.error.message);
  return bytes.value;
}

let target: CheckpointRecord;
/** The app whose part of the target holds a channel state. */
let recorder: string;

/** Both apps send marked messages every few ms until the returned function is called. */
function traffic(): () => void {
  let n = 0;
  const timer = setInterval(() => {
    for (const [app, channel] of Object.entries(OUT)) apps.get(app)?.link?.send(channel, Buffer.from(`secret-msg-${app}-${n++}`)).catch(() => undefined);
  }, 2);
  return () => clearInterval(timer);
}

describe('state encryption at rest (live)', () => {
  it('an agent with a key stores only sealed bytes, and verify passes without the key', async () => {
    const stop = traffic();
    try {
      for (let round = 0; round < 20 && target === undefined; round++) {
        const record = await take();
        const withChannels = record.parts.find((p) => p.channelState !== undefined);
        if (withChannels) {
          target = record;
          recorder = withChannels.app;
        }
      }
    } finally {
      stop();
    }
    expect(target, 'no checkpoint recorded a message in flight').toBeDefined();

    const stateA = await stored(target, 'A', 'state');
    expect(contains(stateA, 'secret-A')).toBe(false);
    const headerA = parseSealedHeader(stateA);
    expect(headerA.ok && headerA.value.keyId).toBe('k1');

    const partB = target.parts.find((p) => p.app === 'B');
    expect(partB?.state).toBeUndefined();
    const inline = Buffer.from(partB?.inlineState?.base64 ?? '', 'base64');
    expect(isSealed(inline)).toBe(true);
    expect(contains(inline, 'secret-B')).toBe(false);

    const channels = await stored(target, recorder, 'channels');
    expect(isSealed(channels)).toBe(true);
    expect(contains(channels, 'secret-msg')).toBe(false);

    const verified = await service.verify(target.id);
    expect(verified.ok && verified.value.problems).toEqual([]);
  }, 60_000);

  it('verify reports a sealed state or channel state whose header is malformed', async () => {
    // Digests that match, so only the header check can find these.
    const bad = Buffer.concat([SEALED_MAGIC, Buffer.from([9, 2]), Buffer.from('k1'), randomBytes(40)]);
    const ref = await objects.put(TENANT, `cp/${target.id}/s1/A/forged`, bad);
    if (!ref.ok) throw new Error(ref.error.message);
    const parts = target.parts.map((p) =>
      p.app === 'B'
        ? { ...p, inlineState: { base64: bad.toString('base64'), digest: sha256Digest(bad), sizeBytes: bad.length } }
        : p.channelState
          ? { ...p, channelState: ref.value }
          : p,
    );
    const report = await verifyCheckpoint({ ...target, parts }, { ...plan, revision: 1, createdAtUnixMs: 0, updatedAtUnixMs: 0 }, objects);
    const details = report.problems.map((p) => `${p.part}: ${p.detail}`);
    expect(details).toContain('s2/B state: sealed state header is malformed: format version 9; this build reads version 1');
    expect(details).toContain(`${recorder === 'A' ? 's1/A' : 's2/B'} channel state: sealed state header is malformed: format version 9; this build reads version 1`);
  });

  it('a rollback opens every state: the apps are back, the recorded messages delivered again', async () => {
    const a = apps.get('A') as SecretApp;
    const b = apps.get('B') as SecretApp;
    await sleep(300); // what was in flight when the traffic stopped is delivered
    a.state = 'secret-A:moved-on';
    b.state = 'secret-B:moved-on';
    const receiver = apps.get(recorder) as SecretApp;
    const deliveredBefore = receiver.delivered.length;
    const rolled = await service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: true });
    expect(rolled.ok, rolled.ok ? '' : rolled.error.message).toBe(true);
    expect(a.state).toBe(STATE_A);
    expect(b.state).toBe(STATE_B);
    await sleep(300);
    // The recorded messages, opened by the agent and delivered again; nothing else is sent now.
    const again = receiver.delivered.slice(deliveredBefore);
    expect(again.length).toBeGreaterThan(0);
    expect(again.every((m) => m.startsWith('secret-msg-'))).toBe(true);
  }, 60_000);

  it('an agent whose key file is missing or not 32 bytes does not start, naming the file', async () => {
    const short = join(keyDir, 'short');
    await writeFile(short, randomBytes(31));
    for (const [file, why] of [
      [join(keyDir, 'absent'), 'cannot read'],
      [short, 'holds 31 bytes'],
    ] as const) {
      const parsed = parseAgentConfig(agentConfigJson(plan, 's9', 'A', nats.url, { stateEncryption: { current: 'k', keys: [{ id: 'k', file }] } }));
      if (!parsed.ok) throw new Error(parsed.problems.join('; '));
      await expect(Agent.start(parsed.config, silent)).rejects.toThrow(`state key k: ${why === 'cannot read' ? `cannot read ${file}` : `${file} holds 31 bytes`}`);
    }
  });

  it('the daemon refuses such a key file at start-up: exit 2, the file named', async () => {
    const file = join(keyDir, 'short-daemon');
    await writeFile(file, randomBytes(31));
    const config = join(keyDir, 'agent.json');
    await writeFile(config, JSON.stringify(agentConfigJson(plan, 's9', 'A', nats.url, { stateDir: join(keyDir, 'state'), stateEncryption: { current: 'k', keys: [{ id: 'k', file }] } })));
    const root = join(import.meta.dirname, '..', '..');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--config', config], { cwd: root, timeout: 60_000 });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`state key k: ${file} holds 31 bytes, neither a 32-byte key nor its base64`);
  }, 60_000);

  for (const [what, config, expected] of [
    ['another key', async () => ({ current: 'k2', keys: [{ id: 'k2', file: await keyFile('k2') }] }), /is encrypted with key k1; this agent has key k2/],
    ['no key', async () => undefined, /is encrypted with key k1; this agent has no key configured/],
  ] as const) {
    it(`an agent with ${what} refuses the restore by name and nothing is deleted`, async () => {
      await replaceAgent('s2', 'B', await config());
      const b = apps.get('B') as SecretApp;
      const rolled = await service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: true });
      expect(rolled.ok).toBe(false);
      if (!rolled.ok) {
        expect(rolled.error.message).toMatch(expected);
        expect(rolled.error.message).toMatch(new RegExp(`the state of s2/B in checkpoint ${target.id} is encrypted`));
      }
      expect(b.state).toBe('secret-B:replacement');
      const still = await service.get(target.id);
      expect(still.ok && still.value.state).toBe('completed');
      expect(isSealed(await stored(target, 'A', 'state'))).toBe(true);
      expect(isSealed(await stored(target, recorder, 'channels'))).toBe(true);
      const verified = await service.verify(target.id);
      expect(verified.ok && verified.value.problems).toEqual([]);
    }, 60_000);
  }

  it('after a rotation (new current key, the old one still listed) the same checkpoint restores', async () => {
    await replaceAgent('s2', 'B', { current: 'k3', keys: [{ id: 'k3', file: await keyFile('k3') }, { id: 'k1', file: k1 }] });
    const b = apps.get('B') as SecretApp;
    const rolled = await service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: true });
    expect(rolled.ok, rolled.ok ? '' : rolled.error.message).toBe(true);
    expect(b.state).toBe(STATE_B);
    // New states are sealed with the new key.
    const next = await take();
    const inline = Buffer.from(next.parts.find((p) => p.app === 'B')?.inlineState?.base64 ?? '', 'base64');
    const header = parseSealedHeader(inline);
    expect(header.ok && header.value.keyId).toBe('k3');
  }, 60_000);

  it('a state of exactly the inline limit still completes: sealed, it no longer fits, so it is stored as an object', async () => {
    const limit = inlineStateBytesMax(CHECKPOINT_SERVICE_DEFAULTS, plan.apps.length, bus.maxPayloadBytes);
    const b = apps.get('B') as SecretApp;
    b.state = 'secret-B:'.padEnd(limit, 'b');
    const record = await take();
    const part = record.parts.find((p) => p.app === 'B');
    expect(part?.inlineState).toBeUndefined();
    expect(part?.state?.sizeBytes).toBeGreaterThan(limit);
    expect(isSealed(await stored(record, 'B', 'state'))).toBe(true);
  }, 60_000);
});
