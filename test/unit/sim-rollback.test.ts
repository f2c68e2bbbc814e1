/**
 * The rollback algorithms on the shipped skewed scenario, with the real simulator: what the
 * recovery figures say about the domino effect, cic's costs, and the CLI's comparison, sweep and
 * plot of them beside a coordinated algorithm.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CliIo, EXIT, runCli } from '../../simulations/cli-main.js';
import { runSimulation } from '../../simulations/engine.js';
import { overheadOf } from '../../simulations/overhead.js';
import { CIC_INDEX_BYTES } from '../../simulations/rollback.js';
import { parseScenario } from '../../simulations/scenario-file.js';
import type { Scenario } from '../../simulations/types.js';

const FILE = 'simulations/scenarios/skewed-ring-crash.json';
const text = readFileSync(join(import.meta.dirname, '../..', FILE), 'utf8');
const parsed = parseScenario(text, FILE);
if (!parsed.ok) throw new Error(parsed.error.join('\n'));
const scenario: Scenario = parsed.value;
const crashAtMs = scenario.faults?.[0]?.atMs ?? 0;

function io(): CliIo & { out: string; err: string; written: Record<string, string> } {
  const files: Record<string, string> = { [FILE]: text };
  const o = {
    out: '',
    err: '',
    written: files,
    stdout: (t: string) => void (o.out += t),
    stderr: (t: string) => void (o.err += t),
    color: false,
    stderrIsTTY: false,
    readFile: (path: string) => {
      const f = files[path];
      if (f === undefined) throw new Error(`ENOENT: ${path}`);
      return f;
    },
    writeFile: (path: string, t: string) => void (files[path] = t),
  };
  return o;
}

describe('uncoordinated and cic on a busy ring with a crash', () => {
  it('uncoordinated rolls the ring back to its initial state: the domino effect', () => {
    const r = runSimulation(scenario, { algorithm: 'uncoordinated', seed: 1, trace: true });
    expect(r.violations).toEqual([]);
    expect(r.checkpoints).toHaveLength(1);
    expect(r.checkpoints[0]?.consistent).toBe(true);
    // Every message ever sent before the crash was a dependency someone had to undo.
    expect(r.metrics.recoveryTimeMs).toBe(crashAtMs);
    expect(r.metrics.replayedMessages).toBe(0);
    const crashed = scenario.faults?.[0]?.process;
    const before = (r.trace ?? []).filter((e) => e.kind === 'snapshot' && e.process === crashed && e.atMs < crashAtMs).length;
    expect(r.metrics.dominoDepth).toBeGreaterThanOrEqual(before);
    expect(r.metrics.lostWork).toBeGreaterThan(r.metrics.messagesDelivered / 4);
    expect(r.metrics.forcedCheckpoints).toBe(0);
    expect(r.metrics.barriersSent).toBe(0);
  });

  it('cic forces checkpoints and piggybacks an index on every message, and its line stays near the crash', () => {
    const u = runSimulation(scenario, { algorithm: 'uncoordinated', seed: 1 });
    const c = runSimulation(scenario, { algorithm: 'cic', seed: 1 });
    expect(c.violations).toEqual([]);
    expect(c.metrics.forcedCheckpoints).toBeGreaterThan(0);
    expect(c.metrics.piggybackBytes).toBe((c.metrics.messagesSent + (c.metrics.replayedMessages ?? 0)) * CIC_INDEX_BYTES);
    expect(c.metrics.recoveryTimeMs).toBeLessThan(scenario.checkpoints.intervalMs);
    expect(c.metrics.lostWork).toBeLessThan(u.metrics.lostWork ?? 0);
    expect(overheadOf(c)).toBeGreaterThan(overheadOf(u));
  });

  it('a coordinated run has no rollback figures, and its results are not changed by them', () => {
    const a = runSimulation(scenario, { algorithm: 'abs', seed: 1 });
    expect(a.metrics.localCheckpoints).toBeUndefined();
    expect(Object.keys(a.metrics)).not.toContain('lostWork');
    expect(overheadOf(a)).toBeCloseTo(
      (a.metrics.barriersSent + a.metrics.channelStateMessagesTotal + a.metrics.bufferedMessagesTotal + a.metrics.checkpointsCompleted * 8) /
        a.metrics.messagesDelivered,
      12,
    );
  });

  it('a second crash recovers from a line computed over the history the first one left', () => {
    const twice: Scenario = {
      ...scenario,
      faults: [
        { kind: 'crash', process: 'p2', atMs: 330 },
        { kind: 'crash', process: 'p6', atMs: 610 },
      ],
    };
    for (const algorithm of ['uncoordinated', 'cic'] as const) {
      for (const seed of [1, 2, 3]) {
        const r = runSimulation(twice, { algorithm, seed });
        expect(r.violations, `${algorithm} seed ${seed}`).toEqual([]);
        expect(r.checkpoints.map((c) => [c.triggeredAtMs, c.consistent])).toEqual([
          [330, true],
          [610, true],
        ]);
      }
    }
  });

  it('a coordinated run measures its recovery when asked: the latest completed checkpoint, no domino', () => {
    const r = runSimulation(scenario, { algorithm: 'abs', seed: 1, recoveryFigures: true });
    const restored = r.checkpoints.filter((c) => c.completed && c.endedAtMs <= crashAtMs).at(-1);
    if (restored === undefined) throw new Error('no checkpoint completed before the crash');
    expect(r.metrics.dominoDepth).toBe(0);
    expect(r.metrics.replayedMessages).toBe(restored.channelStateMessages);
    expect(r.metrics.recoveryTimeMs).toBeCloseTo(crashAtMs - restored.triggeredAtMs, 3);
    expect(r.metrics.lostWork).toBeGreaterThan(0);
    // Asking changes nothing else.
    const { lostWork, replayedMessages, dominoDepth, recoveryTimeMs, ...rest } = r.metrics;
    expect({ ...r, metrics: rest }).toEqual(runSimulation(scenario, { algorithm: 'abs', seed: 1 }));
    expect([lostWork, replayedMessages, dominoDepth, recoveryTimeMs].every((v) => typeof v === 'number')).toBe(true);
  });

  it('compare prints the overhead, the recovery figures and the verdicts', () => {
    const o = io();
    const code = runCli(['compare', '--algorithms', 'abs,chandy-lamport,uncoordinated,cic', '--scenario', FILE, '--seed', '1'], o, runSimulation);
    expect(code).toBe(EXIT.ok);
    const lines = o.out.split('\n');
    const header = lines.find((l) => l.startsWith('algorithm')) ?? '';
    for (const column of ['overhead', 'lost work', 'replayed msgs', 'domino depth', 'recovery ms', 'verdict']) expect(header).toContain(column);
    expect(lines.find((l) => l.startsWith('abs '))).toMatch(/ \d+ +\d+ +0 +\d+\.\d +0 +consistent$/);
    expect(lines.find((l) => l.startsWith('uncoordinated '))).toMatch(/ 520\.0 +0 +consistent$/);
    expect(lines.find((l) => l.startsWith('cic '))).toMatch(/consistent$/);
  });

  it('a sweep with a rollback algorithm has an overhead column that plot draws', () => {
    const o = io();
    const args = ['sweep', 'interval=50,100', 'seed=1..2', '--algorithms', 'abs,uncoordinated', '--scenario', FILE, '--csv', 'out.csv'];
    expect(runCli(args, o, runSimulation)).toBe(EXIT.ok);
    const csv = o.written['out.csv'] ?? '';
    const [header, ...rows] = csv.trimEnd().split('\n');
    const names = (header ?? '').split(',');
    expect(names).toContain('overhead_mean');
    expect(names).toContain('domino_depth_mean');
    expect(rows).toHaveLength(4);
    const depth = names.indexOf('domino_depth_mean');
    expect(rows.filter((r) => r.split(',')[1] === 'abs').map((r) => r.split(',')[depth])).toEqual(['0.000', '0.000']);
    const forced = names.indexOf('forced_checkpoints_mean');
    expect(rows.filter((r) => r.split(',')[1] === 'abs').map((r) => r.split(',')[forced])).toEqual(['-', '-']);
    expect(runCli(['plot', 'out.csv', '--y', 'overhead', '--svg', 'out.svg'], o, runSimulation)).toBe(EXIT.ok);
    expect(o.written['out.svg']).toContain('uncoordinated');
  });

  it('refuses non-FIFO channels as a usage error: a line counts messages per channel', () => {
    expect(() => runSimulation({ ...scenario, fifo: false }, { algorithm: 'cic', seed: 1 })).toThrow(/needs FIFO channels/);
    const o = io();
    expect(runCli(['run', '--topology', 'ring', '--processes', '3', '--algorithm', 'uncoordinated'], o, (s, opts) =>
      runSimulation({ ...s, fifo: false }, opts),
    )).toBe(EXIT.usage);
    expect(o.err).toContain('uncoordinated needs FIFO channels');
  });

  it("docs/simulator.md's table of figures is what compare prints", () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/simulator.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `([a-z-]+)` \| ([\d.]+) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|$/gm)].map((m) => m.slice(1).join(' '));
    const o = io();
    runCli(['compare', '--algorithms', 'abs,chandy-lamport,uncoordinated,cic', '--scenario', FILE, '--seed', '1'], o, runSimulation);
    const printed = o.out
      .split('\n')
      .filter((l) => /^(abs|chandy-lamport|uncoordinated|cic) /.test(l))
      .map((l) => l.split(/\s+/))
      .map((c) => [c[0], ...c.slice(6, 11)].join(' '));
    expect(documented).toEqual(printed);
  });

  it('a sweep of coordinated algorithms alone keeps its columns', () => {
    const o = io();
    expect(runCli(['sweep', 'interval=50,100', '--algorithms', 'abs', '--scenario', FILE], o, runSimulation)).toBe(EXIT.ok);
    expect(o.out.split('\n')[0]).not.toContain('overhead');
  });
});
