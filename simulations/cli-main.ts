/**
 * The simulator CLI's commands (run, compare, sweep) over injected I/O and an injected simulator, so
 * the whole CLI can be tested in memory with fixtures; `cli.ts` wires in the real process and engine.
 *
 * Output rules: stdout carries only the product (the table, the JSON, the CSV), byte-identical for the
 * same inputs; notes, progress and errors go to stderr. Exit codes: 0 consistent (or a comparison or
 * sweep that ran), 1 violations in a `run` (safety, or liveness: a checkpoint that did not complete in
 * a run without faults), 2 a usage error (flags, unreadable or invalid scenario, a scenario the
 * simulator refuses), 3 the simulator failed (a bug: the reproducing command is printed).
 */
import { parseCommandLine, reproduceCommand, type Command, type CommonOptions } from './cli-args.js';
import { SimulationError } from './engine.js';
import { applyParam } from './params.js';
import { formatComparison, formatRunReport, verdictOf } from './report.js';
import { parseScenario, scenarioForTopology, validateScenario } from './scenario-file.js';
import { renderSpaceTimeSvg } from './svg.js';
import { fixed } from './text-table.js';
import type { Algorithm, RunOptions, Scenario, SimResult } from './types.js';

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Colour in tables only on a terminal; never in pipes or files. */
  readonly color: boolean;
  /** Progress rewrites one line with `\r` on a terminal and prints plain lines otherwise. */
  readonly stderrIsTTY: boolean;
  /** Both throw on failure; the message is shown to the user. */
  readonly readFile: (path: string) => string;
  readonly writeFile: (path: string, text: string) => void;
}

export type Simulate = (scenario: Scenario, options: RunOptions) => SimResult;

export const EXIT = { ok: 0, violations: 1, usage: 2, internal: 3 } as const;

/** Sweeps longer than this many runs report progress. */
const SWEEP_PROGRESS_RUNS_MIN = 4;
/** Plain-line progress (not a terminal) prints at most about this many lines. */
const PROGRESS_LINES_MAX = 50;

/** A usage problem found while preparing a run; thrown only inside this module, caught in `runCli`. */
class UsageError extends Error {}

export function runCli(argv: readonly string[], io: CliIo, simulate: Simulate): number {
  const parsed = parseCommandLine(argv);
  if (!parsed.ok) {
    io.stderr(`error: ${parsed.error}\n`);
    return EXIT.usage;
  }
  const command = parsed.value;
  try {
    switch (command.kind) {
      case 'help':
        io.stdout(command.text);
        return EXIT.ok;
      case 'run':
        return runCommand(command, io, simulate);
      case 'compare':
        return compareCommand(command, io, simulate);
      case 'sweep':
        return sweepCommand(command, io, simulate);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`error: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
}

type RunCmd = Extract<Command, { kind: 'run' }>;
type CompareCmd = Extract<Command, { kind: 'compare' }>;
type SweepCmd = Extract<Command, { kind: 'sweep' }>;

function runCommand(command: RunCmd, io: CliIo, simulate: Simulate): number {
  const { common, algorithm } = command;
  const scenario = loadScenario(common, io);
  const reproduce = reproduceCommand(common, algorithm, common.seed);
  const result = simulateOrExplain(simulate, scenario, { algorithm, seed: common.seed, trace: command.svg !== undefined }, reproduce);
  const violated = verdictOf(result) === 'VIOLATIONS';

  if (command.json) {
    io.stdout(JSON.stringify(jsonOfRun(result, scenario, reproduce), null, 2) + '\n');
    if (violated) io.stderr(`violations found; reproduce with: ${reproduce}\n`);
  } else {
    io.stdout(`seed: ${common.seed}\n`);
    io.stdout(formatRunReport(result, { color: io.color }));
    if (violated) io.stdout(`reproduce: ${reproduce}\n`);
  }
  if (command.svg !== undefined) {
    try {
      io.writeFile(command.svg, renderSpaceTimeSvg(result));
    } catch (err) {
      throw new UsageError(`cannot write --svg file ${command.svg}: ${(err as Error).message}`);
    }
    io.stderr(`wrote space-time diagram to ${command.svg}\n`);
  }
  return violated ? EXIT.violations : EXIT.ok;
}

function compareCommand(command: CompareCmd, io: CliIo, simulate: Simulate): number {
  const { common } = command;
  const scenario = loadScenario(common, io);
  const results = command.algorithms.map((algorithm) => {
    const reproduce = reproduceCommand(common, algorithm, common.seed);
    return { result: simulateOrExplain(simulate, scenario, { algorithm, seed: common.seed }, reproduce), reproduce };
  });
  if (command.json) {
    io.stdout(JSON.stringify(results.map((r) => jsonOfRun(r.result, scenario, r.reproduce)), null, 2) + '\n');
    return EXIT.ok;
  }
  io.stdout(`seed: ${common.seed}\n`);
  io.stdout(formatComparison(results.map((r) => r.result), { color: io.color }));
  const violated = results.filter((r) => verdictOf(r.result) === 'VIOLATIONS');
  if (violated.length > 0) {
    io.stdout(`\nreproduce a run with violations:\n`);
    for (const r of violated) io.stdout(`  ${r.result.algorithm}: ${r.reproduce}\n`);
  }
  return EXIT.ok;
}

const CSV_COLUMNS = [
  'algorithm',
  'completed',
  'mean_duration_ms',
  'channel_state_msgs',
  'buffered_msgs',
  'max_stall_ms',
  'throughput_msgs_per_s',
  'consistent',
  'triggered',
  'violations',
  'seed',
];

function sweepCommand(command: SweepCmd, io: CliIo, simulate: Simulate): number {
  const { common, sweep, algorithms } = command;
  if (common.source.kind === 'topology' && common.source.topologyDefaulted === true) {
    // Before anything else on stderr, so the user reads which graph the numbers below are about.
    io.stderr(`note: no --scenario or --topology given: sweeping ${sweep.param.name} on --topology ${common.source.topology}\n`);
  }
  const base = loadScenario(common, io);

  // Prepare and validate every point before running any, so a bad value fails fast, not half way.
  const notes = new Set<string>();
  const points = sweep.values.map((value) => {
    const applied = applyParam(base, common.seed, sweep.param.name, value);
    if (!applied.ok) throw new UsageError(`sweep ${sweep.param.name}=${value}: ${applied.error}`);
    const valid = validateScenario(applied.value.scenario, `sweep ${sweep.param.name}=${value}`);
    if (!valid.ok) throw new UsageError(valid.error.join('\n'));
    if (applied.value.note !== undefined) notes.add(applied.value.note);
    return { value, scenario: valid.value, seed: applied.value.seed };
  });
  for (const note of notes) io.stderr(`note: ${note}\n`);

  const total = points.length * algorithms.length;
  const progress = progressReporter(io, total);
  io.stdout([sweep.param.name, ...CSV_COLUMNS].join(',') + '\n');
  let done = 0;
  for (const point of points) {
    const pointCommon = sweepPointOptions(command, point.value, point.seed);
    for (const algorithm of algorithms) {
      progress(done, `${sweep.param.name}=${point.value} ${algorithm}`);
      const reproduce = reproduceCommand(pointCommon, algorithm, point.seed);
      const result = simulateOrExplain(simulate, point.scenario, { algorithm, seed: point.seed }, reproduce);
      const m = result.metrics;
      const consistent = verdictOf(result) === 'consistent';
      io.stdout(
        [
          String(point.value),
          algorithm,
          String(m.checkpointsCompleted),
          fixed(m.durationMsMean, 3),
          String(m.channelStateMessagesTotal),
          String(m.bufferedMessagesTotal),
          fixed(m.alignmentStallMsMax, 3),
          fixed(m.throughputMsgsPerSec, 1),
          String(consistent),
          String(m.checkpointsTriggered),
          String(result.violations.length),
          String(point.seed),
        ].join(',') + '\n',
      );
      done += 1;
      if (!consistent && algorithm !== 'none') io.stderr(`violations at ${sweep.param.name}=${point.value} ${algorithm}: ${reproduce}\n`);
    }
  }
  progress(done, 'done');
  return EXIT.ok;
}

/**
 * The options of one swept run alone, for its reproduce command: the swept value set as `run` would
 * take it (a generated graph's size is its --processes; anything else a --set).
 */
function sweepPointOptions(command: SweepCmd, value: number, seed: number): CommonOptions {
  const { common, sweep } = command;
  if (sweep.param.name === 'seed') return { ...common, seed };
  if (sweep.param.name === 'processes' && common.source.kind === 'topology') {
    return { ...common, source: { kind: 'topology', topology: common.source.topology, processes: value } };
  }
  return { ...common, sets: [...common.sets, { param: sweep.param, value }] };
}

/** The scenario the options describe, with `--set` applied and validated; usage errors on any problem. */
function loadScenario(common: CommonOptions, io: CliIo): Scenario {
  let scenario: Scenario;
  let source: string;
  if (common.source.kind === 'file') {
    source = common.source.path;
    let text: string;
    try {
      text = io.readFile(source);
    } catch (err) {
      throw new UsageError(`cannot read scenario file ${source}: ${(err as Error).message}`);
    }
    const parsed = parseScenario(text, source);
    if (!parsed.ok) throw new UsageError(`invalid scenario file ${source}:\n  ${parsed.error.join('\n  ')}`);
    scenario = parsed.value;
  } else {
    source = `--topology ${common.source.topology} --processes ${common.source.processes}`;
    scenario = scenarioForTopology(common.source.topology, common.source.processes);
  }
  for (const set of common.sets) {
    const applied = applyParam(scenario, common.seed, set.param.name, set.value);
    if (!applied.ok) throw new UsageError(`--set ${set.param.name}=${set.value}: ${applied.error}`);
    scenario = applied.value.scenario;
  }
  const valid = validateScenario(scenario, source);
  if (!valid.ok) throw new UsageError(`invalid scenario:\n  ${valid.error.join('\n  ')}`);
  return valid.value;
}

/**
 * Runs the simulator. The engine throws `SimulationError` for scenarios it refuses (a usage problem the
 * file validation could not see); anything else is a bug, reported with the command that reproduces it.
 */
function simulateOrExplain(simulate: Simulate, scenario: Scenario, options: RunOptions, reproduce: string): SimResult {
  try {
    return simulate(scenario, options);
  } catch (err) {
    if (err instanceof SimulationError) {
      throw new UsageError(`the scenario cannot be simulated: ${err.message}`);
    }
    throw new InternalError(err, reproduce);
  }
}

/** A failure inside the simulator; `cli.ts` prints it with the reproducing command and exits 3. */
export class InternalError extends Error {
  constructor(
    failure: unknown,
    readonly reproduce: string,
  ) {
    super(`the simulator failed: ${failure instanceof Error ? failure.message : String(failure)}`, { cause: failure });
    this.name = 'InternalError';
  }
}

/** What `--json` prints for one run: the result without its trace, plus how to reproduce it. */
function jsonOfRun(result: SimResult, scenario: Scenario, reproduce: string): Record<string, unknown> {
  return {
    scenario: result.scenario,
    algorithm: result.algorithm,
    seed: result.seed,
    // The verdict counts liveness violations too; `consistent` is safety alone.
    verdict: verdictOf(result),
    consistent: result.consistent,
    violations: result.violations,
    checkpoints: result.checkpoints,
    metrics: result.metrics,
    processes: result.processes,
    channels: result.channels,
    endedAtMs: result.endedAtMs,
    reproduce,
    scenarioSpec: scenario,
  };
}

function progressReporter(io: CliIo, total: number): (done: number, label: string) => void {
  if (total < SWEEP_PROGRESS_RUNS_MIN) return () => {};
  const every = Math.max(1, Math.ceil(total / PROGRESS_LINES_MAX));
  let lastWidth = 0;
  return (done, label) => {
    const finished = label === 'done';
    const line = finished ? `sweep: ${total}/${total} runs done` : `sweep: ${done + 1}/${total} ${label}`;
    if (io.stderrIsTTY) {
      // Pad over the previous line's leftovers; finish with a newline so the prompt starts clean.
      io.stderr(`\r${line.padEnd(lastWidth)}${finished ? '\n' : ''}`);
      lastWidth = line.length;
    } else if (finished || done % every === 0) {
      io.stderr(`${line}\n`);
    }
  };
}
