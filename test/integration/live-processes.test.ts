/**
 * The live system as it runs in production: nats-server, the coordinator daemon and three agent
 * daemons as separate processes, driven over gRPC. The demo graph (a diamond and a cycle), token
 * traffic every 5 ms. Checkpoints in both alignment modes, an agent that stops answering
 * (SIGSTOP), malformed bytes on every subject, and invalid gRPC arguments.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointView } from '../../coordinator/checkpoint-view.js';
import {
  channelSubject,
  controlSubject,
  creditSubject,
  decodeControl,
  decodeCredit,
  decodeEnvelope,
  decodeEvent,
  decodePlanTrigger,
  encodeControl,
  encodeCredit,
  encodeEnvelope,
  encodeEvent,
  forEachItem,
  planTriggerSubject,
} from '../../src/wire/index.js';
import { encodeTokens } from '../../agent/demo-apps/token-app.js';
import { cyclicPlan, LiveSystem, sleep, value, waitUntil } from '../support/live-processes.js';

const TENANT = 'lp';
const PLAN = cyclicPlan('demo', TENANT, ['s1', 's2', 's3']);
const TOKENS = 100_000;
const TOTAL = 3 * TOKENS;

let live: LiveSystem;

beforeAll(async () => {
  live = await LiveSystem.start({ plan: PLAN, agents: { initialTokens: TOKENS, transferIntervalMs: 10 }, coordinatorArgs: ['--restore-timeout-ms', '2000', '--inline-state-bytes-max', '0'] });
}, 60_000);

afterAll(async () => {
  await live?.stop();
});

/** A completed checkpoint passes VerifyCheckpoint and holds every token. */
async function expectConsistent(c: CheckpointView): Promise<void> {
  expect(c.state, `checkpoint ${c.id}: ${c.failureReason ?? ''} ${c.failureDetail ?? ''}`).toBe('completed');
  expect(c.levelAchieved).toBe('app');
  const verified = value(await live.client.verify(c.id), `VerifyCheckpoint ${c.id}`);
  expect(verified.problems).toEqual([]);
  expect(verified.ok).toBe(true);
  const tokens = await live.tokens(c.id);
  // On a miss, the books per app and per channel say where the tokens went.
  const books = JSON.stringify({ tokens, sent: await live.sentCounts(c.id), received: await live.receivedCounts(c.id) });
  expect(tokens.total, `checkpoint ${c.id}: ${books}`).toBe(TOTAL);
  // This coordinator runs with --inline-state-bytes-max 0: every state is a stored object.
  const record = await live.record(c.id);
  expect(record.parts.every((p) => p.state !== undefined && p.inlineState === undefined)).toBe(true);
}

describe('app-consistent checkpoints of agents in separate processes while traffic flows', () => {
  for (const mode of ['aligned', 'unaligned'] as const) {
    it(`${mode}: every completed checkpoint passes the cut checker and conserves tokens, traffic moving between them`, async () => {
      const taken: CheckpointView[] = [];
      let withChannelState = 0;
      // Three checkpoints at least, and more until one recorded messages in flight (at most 12).
      while (taken.length < 3 || (withChannelState === 0 && taken.length < 12)) {
        const c = await live.take({ planId: 'demo', options: { alignmentMode: mode, timeoutMs: 10_000 } });
        await expectConsistent(c);
        if ((await live.tokens(c.id)).channelMessages > 0) withChannelState += 1;
        taken.push(c);
      }
      // Channel state is part of the books: at least one checkpoint had tokens in flight.
      expect(withChannelState).toBeGreaterThan(0);
      // Traffic flowed: every channel carried more messages at the last checkpoint than at the first.
      const first = await live.sentCounts((taken[0] as CheckpointView).id);
      const last = await live.sentCounts((taken[taken.length - 1] as CheckpointView).id);
      for (const [channel, n] of Object.entries(first)) expect(last[channel], channel).toBeGreaterThan(n);
      expect(live.deadChildren()).toEqual([]);
    }, 60_000);
  }
});

describe('complete notices and triggers', () => {
  it('a trigger goes out once per plan and carries the complete notice; no message per server after a checkpoint', async () => {
    const commands: { type: string; server: string; checkpointId?: number }[] = [];
    const triggers: { checkpointId: number; completed?: number }[] = [];
    const subs = [
      live.nc.subscribe(controlSubject(TENANT, '*'), {
        callback: (_e, m) => {
          const c = decodeControl(m.data);
          if (c.ok) commands.push({ type: c.value.type, server: c.value.server, ...('checkpointId' in c.value ? { checkpointId: c.value.checkpointId } : {}) });
        },
      }),
      live.nc.subscribe(planTriggerSubject(TENANT, 'demo'), {
        callback: (_e, m) => {
          const t = decodePlanTrigger(m.data);
          if (t.ok) triggers.push({ checkpointId: t.value.checkpointId, ...(t.value.completedCheckpointId !== undefined ? { completed: t.value.completedCheckpointId } : {}) });
        },
      }),
    ];
    await live.nc.flush();
    try {
      const first = await live.take({ planId: 'demo', options: { alignmentMode: 'aligned', timeoutMs: 10_000 } });
      await expectConsistent(first);
      const second = await live.take({ planId: 'demo', options: { alignmentMode: 'aligned', timeoutMs: 10_000 } });
      await expectConsistent(second);
      await live.nc.flush();
      // No complete per server ever; a trigger per server only while a server is not known to hold
      // the plan's layout (the first checkpoint of this policy here): after that, the broadcast alone.
      expect(commands.filter((c) => c.type === 'complete')).toEqual([]);
      expect(commands.filter((c) => c.type === 'trigger' && c.checkpointId !== first.id)).toEqual([]);
      expect(triggers.filter((t) => t.checkpointId === first.id)).toHaveLength(1);
      expect(triggers.filter((t) => t.checkpointId === second.id)).toEqual([{ checkpointId: second.id, completed: first.id }]);
    } finally {
      for (const s of subs) s.unsubscribe();
    }
  }, 60_000);
});

/** Envelopes and credits of some channels as seen on the wire, with the time they were seen. */
function watchWire(channels: readonly string[]): { seqs: Map<string, { at: number; seq: number }[]>; credits: Map<string, { at: number; receivedSeq: number }[]>; stop: () => void } {
  const seqs = new Map<string, { at: number; seq: number }[]>();
  const credits = new Map<string, { at: number; receivedSeq: number }[]>();
  const subs = channels.flatMap((ch) => {
    seqs.set(ch, []);
    credits.set(ch, []);
    return [
      live.nc.subscribe(channelSubject(TENANT, ch) as string, {
        callback: (_e, m) => {
          const d = decodeEnvelope(m.data);
          if (d.ok) forEachItem(d.value, (item) => item.type === 'message' && seqs.get(ch)?.push({ at: Date.now(), seq: item.seq }));
        },
      }),
      live.nc.subscribe(creditSubject(TENANT, ch) as string, {
        callback: (_e, m) => {
          const d = decodeCredit(m.data);
          if (d.ok) credits.get(ch)?.push({ at: Date.now(), receivedSeq: d.value.receivedSeq });
        },
      }),
    ];
  });
  return { seqs, credits, stop: () => subs.forEach((s) => s.unsubscribe()) };
}

function maxAfter<T extends { at: number }>(items: readonly T[], at: number, pick: (t: T) => number): number {
  return Math.max(0, ...items.filter((i) => i.at >= at).map(pick));
}

describe('an agent that never answers', () => {
  it('the checkpoint aborts at its timeout naming the silent app, the other apps go on, and after SIGCONT the next checkpoint completes', async () => {
    const a13 = 's1/APP1->s3/APP3';
    const a31 = 's3/APP3->s1/APP1';
    const wire = watchWire([a13, a31]);
    const s2 = live.agent('s2');
    try {
      s2.process.kill('SIGSTOP');
      const started = Date.now();
      const taken = value(await live.client.takeSnapshot({ planId: 'demo', level: 'app', options: { alignmentMode: 'aligned', timeoutMs: 2_000 } }));
      // One checkpoint of a plan at a time: a second request while it hangs is told the plan is busy, and why.
      const second = await live.client.takeSnapshot({ planId: 'demo', level: 'app', options: {} });
      expect(second.ok ? 'ok' : second.error).toEqual({
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        codeName: 'RESOURCE_EXHAUSTED',
        reason: 'PLAN_BUSY',
        message: `PLAN_BUSY: checkpoint ${taken.id} of plan demo is in flight (max_concurrent 1); retry once it has ended, or cancel it`,
      });
      const c = await live.final(taken.id);
      const abortedAt = Date.now();
      expect(c.state).toBe('aborted');
      expect(c.failureReason).toBe('timeout');
      // The silent app is named as such; the others answered the trigger and wait for it.
      expect(c.failureDetail).toMatch(/^not every app acked within 2000 ms: no answer from s2\/APP2; no ack yet from /);
      expect(c.failureDetail).toContain('s1/APP1 (');
      // It ended at its timeout, not long after.
      expect(abortedAt - started).toBeGreaterThanOrEqual(2_000);
      expect(abortedAt - started).toBeLessThan(6_000);
      const got = value(await live.client.getCheckpoint(c.id));
      const s2App = got.stats.apps.find((a) => a.server === 's2');
      expect(s2App?.acked).toBe(false);
      expect(s2App?.failureReason).toBe('timeout');
      expect(s2App?.failureDetail).toBe('no answer to the trigger before the timeout');
      // An aborted checkpoint leaves no parts behind, not even those of apps that stored their
      // state but never acked (APP1 snapshotted at once, then waited for APP3's barrier).
      const left = await live.objects.list(TENANT, `cp/${c.id}/`);
      expect(left.ok && left.value).toEqual([]);

      // The others resume: APP3 consumes from APP1 again (its credit moves on) and APP3 sends to APP1,
      // who consumes, while s2 is still stopped.
      const consumed13 = maxAfter(wire.credits.get(a13) ?? [], 0, (x) => x.receivedSeq);
      const consumed31 = maxAfter(wire.credits.get(a31) ?? [], 0, (x) => x.receivedSeq);
      const sent31 = maxAfter(wire.seqs.get(a31) ?? [], 0, (x) => x.seq);
      await waitUntil('APP1 and APP3 to trade tokens again after the abort', () => {
        const c13 = maxAfter(wire.credits.get(a13) ?? [], abortedAt, (x) => x.receivedSeq);
        const c31 = maxAfter(wire.credits.get(a31) ?? [], abortedAt, (x) => x.receivedSeq);
        const s31 = maxAfter(wire.seqs.get(a31) ?? [], abortedAt, (x) => x.seq);
        return c13 >= consumed13 + 10 && c31 >= consumed31 + 10 && s31 >= sent31 + 10;
      });
      expect(s2.alive()).toBe(true);
    } finally {
      s2.process.kill('SIGCONT');
      wire.stop();
    }
    const next = await live.take({ planId: 'demo', options: { alignmentMode: 'aligned', timeoutMs: 10_000 } });
    await expectConsistent(next);
    expect(live.deadChildren()).toEqual([]);
  }, 60_000);
});

/** Deterministic bytes (xorshift32), so a failure replays. */
function randomMessages(seed: number, count: number, maxBytes: number): Uint8Array[] {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return Array.from({ length: count }, () => Uint8Array.from({ length: next() % (maxBytes + 1) }, () => next() & 0xff));
}

/** Every proper prefix of a valid message, the empty one included. */
function truncations(valid: Uint8Array): Uint8Array[] {
  return Array.from({ length: valid.byteLength }, (_, n) => valid.slice(0, n));
}

function ok<T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/**
 * The malformed messages a daemon's log accounts for: bad traffic is logged at a bounded rate
 * (adapters/bad-traffic-log.ts), so the lines plus the `suppressed` counts of the summary lines of
 * its kind.
 */
function accounted(text: string, line: string, kind: string): number {
  let suppressed = 0;
  for (const l of text.split('\n')) {
    if (!l.includes(`"kind":"${kind}"`) || !l.includes('"suppressed"')) continue;
    suppressed += (JSON.parse(l) as { suppressed: number }).suppressed;
  }
  return occurrences(text, line) + suppressed;
}

describe('malformed bytes on every subject', () => {
  it('random bytes and truncated valid messages on ctl, evt, ch and cr crash nothing: each is counted in the log as malformed and the next checkpoint completes', async () => {
    const ch12 = 's1/APP1->s2/APP2';
    const valid = {
      ctl: ok(encodeControl({ type: 'ping', requestId: 'test:ping:1', tenant: TENANT, server: 's1', plan: '', epoch: 0 })),
      evt: ok(encodeEvent({ type: 'heartbeat', frozen: false, checkpointsInFlight: [1, 2], highestCheckpointId: 2, requestId: 'test:hb:1', tenant: TENANT, server: 's1', epoch: 0 })),
      // Of a message far ahead, so that a prefix that still decoded could not pass for the next one.
      ch: ok(encodeEnvelope({ type: 'message', channel: ch12, epoch: 0, seq: 1_000_000_000, payload: encodeTokens(5) })),
      // For another channel: a prefix that still decodes is ignored by the sender, not applied.
      cr: ok(encodeCredit({ channel: 's1/APP1->s3/APP3', epoch: 0, receivedSeq: 123_456, window: 99 })),
    };
    const subjects = {
      ctl: `snap.${TENANT}.ctl.s1`,
      evt: `snap.${TENANT}.evt.s1`,
      ch: channelSubject(TENANT, ch12) as string,
      cr: creditSubject(TENANT, ch12) as string,
    };
    const decoders = {
      ctl: (b: Uint8Array) => decodeControl(b).ok,
      evt: (b: Uint8Array) => decodeEvent(b).ok,
      ch: (b: Uint8Array) => decodeEnvelope(b).ok,
      cr: (b: Uint8Array) => decodeCredit(b).ok,
    };
    // Who reads each subject, the log line its counter goes with, and the kind of its bounded-rate summary.
    const readers = {
      ctl: { child: live.agent('s1'), line: 'malformed control message dropped', kind: 'malformed-control' },
      evt: { child: live.coordinator, line: 'malformed event dropped', kind: 'malformed-event' },
      ch: { child: live.agent('s2'), line: 'malformed envelope dropped', kind: 'malformed-envelope' },
      cr: { child: live.agent('s1'), line: 'malformed credit dropped', kind: 'malformed-credit' },
    };
    const kinds = ['ctl', 'evt', 'ch', 'cr'] as const;
    const count = (k: (typeof kinds)[number]): number => accounted(readers[k].child.output(), readers[k].line, readers[k].kind);
    const before = Object.fromEntries(kinds.map((k) => [k, count(k)]));
    const expected: Record<string, number> = {};
    kinds.forEach((k, i) => {
      const payloads = [...randomMessages(0x5eed + i, 40, 300), ...randomMessages(0xbeef + i, 1, 64 * 1024), ...truncations(valid[k])];
      // Decoded as the readers get them from nats.js: as Node Buffers (see the report on truncated strings).
      expected[k] = payloads.filter((p) => !decoders[k](Buffer.from(p))).length;
      for (const p of payloads) live.nc.publish(subjects[k], p);
    });
    await live.nc.flush();
    for (const k of kinds) {
      expect(expected[k], k).toBeGreaterThan(40);
      // A bounded kind's summary comes at the end of its 10 s window.
      await waitUntil(`${readers[k].child.name} to account for ${expected[k]} × '${readers[k].line}'`, () => count(k) - (before[k] as number) >= (expected[k] as number), { timeoutMs: 20_000 });
      // Every malformed message is in the log's record, as a line or in a summary's count.
      expect(count(k) - (before[k] as number), k).toBe(expected[k]);
    }
    expect(live.deadChildren()).toEqual([]);
    const next = await live.take({ planId: 'demo', options: { timeoutMs: 10_000 } });
    await expectConsistent(next);
    expect(live.deadChildren()).toEqual([]);
  }, 60_000);
});

describe('invalid gRPC arguments against the running coordinator', () => {
  it('each bad request gets its status code and a message a person understands, and the coordinator keeps serving', async () => {
    const c = live.client;
    const failure = (r: { ok: true } | { ok: false; error: { code: number; message: string } }) => {
      if (r.ok) throw new Error('expected an error, got ok');
      return { code: r.error.code, message: r.error.message };
    };
    expect(failure(await c.takeSnapshot({ planId: '', level: 'app', options: {} }))).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/plan_id is required/) });
    expect(failure(await c.takeSnapshot({ planId: 'no such plan!', level: 'app', options: {} }))).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/plan_id .* must match/) });
    expect(failure(await c.takeSnapshot({ planId: 'nope', level: 'app', options: {} }))).toEqual({ code: GrpcStatus.NOT_FOUND, message: expect.stringMatching(/nope/) });
    expect(failure(await c.takeSnapshot({ planId: 'demo', level: 'app', options: { timeoutMs: 3_600_001 } }))).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/options.timeout 3600001 ms is out of range: from 1 to 3600000 ms/) });
    for (const call of [() => c.getCheckpoint(0), () => c.verify(0), () => c.rollback(0, true), () => c.deleteCheckpoint(0)]) {
      expect(failure(await call())).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/checkpoint_id is required \(a positive checkpoint id\)/) });
    }
    for (const call of [() => c.getCheckpoint(987_654), () => c.verify(987_654), () => c.rollback(987_654, true), () => c.deleteCheckpoint(987_654)]) {
      expect(failure(await call())).toEqual({ code: GrpcStatus.NOT_FOUND, message: expect.stringMatching(/987654/) });
    }
    expect(failure(await c.registerPlan(PLAN, 0))).toEqual({ code: GrpcStatus.ALREADY_EXISTS, message: expect.stringMatching(/demo/) });
    expect(failure(await c.restore({ checkpointId: 1, servers: {}, apps: [] }))).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/servers or apps must map/) });

    // An aborted checkpoint (a 1 ms timeout cannot be met across processes) cannot be rolled back to or restored.
    const aborted = await live.take({ planId: 'demo', options: { timeoutMs: 1 } });
    expect(aborted.state).toBe('aborted');
    expect(failure(await c.rollback(aborted.id, true))).toEqual({ code: GrpcStatus.FAILED_PRECONDITION, message: `checkpoint ${aborted.id} is aborted; only a completed checkpoint can be rolled back to` });
    expect(failure(await c.restore({ checkpointId: aborted.id, servers: { s1: 'x1', s2: 'x2', s3: 'x3' }, apps: [] }))).toEqual({ code: GrpcStatus.FAILED_PRECONDITION, message: `checkpoint ${aborted.id} is aborted; only a completed checkpoint can be restored` });
    expect(failure(await c.deleteCheckpoint(aborted.id + 1_000))).toMatchObject({ code: GrpcStatus.NOT_FOUND });

    // A restore that does not map every server of the checkpoint names the ones left out.
    const done = await live.take({ planId: 'demo', options: { timeoutMs: 10_000 } });
    expect(done.state).toBe('completed');
    expect(failure(await c.restore({ checkpointId: done.id, servers: { s1: 'x1' }, apps: [] }))).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/no target for s2\/APP2, s3\/APP3/) });
    expect(failure(await c.restore({ checkpointId: done.id, servers: { s1: 's1' }, apps: [] }))).toEqual({ code: GrpcStatus.INVALID_ARGUMENT, message: expect.stringMatching(/is the source itself: that is a rollback/) });

    // Servers without an agent: refused at once, naming them, before anything is sent.
    const asked = Date.now();
    const absent = failure(await c.restore({ checkpointId: done.id, servers: { s1: 'x1', s2: 'x2', s3: 'x3' }, apps: [] }));
    expect(absent.code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect(absent.message).toMatch(/no live agent of tenant lp on x1 \(no agent has registered\), x2 .*, x3 /);
    expect(Date.now() - asked).toBeLessThan(2_000);

    // Targets that a registered plan holds only some of: refused, since that plan could not take a
    // checkpoint with part of its apps moved to another epoch.
    value(await c.registerPlan({ id: 'partial', tenant: TENANT, servers: ['y1'], apps: [{ server: 'y1', app: 'APP1' }], channels: [], volumes: [] }, 0));
    const partial = failure(await c.restore({ checkpointId: done.id, servers: { s1: 'y1', s2: 'y2', s3: 'y3' }, apps: [] }));
    expect(partial).toEqual({ code: GrpcStatus.FAILED_PRECONDITION, message: expect.stringMatching(/^the restore targets y1\/APP1, y2\/APP2, y3\/APP3 are not exactly the apps of one plan \(plan partial has y1\/APP1\)/) });

    // An agent that is registered but does not answer the restore (stopped): UNAVAILABLE once the
    // restore timeout is over, naming it. Last, since it leaves s2 behind the others' epoch.
    const s2 = live.agents.get('s2');
    s2?.process.kill('SIGSTOP');
    try {
      const unavailable = failure(await c.rollback(done.id, true));
      expect(unavailable.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(unavailable.message).toMatch(/s2: no answer within 2000 ms/);
    } finally {
      s2?.process.kill('SIGCONT');
    }

    // Still serving.
    expect(value(await c.getCheckpoint(done.id)).state).toBe('completed');
    expect(live.deadChildren()).toEqual([]);
  }, 60_000);
});
