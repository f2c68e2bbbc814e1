/**
 * Liveness in the simulator's verdict (DESIGN invariant 5: with no failures every triggered checkpoint
 * completes). The real engine runs a ring whose checkpoint timeout (5 ms) is shorter than one hop
 * (10 ms), so every checkpoint times out: without faults that fails the run like an inconsistent cut;
 * with a crash in the scenario an abort is allowed and the run passes on safety alone.
 */
import { describe, expect, it } from 'vitest';
import { HELP } from '../../simulations/cli-args.js';
import { EXIT, runCli, type CliIo } from '../../simulations/cli-main.js';
import { runSimulation } from '../../simulations/engine.js';
import { LIVENESS_VIOLATION, type Scenario } from '../../simulations/types.js';

const timingOut: Scenario = {
  name: 'ring-timing-out',
  topology: { kind: 'ring', processes: 3 },
  workload: { kind: 'tokens', initialTokens: 100, sendIntervalMs: 5 },
  delays: { kind: 'fixed', ms: 10 },
  checkpoints: { firstAtMs: 50, intervalMs: 100, timeoutMs: 5 },
  durationMs: 400,
};
const timingOutWithCrash: Scenario = { ...timingOut, name: 'ring-timing-out-crash', faults: [{ kind: 'crash', process: 'p1', atMs: 300 }] };

function memoryIo(files: Record<string, string>): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: (t: string) => {
      io.out += t;
    },
    stderr: (t: string) => {
      io.err += t;
    },
    color: false,
    stderrIsTTY: false,
    readFile: (path: string) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file, open '${path}'`);
      return text;
    },
    writeFile: () => {},
  };
  return io;
}

const files = { 'timing-out.json': JSON.stringify(timingOut), 'timing-out-crash.json': JSON.stringify(timingOutWithCrash) };

describe('simulator liveness (invariant 5)', () => {
  it('engine: a run without faults reports each checkpoint that did not complete as a liveness violation, and stays consistent', () => {
    const r = runSimulation(timingOut, { algorithm: 'abs', seed: 1 });
    expect(r.metrics.checkpointsTriggered).toBeGreaterThan(0);
    expect(r.metrics.checkpointsCompleted).toBe(0);
    expect(r.consistent).toBe(true);
    expect(r.violations.map((v) => [v.checkpointId, v.kind])).toEqual(r.checkpoints.map((c) => [c.id, LIVENESS_VIOLATION]));
    expect(r.violations[0]!.message).toMatch(/^did not complete in a run without faults \(timeout: /);
  });

  it('engine: a run with a fault may abort checkpoints without a liveness violation', () => {
    const r = runSimulation(timingOutWithCrash, { algorithm: 'abs', seed: 1 });
    expect(r.metrics.checkpointsAborted).toBeGreaterThan(0);
    expect(r.violations.filter((v) => v.kind === LIVENESS_VIOLATION)).toEqual([]);
  });

  it('run without faults: checkpoints that time out fail the verdict, exit 1 and print the reproduce command', () => {
    const io = memoryIo(files);
    expect(runCli(['run', '--scenario', 'timing-out.json', '--seed', '2'], io, runSimulation)).toBe(EXIT.violations);
    expect(io.out).toMatch(/\nverdict: VIOLATIONS \(\d+ found: \d+ liveness, checkpoints that did not complete in a run without faults\)\n/);
    expect(io.out).toMatch(/\n {2}checkpoint 1 \[liveness\]: did not complete in a run without faults \(timeout: /);
    expect(io.out).toContain('reproduce: npm run sim -- run --scenario timing-out.json --algorithm abs --seed 2\n');
  });

  it('run --json without faults: the liveness violations are listed, the verdict says VIOLATIONS, exit 1', () => {
    const io = memoryIo(files);
    expect(runCli(['run', '--scenario', 'timing-out.json', '--json'], io, runSimulation)).toBe(EXIT.violations);
    const json = JSON.parse(io.out) as { verdict: string; consistent: boolean; violations: { kind: string }[]; checkpoints: unknown[] };
    expect(json.verdict).toBe('VIOLATIONS');
    expect(json.consistent).toBe(true);
    expect(json.violations.length).toBe(json.checkpoints.length);
    expect(new Set(json.violations.map((v) => v.kind))).toEqual(new Set([LIVENESS_VIOLATION]));
    expect(io.err).toContain('violations found; reproduce with: npm run sim -- run --scenario timing-out.json --algorithm abs --seed 1\n');
  });

  it('run with a fault: the same timeouts are allowed aborts, the verdict is consistent and the exit 0', () => {
    const io = memoryIo(files);
    expect(runCli(['run', '--scenario', 'timing-out-crash.json'], io, runSimulation)).toBe(EXIT.ok);
    expect(io.out).toMatch(/ aborted; /);
    expect(io.out).toContain('verdict: consistent');
    expect(io.out).not.toContain('reproduce');
  });

  it('compare and sweep show the liveness failure in their verdict and violation columns', () => {
    const compare = memoryIo(files);
    expect(runCli(['compare', '--scenario', 'timing-out.json', '--algorithms', 'abs'], compare, runSimulation)).toBe(EXIT.ok);
    expect(compare.out).toMatch(/\nabs\s.*VIOLATIONS\n/);
    expect(compare.out).toContain('abs: npm run sim -- run --scenario timing-out.json --algorithm abs --seed 1');

    const sweep = memoryIo(files);
    expect(runCli(['sweep', 'seed=1..2', '--scenario', 'timing-out.json', '--per-run'], sweep, runSimulation)).toBe(EXIT.ok);
    // completed 0, ..., consistent false, triggered, violations, the other metrics, then the seed.
    expect(sweep.out.trimEnd().split('\n').slice(1)).toEqual([expect.stringMatching(/^abs,0,.*,false,\d+,[1-9]\d*,.*,1$/), expect.stringMatching(/^abs,0,.*,false,\d+,[1-9]\d*,.*,2$/)]);
    expect(sweep.err).toContain('violations at abs seed=1: npm run sim -- run --scenario timing-out.json --algorithm abs --seed 1');

    // With the seeds as replicates, neither run counts as consistent.
    const aggregated = memoryIo(files);
    runCli(['sweep', 'seed=1..2', '--scenario', 'timing-out.json'], aggregated, runSimulation);
    expect(aggregated.out.trimEnd().split('\n')[1]).toMatch(/^abs,1 2,2,0,/);
  });

  it('--help says that a checkpoint left incomplete without faults exits 1', () => {
    for (const text of [HELP.main, HELP.run]) {
      expect(text).toContain('1  violations found by run: an inconsistent cut or an illegal recovery (safety), or a checkpoint\n');
      expect(text).toContain('that did not complete in a run without faults (liveness)');
    }
  });
});
