/**
 * Unaligned barriers that overtake, in the live system (separate processes, real NATS): APP2 takes
 * 30 ms per message behind a credit window of 8, so APP1's messages to it pile up in APP1's outbound
 * queue. An unaligned checkpoint's barrier goes out ahead of them, flagged `overtaking`; APP2 records
 * the messages that follow it up to its afterSeq as the channel's state, the checkpoint completes and
 * verifies, and a rollback to it delivers those messages exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointView } from '../../coordinator/checkpoint-view.js';
import { channelSubject, decodeChannelState, decodeEnvelope, forEachItem } from '../../src/wire/index.js';
import { cyclicPlan, LiveSystem, value, type TokenCount } from '../support/live-processes.js';

const TENANT = 'ovt';
const PLAN = cyclicPlan('demo', TENANT, ['s1', 's2', 's3']);
const TOKENS = 1_000;
const TOTAL = 3 * TOKENS;
const SLOW = 's1/APP1->s2/APP2';

let live: LiveSystem;

beforeAll(async () => {
  live = await LiveSystem.start({
    plan: PLAN,
    agents: { initialTokens: TOKENS, transferIntervalMs: 5 },
    agentsByServer: { s2: { initialTokens: TOKENS, transferIntervalMs: 5, deliverDelayMs: 30, config: { channels: { creditWindowMessages: 8 } } } },
  });
}, 60_000);

afterAll(async () => {
  await live?.stop();
});

async function completed(c: CheckpointView): Promise<TokenCount> {
  expect(c.state, `checkpoint ${c.id}: ${c.failureReason ?? ''} ${c.failureDetail ?? ''}`).toBe('completed');
  expect(value(await live.client.verify(c.id)).problems).toEqual([]);
  const tokens = await live.tokens(c.id);
  expect(tokens.total).toBe(TOTAL);
  return tokens;
}

/** The recorded channel state of every input, as seqs, read back from the object store. */
async function recordedSeqs(id: number): Promise<Record<string, number[]>> {
  const record = await live.record(id);
  const out: Record<string, number[]> = {};
  for (const p of record.parts) {
    if (!p.channelState) continue;
    const bytes = await live.objects.get(TENANT, p.channelState);
    if (!bytes.ok) throw new Error(bytes.error.message);
    const decoded = decodeChannelState(bytes.value);
    if (!decoded.ok) throw new Error(decoded.error.message);
    for (const [ch, msgs] of Object.entries(decoded.value)) out[ch] = msgs.map((m) => m.seq);
  }
  return out;
}

describe('an unaligned checkpoint with a backlog on a slowed channel', () => {
  it('sends its barrier ahead of the queued messages, records them as the channel state, and a rollback replays them once', async () => {
    // What the slowed channel carries, as the test's own connection sees it, in order.
    const wire: ({ kind: 'message'; seq: number } | { kind: 'barrier'; checkpointId: number; afterSeq: number; overtaking: boolean })[] = [];
    const sub = live.nc.subscribe(channelSubject(TENANT, SLOW) as string, {
      callback: (_e, m) => {
        const d = decodeEnvelope(m.data);
        if (!d.ok) return;
        forEachItem(d.value, (item) => {
          if (item.type === 'message') wire.push({ kind: 'message', seq: item.seq });
          else wire.push({ kind: 'barrier', checkpointId: item.checkpointId, afterSeq: item.afterSeq, overtaking: item.overtaking === true });
        });
      },
    });
    let target: CheckpointView | undefined;
    let overtaken = 0;
    try {
      // The backlog builds within a second at 5 ms a transfer against 30 ms a message; a few tries
      // cover a checkpoint that happens to come when the queue is momentarily empty.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      for (let i = 0; i < 10 && target === undefined; i++) {
        const c = await live.take({ planId: 'demo', options: { alignmentMode: 'unaligned', timeoutMs: 15_000 } });
        await completed(c);
        await live.nc.flush();
        const at = wire.findIndex((w) => w.kind === 'barrier' && w.checkpointId === c.id);
        const barrier = wire[at];
        if (barrier?.kind !== 'barrier' || !barrier.overtaking) continue;
        // Messages up to the barrier's afterSeq that went on the wire after it: what it overtook.
        overtaken = wire.slice(at + 1).filter((w) => w.kind === 'message' && w.seq <= barrier.afterSeq).length;
        expect(overtaken).toBeGreaterThan(0);
        // The sender's count at the cut is the barrier's afterSeq; the receiver's channel state is
        // exactly what it had not received by its snapshot, up to that seq, the overtaken included.
        const sent = (await live.sentCounts(c.id))[SLOW] as number;
        const received = (await live.receivedCounts(c.id))[SLOW] as number;
        expect(sent).toBe(barrier.afterSeq);
        const recorded = (await recordedSeqs(c.id))[SLOW] ?? [];
        expect(recorded).toEqual(Array.from({ length: sent - received }, (_, k) => received + 1 + k));
        expect(recorded.length).toBeGreaterThanOrEqual(overtaken);
        target = c;
      }
    } finally {
      sub.unsubscribe();
    }
    expect(target, 'no unaligned checkpoint overtook a backlog on the slowed channel').toBeDefined();
    if (target === undefined) return;
    const targetTokens = await live.tokens(target.id);

    // A rollback to it, once the apps are quiet: every receiver gets what was recorded for it, once.
    const quiet = await live.quiesce('demo', PLAN.servers);
    await completed(quiet);
    value(await live.client.rollback(target.id, false), 'RollbackSnapshot');
    const after = await live.take({ planId: 'demo', options: { timeoutMs: 30_000 } });
    const now = await completed(after);
    expect(now.channelMessages).toBe(0);
    expect(now.state).toEqual(targetTokens.byApp);
    const recorded = await recordedSeqs(target.id);
    const receivedBefore = await live.receivedCounts(target.id);
    const sentBefore = await live.sentCounts(target.id);
    const receivedNow = await live.receivedCounts(after.id);
    for (const ch of Object.keys(receivedBefore)) {
      expect(receivedNow[ch], ch).toBe((receivedBefore[ch] ?? 0) + (recorded[ch]?.length ?? 0));
      expect(receivedNow[ch], ch).toBe(sentBefore[ch]);
    }
    expect(live.agent('s2').output()).not.toMatch(/input channel failed/i);
    expect(live.deadChildren()).toEqual([]);
  }, 120_000);
});
