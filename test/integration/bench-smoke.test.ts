/**
 * Smoke run of every live benchmark (`npm run bench -- <name>`) with tiny sizes: each starts its own
 * nats-server and worker processes, measures the plain-NATS floor and the project, and prints one
 * JSON line with both and their ratio. Benchmarks are not part of `npm test` (their figures need a
 * quiet machine and minutes); this only proves they run and report what docs/BENCHMARKS.md says.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const SMOKE_TIMEOUT_MS = 120_000;

function bench(...args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'bench/main.ts', ...args, '--json'],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 16 * 1024 * 1024, timeout: SMOKE_TIMEOUT_MS },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`bench ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch {
          reject(new Error(`bench ${args.join(' ')} printed no JSON line:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

function expectFloorProjectRatio(out: Record<string, unknown>, name: string): void {
  expect(out['benchmark']).toBe(name);
  for (const key of ['floor', 'project', 'ratio']) {
    expect(typeof out[key], key).toBe('number');
    expect(Number.isFinite(out[key] as number), `${key} is finite`).toBe(true);
    expect(out[key] as number, `${key} > 0`).toBeGreaterThan(0);
  }
  const rows = out['rows'] as { floor: number; project: number; ratio: number }[];
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) expect(Object.keys(row)).toEqual(expect.arrayContaining(['metric', 'unit', 'floor', 'project', 'ratio']));
}

describe.concurrent('live benchmarks, tiny sizes (floor, project and ratio in one JSON line)', () => {
  it('control: checkpoint rounds of 4 agents vs broadcast-and-gather', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('control', '--agents', '4', '--rounds', '3', '--warmup', '1', '--workers', '1');
    expectFloorProjectRatio(out, 'control');
    expect(out['target']).toBe('<= 1.5');
  });

  it('depth: barrier propagation through a pipeline of depth 2 vs a chain', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('depth', '--depth', '2', '--mode', 'unaligned', '--rounds', '3', '--warmup', '1', '--workers', '1');
    expectFloorProjectRatio(out, 'depth');
  });

  it('channel: 1 KiB messages through an in-band channel vs pub/sub, with checkpoints', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('channel', '--messages', '500', '--repeat', '1', '--interval', '50');
    expectFloorProjectRatio(out, 'channel');
    expect((out['rows'] as unknown[]).length).toBe(4);
  });

  it('state: a checkpoint of 64 KiB of state vs an Object Store put', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('state', '--bytes', '64K', '--apps', '2', '--rounds', '1', '--warmup', '0', '--workers', '1');
    expectFloorProjectRatio(out, 'state');
  });

  it('memory: coordinator and agent RSS with 4 agents and a checkpoint in flight', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('memory', '--agents', '4', '--workers', '1');
    expectFloorProjectRatio(out, 'memory');
    expect((out['extra'] as Record<string, unknown>)['checkpoint']).toMatchObject({ state: 'completed' });
  });

  it('scale: 4 servers x 3 apps under channel traffic, checkpointed every second', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('scale', '--servers', '4', '--duration', '3s', '--every', '1s', '--warmup', '2s', '--workers', '1');
    expectFloorProjectRatio(out, 'scale');
    const extra = out['extra'] as Record<string, Record<string, unknown>>;
    // a->b->c on each server, c->a between servers, and the one pipeline closed into a cycle.
    expect(extra['plan']).toEqual({ servers: 4, apps: 12, channels: 12, cycles: 1 });
    expect(extra['checkpoints']?.['taken']).toBeGreaterThanOrEqual(2);
    const sends = extra['sends'] as Record<string, number>;
    expect(sends['delivered']).toBeGreaterThan(0);
    expect(sends['failed']).toBe(0);
    expect(Object.keys(extra['alignmentMs'] ?? {})).toContain('appP99');
    expect(Object.keys(extra['coordinator'] ?? {})).toEqual(expect.arrayContaining(['cpuPercentOfACore', 'rssMiB']));
    // One worker: its collector's pauses by kind, each total at least its longest, and its stalls listed.
    type Pauses = { count: number; totalMs: number; maxMs: number };
    const gc = (out['extra'] as Record<string, unknown>)['workerGcMs'] as Record<'minor' | 'major' | 'other', Pauses>[];
    expect(gc).toHaveLength(1);
    for (const p of Object.values(gc[0] ?? {})) expect(p.count === 0 ? p.totalMs === 0 : p.totalMs >= p.maxMs && p.maxMs > 0).toBe(true);
    expect(Object.keys(gc[0] ?? {}).sort()).toEqual(['major', 'minor', 'other']);
    expect((out['extra'] as Record<string, unknown>)['workerStalls']).toEqual([expect.any(Array)]);
    // One entry per taken checkpoint, in request order.
    type Phases = { triggerMs?: number; acksMs?: { p50: number; p99: number; last: number }; lastApp?: { app: string } };
    const timeline = (out['extra'] as Record<string, unknown>)['checkpointTimeline'] as ({ atS: number; ms: number; state: string } & Phases)[];
    expect(timeline).toHaveLength(extra['checkpoints']?.['taken'] as number);
    expect(timeline.map((t) => t.atS)).toEqual([...timeline.map((t) => t.atS)].sort((a, b) => a - b));
    expect(timeline.every((t) => t.ms > 0 && t.state.length > 0)).toBe(true);
    // A completed checkpoint's phases: trigger, then the acks in order, the last one's app named, all within its time.
    for (const t of timeline.filter((e) => e.state === 'completed')) {
      const { triggerMs, acksMs, lastApp } = t;
      expect(triggerMs).toBeGreaterThanOrEqual(0);
      expect(acksMs && triggerMs !== undefined && triggerMs <= acksMs.p50 && acksMs.p50 <= acksMs.p99 && acksMs.p99 <= acksMs.last && acksMs.last <= t.ms).toBe(true);
      expect(lastApp?.app).toMatch(/^s[0-3]\/[abc]$/);
    }
  });

  it('scale, crash level: 3 servers frozen, their directory volumes snapshotted as a group', { timeout: SMOKE_TIMEOUT_MS }, async () => {
    const out = await bench('scale', '--level', 'crash', '--servers', '3', '--duration', '2s', '--every', '1s', '--warmup', '1s', '--workers', '1');
    expectFloorProjectRatio(out, 'scale');
    const extra = out['extra'] as Record<string, Record<string, Record<string, number>>>;
    const frozen = extra['frozenMs'];
    expect(frozen?.['window']?.['p99']).toBeGreaterThan(0);
    // The backend's call happens inside the frozen window, so the window is never shorter.
    expect(frozen?.['beyondBackend']?.['p50']).toBeGreaterThanOrEqual(0);
  });
});
