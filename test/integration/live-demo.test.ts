/**
 * The main job (`npm start`) end to end, as a user runs it: nats-server, the coordinator and three
 * agents as processes, checkpoints while tokens flow, a rollback, and a verdict.
 */
import { describe, expect, it } from 'vitest';
import { spawnTsx } from '../support/live-processes.js';

describe('the live demo', () => {
  it('runs for 6 seconds, rolls back, checks every checkpoint and exits 0 saying every check passed', async () => {
    const demo = spawnTsx('demo', 'examples/demo/main.ts', ['--duration', '6']);
    const timer = setTimeout(() => void demo.stop(), 80_000);
    const { code, signal } = await demo.exited;
    clearTimeout(timer);
    const out = demo.stdout();
    expect({ code, signal }, `${out}\n${demo.stderr()}`).toEqual({ code: 0, signal: null });
    expect(out).toContain('verdict: every check passed');
    expect(out).toMatch(/rolled back to \d+: safety checkpoint \d+, now at epoch 1/);
    // (On a loaded machine the 6 seconds may end before a checkpoint after the rollback.)
    expect(out.match(/completed in +\d+ ms +tokens 3000\/3000 conserved +verify ok/g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(out).not.toMatch(/NOT CONSERVED|FAILED/);
    expect(out).toContain('stopped.');
  }, 90_000);
});
