/**
 * The in-band channels of the live system in separate processes, under two faults made on purpose:
 * a consumer slowed down (APP2 takes 30 ms per message behind a credit window of 8), which must hold
 * its sender back without losing anything; and a gap (an envelope that skips sequence numbers,
 * published by the test onto APP1's input), which must be detected and keep every checkpoint that
 * spans it from completing until a rollback repairs the channel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointView } from '../../coordinator/checkpoint-view.js';
import { encodeTokens } from '../../agent/demo-apps/token-app.js';
import { channelSubject, creditSubject, decodeCredit, decodeEnvelope, encodeEnvelope, forEachItem } from '../../src/wire/index.js';
import { cyclicPlan, LiveSystem, value, waitUntil } from '../support/live-processes.js';

const TENANT = 'chan';
const PLAN = cyclicPlan('demo', TENANT, ['s1', 's2', 's3']);
const TOKENS = 100_000;
const TOTAL = 3 * TOKENS;
const WINDOW = 8;
/** APP2's time per message: about 33 messages a second, a third of what APP1 wants to send it. */
const DELAY_MS = 30;
const SLOW = 's1/APP1->s2/APP2';
const GAPPED = 's3/APP3->s1/APP1';

let live: LiveSystem;

beforeAll(async () => {
  live = await LiveSystem.start({
    plan: PLAN,
    agents: { initialTokens: TOKENS, transferIntervalMs: 5 },
    agentsByServer: { s2: { initialTokens: TOKENS, transferIntervalMs: 5, deliverDelayMs: DELAY_MS, config: { channels: { creditWindowMessages: WINDOW } } } },
  });
}, 60_000);

afterAll(async () => {
  await live?.stop();
});

async function expectConsistent(c: CheckpointView): Promise<void> {
  expect(c.state, `checkpoint ${c.id}: ${c.failureReason ?? ''} ${c.failureDetail ?? ''}`).toBe('completed');
  const verified = value(await live.client.verify(c.id));
  expect(verified.problems).toEqual([]);
  expect((await live.tokens(c.id)).total).toBe(TOTAL);
}

describe('a consumer slowed on purpose', () => {
  it('holds its sender back by the credit window, and nothing is lost', async () => {
    // Seen on the test's one connection: a credit always arrives before the envelopes it lets go
    // (the server forwards the receiver's credit to us before the sender can even read it), once the
    // first credit has been seen.
    let limit = 0;
    let consumed = 0;
    let beyondCredit = 0;
    let maxOutstanding = 0;
    const seqs: number[] = [];
    const subs = [
      live.nc.subscribe(creditSubject(TENANT, SLOW) as string, {
        callback: (_e, m) => {
          const d = decodeCredit(m.data);
          if (!d.ok) return;
          limit = Math.max(limit, d.value.receivedSeq + d.value.window);
          consumed = Math.max(consumed, d.value.receivedSeq);
        },
      }),
      live.nc.subscribe(channelSubject(TENANT, SLOW) as string, {
        callback: (_e, m) => {
          const d = decodeEnvelope(m.data);
          if (!d.ok) return;
          forEachItem(d.value, (item) => {
            if (item.type !== 'message') return;
            seqs.push(item.seq);
            // Envelopes that arrive before the first credit this connection sees were let go by a
            // credit granted before it subscribed: there is nothing to hold them against.
            if (limit === 0) return;
            if (item.seq > limit) beyondCredit += 1;
            maxOutstanding = Math.max(maxOutstanding, item.seq - consumed);
          });
        },
      }),
    ];
    const started = Date.now();
    try {
      await waitUntil('80 messages on the slowed channel', () => seqs.length >= 80, { timeoutMs: 20_000 });
    } finally {
      subs.forEach((s) => s.unsubscribe());
    }
    const seconds = (Date.now() - started) / 1000;
    // Never more than the window beyond what APP2 consumed, and it did fill the window: it was held back.
    expect(beyondCredit).toBe(0);
    expect(maxOutstanding).toBe(WINDOW);
    // At the consumer's pace (1000 / DELAY_MS a second), not the sender's (about 100 a second wanted).
    expect(seqs.length / seconds).toBeLessThan(1.5 * (1_000 / DELAY_MS));
    // Every message in order, none missing, none twice.
    const first = seqs[0] as number;
    expect(seqs).toEqual(seqs.map((_, i) => first + i));
    // And the books balance: a checkpoint across the slow channel completes and holds every token.
    await expectConsistent(await live.take({ planId: 'demo', options: { timeoutMs: 15_000 } }));
    expect(live.agent('s2').output()).not.toMatch(/input channel failed|slow consumer/i);
    expect(live.deadChildren()).toEqual([]);
  }, 60_000);
});

describe('a gap on purpose', () => {
  it('is detected, no checkpoint spanning it completes (GetCheckpoint says why), and a rollback repairs the channel', async () => {
    const before = await live.take({ planId: 'demo', options: { timeoutMs: 15_000 } });
    await expectConsistent(before);

    // The last sequence number APP3 used on its channel to APP1 and the last seq APP1's credit
    // allows, then an envelope far beyond the first and within the second: beyond the credit, the
    // receiver would drop it as forged rather than see a gap (docs/security.md).
    let lastSeq = 0;
    let creditLimit = 0;
    const subs = [
      live.nc.subscribe(channelSubject(TENANT, GAPPED) as string, {
        callback: (_e, m) => {
          const d = decodeEnvelope(m.data);
          if (d.ok) forEachItem(d.value, (item) => item.type === 'message' && (lastSeq = Math.max(lastSeq, item.seq)));
        },
      }),
      live.nc.subscribe(creditSubject(TENANT, GAPPED) as string, {
        callback: (_e, m) => {
          const d = decodeCredit(m.data);
          if (d.ok && d.value.epoch === 0) creditLimit = Math.max(creditLimit, d.value.receivedSeq + d.value.window);
        },
      }),
    ];
    try {
      await waitUntil(`traffic and a credit on ${GAPPED}`, () => lastSeq > 0 && creditLimit > lastSeq + 100);
    } finally {
      for (const sub of subs) sub.unsubscribe();
    }
    const skipped = creditLimit;
    const forged = encodeEnvelope({ type: 'message', channel: GAPPED, epoch: 0, seq: skipped, payload: encodeTokens(1) });
    if (!forged.ok) throw new Error(forged.error.message);
    live.nc.publish(channelSubject(TENANT, GAPPED) as string, forged.value);
    await live.nc.flush();

    // Detected and reported by the agent, loudly.
    await live.agent('s1').waitForOutput(new RegExp(`^(?=.*"msg":"input channel failed)(?=.*got ${skipped}: \\d+ message\\(s\\) lost).*$`, 'm'));

    // Every checkpoint from now on is declined by APP1, naming the channel and the loss.
    const spanning: CheckpointView[] = [];
    for (let i = 0; i < 2; i++) spanning.push(await live.take({ planId: 'demo', options: { timeoutMs: 15_000 } }));
    for (const c of spanning) {
      expect(c.state).toBe('aborted');
      expect(c.failureReason).toBe('channel-failed');
      expect(c.failureDetail).toMatch(new RegExp(`^s1/APP1 declined \\(channel-failed\\): APP1: input ${GAPPED} failed: expected seq \\d+ on ${GAPPED}, got ${skipped}: \\d+ message\\(s\\) lost$`));
      const app1 = value(await live.client.getCheckpoint(c.id)).stats.apps.find((a) => a.app === 'APP1');
      expect(app1?.failureReason).toBe('channel-failed');
    }
    // Nothing that spans the gap is completed, and none passes verification.
    // (ListCheckpoints reads the store, which may lag GetCheckpoint's answer by a write: wait for it.)
    const after = await waitUntil('the store to hold the final state of every checkpoint after the gap', async () => {
      const page = value(await live.client.listCheckpoints({ filter: { planId: 'demo' }, pageSize: 100, pageToken: '' }));
      const items = page.items.filter((c) => c.id > before.id);
      return items.length === spanning.length && items.every((c) => c.state === 'completed' || c.state === 'aborted') ? items : undefined;
    });
    expect(after.map((c) => c.state)).toEqual(after.map(() => 'aborted'));
    for (const c of after) expect(value(await live.client.verify(c.id)).ok).toBe(false);

    // A rollback that insists on a safety checkpoint cannot have one, and says what to do.
    const refused = await live.client.rollback(before.id, false);
    expect(refused.ok ? 'ok' : refused.error.codeName).toBe('FAILED_PRECONDITION');
    expect(refused.ok ? '' : refused.error.message).toMatch(/the safety checkpoint failed \(checkpoint \d+ aborted: .*channel-failed.*nothing was changed.*pass skip_safety_checkpoint/);
    // Without it, the rollback resets the channel, and checkpoints complete and conserve again.
    const rolled = value(await live.client.rollback(before.id, true), 'RollbackSnapshot');
    expect(rolled.epoch).toBe(1);
    const repaired = await live.take({ planId: 'demo', options: { timeoutMs: 15_000 } });
    await expectConsistent(repaired);
    expect(repaired.epoch).toBe(1);
    expect(live.deadChildren()).toEqual([]);
  }, 90_000);
});
