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
import { traceJsonLines } from './cli-trace.js';
import { SimulationError } from './engine.js';
import { RollbackSimulationError } from './rollback.js';
import { applyParam, paramSpec, type ParamName } from './params.js';
import { chartFromCsv, parseCsv, renderLineChartSvg } from './plot.js';
import { formatComparison, formatRunReport, verdictOf } from './report.js';
import { checkNamesInGraph, nameList, parseScenario, scenarioForTopology, validateScenario } from './scenario-file.js';
import { aggregateHeader, aggregateRow, cartesianPoints, metricColumns, perRunHeader, perRunRow, type MetricColumn, type SweepPoint } from './sweep.js';
import { renderSpaceTimeSvg } from './svg.js';
import { buildTopology } from './topology.js';
import { isRollbackAlgorithm, type Algorithm, type RunOptions, type Scenario, type SimResult } from './types.js';

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
      case 'plot':
        return plotCommand(command, io);
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
type PlotCmd = Extract<Command, { kind: 'plot' }>;

function runCommand(command: RunCmd, io: CliIo, simulate: Simulate): number {
  const { common, algorithm } = command;
  const scenario = loadScenario(common, io);
  checkNames(scenario, common.seed, sourceName(common));
  const processes = new Set(buildTopology(scenario.topology, common.seed).processes);
  const unknown = command.svgView?.processes?.filter((p) => !processes.has(p)) ?? [];
  if (unknown.length > 0) {
    throw new UsageError(`--svg-processes names no process of the topology: ${unknown.join(', ')} (processes: ${nameList(processes)})`);
  }
  const reproduce = reproduceCommand(common, algorithm, common.seed);
  const trace = command.svg !== undefined || command.trace !== undefined;
  const result = simulateOrExplain(simulate, scenario, { algorithm, seed: common.seed, trace }, reproduce);
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
    writeOutput(io, '--svg', command.svg, renderSpaceTimeSvg(result, command.svgView));
    io.stderr(`wrote space-time diagram to ${command.svg}\n`);
  }
  if (command.trace !== undefined) {
    writeOutput(io, '--trace', command.trace, traceJsonLines(result));
    io.stderr(`wrote the event trace to ${command.trace}\n`);
  }
  return violated ? EXIT.violations : EXIT.ok;
}

function compareCommand(command: CompareCmd, io: CliIo, simulate: Simulate): number {
  const { common } = command;
  const scenario = loadScenario(common, io);
  checkNames(scenario, common.seed, sourceName(common));
  // Beside a rollback algorithm, every algorithm's recoveries are measured, to compare them.
  const recoveryFigures = command.algorithms.some(isRollbackAlgorithm);
  const results = command.algorithms.map((algorithm) => {
    const reproduce = reproduceCommand(common, algorithm, common.seed);
    const options = recoveryFigures ? { algorithm, seed: common.seed, recoveryFigures } : { algorithm, seed: common.seed };
    return { result: simulateOrExplain(simulate, scenario, options, reproduce), reproduce };
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

/**
 * Runs every point (a combination of the non-seed parameters) for every algorithm and seed. Rows are
 * written as soon as they are known: a row per run, or, with several seeds and no --per-run, a row per
 * point and algorithm once its seeds have run.
 */
function sweepCommand(command: SweepCmd, io: CliIo, simulate: Simulate): number {
  const { common, sweeps, algorithms } = command;
  if (common.source.kind === 'topology' && common.source.topologyDefaulted === true) {
    // Before anything else on stderr, so the user reads which graph the numbers below are about.
    io.stderr(`note: no --scenario or --topology given: sweeping processes on --topology ${common.source.topology}\n`);
  }
  const base = baseScenario(common, io);
  const seeds = sweeps.find((s) => s.param.name === 'seed')?.values ?? [common.seed];
  // Beside a rollback algorithm, every algorithm's recoveries are measured, to compare them.
  const recoveryFigures = algorithms.some(isRollbackAlgorithm);
  const aggregated = sweeps.some((s) => s.param.name === 'seed') && !command.perRun;
  const sets = common.sets.map((s) => ({ name: s.param.name, value: s.value, flag: '--set' }));

  // Prepare and validate every run's scenario before running any, so a bad value fails fast, not half
  // way. Each seed gets its own: a graph without its own graph seed is the run seed's, and so is the
  // default slow channel of `skew`, as `run --set skew=... --seed N` would choose it.
  const notes = new Set<string>();
  const points = cartesianPoints(sweeps).map((point) => {
    const label = pointLabel(point);
    const scenarios = seeds.map((seed) => {
      const where = `sweep ${label}${seeds.length > 1 ? `${label === '' ? '' : ' '}seed=${seed}` : ''}`.trimEnd();
      const prepared = withSettings(base, [...sets, ...point.map((p) => ({ ...p, flag: 'sweep' }))], seed, where);
      for (const note of prepared.notes) notes.add(note);
      checkNames(prepared.scenario, seed, where);
      return prepared.scenario;
    });
    return { point, label, scenarios };
  });
  for (const note of notes) io.stderr(`note: ${note}\n`);

  const rows: string[] = [];
  const emit = (line: string): void => {
    if (command.csv === undefined) io.stdout(line + '\n');
    else rows.push(line);
  };
  const total = points.length * algorithms.length * seeds.length;
  const progress = progressReporter(io, total);
  let columns: MetricColumn[] | undefined;
  let done = 0;
  for (const { point, label, scenarios } of points) {
    for (const algorithm of algorithms) {
      const runs: { result: SimResult; consistent: boolean }[] = [];
      for (const [i, seed] of seeds.entries()) {
        const scenario = scenarios[i]!;
        progress(done, `${label === '' ? '' : `${label} `}${algorithm}${seeds.length > 1 ? ` seed=${seed}` : ''}`);
        const reproduce = reproduceCommand(sweepPointOptions(common, point, seed), algorithm, seed);
        const result = simulateOrExplain(simulate, scenario, recoveryFigures ? { algorithm, seed, recoveryFigures } : { algorithm, seed }, reproduce);
        const consistent = verdictOf(result) === 'consistent';
        // The columns follow the first result's metrics, so every row of the file has the same ones.
        if (columns === undefined) {
          columns = metricColumns(result, recoveryFigures);
          emit(aggregated ? aggregateHeader(point, columns) : perRunHeader(point, columns));
        }
        if (!aggregated) emit(perRunRow(point, result, consistent, columns));
        runs.push({ result, consistent });
        done += 1;
        if (!consistent && algorithm !== 'none') {
          io.stderr(`violations at ${label === '' ? '' : `${label} `}${algorithm}${seeds.length > 1 ? ` seed=${seed}` : ''}: ${reproduce}\n`);
        }
      }
      if (aggregated) emit(aggregateRow(point, algorithm, runs, columns!));
    }
  }
  progress(done, 'done');
  if (command.csv !== undefined) {
    writeOutput(io, '--csv', command.csv, rows.map((l) => l + '\n').join(''));
    io.stderr(`wrote ${rows.length - 1} rows to ${command.csv}\n`);
  }
  return EXIT.ok;
}

function pointLabel(point: SweepPoint): string {
  return point.map((p) => `${p.name}=${p.value}`).join(' ');
}

/**
 * The options of one swept run alone, for its reproduce command: each swept value set as `run` would
 * take it (a generated graph's size is its --processes; anything else a --set), and the run's seed.
 */
function sweepPointOptions(common: CommonOptions, point: SweepPoint, seed: number): CommonOptions {
  let options: CommonOptions = { ...common, seed };
  for (const { name, value } of point) {
    if (name === 'processes' && options.source.kind === 'topology') {
      options = { ...options, source: { kind: 'topology', topology: options.source.topology, processes: value } };
    } else {
      const param = paramSpec(name)!;
      options = { ...options, sets: [...options.sets, { param, value }] };
    }
  }
  return options;
}

function plotCommand(command: PlotCmd, io: CliIo): number {
  let text: string;
  try {
    text = io.readFile(command.csv);
  } catch (err) {
    throw new UsageError(`cannot read CSV file ${command.csv}: ${(err as Error).message}`);
  }
  const csv = parseCsv(text, command.csv);
  if (!csv.ok) throw new UsageError(csv.error);
  const chart = chartFromCsv(csv.value, {
    y: command.y,
    source: command.csv,
    ...(command.x === undefined ? {} : { x: command.x }),
    ...(command.relativeTo === undefined ? {} : { relativeTo: command.relativeTo }),
  });
  if (!chart.ok) throw new UsageError(chart.error);
  writeOutput(io, '--svg', command.svg, renderLineChartSvg(chart.value));
  io.stderr(`wrote a chart of ${command.y} (${chart.value.series.length} lines) to ${command.svg}\n`);
  return EXIT.ok;
}

function writeOutput(io: CliIo, flag: string, path: string, text: string): void {
  try {
    io.writeFile(path, text);
  } catch (err) {
    throw new UsageError(`cannot write ${flag} file ${path}: ${(err as Error).message}`);
  }
}

function sourceName(common: CommonOptions): string {
  return common.source.kind === 'file' ? common.source.path : `--topology ${common.source.topology} --processes ${common.source.processes}`;
}

/** Names in skew and faults against the graph this seed builds; a usage error listing the valid ones. */
function checkNames(scenario: Scenario, seed: number, source: string): void {
  const problems = checkNamesInGraph(scenario, buildTopology(scenario.topology, seed), source);
  if (problems.length > 0) throw new UsageError(`invalid scenario:\n  ${problems.join('\n  ')}`);
}

/** The scenario the options describe, with `--set` applied and validated; usage errors on any problem. */
function loadScenario(common: CommonOptions, io: CliIo): Scenario {
  return withSettings(baseScenario(common, io), common.sets.map((s) => ({ name: s.param.name, value: s.value, flag: '--set' })), common.seed, sourceName(common)).scenario;
}

/** The file's scenario, or the generated one, with `--overtaking`, before any `--set` or swept value. */
function baseScenario(common: CommonOptions, io: CliIo): Scenario {
  const scenario = sourceScenario(common, io);
  if (common.overtaking !== true) return scenario;
  if (scenario.fifo === false) throw new UsageError('--overtaking needs FIFO channels, and the scenario has "fifo": false');
  return { ...scenario, overtaking: true };
}

function sourceScenario(common: CommonOptions, io: CliIo): Scenario {
  if (common.source.kind === 'topology') return scenarioForTopology(common.source.topology, common.source.processes);
  const source = common.source.path;
  let text: string;
  try {
    text = io.readFile(source);
  } catch (err) {
    throw new UsageError(`cannot read scenario file ${source}: ${(err as Error).message}`);
  }
  const parsed = parseScenario(text, source);
  if (!parsed.ok) throw new UsageError(`invalid scenario file ${source}:\n  ${parsed.error.join('\n  ')}`);
  return parsed.value;
}

/**
 * Applies parameter values in order, with the run's seed (a default slow channel is chosen in the
 * graph that seed builds), and validates the result; with the notes the values left.
 */
function withSettings(
  base: Scenario,
  settings: readonly { readonly name: ParamName; readonly value: number; readonly flag: string }[],
  seed: number,
  source: string,
): { scenario: Scenario; notes: string[] } {
  let scenario = base;
  const notes: string[] = [];
  for (const { name, value, flag } of settings) {
    const applied = applyParam(scenario, seed, name, value);
    if (!applied.ok) throw new UsageError(`${flag} ${name}=${value}: ${applied.error}`);
    if (applied.value.note !== undefined) notes.push(applied.value.note);
    scenario = applied.value.scenario;
  }
  const valid = validateScenario(scenario, source);
  if (!valid.ok) throw new UsageError(`invalid scenario:\n  ${valid.error.join('\n  ')}`);
  return { scenario: valid.value, notes };
}

/**
 * Runs the simulator. The engine throws `SimulationError` (`RollbackSimulationError` for uncoordinated
 * and cic) for scenarios it refuses (a usage problem the
 * file validation could not see); anything else is a bug, reported with the command that reproduces it.
 */
function simulateOrExplain(simulate: Simulate, scenario: Scenario, options: RunOptions, reproduce: string): SimResult {
  try {
    return simulate(scenario, options);
  } catch (err) {
    if (err instanceof SimulationError || err instanceof RollbackSimulationError) {
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
