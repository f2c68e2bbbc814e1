/**
 * The main job (`npm start`) end to end, as a user runs it: nats-server, the coordinator and three
 * agents as processes, checkpoints while the apps run, a rollback, and a verdict, at each level.
 */
import { describe, expect, it } from 'vitest';
import { spawnTsx } from '../support/live-processes.js';

async function runDemo(args: string[]): Promise<string> {
  const demo = spawnTsx('demo', 'examples/demo/main.ts', ['--grpc', '127.0.0.1:0', ...args]);
  const timer = setTimeout(() => void demo.stop(), 80_000);
  const { code, signal } = await demo.exited;
  clearTimeout(timer);
  const out = demo.stdout();
  expect({ code, signal }, `${out}\n${demo.stderr()}`).toEqual({ code: 0, signal: null });
  expect(out).toContain('stopped.');
  return out;
}

describe('the live demo', () => {
  it('app level: runs for 6 seconds, rolls back, checks every checkpoint and exits 0 saying every check passed', async () => {
    const out = await runDemo(['--duration', '6']);
    expect(out).toContain('verdict: every check passed');
    expect(out).toContain('cut checker verdict for level app: every checkpoint consistent');
    expect(out).toMatch(/rolled back to \d+: safety checkpoint \d+, now at epoch 1/);
    // (On a loaded machine the 6 seconds may end before a checkpoint after the rollback.)
    expect(out.match(/completed in +\d+ ms +tokens 3000\/3000 conserved +cut checker ok/g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(out).not.toMatch(/NOT CONSERVED|NOT consistent|SOME CHECKS FAILED/);
  }, 90_000);

  it('crash level: every group snapshot of the volumes is free of orphans', async () => {
    const out = await runDemo(['--duration', '4', '--level', 'crash']);
    expect(out).toContain('cut checker verdict for level crash: every checkpoint consistent');
    expect(out.match(/orphans across volumes 0 +cut checker ok/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(out).toContain('verdict: every check passed');
  }, 90_000);

  it('none level: the cut checker catches the baseline out', async () => {
    // No rollback, so every checkpoint of the run is judged (about fifteen: the baseline cannot be lucky on all).
    const out = await runDemo(['--duration', '5', '--level', 'none', '--interval-ms', '300', '--rollback-after', '100']);
    expect(out).toMatch(/cut checker verdict for level none: \d+ of \d+ checkpoints NOT consistent/);
  }, 90_000);
});
