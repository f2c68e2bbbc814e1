/**
 * `npm start -- --cluster 3` end to end: the demo on a 3-node NATS cluster with two coordinators,
 * whose leader it SIGKILLs mid-way. The standby takes over within 10 s and the demo's checks (every
 * checkpoint completed, tokens conserved, the cut checker, the rollback) still pass.
 */
import { describe, expect, it } from 'vitest';
import { spawnTsx } from '../support/live-processes.js';

describe('the live demo on a NATS cluster', () => {
  it('--cluster 3: the leading coordinator is killed mid-way, the standby takes over within 10 s, and every check passes', async () => {
    const demo = spawnTsx('demo', 'examples/demo/main.ts', ['--grpc', '127.0.0.1:0', '--cluster', '3', '--duration', '20']);
    const timer = setTimeout(() => void demo.stop(), 100_000);
    const { code, signal } = await demo.exited;
    clearTimeout(timer);
    const out = demo.stdout();
    expect({ code, signal }, `${out}\n${demo.stderr()}`).toEqual({ code: 0, signal: null });
    expect(out).toContain('starting a 3-node NATS cluster');
    expect(out).toContain('killing the leading coordinator (SIGKILL)');
    const took = /the standby took over and accepted a checkpoint (\d+) ms after the leader's SIGKILL/.exec(out);
    expect(took, out).not.toBeNull();
    expect(Number(took?.[1])).toBeLessThan(10_000);
    // Checkpoints completed through the new leader, after the kill.
    const afterKill = out.slice(out.indexOf('killing the leading coordinator'), out.indexOf('\nsummary'));
    expect(afterKill.match(/completed in +\d+ ms +tokens 3000\/3000 conserved +cut checker ok/g)?.length ?? 0).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/rolled back to \d+: safety checkpoint \d+, now at epoch 1/);
    expect(out).toContain('verdict: every check passed');
    expect(out).not.toMatch(/NOT CONSERVED|NOT consistent|SOME CHECKS FAILED|^! /m);
    expect(out).toContain('stopped.');
  }, 120_000);
});
