/** The command line of `npm run vopr`: exit codes, help, bad arguments, the output shapes. */
import { describe, expect, it } from 'vitest';
import { parseArgs, reproduceCommand } from '../../simulations/vopr/cli-args.js';
import { EXIT, runVopr, type RunSeed } from '../../simulations/vopr/cli-main.js';
import type { SeedResult } from '../../simulations/vopr/result.js';

function fake(failing: readonly number[]): RunSeed {
  return (seed) =>
    ({
      seed,
      steps: 10,
      simulatedMs: 1000,
      faults: 'none',
      violations: failing.includes(seed) ? [{ invariant: 'in-flight-limit', atMs: 5, detail: 'plan p1 has 2 checkpoints in flight' }] : [],
      traceTail: ['      5 something happened'],
      traceDigest: 'abcdef01',
      counts: { takes: 1 },
    }) satisfies SeedResult;
}

function run(argv: string[], failing: readonly number[] = []): { code: number; stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  const code = runVopr(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, fake(failing));
  return { code, stdout, stderr };
}

describe('vopr CLI', () => {
  it('--help prints the usage and exits 0', () => {
    const r = run(['--help']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toContain('Usage: npm run vopr');
    expect(r.stdout).toContain('--negative-control');
  });

  it('bad arguments exit 2 with a message naming the problem', () => {
    for (const [argv, words] of [
      [['--seeds', '0'], '--seeds must be'],
      [['--seeds', 'x'], '--seeds needs an integer'],
      [['--seed'], '--seed needs an integer'],
      [['--negative-control', 'nope'], '--negative-control needs one of'],
      [['--frobnicate'], 'unknown argument'],
    ] as const) {
      const r = run([...argv]);
      expect(r.code).toBe(EXIT.usage);
      expect(r.stderr).toContain(words);
      expect(r.stdout).toBe('');
    }
  });

  it('--seed alone runs that one seed; with --seeds it is the first of a range', () => {
    const one = parseArgs(['--seed', '42']);
    expect(one.ok && !one.help && [one.options.seedFirst, one.options.seeds]).toEqual([42, 1]);
    const range = parseArgs(['--seed', '42', '--seeds', '3']);
    expect(range.ok && !range.help && [range.options.seedFirst, range.options.seeds]).toEqual([42, 3]);
  });

  it('--json prints exactly one line with seeds, failures, steps, invariants and failed seeds, and exits 1 on a failure', () => {
    const r = run(['--seeds', '4', '--json'], [2, 4]);
    expect(r.code).toBe(EXIT.failures);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    const s = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(s).toMatchObject({ seeds: 4, failures: 2, steps: 40, failed_seeds: [2, 4] });
    expect(s['invariants']).toContain('no-plan-wedged');
    // The failure reports go to stderr, so stdout stays one JSON line.
    expect(r.stderr).toContain('FAILED seed 2');
  });

  it('a failure prints the seed, the command that reproduces it and the end of its trace', () => {
    const r = run(['--seed', '7', '--negative-control', 'send-once'], [7]);
    expect(r.code).toBe(EXIT.failures);
    expect(r.stdout).toContain('FAILED seed 7');
    expect(r.stdout).toContain(`reproduce: ${reproduceCommand(7, ['send-once'])}`);
    expect(r.stdout).toContain('something happened');
    expect(reproduceCommand(7, ['send-once'])).toBe('npm run vopr -- --seed 7 --negative-control send-once');
  });

  it('without failures the table says ok for every invariant and the exit code is 0', () => {
    const r = run(['--seeds', '3']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toMatch(/in-flight-limit\s+0\s+ok/);
    expect(r.stdout).not.toContain('FAILED');
  });
});
