/**
 * The simulator CLI's command line: argv in, a typed command (or a usage error naming the problem)
 * out. No I/O here, so every flag rule is unit-testable. Parsing is strict (node:util parseArgs):
 * an unknown or misspelt flag is an error, never silently ignored.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GENERATED_TOPOLOGY_KINDS, type GeneratedTopologyKind } from './scenario-file.js';
import { paramSpec, parseParamValue, parseSweep, PARAMS, SEED_MAX, type ParamSpec, type SweepSpec } from './params.js';
import { ALGORITHMS, type Algorithm } from './types.js';
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
}

export type Command =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'run'; readonly common: CommonOptions; readonly algorithm: Algorithm; readonly json: boolean; readonly svg?: string }
  | { readonly kind: 'compare'; readonly common: CommonOptions; readonly algorithms: readonly Algorithm[]; readonly json: boolean }
  | { readonly kind: 'sweep'; readonly common: CommonOptions; readonly algorithms: readonly Algorithm[]; readonly sweep: SweepSpec };

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
    .join(', ')}`;

const EXIT_HELP = `Exit codes:
  0  consistent: no violation (compare and sweep exit 0 whatever they find)
  1  violations found by run: an inconsistent cut or an illegal recovery (safety), or a checkpoint
     that did not complete in a run without faults (liveness)
  2  usage error
  3  the simulator failed (a bug)`;

export const HELP = {
  main: `Deterministic snapshot simulator: runs the production core (src/) over simulated channels.

Usage: npm run sim -- <command> [options]

Commands:
  run       one run of one algorithm: a table per checkpoint and a verdict
  compare   the same scenario and seed under several algorithms, side by side
  sweep     CSV of a parameter's effect (processes, skew, interval, seed, ...)
  help      help on a command (also: <command> --help)

Algorithms: ${ALGORITHMS.join(', ')}

Examples:
  npm run sim -- run --scenario simulations/scenarios/diamond-slow-edge.json --algorithm abs --svg diamond.svg
  npm run sim -- compare --topology random-cyclic --processes 12 --algorithms chandy-lamport,abs,sync,none --seed 7
  npm run sim -- sweep skew=1..8 --scenario simulations/scenarios/diamond-slow-edge.json --algorithms abs,abs-timeout

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
  --algorithm NAME         ${ALGORITHMS.join(', ')} (default ${ALGORITHM_DEFAULT})
  --seed N                 run seed, 0..${SEED_MAX} (default ${SEED_DEFAULT})
  --json                   print one JSON object instead (no trace); call it as
                           \`npm run -s sim -- ...\` so npm's banner stays out of stdout
  --svg FILE               also write a space-time diagram of the run to FILE
  -h, --help               this help

${EXIT_HELP}
`,
  compare: `Usage: npm run sim -- compare (--scenario FILE | --topology KIND --processes N) [options]

The same scenario and seed under each algorithm, one row each: checkpoints completed/triggered, mean
duration, channel-state and buffered messages, max alignment stall, violations and a verdict. Exits 0
even when an algorithm shows violations (showing that 'none' violates is the point of a comparison).

${SOURCE_HELP}

Options:
  --algorithms A,B,...     algorithms to compare (default: ${COMPARE_ALGORITHMS_DEFAULT.join(',')})
  --seed N                 run seed (default ${SEED_DEFAULT})
  --json                   print a JSON array, one object per algorithm
  -h, --help               this help
`,
  sweep: `Usage: npm run sim -- sweep PARAM=FROM..TO[:STEP] (--scenario FILE | --topology KIND --processes N) [options]
       npm run sim -- sweep PARAM=V1,V2,... ...
       npm run sim -- sweep processes=FROM..TO [--topology KIND] [options]

Runs the scenario once per value and algorithm and prints CSV to stdout: the value, algorithm,
checkpoints completed, mean duration ms, channel-state msgs, buffered msgs, max stall ms,
throughput msgs/s, consistent, then triggered, violations and seed. Progress goes to stderr.

A sweep of processes sets the size itself, so it needs no --processes, and without --scenario or
--topology it runs the default --topology ${SWEEP_TOPOLOGY_DEFAULT} (a note on stderr says so).

Parameters:
${PARAMS.map((p) => `  ${p.name.padEnd(18)} ${p.description}`).join('\n')}

${SOURCE_HELP}

Options:
  --algorithms A,B,...     algorithms to run at each value (default: ${SWEEP_ALGORITHMS_DEFAULT.join(',')})
  --seed N                 run seed (default ${SEED_DEFAULT}; ignored when sweeping seed)
  -h, --help               this help
`,
} as const;

type Subcommand = 'run' | 'compare' | 'sweep';

const COMMON_OPTIONS = {
  scenario: { type: 'string' },
  topology: { type: 'string' },
  processes: { type: 'string' },
  seed: { type: 'string' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const OPTIONS = {
  run: { ...COMMON_OPTIONS, algorithm: { type: 'string' }, json: { type: 'boolean' }, svg: { type: 'string' } },
  compare: { ...COMMON_OPTIONS, algorithms: { type: 'string' }, json: { type: 'boolean' } },
  sweep: { ...COMMON_OPTIONS, algorithms: { type: 'string' } },
} as const satisfies Record<Subcommand, ParseArgsConfig['options']>;

export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') return help(HELP.main);
  if (first === 'help') {
    const topic = rest[0];
    if (topic === undefined) return help(HELP.main);
    if (isSubcommand(topic)) return help(HELP[topic]);
    return err(`unknown command "${topic}" (commands: run, compare, sweep)`);
  }
  if (!isSubcommand(first)) return err(`unknown command "${first}" (commands: run, compare, sweep; try --help)`);

  let parsed;
  try {
    parsed = parseArgs({ args: [...rest], options: OPTIONS[first], strict: true, allowPositionals: first === 'sweep' });
  } catch (error) {
    // parseArgs's messages already name the flag ("Unknown option '--sed'"); add where to look.
    return err(`${(error as Error).message} (see: npm run sim -- ${first} --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values['help'] === true) return help(HELP[first]);

  if (first === 'sweep') return parseSweepCommand(values, parsed.positionals);
  const common = parseCommon(values);
  if (!common.ok) return common;

  switch (first) {
    case 'run': {
      const algorithm = parseAlgorithm(str(values['algorithm']) ?? ALGORITHM_DEFAULT);
      if (!algorithm.ok) return algorithm;
      const svg = str(values['svg']);
      if (svg === '') return err('--svg needs a file name');
      return ok({
        kind: 'run',
        common: common.value,
        algorithm: algorithm.value,
        json: values['json'] === true,
        ...(svg === undefined ? {} : { svg }),
      });
    }
    case 'compare': {
      const algorithms = parseAlgorithms(str(values['algorithms']), COMPARE_ALGORITHMS_DEFAULT);
      if (!algorithms.ok) return algorithms;
      return ok({ kind: 'compare', common: common.value, algorithms: algorithms.value, json: values['json'] === true });
    }
  }
}

/** The swept parameter is parsed before the source, because a sweep of processes changes what the source must say. */
function parseSweepCommand(values: Record<string, string | boolean | string[] | undefined>, positionals: readonly string[]): ParsedCommand {
  const algorithms = parseAlgorithms(str(values['algorithms']), SWEEP_ALGORITHMS_DEFAULT);
  if (!algorithms.ok) return algorithms;
  if (positionals.length !== 1) {
    return err(
      positionals.length === 0
        ? 'sweep needs PARAM=FROM..TO[:STEP], e.g. sweep processes=2..12'
        : `sweep takes one PARAM=FROM..TO[:STEP], got ${positionals.length}: ${positionals.join(' ')}`,
    );
  }
  const sweep = parseSweep(positionals[0]!);
  if (!sweep.ok) return err(sweep.error);
  const common = parseCommon(values, sweep.value);
  if (!common.ok) return common;
  if (common.value.sets.some((s) => s.param.name === sweep.value.param.name)) {
    return err(`--set ${sweep.value.param.name}=... conflicts with sweeping ${sweep.value.param.name}`);
  }
  return ok({ kind: 'sweep', common: common.value, algorithms: algorithms.value, sweep: sweep.value });
}

function parseCommon(values: Record<string, string | boolean | string[] | undefined>, sweep?: SweepSpec): Result<CommonOptions, string> {
  const source = parseSource(values, sweep);
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
  return ok({ source: source.value, seed, sets });
}

/**
 * Where the scenario comes from. A sweep of processes overrides the size at every point, so it needs
 * no --processes (the base takes the largest swept size, which every shape accepts if any size does,
 * so a too-small size is reported by its sweep point) and, without a scenario, takes the default graph.
 */
function parseSource(values: Record<string, string | boolean | string[] | undefined>, sweep: SweepSpec | undefined): Result<ScenarioSource, string> {
  const scenario = str(values['scenario']);
  const topology = str(values['topology']);
  const processes = str(values['processes']);
  const sweptProcesses = sweep?.param.name === 'processes' ? Math.max(...sweep.values) : undefined;

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
  if ((ALGORITHMS as readonly string[]).includes(text)) return ok(text as Algorithm);
  return err(`unknown algorithm "${text}" (known: ${ALGORITHMS.join(', ')})`);
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
  parts.push('--algorithm', algorithm, '--seed', String(seed));
  return parts.map(shellQuote).join(' ');
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function isSubcommand(word: string): word is Subcommand {
  return word === 'run' || word === 'compare' || word === 'sweep';
}

function str(value: string | boolean | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function help(text: string): ParsedCommand {
  return ok({ kind: 'help', text });
}
