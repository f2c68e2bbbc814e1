/**
 * The simulator CLI in memory: argument rules, sweep ranges, and the commands over a fake simulator
 * that returns hand-made results (the real engine is exercised by test/integration/sim-cli.test.ts).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommandLine, reproduceCommand, SWEEP_TOPOLOGY_DEFAULT, type CommonOptions } from '../../simulations/cli-args.js';
import { EXIT, InternalError, runCli, type CliIo, type Simulate } from '../../simulations/cli-main.js';
import { SimulationError } from '../../simulations/engine.js';
import { defaultSlowChannel, paramSpec, parseSweep } from '../../simulations/params.js';
import { scenarioForTopology, validateScenario } from '../../simulations/scenario-file.js';
import { buildTopology } from '../../simulations/topology.js';
import type { RunOptions, Scenario } from '../../simulations/types.js';
import { metrics, simResult } from '../fixtures/sim-result.js';

function errorOf(argv: string[]): string {
  const parsed = parseCommandLine(argv);
  if (parsed.ok) throw new Error(`expected a usage error for ${argv.join(' ')}`);
  return parsed.error;
}

describe('sim CLI arguments', () => {
  it('with no arguments or --help prints the overall help', () => {
    for (const argv of [[], ['--help'], ['-h'], ['help']]) {
      const parsed = parseCommandLine(argv);
      expect(parsed.ok && parsed.value.kind === 'help' && parsed.value.text.includes('Commands:')).toBe(true);
    }
  });

  it.each(['run', 'compare', 'sweep'])('%s --help prints that command help even without a scenario', (cmd) => {
    const parsed = parseCommandLine([cmd, '--help']);
    expect(parsed.ok && parsed.value.kind === 'help' && parsed.value.text.startsWith(`Usage: npm run sim -- ${cmd}`)).toBe(true);
  });

  it.each<[string, string[], string]>([
    ['an unknown command', ['launch'], 'unknown command "launch"'],
    ['an unknown flag', ['run', '--topology', 'ring', '--processes', '3', '--sed', '2'], "Unknown option '--sed'"],
    ['a flag of another command', ['run', '--topology', 'ring', '--processes', '3', '--algorithms', 'abs'], "Unknown option '--algorithms'"],
    ['a positional argument to run', ['run', 'extra', '--topology', 'ring', '--processes', '3'], 'extra'],
    ['no scenario at all', ['run'], 'say what to simulate'],
    ['both a file and a topology', ['run', '--scenario', 'x.json', '--topology', 'ring', '--processes', '3'], 'not both'],
    ['a topology without a size', ['run', '--topology', 'ring'], '--topology needs --processes N'],
    ['an unknown topology', ['run', '--topology', 'star', '--processes', '3'], 'unknown --topology "star"'],
    ['a size that is not a number', ['run', '--topology', 'ring', '--processes', 'many'], '--processes must be a positive integer, got "many"'],
    ['--processes with a scenario file', ['run', '--scenario', 'x.json', '--processes', '3'], '--processes goes with --topology'],
    ['a negative seed', ['run', '--topology', 'ring', '--processes', '3', '--seed=-1'], '--seed must be an integer from 0 to 4294967295'],
    ['a seed too large for the PRNG', ['run', '--topology', 'ring', '--processes', '3', '--seed', '4294967296'], '--seed must be an integer'],
    ['a fractional seed', ['run', '--topology', 'ring', '--processes', '3', '--seed', '1.5'], '--seed must be an integer'],
    ['an unknown algorithm', ['run', '--topology', 'ring', '--processes', '3', '--algorithm', 'paxos'], 'unknown algorithm "paxos"'],
    ['an algorithm listed twice', ['compare', '--topology', 'ring', '--processes', '3', '--algorithms', 'abs,abs'], 'lists abs twice'],
    ['an empty algorithm entry', ['compare', '--topology', 'ring', '--processes', '3', '--algorithms', 'abs,'], 'empty entry'],
    ['an unknown --set parameter', ['run', '--topology', 'ring', '--processes', '3', '--set', 'speed=2'], '--set: unknown parameter "speed"'],
    ['the seed given by --set', ['run', '--topology', 'ring', '--processes', '3', '--set', 'seed=2'], 'the seed is --seed'],
    ['a --set without a value', ['run', '--topology', 'ring', '--processes', '3', '--set', 'skew'], '--set expects PARAM=VALUE'],
    ['a --set with a bad value', ['run', '--topology', 'ring', '--processes', '3', '--set', 'skew=0'], 'skew must be a number > 0, got "0"'],
    ['a sweep without a range', ['sweep', '--topology', 'ring', '--processes', '3'], 'sweep needs PARAM=FROM..TO'],
    ['a sweep naming a parameter twice', ['sweep', 'skew=1..2', 'skew=3..4', '--topology', 'ring', '--processes', '3'], 'sweep names skew twice'],
    ['a sweep of too many runs', ['sweep', 'skew=1..1000', 'seed=1..30', '--topology', 'ring', '--processes', '3'], 'sweep would start 30000 runs; at most 20000'],
    ['a --set of any swept parameter', ['sweep', 'skew=1..2', 'interval=5..6', '--set', 'interval=3', '--topology', 'ring', '--processes', '3'], '--set interval=... conflicts'],
    ['--csv without a file', ['sweep', 'skew=1..2', '--csv=', '--topology', 'ring', '--processes', '3'], '--csv needs a file name'],
    ['--svg-from without --svg', ['run', '--topology', 'ring', '--processes', '3', '--svg-from', '10'], 'add --svg FILE'],
    ['a window that ends before it starts', ['run', '--topology', 'ring', '--processes', '3', '--svg', 'x.svg', '--svg-from', '10', '--svg-to', '5'], '--svg-to (5) must be after --svg-from (10)'],
    ['a negative window start', ['run', '--topology', 'ring', '--processes', '3', '--svg', 'x.svg', '--svg-from=-1'], '--svg-from must be a time in ms >= 0, got "-1"'],
    ['an empty process in --svg-processes', ['run', '--topology', 'ring', '--processes', '3', '--svg', 'x.svg', '--svg-processes', 'p0,'], 'empty entry'],
    ['--trace without a file', ['run', '--topology', 'ring', '--processes', '3', '--trace='], '--trace needs a file name'],
    ['plot without a CSV', ['plot', '--y', 'completed', '--svg', 'o.svg'], 'plot needs a sweep CSV file'],
    ['plot without --y', ['plot', 'out.csv', '--svg', 'o.svg'], 'plot needs --y METRIC'],
    ['plot without --svg', ['plot', 'out.csv', '--y', 'completed'], 'plot needs --svg OUT.svg'],
    ['a sweep of an unknown parameter', ['sweep', 'speed=1..2', '--topology', 'ring', '--processes', '3'], 'unknown sweep parameter "speed"'],
    ['a sweep and a --set of the same parameter', ['sweep', 'skew=1..2', '--set', 'skew=3', '--topology', 'ring', '--processes', '3'], 'conflicts'],
    ['--json on a sweep, whose output is CSV', ['sweep', 'skew=1..2', '--json', '--topology', 'ring', '--processes', '3'], "Unknown option '--json'"],
  ])('%s is a usage error naming the problem', (_what, argv, message) => {
    expect(errorOf(argv)).toContain(message);
  });

  it('run defaults to abs and seed 1', () => {
    const parsed = parseCommandLine(['run', '--topology', 'ring', '--processes', '4']);
    expect(parsed).toEqual({
      ok: true,
      value: {
        kind: 'run',
        common: { source: { kind: 'topology', topology: 'ring', processes: 4 }, seed: 1, sets: [] },
        algorithm: 'abs',
        json: false,
      },
    });
  });

  it('a sweep of processes needs no --processes, and without a scenario takes the default topology', () => {
    const defaulted = parseCommandLine(['sweep', 'processes=2..12', '--algorithms', 'abs,chandy-lamport']);
    expect(defaulted.ok && defaulted.value.kind === 'sweep' && defaulted.value.common.source).toEqual({
      kind: 'topology',
      topology: SWEEP_TOPOLOGY_DEFAULT,
      processes: 12,
      topologyDefaulted: true,
    });
    const chosen = parseCommandLine(['sweep', 'processes=2..5', '--topology', 'ring']);
    expect(chosen.ok && chosen.value.kind === 'sweep' && chosen.value.common.source).toEqual({ kind: 'topology', topology: 'ring', processes: 5 });
  });

  it.each<[string, string[], string]>([
    ['a sweep of another parameter', ['sweep', 'skew=1..2'], 'say what to simulate'],
    ['a sweep of processes with --processes but no topology', ['sweep', 'processes=2..4', '--processes', '3'], '--processes conflicts with sweeping processes'],
    ['a sweep of processes with a scenario file and --processes', ['sweep', 'processes=2..4', '--scenario', 'x.json', '--processes', '3'], '--processes goes with --topology'],
  ])('only a sweep of processes may leave out the scenario: %s is still a usage error', (_what, argv, message) => {
    expect(errorOf(argv)).toContain(message);
  });

  it('compare defaults to every algorithm', () => {
    const parsed = parseCommandLine(['compare', '--scenario', 'x.json']);
    expect(parsed.ok && parsed.value.kind === 'compare' && parsed.value.algorithms).toEqual([
      'chandy-lamport',
      'abs',
      'abs-timeout',
      'sync',
      'none',
    ]);
  });
});

describe('sweep ranges', () => {
  const values = (text: string): readonly number[] => {
    const parsed = parseSweep(text);
    if (!parsed.ok) throw new Error(parsed.error);
    return parsed.value.values;
  };

  it('FROM..TO is inclusive with a step of one', () => {
    expect(values('processes=2..5')).toEqual([2, 3, 4, 5]);
  });

  it('a decimal step does not drift', () => {
    expect(values('skew=1..1.5:0.1')).toEqual([1, 1.1, 1.2, 1.3, 1.4, 1.5]);
  });

  it('a step that does not divide the range stops at or before TO', () => {
    expect(values('interval=50..200:40')).toEqual([50, 90, 130, 170]);
  });

  it('a comma list gives exactly those values', () => {
    expect(values('skew=1,2,4,8')).toEqual([1, 2, 4, 8]);
  });

  it.each<[string, string]>([
    ['processes=5..2', 'must go up'],
    ['processes=2..5:0.5', 'sweep step must be an integer > 0'],
    ['processes=1..5', 'processes must be an integer >= 2, got "1"'],
    ['skew=1..2:0', 'sweep step must be a number > 0'],
    ['skew=1..2..3', 'sweep expects'],
    ['seed=0..100000', 'at most 1000 are allowed'],
    ['interval=', 'interval must be a number > 0, got ""'],
    ['=1..2', 'sweep expects PARAM=FROM..TO'],
  ])('%s is rejected: %s', (text, message) => {
    const parsed = parseSweep(text);
    expect(parsed.ok ? '' : parsed.error).toContain(message);
  });

  it('skew on a scenario without a slow channel slows the first input of the busiest process', () => {
    const graph = {
      processes: ['a', 'b', 'c', 'd'],
      channels: [
        { id: 'a->b', from: 'a', to: 'b' },
        { id: 'a->d', from: 'a', to: 'd' },
        { id: 'c->d', from: 'c', to: 'd' },
      ],
    };
    expect(defaultSlowChannel(graph)).toBe('a->d');
  });
});

describe('reproduce commands', () => {
  it('repeat the source, the settings, the algorithm and the seed', () => {
    const common: CommonOptions = {
      source: { kind: 'topology', topology: 'ring', processes: 5 },
      seed: 9,
      sets: [{ param: paramSpec('skew')!, value: 2.5 }],
    };
    expect(reproduceCommand(common, 'none', 9)).toBe(
      'npm run sim -- run --topology ring --processes 5 --set skew=2.5 --algorithm none --seed 9',
    );
  });

  it('--overtaking is parsed, reproduced, and refused with a scenario of non-FIFO channels', () => {
    const parsed = parseCommandLine(['run', '--topology', 'ring', '--processes', '4', '--overtaking', '--algorithm', 'chandy-lamport']);
    expect(parsed.ok && parsed.value.kind === 'run' && parsed.value.common.overtaking).toBe(true);
    if (!parsed.ok || parsed.value.kind !== 'run') return;
    expect(reproduceCommand(parsed.value.common, 'chandy-lamport', 1)).toBe(
      'npm run sim -- run --topology ring --processes 4 --overtaking --algorithm chandy-lamport --seed 1',
    );
    const nonFifo = JSON.stringify({ ...scenarioForTopology('ring', 4), fifo: false, overtaking: true });
    expect(validateScenario(JSON.parse(nonFifo) as unknown, 'f.json')).toEqual({ ok: false, error: [expect.stringContaining('overtaking needs FIFO channels')] });
  });

  it('quote file names that a shell would split', () => {
    const common: CommonOptions = { source: { kind: 'file', path: "my scenarios/it's.json" }, seed: 1, sets: [] };
    expect(reproduceCommand(common, 'abs', 1)).toContain(`--scenario 'my scenarios/it'\\''s.json'`);
  });
});

/** In-memory I/O: files are a map, output is collected. */
function memoryIo(files: Record<string, string> = {}): CliIo & { out: string; err: string; written: Record<string, string> } {
  const io = {
    out: '',
    err: '',
    written: {} as Record<string, string>,
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
    writeFile: (path: string, text: string) => {
      io.written[path] = text;
    },
  };
  return io;
}

/** A simulator that returns the fixture, marking `none` as violating, and records what it was asked. */
function fakeSimulate(calls: { scenario: Scenario; options: RunOptions }[] = []): Simulate {
  return (scenario, options) => {
    calls.push({ scenario, options });
    const bad = options.algorithm === 'none';
    return simResult({
      scenario: scenario.name,
      algorithm: options.algorithm,
      seed: options.seed,
      consistent: !bad,
      violations: bad ? [{ checkpointId: 1, kind: 'orphan', channel: 'a->b', message: 'orphan' }] : [],
      ...(options.trace ? {} : { trace: undefined }),
    });
  };
}

describe('sim CLI commands (fake simulator)', () => {
  const ring = ['--topology', 'ring', '--processes', '3'];

  it('run prints the seed on the first line, then the table, and exits 0 when consistent', () => {
    const io = memoryIo();
    expect(runCli(['run', ...ring, '--seed', '5'], io, fakeSimulate())).toBe(EXIT.ok);
    expect(io.out.split('\n')[0]).toBe('seed: 5');
    expect(io.out).toContain('verdict: consistent');
    expect(io.out).not.toContain('reproduce');
  });

  it('run exits 1 on violations and prints the command that reproduces the run', () => {
    const io = memoryIo();
    expect(runCli(['run', ...ring, '--algorithm', 'none', '--seed', '3'], io, fakeSimulate())).toBe(EXIT.violations);
    expect(io.out).toContain('reproduce: npm run sim -- run --topology ring --processes 3 --algorithm none --seed 3\n');
  });

  it('run --json prints exactly one JSON object without the trace', () => {
    const io = memoryIo();
    runCli(['run', ...ring, '--json', '--svg', 'out.svg'], io, fakeSimulate());
    const json = JSON.parse(io.out);
    expect(Object.keys(json)).toEqual(
      expect.arrayContaining(['consistent', 'violations', 'checkpoints', 'metrics', 'seed', 'algorithm', 'scenario']),
    );
    expect(json.trace).toBeUndefined();
    expect(json.scenarioSpec.topology).toEqual({ kind: 'ring', processes: 3 });
  });

  it('run --svg asks for a trace and writes the diagram', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    runCli(['run', ...ring, '--svg', 'out.svg'], io, fakeSimulate(calls));
    expect(calls[0]!.options.trace).toBe(true);
    expect(io.written['out.svg']!.startsWith('<svg')).toBe(true);
  });

  it('run --set changes the scenario before it is simulated', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    runCli(['run', ...ring, '--set', 'interval=40', '--set', 'processes=6'], memoryIo(), fakeSimulate(calls));
    expect(calls[0]!.scenario.checkpoints.intervalMs).toBe(40);
    expect(calls[0]!.scenario.topology).toEqual({ kind: 'ring', processes: 6 });
    expect(calls[0]!.scenario.name).toBe('ring-6');
  });

  it('an unreadable scenario file is a usage error naming the file', () => {
    const io = memoryIo();
    expect(runCli(['run', '--scenario', 'missing.json'], io, fakeSimulate())).toBe(EXIT.usage);
    expect(io.err).toContain('cannot read scenario file missing.json');
    expect(io.out).toBe('');
  });

  it('an invalid scenario file is a usage error listing its problems', () => {
    const io = memoryIo({ 'bad.json': JSON.stringify({ ...scenarioForTopology('ring', 3), durationMs: 0 }) });
    expect(runCli(['run', '--scenario', 'bad.json'], io, fakeSimulate())).toBe(EXIT.usage);
    expect(io.err).toContain('bad.json: durationMs must be a number > 0, got 0');
  });

  it('a scenario the engine refuses is a usage error; any other engine failure carries the reproduce command', () => {
    const io = memoryIo();
    const refusing: Simulate = () => {
      throw new SimulationError('fault names unknown process q');
    };
    expect(runCli(['run', ...ring], io, refusing)).toBe(EXIT.usage);
    expect(io.err).toContain('the scenario cannot be simulated: fault names unknown process q');

    const broken: Simulate = () => {
      throw new Error('assertion failed');
    };
    expect(() => runCli(['run', ...ring, '--seed', '4'], memoryIo(), broken)).toThrow(InternalError);
    try {
      runCli(['run', ...ring, '--seed', '4'], memoryIo(), broken);
    } catch (err) {
      expect((err as InternalError).reproduce).toBe('npm run sim -- run --topology ring --processes 3 --algorithm abs --seed 4');
    }
  });

  it('compare runs every algorithm on the same scenario and seed and exits 0 despite violations', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    expect(runCli(['compare', ...ring, '--algorithms', 'abs,none', '--seed', '7'], io, fakeSimulate(calls))).toBe(EXIT.ok);
    expect(calls.map((c) => [c.options.algorithm, c.options.seed])).toEqual([
      ['abs', 7],
      ['none', 7],
    ]);
    expect(calls[0]!.scenario).toBe(calls[1]!.scenario);
    expect(io.out).toMatch(/\nabs\s.*consistent\n/);
    expect(io.out).toMatch(/\nnone\s.*VIOLATIONS\n/);
    expect(io.out).toContain('none: npm run sim -- run --topology ring --processes 3 --algorithm none --seed 7');
  });

  it('compare --json prints an array with one object per algorithm', () => {
    const io = memoryIo();
    runCli(['compare', ...ring, '--algorithms', 'abs,none', '--json'], io, fakeSimulate());
    const json = JSON.parse(io.out);
    expect(json.map((r: { algorithm: string; consistent: boolean }) => [r.algorithm, r.consistent])).toEqual([
      ['abs', true],
      ['none', false],
    ]);
  });

  it('sweep prints a CSV header and one row per value and algorithm, and progress on stderr', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    expect(runCli(['sweep', 'interval=50..80:10', ...ring, '--algorithms', 'abs,none'], io, fakeSimulate(calls))).toBe(EXIT.ok);
    const lines = io.out.trimEnd().split('\n');
    // The curated columns in their old places, then the engine's other metrics by name, then the seed.
    expect(lines[0]).toBe(
      'interval,algorithm,completed,mean_duration_ms,channel_state_msgs,buffered_msgs,max_stall_ms,throughput_msgs_per_s,consistent,triggered,violations,' +
        'events,messages_sent,messages_delivered,barriers_sent,checkpoints_aborted,recoveries,seed',
    );
    expect(lines).toHaveLength(1 + 4 * 2);
    expect(lines[1]).toBe('50,abs,1,6.000,1,0,0.000,100.0,true,2,0,42,3,2,3,1,1,1');
    expect(lines[2]).toMatch(/^50,none,.*,false,2,1,42,3,2,3,1,1,1$/);
    expect(calls.map((c) => c.scenario.checkpoints.intervalMs)).toEqual([50, 50, 60, 60, 70, 70, 80, 80]);
    expect(io.err).toContain('sweep: 8/8 runs done');
    expect(io.err).not.toContain('\r');
  });

  it('sweep progress rewrites one line on a terminal', () => {
    const io = { ...memoryIo(), stderrIsTTY: true };
    let err = '';
    runCli(['sweep', 'seed=1..4', ...ring], { ...io, stderr: (t) => (err += t) }, fakeSimulate());
    expect(err.startsWith('\r')).toBe(true);
    expect(err).toMatch(/\rsweep: 4\/4 runs done *\n$/);
  });

  it('sweep of the seed changes the run seed, not the scenario', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    runCli(['sweep', 'seed=3..5', ...ring], memoryIo(), fakeSimulate(calls));
    expect(calls.map((c) => c.options.seed)).toEqual([3, 4, 5]);
  });

  it('sweep validates every point before running any', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    expect(runCli(['sweep', 'processes=2..5', '--topology', 'diamond', '--processes', '4'], io, fakeSimulate(calls))).toBe(EXIT.usage);
    expect(calls).toHaveLength(0);
    expect(io.err).toContain('topology.processes must be an integer >= 4, got 2');
  });

  it('sweep of processes on an explicit topology is a usage error', () => {
    const file = JSON.stringify({
      name: 'two',
      topology: { kind: 'explicit', processes: ['a', 'b'], channels: [['a', 'b']] },
      workload: { kind: 'counting', sendIntervalMs: 1 },
      delays: { kind: 'fixed', ms: 1 },
      checkpoints: { firstAtMs: 1, intervalMs: 10, timeoutMs: 100 },
      durationMs: 50,
    });
    const io = memoryIo({ 'two.json': file });
    expect(runCli(['sweep', 'processes=2..3', '--scenario', 'two.json'], io, fakeSimulate())).toBe(EXIT.usage);
    expect(io.err).toContain('processes can only be set for a generated topology');
  });

  it('the README sweep `sweep processes=2..12 --algorithms abs,chandy-lamport` runs on the default topology and says so', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    expect(runCli(['sweep', 'processes=2..12', '--algorithms', 'abs,chandy-lamport'], io, fakeSimulate(calls))).toBe(EXIT.ok);
    expect(io.err.split('\n')[0]).toBe(`note: no --scenario or --topology given: sweeping processes on --topology ${SWEEP_TOPOLOGY_DEFAULT}`);
    const lines = io.out.trimEnd().split('\n');
    expect(lines[0]!.startsWith('processes,algorithm,')).toBe(true);
    expect(lines).toHaveLength(1 + 11 * 2);
    expect(calls.map((c) => `${c.scenario.name} ${c.options.algorithm}`).slice(0, 3)).toEqual([
      'random-cyclic-2 abs',
      'random-cyclic-2 chandy-lamport',
      'random-cyclic-3 abs',
    ]);
    expect(new Set(calls.map((c) => c.scenario.topology.kind))).toEqual(new Set([SWEEP_TOPOLOGY_DEFAULT]));
    expect(calls.map((c) => (c.scenario.topology.kind === 'explicit' ? 0 : c.scenario.topology.processes))).toEqual(
      [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].flatMap((n) => [n, n]),
    );
  });

  it('a swept size is reproduced as that --processes, not as a --set on another size', () => {
    const violatesAtFive: Simulate = (scenario, options) => {
      const five = scenario.topology.kind !== 'explicit' && scenario.topology.processes === 5;
      return simResult({
        algorithm: options.algorithm,
        seed: options.seed,
        consistent: !five,
        violations: five ? [{ checkpointId: 1, kind: 'orphan', channel: 'a->b', message: 'orphan' }] : [],
      });
    };
    const io = memoryIo();
    runCli(['sweep', 'processes=4..6', '--seed', '3'], io, violatesAtFive);
    expect(io.err).toContain(`violations at processes=5 abs: npm run sim -- run --topology ${SWEEP_TOPOLOGY_DEFAULT} --processes 5 --algorithm abs --seed 3\n`);
  });
});

describe('sim CLI process', () => {
  const root = join(import.meta.dirname, '..', '..');

  /** Runs the real CLI, closing its stdout after `lines` lines have arrived, as `| head -N` does. */
  function simThroughHead(argv: readonly string[], lines: number): Promise<{ code: number | null; out: string; err: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'simulations/cli.ts', ...argv], { cwd: root });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        if (out.split('\n').length > lines) child.stdout.destroy();
      });
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out, err }));
    });
  }

  it('a reader that stops early (`| head -3`) ends the sweep quietly with exit 0', async () => {
    const r = await simThroughHead(['sweep', 'processes=2..12', '--algorithms', 'abs,chandy-lamport'], 3);
    expect(r.out.split('\n').slice(0, 3)).toEqual([
      expect.stringMatching(/^processes,algorithm,/),
      expect.stringMatching(/^2,abs,/),
      expect.stringMatching(/^2,chandy-lamport,/),
    ]);
    expect(r.err).not.toContain('EPIPE');
    expect(r.code).toBe(0);
    // It stopped at the first row nobody read rather than running all 22 first.
    expect(r.err).not.toContain('runs done');
  });
});

describe('sim CLI: sweeps of several parameters, traces and plots (fake simulator)', () => {
  const ring = ['--topology', 'ring', '--processes', '3'];

  /** A run whose mean duration is its seed times its interval, so every aggregate can be computed by hand. */
  const bySeed: Simulate = (scenario, options) =>
    simResult({
      scenario: scenario.name,
      algorithm: options.algorithm,
      seed: options.seed,
      metrics: metrics({ durationMsMean: options.seed * scenario.checkpoints.intervalMs }),
    });

  it('runs the cartesian product, the first parameter varying slowest and the seeds innermost', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    runCli(['sweep', 'interval=10,20', 'window=1..2', 'seed=4..5', ...ring, '--algorithms', 'abs,sync', '--per-run'], io, fakeSimulate(calls));
    expect(calls.map((c) => `${c.scenario.checkpoints.intervalMs}/${c.scenario.channelWindowMessagesMax}/${c.options.algorithm}/${c.options.seed}`)).toEqual([
      '10/1/abs/4', '10/1/abs/5', '10/1/sync/4', '10/1/sync/5',
      '10/2/abs/4', '10/2/abs/5', '10/2/sync/4', '10/2/sync/5',
      '20/1/abs/4', '20/1/abs/5', '20/1/sync/4', '20/1/sync/5',
      '20/2/abs/4', '20/2/abs/5', '20/2/sync/4', '20/2/sync/5',
    ]);
    const lines = io.out.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 16);
    // One seed column, the last: the swept seed is not a parameter column too.
    expect(lines[0]!.startsWith('interval,window,algorithm,completed,')).toBe(true);
    expect(lines[0]!.split(',').filter((c) => c === 'seed')).toEqual(['seed']);
    expect(lines[0]!.endsWith(',seed')).toBe(true);
    expect(lines[2]!.startsWith('10,1,abs,')).toBe(true);
    expect(lines[2]!.endsWith(',5')).toBe(true);
  });

  it('`sweep seed=` alone with --per-run writes one seed column, not two', () => {
    const io = memoryIo();
    runCli(['sweep', 'seed=1..3', ...ring, '--per-run'], io, fakeSimulate());
    const [header, ...rows] = io.out.trimEnd().split('\n');
    expect(header!.split(',').filter((c) => c === 'seed')).toHaveLength(1);
    expect(header!.startsWith('algorithm,')).toBe(true);
    expect(rows.map((r) => r.split(',').at(-1))).toEqual(['1', '2', '3']);
  });

  it('with seeds, a row per point and algorithm: the seeds, the runs, and a mean and 95% interval per metric', () => {
    const io = memoryIo();
    runCli(['sweep', 'interval=10,20', 'seed=1..3', ...ring, '--algorithms', 'abs'], io, bySeed);
    const [header, ...rows] = io.out.trimEnd().split('\n');
    const columns = header!.split(',');
    expect(columns.slice(0, 8)).toEqual([
      'interval', 'algorithm', 'seeds', 'runs', 'consistent_runs', 'completed_mean', 'completed_ci95_low', 'completed_ci95_high',
    ]);
    expect(columns).not.toContain('seed');
    expect(rows).toHaveLength(2);
    const at = (row: string, name: string): string => row.split(',')[columns.indexOf(name)]!;
    expect(at(rows[0]!, 'seeds')).toBe('1 2 3');
    expect(at(rows[0]!, 'runs')).toBe('3');
    // Durations 10, 20, 30: mean 20, s = 10, half-width t(2) * 10 / sqrt(3) = 4.303 * 5.7735 = 24.843.
    expect(at(rows[0]!, 'mean_duration_ms_mean')).toBe('20.000');
    expect(at(rows[0]!, 'mean_duration_ms_ci95_low')).toBe('-4.843');
    expect(at(rows[0]!, 'mean_duration_ms_ci95_high')).toBe('44.843');
    expect(at(rows[1]!, 'mean_duration_ms_mean')).toBe('40.000');
    // A metric with no spread has a zero-width interval.
    expect([at(rows[1]!, 'completed_mean'), at(rows[1]!, 'completed_ci95_low'), at(rows[1]!, 'completed_ci95_high')]).toEqual(['1.000', '1.000', '1.000']);
  });

  it('each seed of a seed-built graph gets the slow channel its own graph has, as `run --set skew=... --seed N` would', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    expect(runCli(['sweep', 'skew=2', 'seed=1..4', '--topology', 'random-cyclic', '--processes', '8'], io, fakeSimulate(calls))).toBe(EXIT.ok);
    const chosen = calls.map((c) => c.scenario.skew?.slowChannel?.channel);
    expect(chosen).toEqual([1, 2, 3, 4].map((seed) => defaultSlowChannel(buildTopology({ kind: 'random-cyclic', processes: 8 }, seed))));
    // The graphs differ by seed, so the choices do too (else this test would not tell the two ways apart).
    expect(new Set(chosen).size).toBeGreaterThan(1);
    for (const seed of [1, 2, 3, 4]) {
      const run = memoryIo();
      const runCalls: { scenario: Scenario; options: RunOptions }[] = [];
      runCli(['run', '--topology', 'random-cyclic', '--processes', '8', '--set', 'skew=2', '--seed', String(seed)], run, fakeSimulate(runCalls));
      expect(runCalls[0]!.scenario.skew?.slowChannel?.channel).toBe(chosen[seed - 1]);
    }
  });

  it('--csv writes the CSV to the file and nothing to stdout', () => {
    const io = memoryIo();
    expect(runCli(['sweep', 'interval=10,20', 'seed=1..2', ...ring, '--csv', 'out.csv'], io, bySeed)).toBe(EXIT.ok);
    expect(io.out).toBe('');
    expect(io.written['out.csv']!.split('\n')[0]!.startsWith('interval,algorithm,seeds,runs,')).toBe(true);
    expect(io.written['out.csv']!.trimEnd().split('\n')).toHaveLength(3);
    expect(io.err).toContain('wrote 2 rows to out.csv');
  });

  it('a swept run that violates is reproduced with every swept value and its seed', () => {
    const io = memoryIo();
    runCli(['sweep', 'interval=10', 'window=2', 'seed=8..9', ...ring, '--algorithms', 'none'], io, fakeSimulate());
    expect(io.err).not.toContain('violations at'); // `none` violating is expected, not news
    const io2 = memoryIo();
    const violatesAtNine: Simulate = (scenario, options) =>
      simResult({ algorithm: options.algorithm, seed: options.seed, consistent: options.seed !== 9 });
    runCli(['sweep', 'interval=10', 'window=2', 'seed=8..9', ...ring], io2, violatesAtNine);
    expect(io2.err).toContain(
      'violations at interval=10 window=2 abs seed=9: npm run sim -- run --topology ring --processes 3 --set interval=10 --set window=2 --algorithm abs --seed 9\n',
    );
  });

  it('run --trace asks for the trace and writes it as JSON lines', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const io = memoryIo();
    runCli(['run', ...ring, '--trace', 'run.jsonl'], io, fakeSimulate(calls));
    expect(calls[0]!.options.trace).toBe(true);
    const lines = io.written['run.jsonl']!.trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string; t?: number });
    expect(lines[0]!.kind).toBe('run');
    expect(lines.length).toBeGreaterThan(10);
    expect(io.err).toContain('wrote the event trace to run.jsonl');
  });

  it('--svg-processes naming no process is a usage error listing the processes', () => {
    const io = memoryIo();
    expect(runCli(['run', ...ring, '--svg', 'o.svg', '--svg-processes', 'p0,q7'], io, fakeSimulate())).toBe(EXIT.usage);
    expect(io.err).toContain('--svg-processes names no process of the topology: q7 (processes: p0, p1, p2)');
  });

  it('a fault naming no process of a seed-built graph is a usage error listing the processes, before any run', () => {
    const calls: { scenario: Scenario; options: RunOptions }[] = [];
    const spec = { ...scenarioForTopology('random-cyclic', 4), faults: [{ kind: 'crash', process: 'p9', atMs: 10 }] };
    const io = memoryIo({ 'rc.json': JSON.stringify(spec) });
    expect(runCli(['run', '--scenario', 'rc.json'], io, fakeSimulate(calls))).toBe(EXIT.usage);
    expect(calls).toHaveLength(0);
    expect(io.err).toContain('rc.json: faults[0].process names no process of the topology, got "p9" (processes: p0, p1, p2, p3)');
  });

  it('plot draws a sweep CSV written by sweep, one line per algorithm with error bars', () => {
    const io = memoryIo();
    runCli(['sweep', 'interval=10,20,30', 'seed=1..3', ...ring, '--algorithms', 'abs,sync', '--csv', 'out.csv'], io, bySeed);
    const plotIo = memoryIo({ 'out.csv': io.written['out.csv']! });
    expect(runCli(['plot', 'out.csv', '--y', 'mean_duration_ms', '--svg', 'out.svg'], plotIo, fakeSimulate())).toBe(EXIT.ok);
    const svg = plotIo.written['out.svg']!;
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" viewBox=')).toBe(true);
    expect(svg.match(/<g class="series"/g)).toHaveLength(2);
    expect(svg.match(/class="error-bar"/g)).toHaveLength(6);
    expect(svg).toContain('mean_duration_ms by interval');
    // Deterministic: the same CSV gives the same bytes.
    const again = memoryIo({ 'out.csv': io.written['out.csv']! });
    runCli(['plot', 'out.csv', '--y', 'mean_duration_ms', '--svg', 'out.svg'], again, fakeSimulate());
    expect(again.written['out.svg']).toBe(svg);
  });

  it('plot of a metric or parameter the CSV lacks lists the ones it has', () => {
    const io = memoryIo();
    runCli(['sweep', 'interval=10,20', 'seed=1..2', ...ring, '--csv', 'out.csv'], io, bySeed);
    const plotIo = memoryIo({ 'out.csv': io.written['out.csv']! });
    expect(runCli(['plot', 'out.csv', '--y', 'overhead', '--svg', 'o.svg'], plotIo, fakeSimulate())).toBe(EXIT.usage);
    expect(plotIo.err).toContain('out.csv has no metric "overhead" (metrics: completed, mean_duration_ms, channel_state_msgs,');
    expect(runCli(['plot', 'out.csv', '--y', 'completed', '--x', 'skew', '--svg', 'o.svg'], plotIo, fakeSimulate())).toBe(EXIT.usage);
    expect(plotIo.err).toContain('out.csv has no swept parameter "skew" (parameters: interval)');
  });
});
