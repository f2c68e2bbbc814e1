/**
 * Acceptance of issue 12 item 4: `npm start -- --metrics-port P` serves the coordinator's /metrics
 * while the demo runs, and snapcoord_checkpoints_total rises as checkpoints complete.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { spawnTsx, waitUntil } from '../support/live-processes.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** The sum of every snapcoord_checkpoints_total sample with result="completed" (one per plan and level). */
async function completedTotal(port: number): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const samples = text.split('\n').filter((l) => l.startsWith('snapcoord_checkpoints_total{') && l.includes('result="completed"'));
    return samples.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  } catch {
    return undefined;
  }
}

describe('the demo with --metrics-port', () => {
  it('serves /metrics with snapcoord_checkpoints_total rising while it runs', async () => {
    const port = await freePort();
    const demo = spawnTsx('demo', 'examples/demo/main.ts', ['--grpc', '127.0.0.1:0', '--metrics-port', String(port), '--duration', '12', '--rollback-after', '100']);
    let exited = false;
    try {
      const first = await waitUntil('a completed checkpoint counted on /metrics', async () => {
        const n = await completedTotal(port);
        return n !== undefined && n >= 1 ? n : undefined;
      // The secured demo first sets up NATS accounts, certificates and the other tenant.
      }, { timeoutMs: 60_000, intervalMs: 200 });
      const later = await waitUntil('the count to rise', async () => {
        const n = await completedTotal(port);
        return n !== undefined && n > first ? n : undefined;
      }, { timeoutMs: 15_000, intervalMs: 200 });
      expect(later).toBeGreaterThan(first);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toMatch(/^snapcoord_checkpoints_total\{plan="demo",level="app",result="completed"\} \d+$/m);
      // demo's three agents and the other tenant's one.
      expect(text).toMatch(/^snapcoord_agents_registered 4$/m);
      expect(demo.stdout()).toContain(`coordinator metrics on http://127.0.0.1:${port}/metrics`);
      const { code } = await demo.exited;
      exited = true;
      expect(code, `${demo.stdout()}\n${demo.stderr()}`).toBe(0);
    } finally {
      if (!exited) await demo.stop();
    }
  }, 120_000);
});
