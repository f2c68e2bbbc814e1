/** bench/security/fuzz.ts: the fuzz is deterministic by its seed and reaches every subject the daemons read. */
import { createHash } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { fuzz, fuzzTargets, malformedLogged } from '../../bench/security/fuzz.js';
import { demoPlan } from '../../examples/demo/plan.js';
import { wireLimitsDefault } from '../../src/wire/index.js';

/** Records what would be published (subject, size, digest): this tests the generator, not NATS. */
function recorder(): { nc: NatsConnection; sent: { subject: string; size: number; digest: string }[] } {
  const sent: { subject: string; size: number; digest: string }[] = [];
  const publish = (subject: string, bytes: Uint8Array) => void sent.push({ subject, size: bytes.byteLength, digest: createHash('sha256').update(bytes).digest('hex') });
  const nc = { publish, flush: async () => undefined } as unknown as NatsConnection;
  return { nc, sent };
}

const targets = fuzzTargets([demoPlan('acme', 'acme-plan'), demoPlan('globex', 'globex-plan')]);
const options = (seed: number) => ({ count: 3_000, seed, maxPayloadBytes: 2 * 1024 * 1024 });
const quiet = pino({ level: 'silent' });

describe('security suite: the fuzz', () => {
  it('covers every subject the daemons read: per tenant 3 evt, 3 ctl, 1 plan trigger, 4 ch and 4 cr', () => {
    expect(targets).toHaveLength(30);
    expect(new Set(targets.map((t) => t.subject)).size).toBe(30);
    expect(targets.filter((t) => t.subject.startsWith('snap.globex.ch.')).map((t) => t.subject)).toContain('snap.globex.ch.s3.APP3.s1.APP1');
    expect(targets.find((t) => t.kind === 'ctl')?.samples.map((s) => s.kind)).toContain('ctl:restore');
    // Each with its rightful publisher: the sender of a channel's data, the receiver of its credit.
    expect(targets.find((t) => t.subject === 'snap.acme.ch.s3.APP3.s1.APP1')?.publisher).toEqual({ role: 'agent', tenant: 'acme', server: 's3' });
    expect(targets.find((t) => t.subject === 'snap.acme.cr.s3.APP3.s1.APP1')?.publisher).toEqual({ role: 'agent', tenant: 'acme', server: 's1' });
    expect(targets.find((t) => t.subject === 'snap.globex.ctl.s2')?.publisher).toEqual({ role: 'coordinator' });
  });

  it('the same seed publishes the same messages on the same subjects; another seed does not', async () => {
    const a = recorder();
    const b = recorder();
    const c = recorder();
    const result = await fuzz(() => a.nc, targets, options(11), quiet);
    await fuzz(() => b.nc, targets, options(11), quiet);
    await fuzz(() => c.nc, targets, options(12), quiet);
    expect(a.sent).toHaveLength(3_000);
    expect(b.sent).toEqual(a.sent);
    expect(c.sent).not.toEqual(a.sent);
    expect(result.fuzzed).toBe(3_000);
    expect(Object.values(result.byMutation).reduce((x, y) => x + y, 0)).toBe(3_000);
    expect(Object.values(result.bySubjectKind).every((n) => n > 0)).toBe(true);
  });

  it('an oversized message is past the wire limit and under the server payload limit', async () => {
    const r = recorder();
    await fuzz(() => r.nc, targets, { ...options(5), count: 20_000 }, quiet);
    const big = r.sent.filter((m) => m.size > wireLimitsDefault.wireMessageBytesMax);
    expect(big.length).toBeGreaterThan(0);
    for (const m of big) expect(m.size).toBeLessThan(2 * 1024 * 1024);
  });

  it('counts malformed lines and the suppressed counts of summaries, and nothing else', () => {
    const log = [
      '{"kind":"malformed-envelope","msg":"malformed envelope dropped"}',
      '{"kind":"malformed-control","suppressed":41,"logged":10}',
      '{"kind":"forged-event","suppressed":7}',
      'listening on 127.0.0.1:1',
    ].join('\n');
    expect(malformedLogged(log)).toBe(42);
  });
});
