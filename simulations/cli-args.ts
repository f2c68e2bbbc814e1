/**
 * The simulator CLI's command line: argv in, a typed command (or a usage error naming the problem)
 * out. No I/O here, so every flag rule is unit-testable. Parsing is strict (node:util parseArgs):
 * an unknown or misspelt flag is an error, never silently ignored.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GENERATED_TOPOLOGY_KINDS, type GeneratedTopologyKind } from './scenario-file.js';
import { paramSpec, parseParamValue, parseSweep, PARAMS, SEED_MAX, type ParamSpec, type SweepSpec } from './params.js';
import { SWEEP_RUNS_MAX } from './sweep.js';
import { ALGORITHMS, ALL_ALGORITHMS, type Algorithm } from './types.js';
import { err, ok, type Result } from '../src/result.js';

export type ScenarioSource =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 'topology';
      readonly topology: GeneratedTopologyKind;
      readonly processes: number;
      /** Set when the user gave no scenario and a sweep of processes chose the topology: say so. */
      readonly topologyDefaulted?: true;
    };

/** `--set PARAM=VALUE`: one scenario parameter changed from the command line. */
export interface ParamSetting {
  readonly param: ParamSpec;
  readonly value: number;
}

export interface CommonOptions {
  readonly source: ScenarioSource;
  readonly seed: number;
  readonly sets: readonly ParamSetting[];
  /** `--overtaking`: the scenario's `overtaking` set (unaligned barriers overtake messages in flight). */
  readonly overtaking?: true;
}

/** What `--svg-from`, `--svg-to` and `--svg-processes` ask of the diagram. */
export interface SvgView {
  readonly fromMs?: number;
  readonly toMs?: number;
  readonly processes?: readonly string[];
}

export type Command =
  | { readonly kind: 'help'; readonly text: string }
  | {
      readonly kind: 'run';
      readonly common: CommonOptions;
      readonly algorithm: Algorithm;
      readonly json: boolean;
      readonly svg?: string;
      readonly svgView?: SvgView;
      readonly trace?: string;
    }
  | { readonly kind: 'compare'; readonly common: CommonOptions; readonly algorithms: readonly Algorithm[]; readonly json: boolean }
  | {
      readonly kind: 'sweep';
      readonly common: CommonOptions;
      readonly algorithms: readonly Algorithm[];
      /** The swept parameters in the order given; `seed`, when present, gives the replicates of every point. */
      readonly sweeps: readonly SweepSpec[];
      /** One row per run even when a point has several seeds. */
      readonly perRun: boolean;
      /** Write the CSV to this file instead of stdout. */
      readonly csv?: string;
    }
  | {
      readonly kind: 'plot';
      readonly csv: string;
      readonly y: string;
      readonly x?: string;
      /** Plot each value divided by this algorithm's at the same point. */
      readonly relativeTo?: string;
      readonly svg: string;
    };

/** A command, or a usage error naming the problem. */
export type ParsedCommand = Result<Command, string>;

const SEED_DEFAULT = 1;
const ALGORITHM_DEFAULT: Algorithm = 'abs';
const COMPARE_ALGORITHMS_DEFAULT: readonly Algorithm[] = ALGORITHMS;
const SWEEP_ALGORITHMS_DEFAULT: readonly Algorithm[] = ['abs'];
/**
 * The graph of `sweep processes=...` when no scenario is named: a sweep of sizes only needs a shape,
 * and a random cyclic graph has fan-in, fan-out and back edges, so every algorithm has work to do.
 */
export const SWEEP_TOPOLOGY_DEFAULT: GeneratedTopologyKind = 'random-cyclic';

const SOURCE_HELP = `Scenario (exactly one):
  --scenario FILE          a scenario JSON file (see simulations/scenarios/)
  --topology KIND          a generated graph with default settings: ${GENERATED_TOPOLOGY_KINDS.join(', ')}
  --processes N            number of processes for --topology
  --set PARAM=VALUE        change one scenario parameter (repeatable): ${PARAMS.filter((p) => p.name !== 'seed')
    .map((p) => p.name)
    .join(', ')}
  --overtaking             an unaligned checkpoint's barrier overtakes the messages in flight on
                           its channel (the scenario's "overtaking"; FIFO channels only)`;

const EXIT_HELP = `Exit codes:
  0  consistent: no violation (compare and sweep exit 0 whatever they find)
  1  violations found by run: an inconsistent cut or an illegal recovery (safety), or a checkpoint
     that did not complete in a run without faults (liveness)
  2  usage error
  3  the simulator failed (a bug)`;

export const HELP = {
  main: `Deterministic snapshot simulator: runs the production core (src/) over simulated channels,
and, beside it, uncoordinated and communication-induced (cic) checkpointing with recovery lines.

Usage: npm run sim -- <command> [options]

Commands:
  run       one run of one algorithm: a table per checkpoint and a verdict
  compare   the same scenario and seed under several algorithms, side by side
  sweep     CSV of the parameters' effect (processes, skew, interval, ...), seeds as replicates
  plot      SVG line chart of one metric from a sweep CSV
  help      help on a command (also: <command> --help)

Algorithms: ${ALL_ALGORITHMS.join(', ')}

Examples:
  npm run sim -- run --scenario simulations/scenarios/diamond-slow-edge.json --algorithm abs --svg diamond.svg
  npm run sim -- compare --topology random-cyclic --processes 12 --algorithms chandy-lamport,abs,sync,none --seed 7
  npm run sim -- sweep skew=1..8 --scenario simulations/scenarios/diamond-slow-edge.json --algorithms abs,abs-timeout
  npm run sim -- sweep processes=4..16:4 seed=1..5 --algorithms abs,chandy-lamport --csv out.csv
  npm run sim -- plot out.csv --y mean_duration_ms --svg out.svg

Every run prints its seed; the same seed and scenario give byte-identical output.
For machine-readable output (--json, sweep's CSV) use \`npm run -s sim -- ...\` (or
\`npx tsx simulations/cli.ts ...\`): without -s, npm prints its own banner on stdout first.
${EXIT_HELP}
`,
  run: `Usage: npm run sim -- run (--scenario FILE | --topology KIND --processes N) [options]

One run: prints the seed, then a row per checkpoint (completed, duration, channel state, buffered
messages, alignment stall, consistency), totals and a verdict. On violations it prints the command
that reproduces the run.

${SOURCE_HELP}

Options:
  --algorithm NAME         ${ALL_ALGORITHMS.join(', ')} (default ${ALGORITHM_DEFAULT})
  --seed N                 run seed, 0..${SEED_MAX} (default ${SEED_DEFAULT})
  --json                   print one JSON object instead (events: --trace); call it as
                           \`npm run -s sim -- ...\` so npm's banner stays out of stdout
  --svg FILE               also write a space-time diagram of the run to FILE (it scales to its
                           container: a viewBox, no fixed size)
  --svg-from MS            draw the diagram from this simulated time on (default 0)
  --svg-to MS              draw the diagram up to this simulated time (default: the last event)
  --svg-processes A,B,...  draw only these processes' lines, and the messages between them
  --trace FILE             also write every event of the run to FILE, one JSON object a line
  -h, --help               this help

${EXIT_HELP}
`,
  compare: `Usage: npm run sim -- compare (--scenario FILE | --topology KIND --processes N) [options]

The same scenario and seed under each algorithm, one row each: checkpoints completed/triggered, mean
duration, channel-state and buffered messages, max alignment stall, violations and a verdict. With
uncoordinated or cic among them, also the overhead, lost work, replayed messages, domino depth and
recovery ms (see docs/simulator.md; "-" for a coordinated algorithm). Exits 0 even when an algorithm
shows violations (showing that 'none' violates is the point of a comparison).

${SOURCE_HELP}

Options:
  --algorithms A,B,...     algorithms to compare (default: ${COMPARE_ALGORITHMS_DEFAULT.join(',')})
  --seed N                 run seed (default ${SEED_DEFAULT})
  --json                   print a JSON array, one object per algorithm
  -h, --help               this help
`,
  sweep: `Usage: npm run sim -- sweep PARAM=FROM..TO[:STEP] [PARAM=...]... (--scenario FILE | --topology KIND --processes N) [options]
       npm run sim -- sweep PARAM=V1,V2,... ...
       npm run sim -- sweep processes=FROM..TO [seed=FROM..TO] [--topology KIND] [options]

Runs the scenario at every combination of the swept values (the first parameter varies slowest), for
every algorithm, and prints CSV to stdout (or to --csv FILE). Progress goes to stderr.

Without seed=..., one row per run: the swept values (but the seed), algorithm, completed, mean_duration_ms,
channel_state_msgs, buffered_msgs, max_stall_ms, throughput_msgs_per_s, consistent, triggered,
violations, with uncoordinated or cic among the algorithms overhead, lost_work, replayed_msgs,
domino_depth, recovery_time_ms, local_checkpoints, forced_checkpoints, piggyback_bytes (all but
overhead "-" in a coordinated algorithm's rows), the engine's other metrics by name (messages_sent,
...), and seed.

With seed=... the seeds are replicates: one row per combination and algorithm with the swept values,
algorithm, seeds (space-separated), runs, consistent_runs, and for every metric above
METRIC_mean, METRIC_ci95_low and METRIC_ci95_high (Student's t 95% interval of the mean over the
seeds; "-" where undefined). --per-run prints one row per run instead.

A sweep of processes sets the size itself, so it needs no --processes, and without --scenario or
--topology it runs the default --topology ${SWEEP_TOPOLOGY_DEFAULT} (a note on stderr says so).

Parameters:
${PARAMS.map((p) => `  ${p.name.padEnd(18)} ${p.description}`).join('\n')}

${SOURCE_HELP}

Options:
  --algorithms A,B,...     algorithms to run at each value (default: ${SWEEP_ALGORITHMS_DEFAULT.join(',')})
  --seed N                 run seed (default ${SEED_DEFAULT}; ignored when sweeping seed)
  --per-run                one row per run, even with seed=...
  --csv FILE               write the CSV to FILE instead of stdout
  -h, --help               this help
`,
  plot: `Usage: npm run sim -- plot FILE.csv --y METRIC [--x PARAM] [--relative-to ALGORITHM] --svg OUT.svg

Draws one metric of a sweep CSV as an SVG line chart: the swept parameter on the x axis, one line
per algorithm (and per value of any other swept parameter), and error bars from the
METRIC_ci95_low and METRIC_ci95_high columns when the CSV has them (a sweep with seed=...).
The same CSV and options give the same bytes.

Options:
  --y METRIC               the metric: a column of a per-run CSV, or METRIC of METRIC_mean
  --x PARAM                the swept parameter on the x axis (default: the CSV's first column)
  --relative-to ALGORITHM  divide every value, and its interval, by that algorithm's value at the
                           same point (the same x, other swept values and, per run, seed); e.g.
                           throughput against 'none', which checkpoints without stopping anything
  --svg OUT.svg            where to write the chart
  -h, --help               this help
`,
} as const;

type Subcommand = 'run' | 'compare' | 'sweep' | 'plot';

const COMMON_OPTIONS = {
  scenario: { type: 'string' },
  topology: { type: 'string' },
  processes: { type: 'string' },
  seed: { type: 'string' },
  set: { type: 'string', multiple: true },
  overtaking: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const OPTIONS = {
  run: {
    ...COMMON_OPTIONS,
    algorithm: { type: 'string' },
    json: { type: 'boolean' },
    svg: { type: 'string' },
    'svg-from': { type: 'string' },
    'svg-to': { type: 'string' },
    'svg-processes': { type: 'string' },
    trace: { type: 'string' },
  },
  compare: { ...COMMON_OPTIONS, algorithms: { type: 'string' }, json: { type: 'boolean' } },
  sweep: { ...COMMON_OPTIONS, algorithms: { type: 'string' }, 'per-run': { type: 'boolean' }, csv: { type: 'string' } },
  plot: { x: { type: 'string' }, y: { type: 'string' }, 'relative-to': { type: 'string' }, svg: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
} as const satisfies Record<Subcommand, ParseArgsConfig['options']>;

const COMMANDS = 'run, compare, sweep, plot';

export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') return help(HELP.main);
  if (first === 'help') {
    const topic = rest[0];
    if (topic === undefined) return help(HELP.main);
    if (isSubcommand(topic)) return help(HELP[topic]);
    return err(`unknown command "${topic}" (commands: ${COMMANDS})`);
  }
  if (!isSubcommand(first)) return err(`unknown command "${first}" (commands: ${COMMANDS}; try --help)`);

  let parsed;
  try {
    parsed = parseArgs({ args: [...rest], options: OPTIONS[first], strict: true, allowPositionals: first === 'sweep' || first === 'plot' });
  } catch (error) {
    // parseArgs's messages already name the flag ("Unknown option '--sed'"); add where to look.
    return err(`${(error as Error).message} (see: npm run sim -- ${first} --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values['help'] === true) return help(HELP[first]);

  if (first === 'sweep') return parseSweepCommand(values, parsed.positionals);
  if (first === 'plot') return parsePlotCommand(values, parsed.positionals);
  const common = parseCommon(values);
  if (!common.ok) return common;

  switch (first) {
    case 'run': {
      const algorithm = parseAlgorithm(str(values['algorithm']) ?? ALGORITHM_DEFAULT);
      if (!algorithm.ok) return algorithm;
      const svg = str(values['svg']);
      if (svg === '') return err('--svg needs a file name');
      const view = parseSvgView(values, svg !== undefined);
      if (!view.ok) return view;
      const trace = str(values['trace']);
      if (trace === '') return err('--trace needs a file name');
      return ok({
        kind: 'run',
        common: common.value,
        algorithm: algorithm.value,
        json: values['json'] === true,
        ...(svg === undefined ? {} : { svg }),
        ...(view.value === undefined ? {} : { svgView: view.value }),
        ...(trace === undefined ? {} : { trace }),
      });
    }
    case 'compare': {
      const algorithms = parseAlgorithms(str(values['algorithms']), COMPARE_ALGORITHMS_DEFAULT);
      if (!algorithms.ok) return algorithms;
      return ok({ kind: 'compare', common: common.value, algorithms: algorithms.value, json: values['json'] === true });
    }
  }
}

/** `--svg-from`, `--svg-to` and `--svg-processes`: only with `--svg`, and a window that goes forward. */
function parseSvgView(values: Record<string, string | boolean | string[] | undefined>, svg: boolean): Result<SvgView | undefined, string> {
  const fromText = str(values['svg-from']);
  const toText = str(values['svg-to']);
  const processesText = str(values['svg-processes']);
  if (fromText === undefined && toText === undefined && processesText === undefined) return ok(undefined);
  if (!svg) return err('--svg-from, --svg-to and --svg-processes shape the diagram: add --svg FILE');
  const time = (flag: string, text: string | undefined): Result<number | undefined, string> => {
    if (text === undefined) return ok(undefined);
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < 0) return err(`${flag} must be a time in ms >= 0, got "${text}"`);
    return ok(n);
  };
  const from = time('--svg-from', fromText);
  if (!from.ok) return from;
  const to = time('--svg-to', toText);
  if (!to.ok) return to;
  if (from.value !== undefined && to.value !== undefined && to.value <= from.value) {
    return err(`--svg-to (${to.value}) must be after --svg-from (${from.value})`);
  }
  let processes: string[] | undefined;
  if (processesText !== undefined) {
    processes = processesText.split(',').map((p) => p.trim());
    if (processes.some((p) => p === '')) return err(`--svg-processes has an empty entry: "${processesText}"`);
  }
  return ok({
    ...(from.value === undefined ? {} : { fromMs: from.value }),
    ...(to.value === undefined ? {} : { toMs: to.value }),
    ...(processes === undefined ? {} : { processes }),
  });
}

/** The swept parameters are parsed before the source, because a sweep of processes changes what the source must say. */
function parseSweepCommand(values: Record<string, string | boolean | string[] | undefined>, positionals: readonly string[]): ParsedCommand {
  const algorithms = parseAlgorithms(str(values['algorithms']), SWEEP_ALGORITHMS_DEFAULT);
  if (!algorithms.ok) return algorithms;
  if (positionals.length === 0) return err('sweep needs PARAM=FROM..TO[:STEP], e.g. sweep processes=2..12');
  const sweeps: SweepSpec[] = [];
  for (const text of positionals) {
    const sweep = parseSweep(text);
    if (!sweep.ok) return err(sweep.error);
    if (sweeps.some((s) => s.param.name === sweep.value.param.name)) return err(`sweep names ${sweep.value.param.name} twice`);
    sweeps.push(sweep.value);
  }
  const runs = algorithms.value.length * sweeps.reduce((n, s) => n * s.values.length, 1);
  if (runs > SWEEP_RUNS_MAX) return err(`sweep would start ${runs} runs; at most ${SWEEP_RUNS_MAX} are allowed`);
  const common = parseCommon(values, sweeps);
  if (!common.ok) return common;
  const conflict = common.value.sets.find((s) => sweeps.some((w) => w.param.name === s.param.name));
  if (conflict !== undefined) return err(`--set ${conflict.param.name}=... conflicts with sweeping ${conflict.param.name}`);
  const csv = str(values['csv']);
  if (csv === '') return err('--csv needs a file name');
  return ok({
    kind: 'sweep',
    common: common.value,
    algorithms: algorithms.value,
    sweeps,
    perRun: values['per-run'] === true,
    ...(csv === undefined ? {} : { csv }),
  });
}

function parsePlotCommand(values: Record<string, string | boolean | string[] | undefined>, positionals: readonly string[]): ParsedCommand {
  if (positionals.length !== 1) {
    return err(
      positionals.length === 0 ? 'plot needs a sweep CSV file, e.g. plot out.csv --y mean_duration_ms --svg out.svg' : `plot takes one CSV file, got ${positionals.join(' ')}`,
    );
  }
  const y = str(values['y']);
  if (y === undefined || y === '') return err('plot needs --y METRIC (a metric column of the CSV)');
  const svg = str(values['svg']);
  if (svg === undefined || svg === '') return err('plot needs --svg OUT.svg');
  const x = str(values['x']);
  if (x === '') return err('--x needs a parameter name');
  const relativeTo = str(values['relative-to']);
  if (relativeTo === '') return err('--relative-to needs an algorithm name');
  return ok({ kind: 'plot', csv: positionals[0]!, y, svg, ...(x === undefined ? {} : { x }), ...(relativeTo === undefined ? {} : { relativeTo }) });
}

function parseCommon(
  values: Record<string, string | boolean | string[] | undefined>,
  sweeps: readonly SweepSpec[] = [],
): Result<CommonOptions, string> {
  const source = parseSource(values, sweeps);
  if (!source.ok) return source;

  const seedText = str(values['seed']);
  let seed = SEED_DEFAULT;
  if (seedText !== undefined) {
    const n = Number(seedText);
    if (!/^\d+$/.test(seedText) || !Number.isSafeInteger(n) || n > SEED_MAX) {
      return err(`--seed must be an integer from 0 to ${SEED_MAX}, got "${seedText}"`);
    }
    seed = n;
  }

  const sets: ParamSetting[] = [];
  const setTexts = values['set'];
  for (const text of Array.isArray(setTexts) ? setTexts : []) {
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);
    const spec = paramSpec(name);
    if (spec === undefined || spec.name === 'seed') {
      const known = PARAMS.filter((p) => p.name !== 'seed').map((p) => p.name);
      return err(`--set: unknown parameter "${name}" (known: ${known.join(', ')}; the seed is --seed)`);
    }
    if (eq < 0) return err(`--set expects PARAM=VALUE, got "${text}"`);
    const value = parseParamValue(spec, text.slice(eq + 1));
    if (!value.ok) return err(`--set: ${value.error}`);
    if (sets.some((s) => s.param.name === spec.name)) return err(`--set ${spec.name} is given twice`);
    sets.push({ param: spec, value: value.value });
  }
  return ok(values['overtaking'] === true ? { source: source.value, seed, sets, overtaking: true } : { source: source.value, seed, sets });
}

/**
 * Where the scenario comes from. A sweep of processes overrides the size at every point, so it needs
 * no --processes (the base takes the largest swept size, which every shape accepts if any size does,
 * so a too-small size is reported by its sweep point) and, without a scenario, takes the default graph.
 */
function parseSource(
  values: Record<string, string | boolean | string[] | undefined>,
  sweeps: readonly SweepSpec[],
): Result<ScenarioSource, string> {
  const scenario = str(values['scenario']);
  const topology = str(values['topology']);
  const processes = str(values['processes']);
  const sizes = sweeps.find((s) => s.param.name === 'processes');
  const sweptProcesses = sizes === undefined ? undefined : Math.max(...sizes.values);

  if (scenario !== undefined && topology !== undefined) return err('give either --scenario or --topology, not both');
  if (scenario !== undefined) {
    if (processes !== undefined) return err('--processes goes with --topology; to resize a generated scenario file use --set processes=N');
    if (scenario === '') return err('--scenario needs a file name');
    return ok({ kind: 'file', path: scenario });
  }
  if (topology === undefined) {
    if (sweptProcesses === undefined) return err('say what to simulate: --scenario FILE or --topology KIND --processes N');
    if (processes !== undefined) return err(`--processes conflicts with sweeping processes (add --topology KIND to choose the graph)`);
    return ok({ kind: 'topology', topology: SWEEP_TOPOLOGY_DEFAULT, processes: sweptProcesses, topologyDefaulted: true });
  }
  if (!(GENERATED_TOPOLOGY_KINDS as readonly string[]).includes(topology)) {
    return err(`unknown --topology "${topology}" (known: ${GENERATED_TOPOLOGY_KINDS.join(', ')})`);
  }
  if (processes === undefined) {
    if (sweptProcesses === undefined) return err('--topology needs --processes N');
    return ok({ kind: 'topology', topology: topology as GeneratedTopologyKind, processes: sweptProcesses });
  }
  const n = Number(processes);
  if (!/^\d+$/.test(processes) || !Number.isSafeInteger(n) || n < 1) {
    return err(`--processes must be a positive integer, got "${processes}"`);
  }
  return ok({ kind: 'topology', topology: topology as GeneratedTopologyKind, processes: n });
}

function parseAlgorithm(text: string): Result<Algorithm, string> {
  if ((ALL_ALGORITHMS as readonly string[]).includes(text)) return ok(text as Algorithm);
  return err(`unknown algorithm "${text}" (known: ${ALL_ALGORITHMS.join(', ')})`);
}

function parseAlgorithms(text: string | undefined, fallback: readonly Algorithm[]): Result<readonly Algorithm[], string> {
  if (text === undefined) return ok(fallback);
  const names = text.split(',').map((s) => s.trim());
  const out: Algorithm[] = [];
  for (const name of names) {
    if (name === '') return err(`--algorithms has an empty entry: "${text}"`);
    const algorithm = parseAlgorithm(name);
    if (!algorithm.ok) return algorithm;
    if (out.includes(algorithm.value)) return err(`--algorithms lists ${name} twice`);
    out.push(algorithm.value);
  }
  return ok(out);
}

/**
 * The command line that reproduces one run exactly (the same scenario source, settings, algorithm and
 * seed), quoted for a POSIX shell.
 */
export function reproduceCommand(common: CommonOptions, algorithm: Algorithm, seed: number): string {
  const parts = ['npm', 'run', 'sim', '--', 'run'];
  if (common.source.kind === 'file') parts.push('--scenario', common.source.path);
  else parts.push('--topology', common.source.topology, '--processes', String(common.source.processes));
  for (const s of common.sets) parts.push('--set', `${s.param.name}=${s.value}`);
  if (common.overtaking === true) parts.push('--overtaking');
  parts.push('--algorithm', algorithm, '--seed', String(seed));
  return parts.map(shellQuote).join(' ');
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function isSubcommand(word: string): word is Subcommand {
  return word === 'run' || word === 'compare' || word === 'sweep' || word === 'plot';
}

function str(value: string | boolean | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function help(text: string): ParsedCommand {
  return ok({ kind: 'help', text });
}
