/**
 * The coordinator's metrics as Prometheus reads them: what an ended checkpoint, a rollback and the
 * scrape-time sources add to the exposition, and the HTTP endpoint (404, and a port in use named).
 */
import { createServer } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CoordinatorMetrics } from '../../coordinator/metrics/coordinator-metrics.js';
import { serveCoordinatorMetrics } from '../../coordinator/metrics/index.js';
import { startMetricsServer } from '../../coordinator/metrics/server.js';
import { ok } from '../../coordinator/errors.js';
import type { CheckpointRecord as Rec } from '../../coordinator/model.js';
import { planInput } from '../support/coordinator-fixtures.js';
import type { AgentInfo } from '../../coordinator/model.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

const T0 = 1_700_000_000_000;
const logger = pino({ level: 'silent' });

function agent(server: string, status: AgentInfo['status']): AgentInfo {
  return { tenant: 'acme', server, apps: [], version: '1', status, registeredAtUnixMs: T0, lastHeartbeatAtUnixMs: T0, frozen: false };
}

/** The value of one sample line, e.g. `snapcoord_checkpoints_total{plan="demo",...}`. */
function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('coordinator metrics', () => {
  it('counts ended checkpoints by plan, level and result, with durations, sizes and the age of the last success', async () => {
    let now = T0 + 10_000;
    const metrics = new CoordinatorMetrics({ inFlight: () => 2, agents: async () => [agent('a', 'online'), agent('b', 'late'), agent('c', 'offline')] }, () => now, { processMetrics: false });
    const completed = checkpointRecord({
      state: 'completed',
      levelAchieved: 'app',
      triggeredAtUnixMs: T0,
      finishedAtUnixMs: T0 + 1_500,
      parts: [
        { server: 'srv1', app: 'APP1', acked: true, alignmentMs: 20, syncMs: 3, state: { name: 'k1', sizeBytes: 4096, digest: 'd' } },
        { server: 'srv2', app: 'APP2', acked: true, alignmentMs: 0, syncMs: 2, inlineState: { base64: '', digest: 'd', sizeBytes: 100 } },
      ],
    });
    metrics.checkpointEnded(completed);
    metrics.checkpointEnded(completed);
    metrics.checkpointEnded(checkpointRecord({ id: 3, state: 'aborted', failureReason: 'timeout', triggeredAtUnixMs: T0, finishedAtUnixMs: T0 + 30_000 }));
    metrics.operationEnded('rollback', true);
    metrics.operationEnded('restore', false);
    now = T0 + 61_500;
    const { body, contentType } = await metrics.exposition();
    expect(contentType).toContain('text/plain');
    expect(sample(body, 'snapcoord_checkpoints_total{plan="demo",level="app",result="completed"}')).toBe(2);
    expect(sample(body, 'snapcoord_checkpoints_total{plan="demo",level="app",result="aborted"}')).toBe(1);
    expect(sample(body, 'snapcoord_checkpoint_failures_total{plan="demo",reason="timeout"}')).toBe(1);
    expect(sample(body, 'snapcoord_checkpoint_duration_seconds_sum{plan="demo",level="app",result="completed"}')).toBe(3);
    expect(sample(body, 'snapcoord_checkpoint_size_bytes_sum{plan="demo",level="app"}')).toBe(2 * 4196);
    expect(sample(body, 'snapcoord_checkpoint_alignment_duration_seconds_count{plan="demo"}')).toBe(4);
    expect(sample(body, 'snapcoord_checkpoint_flush_duration_seconds_sum{plan="demo"}')).toBeCloseTo(0.01, 6);
    expect(sample(body, 'snapcoord_checkpoint_last_success_age_seconds{plan="demo"}')).toBe(60);
    expect(sample(body, 'snapcoord_checkpoints_in_flight')).toBe(2);
    expect(sample(body, 'snapcoord_agents_registered')).toBe(3);
    expect(sample(body, 'snapcoord_agents_stale{status="late"}')).toBe(1);
    expect(sample(body, 'snapcoord_agents_stale{status="offline"}')).toBe(1);
    expect(sample(body, 'snapcoord_rollbacks_total{result="succeeded"}')).toBe(1);
    expect(sample(body, 'snapcoord_restores_total{result="failed"}')).toBe(1);
  });

  it('copies to other sites: counted by site, plan and result; the newest lag; the age of the newest copied checkpoint grows while copies fail', async () => {
    let now = T0 + 10_000;
    const metrics = new CoordinatorMetrics({ inFlight: () => 0, agents: async () => [] }, () => now, { processMetrics: false });
    const first = checkpointRecord({ id: 1, state: 'completed', finishedAtUnixMs: T0 });
    const second = checkpointRecord({ id: 2, state: 'completed', finishedAtUnixMs: T0 + 5_000 });
    metrics.copyEnded('dr', first, { site: 'dr', state: 'copied', copiedAtUnixMs: T0 + 2_000, lagMs: 2_000 });
    metrics.copyEnded('dr', second, { site: 'dr', state: 'failed', failedAtUnixMs: T0 + 6_000, detail: 'site dr cannot be reached' });
    let text = (await metrics.exposition()).body;
    expect(sample(text, 'snapcoord_checkpoint_copies_total{site="dr",plan="demo",result="copied"}')).toBe(1);
    expect(sample(text, 'snapcoord_checkpoint_copies_total{site="dr",plan="demo",result="failed"}')).toBe(1);
    expect(sample(text, 'snapcoord_checkpoint_copy_lag_seconds{site="dr",plan="demo"}')).toBe(2);
    // The failed copy of checkpoint 2 leaves the site at checkpoint 1: 10 s old, then 20 s.
    expect(sample(text, 'snapcoord_checkpoint_copy_age_seconds{site="dr",plan="demo"}')).toBe(10);
    now = T0 + 20_000;
    text = (await metrics.exposition()).body;
    expect(sample(text, 'snapcoord_checkpoint_copy_age_seconds{site="dr",plan="demo"}')).toBe(20);
    metrics.copyEnded('dr', second, { site: 'dr', state: 'copied', copiedAtUnixMs: T0 + 20_000, lagMs: 15_000 });
    text = (await metrics.exposition()).body;
    expect(sample(text, 'snapcoord_checkpoint_copy_age_seconds{site="dr",plan="demo"}')).toBe(15);
    expect(sample(text, 'snapcoord_checkpoint_copy_lag_seconds{site="dr",plan="demo"}')).toBe(15);
  });

  it('a crash-level checkpoint records each server frozen window, and no alignment', async () => {
    const metrics = new CoordinatorMetrics({ inFlight: () => 0, agents: async () => [] }, () => T0, { processMetrics: false });
    metrics.checkpointEnded(
      checkpointRecord({
        state: 'completed',
        levelRequested: 'crash',
        levelAchieved: 'crash',
        triggeredAtUnixMs: T0,
        finishedAtUnixMs: T0 + 200,
        servers: [
          { server: 'srv1', frozenAtUnixMs: T0 + 10, thawedAtUnixMs: T0 + 60, hooks: [] },
          { server: 'srv2', frozenAtUnixMs: T0 + 10, thawedAtUnixMs: T0 + 110, hooks: [] },
        ],
      }),
    );
    const { body } = await metrics.exposition();
    expect(sample(body, 'snapcoord_checkpoints_total{plan="demo",level="crash",result="completed"}')).toBe(1);
    expect(sample(body, 'snapcoord_checkpoint_freeze_duration_seconds_sum{plan="demo"}')).toBeCloseTo(0.15, 6);
    expect(sample(body, 'snapcoord_checkpoint_alignment_duration_seconds_count{plan="demo"}')).toBeUndefined();
  });

  it('serves /metrics over HTTP, 404 elsewhere, and names a port already in use', async () => {
    const metrics = new CoordinatorMetrics({ inFlight: () => 0, agents: async () => [] }, Date.now);
    const served = await startMetricsServer({ metrics, host: '127.0.0.1', port: 0, logger });
    if (!served.ok) throw new Error(served.error.message);
    try {
      const page = await fetch(`http://127.0.0.1:${served.value.port}/metrics`);
      expect(page.status).toBe(200);
      const text = await page.text();
      expect(text).toContain('# TYPE snapcoord_checkpoints_total counter');
      expect(text).toContain('process_cpu_seconds_total');
      expect((await fetch(`http://127.0.0.1:${served.value.port}/`)).status).toBe(404);
      const again = await startMetricsServer({ metrics, host: '127.0.0.1', port: served.value.port, logger });
      expect(again.ok).toBe(false);
      if (!again.ok) expect(again.error.message).toBe(`metrics port 127.0.0.1:${served.value.port} is already in use by another process; choose another with --metrics-port (metrics.port), or 0 for a free one`);
    } finally {
      await served.value.close();
    }
    // Closed: the port is free again.
    const probe = createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(served.value.port, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it('at start-up the age of each plan newest completed checkpoint is read from the store; a newer completion wins', async () => {
    const metrics = new CoordinatorMetrics({ inFlight: () => 0, agents: async () => [] }, () => T0 + 100_000, { processMetrics: false });
    metrics.seedLastSuccess('p1', T0);
    metrics.checkpointEnded(checkpointRecord({ planId: 'p1', state: 'completed', levelAchieved: 'app', finishedAtUnixMs: T0 + 40_000 }));
    metrics.seedLastSuccess('p1', T0 + 10_000);
    const { body } = await metrics.exposition();
    expect(sample(body, 'snapcoord_checkpoint_last_success_age_seconds{plan="p1"}')).toBe(60);
  });

  it('serveCoordinatorMetrics reads each plan newest completed checkpoint, and its sites newest copies, from the store', async () => {
    // Plan b copies to dr and ams: its newest checkpoint's copy to dr failed; the one before, finished 90 s ago, was copied. Nothing went to ams.
    const stored: Record<string, Rec[]> = {
      a: [checkpointRecord({ planId: 'a', state: 'completed', finishedAtUnixMs: Date.now() - 30_000 })],
      b: [
        { ...checkpointRecord({ id: 8, planId: 'b', state: 'completed', finishedAtUnixMs: Date.now() - 20_000 }), copies: [{ site: 'dr', state: 'failed', failedAtUnixMs: Date.now(), detail: 'down' }] },
        { ...checkpointRecord({ id: 7, planId: 'b', state: 'completed', finishedAtUnixMs: Date.now() - 90_000 }), copies: [{ site: 'dr', state: 'copied', copiedAtUnixMs: Date.now() - 80_000, lagMs: 10_000 }] },
      ],
    };
    const served = await serveCoordinatorMetrics({
      checkpoints: { inFlight: () => [], onEnded: () => undefined, onOperationEnded: () => undefined, list: async (f) => ok({ items: stored[f.planId ?? ''] ?? [], nextPageToken: '' }) },
      agents: { list: async () => ok([]) },
      plans: { list: async () => ok({ items: [planInput({ id: 'a' }), { ...planInput({ id: 'b' }), copyToSites: ['dr', 'ams'] }].map((p) => ({ ...p, revision: 1, createdAtUnixMs: T0, updatedAtUnixMs: T0 })), nextPageToken: '' }) },
      host: '127.0.0.1',
      port: 0,
      logger,
    });
    if (!served.ok) throw new Error(served.error.message);
    try {
      let text = '';
      for (let i = 0; i < 50 && !(text.includes('plan="a"') && text.includes('copy_age_seconds{site="dr"')); i++) {
        text = await (await fetch(`http://127.0.0.1:${served.value.port}/metrics`)).text();
        await new Promise((r) => setTimeout(r, 20));
      }
      const age = sample(text, 'snapcoord_checkpoint_last_success_age_seconds{plan="a"}');
      expect(age).toBeGreaterThanOrEqual(30);
      expect(age).toBeLessThan(40);
      const copyAge = sample(text, 'snapcoord_checkpoint_copy_age_seconds{site="dr",plan="b"}');
      expect(copyAge).toBeGreaterThanOrEqual(90);
      expect(copyAge).toBeLessThan(100);
      expect(text).not.toContain('site="ams"');
    } finally {
      await served.value.close();
    }
  });
});
