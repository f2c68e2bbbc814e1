/**
 * Log channels over real JetStream, in the live system (coordinator and agents in this process, a
 * real nats-server with -js): the demo plan with APP2 -> APP3 as a log channel, so the cycle
 * APP1 -> APP2 -> APP3 -> APP1 mixes in-band and log channels. Checkpoints taken while tokens move
 * complete, verify and conserve the tokens (states, recorded in-band messages and the log ranges read
 * back from the stream); a rollback restarts APP3's consumer at the recorded stream sequence and
 * APP3 gets exactly the messages of the range, of the right epochs, once.
 */
import { RetentionPolicy } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLogInbound } from '../../agent/channels/log.js';
import { Agent } from '../../agent/agent.js';
import { decodeTokens, TokenApp } from '../../agent/demo-apps/token-app.js';
import { readLogRange } from '../../adapters/log-range-reader.js';
import { jetStreamLogStreams, LogRetentionWatch } from '../../coordinator/checkpoints/log-retention.js';
import { readPartState } from '../../coordinator/checkpoints/part-state.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { DEMO_LOG_CHANNEL, demoPlan, logSubjectOf } from '../../examples/demo/plan.js';
import type { ChannelId } from '../../src/ids.js';
import { decodeStoredChannelState, type StoredLogRange } from '../../src/wire/index.js';
import { agentConfig, INITIAL_TOKENS, silent, startLiveWorld, TENANT, type LiveWorld } from '../support/live-fixture.js';
import { waitUntil } from '../support/live-processes.js';

const PLAN = demoPlan(TENANT, 'demo', { logChannel: true });
const LOG = PLAN.channels.find((c) => c.kind === 'log');
if (LOG === undefined) throw new Error('the demo plan has no log channel');
const SOURCE = { stream: LOG.logStream as string, subject: logSubjectOf(LOG) };
const TOTAL = 3 * INITIAL_TOKENS;

let world: LiveWorld;
/** What APP3 was handed on the log channel, in order, while `capturing`. */
let captured: number[] = [];
let capturing = false;
/** The retained checkpoints the service handed to its log retention check after each pass. */
const retainedPasses: (readonly number[])[] = [];

beforeAll(async () => {
  world = await startLiveWorld({ plan: PLAN, logRetention: { check: async (_plan, _tenant, retained) => void retainedPasses.push(retained) } });
  const app3 = world.agents.get('APP3')?.app;
  if (app3 === undefined) throw new Error('no APP3');
  const deliver = app3.deliver.bind(app3);
  app3.deliver = (channel: ChannelId, payload: Uint8Array) => {
    if (capturing && channel === DEMO_LOG_CHANNEL) captured.push(decodeTokens(payload));
    return deliver(channel, payload);
  };
}, 30_000);

afterAll(async () => {
  await world?.stop();
});

interface Parts {
  tokensInStates: number;
  tokensInBand: number;
  range: StoredLogRange;
  rangeTokens: number[];
}

async function partsOf(record: CheckpointRecord, channel: ChannelId = DEMO_LOG_CHANNEL, source: { stream: string; subject: string } = SOURCE): Promise<Parts> {
  let tokensInStates = 0;
  let tokensInBand = 0;
  let range: StoredLogRange | undefined;
  for (const p of record.parts) {
    const state = await readPartState(TENANT, p, world.objects);
    if (!state.ok) throw new Error(state.message);
    tokensInStates += decodeTokens(state.value);
    if (!p.channelState) continue;
    const bytes = await world.objects.get(TENANT, p.channelState);
    if (!bytes.ok) throw new Error(bytes.error.message);
    const decoded = decodeStoredChannelState(bytes.value);
    if (!decoded.ok) throw new Error(decoded.error.message);
    for (const msgs of Object.values(decoded.value.messages)) for (const m of msgs) tokensInBand += decodeTokens(m.payload);
    range ??= decoded.value.logRanges[channel];
  }
  if (range === undefined) throw new Error(`checkpoint ${record.id} recorded no range for ${channel}`);
  const messages = await readLogRange(world.nc, source, channel, range);
  expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: range.throughSeq - range.afterSeq }, (_, i) => range.afterSeq + 1 + i));
  return { tokensInStates, tokensInBand, range, rangeTokens: messages.map((m) => decodeTokens(m.payload)) };
}

async function takeCompleted(mode: 'aligned' | 'unaligned'): Promise<CheckpointRecord> {
  const taken = await world.service.take({ planId: 'demo', level: 'app', options: { alignmentMode: mode } });
  if (!taken.ok) throw new Error(taken.error.message);
  const final = await world.service.waitFor(taken.value.id);
  expect(final.state, final.failureDetail).toBe('completed');
  const verified = await world.service.verify(final.id);
  expect(verified.ok && verified.value.problems).toEqual([]);
  return final;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/**
 * Unaligned checkpoints record APP3's log input from its snapshot to APP2's barrier: takes them
 * under traffic until one has messages in that range (a replay then has something to show).
 */
async function checkpointWithRange(): Promise<{ record: CheckpointRecord; parts: Parts }> {
  const stop = world.traffic(1);
  try {
    for (let i = 0; i < 20; i++) {
      const record = await takeCompleted('unaligned');
      const parts = await partsOf(record);
      if (parts.range.throughSeq > parts.range.afterSeq) return { record, parts };
    }
  } finally {
    stop();
  }
  throw new Error('no checkpoint of 20 had messages in flight on the log channel');
}

describe('log channels over JetStream, mixed with in-band ones on a cycle', () => {
  for (const mode of ['aligned', 'unaligned'] as const) {
    it(`${mode}: checkpoints taken while tokens move complete, verify and conserve the tokens, the log range included`, async () => {
      const stop = world.traffic(2);
      try {
        for (let i = 0; i < 3; i++) {
          const parts = await partsOf(await takeCompleted(mode));
          expect(parts.tokensInStates + parts.tokensInBand + sum(parts.rangeTokens)).toBe(TOTAL);
        }
      } finally {
        stop();
      }
    }, 60_000);
  }

  it('a rollback restarts the consumer at the recorded offset: APP3 gets exactly the range again, and the tokens add up', async () => {
    const { record: target, parts } = await checkpointWithRange();
    // Let the abandoned future reach the stream, so the replay has to skip it.
    await new Promise((r) => setTimeout(r, 300));
    captured = [];
    capturing = true;
    const rolled = await world.service.rollback({ checkpointId: target.id, skipSafetyCheckpoint: true });
    expect(rolled.ok, rolled.ok ? '' : rolled.error.message).toBe(true);
    const deadline = Date.now() + 10_000;
    while (captured.length < parts.rangeTokens.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    capturing = false;
    // Exactly the range, in order, once: nothing of the abandoned future, nothing twice.
    expect(captured).toEqual(parts.rangeTokens);
    // No traffic since: the apps hold what the checkpoint held plus what was in flight, all of it.
    let now = 0;
    for (const { app } of world.agents.values()) now += app.tokens;
    expect(now).toBe(TOTAL);
    const app3 = world.agents.get('APP3')?.app;
    expect(app3?.tokens).toBeGreaterThanOrEqual(0);
    // And the system goes on: a checkpoint at the new epoch under traffic completes and conserves.
    const again = world.traffic(2);
    try {
      const after = await takeCompleted('aligned');
      expect(after.epoch).toBe(rolled.ok ? rolled.value.epoch : -1);
      const p = await partsOf(after);
      expect(p.tokensInStates + p.tokensInBand + sum(p.rangeTokens)).toBe(TOTAL);
    } finally {
      again();
    }
  }, 120_000);
});

describe('log channels: what the stream must be', () => {
  it('a stream that deletes consumed messages is refused; one with limits opens with a warning naming them', async () => {
    const jsm = await world.nc.jetstreamManager();
    await jsm.streams.add({ name: 'WQ', subjects: ['WQ.>'], retention: RetentionPolicy.Workqueue });
    await jsm.streams.add({ name: 'AGED', subjects: ['AGED.>'], max_age: 3_600 * 1_000_000_000 });
    const base = { tenant: TENANT, channel: DEMO_LOG_CHANNEL, epoch: 0, onEnvelope: () => undefined };
    await expect(openLogInbound(world.nc, { ...base, log: { stream: 'WQ', subject: 'WQ.x' } })).rejects.toThrow(/workqueue retention, which deletes consumed messages/);
    await expect(openLogInbound(world.nc, { ...base, log: { stream: 'AGED', subject: 'NOPE.x' } })).rejects.toThrow(/no JetStream stream holds NOPE\.x/);
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const inbound = await openLogInbound(world.nc, { ...base, log: { stream: 'AGED', subject: 'AGED.x' }, logger });
    await inbound.close();
    expect(lines.join('')).toMatch(/max_age=3600s/);
  });
});

describe('log channels: restore into other servers', () => {
  it('the range recorded under the old channel name is read back and delivered to the new receiver exactly once; the tokens add up, and the copy checkpoints and rolls back on its own subject', async () => {
    // The plan on new servers t1..t3: APP2 -> APP3 is now t2/APP2->t3/APP3, on its own subject.
    const t = (server: string): string => server.replace(/^s/, 't');
    const copy: PlanInput = {
      ...PLAN,
      id: 'copy',
      servers: PLAN.servers.map(t),
      apps: PLAN.apps.map((a) => ({ ...a, server: t(a.server) })),
      // Without the plan's subject: the copy's channel gets one of its own (logSubjectOf).
      channels: PLAN.channels.map(({ logSubject: _, ...c }) => ({ ...c, from: { ...c.from, server: t(c.from.server) }, to: { ...c.to, server: t(c.to.server) } })),
    };
    const copyLog = copy.channels.find((c) => c.kind === 'log');
    if (copyLog === undefined) throw new Error('the copy has no log channel');
    const copyChannel = `${copyLog.from.server}/${copyLog.from.app}->${copyLog.to.server}/${copyLog.to.app}`;
    expect(logSubjectOf(copyLog)).not.toBe(SOURCE.subject);
    const created = await world.store.plans.create({ ...copy, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
    if (!created.ok) throw new Error(created.error.message);
    const copies = new Map<string, { agent: Agent; app: TokenApp }>();
    try {
      for (const a of copy.apps) {
        const agent = await Agent.start(agentConfig(a.server, a.app, world.nats.url, copy), silent);
        const app = new TokenApp({ initialTokens: 0, transferTokensMax: 10 });
        const attached = agent.attach(a.app, app);
        if (!attached.ok) throw new Error(attached.error.message);
        app.bind(attached.link);
        copies.set(a.app, { agent, app });
      }
      for (const { agent } of copies.values()) await agent.ready();
      const received: number[] = [];
      const app3 = copies.get('APP3')?.app as TokenApp;
      const deliver = app3.deliver.bind(app3);
      app3.deliver = (channel: ChannelId, payload: Uint8Array) => {
        if (channel === copyChannel) received.push(decodeTokens(payload));
        return deliver(channel, payload);
      };

      const { record: source, parts } = await checkpointWithRange();
      const restored = await world.service.restore({ checkpointId: source.id, servers: { s1: 't1', s2: 't2', s3: 't3' }, apps: [] });
      expect(restored.ok, restored.ok ? '' : restored.error.message).toBe(true);
      // Delivered within the restore: exactly the range, in order, once.
      expect(received).toEqual(parts.rangeTokens);
      let total = 0;
      for (const { app } of copies.values()) total += app.tokens;
      expect(total).toBe(TOTAL);

      // The copy goes on over its own subject: a checkpoint under traffic completes, verifies and
      // conserves the tokens, its range read from the new subject.
      const timer = setInterval(() => {
        for (const { app } of copies.values()) app.transfer()?.catch(() => undefined);
      }, 2);
      let next: CheckpointRecord;
      try {
        const taken = await world.service.take({ planId: 'copy', level: 'app', options: { alignmentMode: 'unaligned' } });
        if (!taken.ok) throw new Error(taken.error.message);
        next = await world.service.waitFor(taken.value.id);
      } finally {
        clearInterval(timer);
      }
      expect(next.state, next.failureDetail).toBe('completed');
      const verified = await world.service.verify(next.id);
      expect(verified.ok && verified.value.problems).toEqual([]);
      const after = await partsOf(next, copyChannel, { stream: SOURCE.stream, subject: logSubjectOf(copyLog) });
      expect(after.tokensInStates + after.tokensInBand + sum(after.rangeTokens)).toBe(TOTAL);
      // And rolls back in place to it: its own subject replays its range.
      const rolled = await world.service.rollback({ checkpointId: next.id, skipSafetyCheckpoint: true });
      expect(rolled.ok, rolled.ok ? '' : rolled.error.message).toBe(true);
      await waitUntil('the copy holds every token again', () => [...copies.values()].reduce((n, { app }) => n + app.tokens, 0) === TOTAL, { timeoutMs: 10_000 });
    } finally {
      for (const { agent } of copies.values()) await agent.stop();
    }
  }, 60_000);
});

describe('log channels: the stream against the retained checkpoints', () => {
  it('a range the stream will soon drop, then one it dropped, is said once each; with no limit it is not (the control)', async () => {
    const { record, parts } = await checkpointWithRange();
    // The service asks after each retention pass, with the plan's retained checkpoints.
    await waitUntil('a retention pass that names the checkpoint', () => retainedPasses.some((r) => r.includes(record.id)), { timeoutMs: 5_000 });
    const lines: { msg: string; limit?: string; checkpointId?: number }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const watch = new LogRetentionWatch({ store: world.store, objects: world.objects, streams: jetStreamLogStreams(async () => world.nc), logger });
    const check = async (): Promise<string> => {
      const verdicts = await watch.check('demo', TENANT, [record.id]);
      expect(verdicts).toHaveLength(1);
      return verdicts[0]?.kind ?? '';
    };

    // The demo's stream keeps everything: nothing to say.
    expect(await check()).toBe('ok');
    expect(lines).toEqual([]);

    const jsm = await world.nc.jetstreamManager();
    const { config, state } = await jsm.streams.info(SOURCE.stream);
    const from = Math.max(parts.range.afterOffset, 1);
    const needed = state.last_seq - from + 1;
    // A limit the range takes about 90 % of: still held, at risk.
    await jsm.streams.update(SOURCE.stream, { ...config, max_msgs: Math.ceil(needed / 0.9) });
    expect(await check()).toBe('at-risk');
    expect(await check()).toBe('at-risk');
    expect(lines).toEqual([expect.objectContaining({ msg: "log stream will soon drop a retained checkpoint's range", limit: 'maxMsgs', checkpointId: record.id })]);

    // A limit below it: the stream drops the record the range starts after.
    await jsm.streams.update(SOURCE.stream, { ...config, max_msgs: needed - 1 });
    expect(await check()).toBe('dropped');
    expect(lines.slice(1)).toEqual([expect.objectContaining({ msg: "log stream may have dropped a retained checkpoint's range", checkpointId: record.id })]);

    // Once the checkpoint is no longer retained, nothing needs the stream.
    expect(await watch.check('demo', TENANT, [])).toEqual([{ kind: 'ok', channel: DEMO_LOG_CHANNEL }]);
    expect(lines.slice(2)).toEqual([expect.objectContaining({ msg: "log stream holds every retained checkpoint's range again" })]);
    await jsm.streams.update(SOURCE.stream, { ...config, max_msgs: -1 });
  }, 60_000);
});
