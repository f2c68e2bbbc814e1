/**
 * The command line of `npm run vopr`, parsed into a plain value or a usage error, never a throw.
 * `--seed S` alone runs that one seed (how a failure is reproduced); with `--seeds N` it runs
 * S, S+1, ..., S+N-1.
 */
import { NEGATIVE_CONTROLS, isNegativeControl, type NegativeControl } from '../../src/control/negative-controls.js';

export const SEED_MAX = 0xffff_ffff;
export const SEED_FIRST_DEFAULT = 1;
export const SEEDS_MAX = 1_000_000;

export interface VoprOptions {
  readonly seedFirst: number;
  readonly seeds: number;
  readonly json: boolean;
  /** Print every seed's whole trace to stderr (for reading one reproduced run). */
  readonly trace: boolean;
  readonly negativeControls: readonly NegativeControl[];
}

export type ParsedArgs = { readonly ok: true; readonly help: true } | { readonly ok: true; readonly help: false; readonly options: VoprOptions } | { readonly ok: false; readonly error: string };

export const HELP = `Usage: npm run vopr -- [--seeds N] [--seed S] [--json] [--trace] [--negative-control NAME]...

The control-plane fault simulator: the real round, operation, admission, retention, recovery and
agent-side machines of src/control/ in a deterministic world with seeded faults (lost, duplicated
and delayed messages, store errors, slow and failing volume backends, agent and coordinator
crashes). Each seed runs a safety phase with faults, then a liveness phase without them, and checks
the invariants after every step and at the end.

Options:
  --seeds N                    how many seeds to run, 1..${SEEDS_MAX} (default 1)
  --seed S                     the first seed, 0..${SEED_MAX} (default ${SEED_FIRST_DEFAULT}); alone, runs that seed only
  --json                       print exactly one JSON line: seeds, failures, steps, invariants, failed_seeds
                               (call it as \`npm run -s vopr -- ...\` so npm's banner stays out of stdout)
  --trace                      print each seed's whole trace to stderr
  --negative-control NAME      turn on a defect inside the machines (repeatable); the simulator must
                               then report failures. One of: ${NEGATIVE_CONTROLS.join(', ')}
  -h, --help                   this help

Exit codes: 0 no failure, 1 a seed failed (its seed, the command that reproduces it and the end of
its trace are printed), 2 bad arguments.

Example (the long run): npm run -s vopr -- --seeds 2000 --json
`;

function integer(flag: string, text: string | undefined, min: number, max: number): number | string {
  if (text === undefined || !/^\d+$/.test(text)) return `${flag} needs an integer ${min}..${max}, got ${text === undefined ? 'nothing' : JSON.stringify(text)}`;
  const n = Number(text);
  if (n < min || n > max) return `${flag} must be ${min}..${max}, got ${text}`;
  return n;
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  let seeds: number | undefined;
  let seedFirst: number | undefined;
  let json = false;
  let trace = false;
  const controls: NegativeControl[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '-h':
      case '--help':
        return { ok: true, help: true };
      case '--json':
        json = true;
        break;
      case '--trace':
        trace = true;
        break;
      case '--seeds': {
        const n = integer('--seeds', value(), 1, SEEDS_MAX);
        if (typeof n === 'string') return { ok: false, error: n };
        seeds = n;
        break;
      }
      case '--seed': {
        const n = integer('--seed', value(), 0, SEED_MAX);
        if (typeof n === 'string') return { ok: false, error: n };
        seedFirst = n;
        break;
      }
      case '--negative-control': {
        const name = value();
        if (name === undefined || !isNegativeControl(name)) {
          return { ok: false, error: `--negative-control needs one of ${NEGATIVE_CONTROLS.join(', ')}, got ${name === undefined ? 'nothing' : JSON.stringify(name)}` };
        }
        if (!controls.includes(name)) controls.push(name);
        break;
      }
      default:
        return { ok: false, error: `unknown argument ${JSON.stringify(arg)} (see --help)` };
    }
  }
  if (seedFirst !== undefined && seeds !== undefined && seedFirst + seeds - 1 > SEED_MAX) {
    return { ok: false, error: `--seed ${seedFirst} with --seeds ${seeds} runs past seed ${SEED_MAX}` };
  }
  return { ok: true, help: false, options: { seedFirst: seedFirst ?? SEED_FIRST_DEFAULT, seeds: seeds ?? 1, json, trace, negativeControls: controls } };
}

/** The command that runs exactly this seed again, with the same negative controls. */
export function reproduceCommand(seed: number, controls: readonly NegativeControl[]): string {
  return ['npm run vopr -- --seed', String(seed), ...controls.map((c) => `--negative-control ${c}`)].join(' ');
}
