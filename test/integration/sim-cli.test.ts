/**
 * The simulator CLI as a user runs it: a child process over the real engine. Pins the acceptance
 * criteria of the simulator (deterministic JSON, `none` is the only algorithm with violations on the
 * random cyclic graph, the SVG file, usage errors exit 2).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const scenariosDir = join(root, 'simulations', 'scenarios');

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function sim(...args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'simulations/cli.ts', ...args],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') return reject(err);
        resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'sim-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('sim CLI (child process, real engine)', () => {
  it('run --json on a shipped scenario twice gives byte-identical JSON with the required fields', async () => {
    const args = ['run', '--scenario', 'simulations/scenarios/diamond-slow-edge.json', '--algorithm', 'abs', '--seed', '1', '--json'];
    const [first, second] = await Promise.all([sim(...args), sim(...args)]);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(second.stdout);
    const json = JSON.parse(first.stdout);
    expect(json).toMatchObject({ scenario: 'diamond-slow-edge', algorithm: 'abs', seed: 1, consistent: true, violations: [] });
    expect(json.trace).toBeUndefined();
    expect(typeof json.metrics.checkpointsCompleted).toBe('number');
    expect(json.checkpoints.length).toBeGreaterThan(0);
    for (const c of json.checkpoints) {
      expect(c).toEqual(
        expect.objectContaining({
          id: expect.any(Number),
          completed: expect.any(Boolean),
          durationMs: expect.any(Number),
          channelStateMessages: expect.any(Number),
          channelStateBytes: expect.any(Number),
        }),
      );
    }
  });

  it('every shipped scenario runs under abs with --json and gives valid JSON', async () => {
    const files = readdirSync(scenariosDir).filter((f) => f.endsWith('.json'));
    const outcomes = await Promise.all(files.map((f) => sim('run', '--scenario', join('simulations/scenarios', f), '--algorithm', 'abs', '--json')));
    outcomes.forEach((o, i) => {
      expect(o.code, `${files[i]}: ${o.stderr}`).toBeLessThanOrEqual(1);
      const json = JSON.parse(o.stdout);
      expect(typeof json.consistent).toBe('boolean');
      expect(Array.isArray(json.violations)).toBe(true);
      // Exit code and verdict agree.
      expect(o.code).toBe(json.consistent && json.violations.length === 0 ? 0 : 1);
    });
  });

  it('compare on the random cyclic graph of 12 shows violations for none and only for none', async () => {
    const args = ['--topology', 'random-cyclic', '--processes', '12', '--algorithms', 'chandy-lamport,abs,sync,none', '--seed', '7'];
    const text = await sim('compare', ...args);
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n')[0]).toBe('seed: 7');
    for (const algorithm of ['chandy-lamport', 'abs', 'sync']) {
      expect(text.stdout).toMatch(new RegExp(`\\n${algorithm}\\s.*\\s0\\s+consistent\\n`));
    }
    expect(text.stdout).toMatch(/\nnone\s.*\s[1-9]\d*\s+VIOLATIONS\n/);

    const json = await sim('compare', ...args, '--json');
    const rows = JSON.parse(json.stdout) as { algorithm: string; violations: unknown[] }[];
    expect(rows.map((r) => [r.algorithm, r.violations.length > 0])).toEqual([
      ['chandy-lamport', false],
      ['abs', false],
      ['sync', false],
      ['none', true],
    ]);
  });

  it('run prints the seed first and, on violations, exits 1 with the command that reproduces the run', async () => {
    const o = await sim('run', '--topology', 'ring', '--processes', '4', '--algorithm', 'none', '--seed', '3');
    expect(o.code).toBe(1);
    expect(o.stdout.split('\n')[0]).toBe('seed: 3');
    const reproduce = 'npm run sim -- run --topology ring --processes 4 --algorithm none --seed 3';
    expect(o.stdout).toContain(`reproduce: ${reproduce}`);
    // The printed command really reproduces the run.
    const again = await sim('run', '--topology', 'ring', '--processes', '4', '--algorithm', 'none', '--seed', '3');
    expect(again.stdout).toBe(o.stdout);
  });

  it('--svg writes a space-time diagram file that starts with <svg', async () => {
    const file = join(tmp, 'crash.svg');
    const o = await sim('run', '--scenario', 'simulations/scenarios/crash-recover.json', '--algorithm', 'chandy-lamport', '--svg', file);
    expect(o.code).toBe(0);
    const svg = readFileSync(file, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('class="cut"');
    expect(svg).toContain('class="barrier"');
    expect(svg).toContain('class="crash"');
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('sweep prints CSV on stdout with a row per value', async () => {
    const o = await sim('sweep', 'skew=1..3', '--scenario', 'simulations/scenarios/diamond-slow-edge.json', '--algorithms', 'abs,chandy-lamport');
    expect(o.code).toBe(0);
    const lines = o.stdout.trimEnd().split('\n');
    expect(lines[0]!.startsWith('skew,algorithm,completed,')).toBe(true);
    expect(lines.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual([
      '1,abs',
      '1,chandy-lamport',
      '2,abs',
      '2,chandy-lamport',
      '3,abs',
      '3,chandy-lamport',
    ]);
    expect(o.stderr).toContain('sweep: 6/6 runs done');
  });

  it.each(['diamond-slow-edge', 'crash-recover'])('--trace writes every event of %s: as many sends, deliveries and barriers as the run counted', async (name) => {
    const file = join(tmp, `${name}.jsonl`);
    const o = await sim('run', '--scenario', `simulations/scenarios/${name}.json`, '--algorithm', 'chandy-lamport', '--json', '--trace', file);
    expect(o.code).toBe(0);
    const m = JSON.parse(o.stdout).metrics as { messagesSent: number; messagesDelivered: number; barriersSent: number; checkpointsTriggered: number };
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string; t: number });
    const count = (kind: string): number => lines.filter((l) => l.kind === kind).length;
    expect(lines[0]!.kind).toBe('run');
    expect(count('send')).toBe(m.messagesSent);
    // A restore delivers the channel state again: the replays are deliveries too.
    expect(count('deliver') + count('replay')).toBe(m.messagesDelivered);
    expect(count('replay') > 0).toBe(name === 'crash-recover');
    expect(count('barrier-send')).toBe(m.barriersSent);
    expect(count('trigger')).toBe(m.checkpointsTriggered);
    const times = lines.slice(1).map((l) => l.t);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('--svg-from, --svg-to and --svg-processes narrow the diagram; a wrong process lists the right ones', async () => {
    const file = join(tmp, 'window.svg');
    const o = await sim('run', '--topology', 'ring', '--processes', '6', '--svg', file, '--svg-from', '100', '--svg-to', '200', '--svg-processes', 'p0,p1,p2');
    expect(o.code).toBe(0);
    const svg = readFileSync(file, 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" viewBox=/);
    expect(svg.match(/class="process-line"/g)).toHaveLength(3);
    expect(svg).toContain('window 100..200 ms');
    const bad = await sim('run', '--topology', 'ring', '--processes', '3', '--svg', file, '--svg-processes', 'p7');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('(processes: p0, p1, p2)');
  });

  it('sweep of two parameters with seeds to --csv, then plot: the documented pipeline, byte-identical when repeated', async () => {
    const csv = join(tmp, 'sweep.csv');
    const out = join(tmp, 'plot.svg');
    const o = await sim('sweep', 'processes=4..8:4', 'seed=1..3', '--algorithms', 'abs,chandy-lamport', '--csv', csv);
    expect(o.code).toBe(0);
    expect(o.stdout).toBe('');
    const rows = readFileSync(csv, 'utf8').trimEnd().split('\n');
    expect(rows[0]!.startsWith('processes,algorithm,seeds,runs,consistent_runs,completed_mean,completed_ci95_low,completed_ci95_high,')).toBe(true);
    expect(rows.slice(1).map((r) => r.split(',').slice(0, 5).join(','))).toEqual([
      '4,abs,1 2 3,3,3',
      '4,chandy-lamport,1 2 3,3,3',
      '8,abs,1 2 3,3,3',
      '8,chandy-lamport,1 2 3,3,3',
    ]);
    const p = await sim('plot', csv, '--y', 'mean_duration_ms', '--svg', out);
    expect(p.code).toBe(0);
    const svg = readFileSync(out, 'utf8');
    expect(svg.match(/<g class="series"/g)).toHaveLength(2);
    expect(svg.match(/class="error-bar"/g)).toHaveLength(4);
    const again = await sim('plot', csv, '--y', 'mean_duration_ms', '--svg', join(tmp, 'plot2.svg'));
    expect(again.code).toBe(0);
    expect(readFileSync(join(tmp, 'plot2.svg'), 'utf8')).toBe(svg);
  });

  it.each<[string, string[], string]>([
    ['an unknown flag', ['run', '--topology', 'ring', '--processes', '3', '--colour'], "Unknown option '--colour'"],
    ['a bad seed', ['run', '--topology', 'ring', '--processes', '3', '--seed', 'abc'], '--seed must be an integer'],
    ['an unknown algorithm', ['compare', '--topology', 'ring', '--processes', '3', '--algorithms', 'abs,paxos'], 'unknown algorithm "paxos"'],
    ['a missing scenario file', ['run', '--scenario', 'simulations/scenarios/nope.json'], 'cannot read scenario file simulations/scenarios/nope.json'],
    ['an unknown command', ['simulate'], 'unknown command "simulate"'],
  ])('%s exits 2 with a message on stderr and nothing on stdout', async (_what, args, message) => {
    const o = await sim(...args);
    expect(o.code).toBe(2);
    expect(o.stderr).toContain(message);
    expect(o.stdout).toBe('');
  });

  it('--help works overall and on every command', async () => {
    const outcomes = await Promise.all([sim('--help'), sim('run', '--help'), sim('compare', '--help'), sim('sweep', '--help'), sim('plot', '--help')]);
    for (const o of outcomes) {
      expect(o.code).toBe(0);
      expect(o.stdout).toContain('Usage: npm run sim --');
    }
  });
});
