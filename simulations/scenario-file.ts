/**
 * Scenario files: JSON in, a `Scenario` (or every problem with it) out.
 *
 * Scenario files are written by hand, by researchers who did not write the simulator, so validation
 * is done field by field with a message that names the JSON path, says what was expected and what
 * was found (`checkpoints.intervalMs must be a number > 0, got "100"`). Every problem is reported at
 * once, as `validateGraph` does for plans, so a user fixes a file in one pass. Unknown fields are
 * errors too: a misspelt optional field (`alignmentTimeoutMS`) would otherwise be silently ignored
 * and the run would quietly use the default.
 *
 * Names in skew and faults are checked against the graph when it is known before the run: always for
 * explicit topologies and for generated ones whose shape does not depend on the run's seed.
 *
 * simulations/scenario.schema.json says the same in JSON Schema, for editors and other tools, except
 * what a schema cannot say (a time before durationMs, a name of the graph, maxMs >= minMs);
 * test/unit/scenario-schema.test.ts keeps the two in step.
 */
import { validateGraph, type AppGraph } from '../src/graph/index.js';
import { parseChannelId, type ProcessId } from '../src/ids.js';
import { buildTopology } from './topology.js';
import { err, ok, type Result } from '../src/result.js';
import type { Scenario, TopologySpec } from './types.js';

/** A valid scenario, or every problem found, each naming its path. */
export type ScenarioParse = Result<Scenario, readonly string[]>;

export type GeneratedTopologyKind = Exclude<TopologySpec['kind'], 'explicit'>;

export const GENERATED_TOPOLOGY_KINDS: readonly GeneratedTopologyKind[] = [
  'pipeline',
  'fan-in',
  'fan-out',
  'diamond',
  'ring',
  'complete',
  'random-dag',
  'random-cyclic',
];

/**
 * Fewest processes that make each shape meaningful: a diamond needs a source, two branches and a
 * sink; every other shape needs at least one channel, hence two processes.
 */
export const PROCESSES_MIN: Readonly<Record<GeneratedTopologyKind, number>> = {
  pipeline: 2,
  'fan-in': 2,
  'fan-out': 2,
  diamond: 4,
  ring: 2,
  complete: 2,
  'random-dag': 2,
  'random-cyclic': 2,
};

/** Limits on what a scenario may ask for, so a typo (an extra zero) is an error rather than a hung run. */
const SCENARIO_LIMITS = {
  processesMax: 10_000,
  durationMsMax: 3_600_000,
  faultsMax: 1_000,
  nameLengthMax: 200,
} as const;

const DELAY_KINDS = ['fixed', 'uniform', 'long-tail'] as const;
const WORKLOAD_KINDS = ['tokens', 'counting'] as const;
const INITIATOR_KINDS = ['one', 'concurrent'] as const;
const FAULT_KINDS = ['crash'] as const;
const ALL_TOPOLOGY_KINDS = [...GENERATED_TOPOLOGY_KINDS, 'explicit'] as const;

/** Parses and validates scenario JSON. `source` (a file path, usually) prefixes every message. */
export function parseScenario(text: string, source: string): ScenarioParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return err([`${source}: not valid JSON: ${(error as Error).message}`]);
  }
  return validateScenario(value, source);
}

/** Validates an already-parsed value (a file's JSON, or a scenario built in code with overrides). */
export function validateScenario(value: unknown, source: string): ScenarioParse {
  const v = new Validator(source);
  const root = v.object(value, '', [
    '$schema',
    'name',
    'description',
    'topology',
    'workload',
    'delays',
    'fifo',
    'overtaking',
    'logChannels',
    'checkpoints',
    'alignmentTimeoutMs',
    'channelWindowMessagesMax',
    'skew',
    'faults',
    'durationMs',
  ]);
  if (root === undefined) return err(v.errors);

  // An editor that reads `$schema` validates and completes the file against simulations/scenario.schema.json.
  v.string(root, '$schema', '', { required: false });
  v.string(root, 'name', '', { required: true, maxLength: SCENARIO_LIMITS.nameLengthMax });
  v.string(root, 'description', '', { required: false });
  const durationMs = v.number(root, 'durationMs', '', { min: 0, exclusive: true, max: SCENARIO_LIMITS.durationMsMax });
  const known = checkTopology(v, root['topology']);
  checkWorkload(v, root['workload']);
  checkDelays(v, root['delays']);
  v.boolean(root, 'fifo', '');
  v.boolean(root, 'overtaking', '');
  if (root['overtaking'] === true && root['fifo'] === false) v.fail('overtaking', 'needs FIFO channels (a barrier overtakes the messages behind it in FIFO order)');
  checkLogChannels(v, root['logChannels'], root['fifo'] === false, known);
  checkCheckpoints(v, root['checkpoints'], durationMs, known);
  v.number(root, 'alignmentTimeoutMs', '', { required: false, min: 0, exclusive: true });
  v.number(root, 'channelWindowMessagesMax', '', { required: false, min: 1, integer: true });
  checkSkew(v, root['skew'], known);
  checkFaults(v, root['faults'], durationMs, known);

  if (v.errors.length > 0) return err(v.errors);
  // Every field was checked above against the Scenario type, so the cast only names what is proven.
  return ok(value as Scenario);
}

/**
 * The scenario a `--topology KIND --processes N` run uses: a token workload (so conservation is
 * checked) over moderately jittery channels, with checkpoints often enough to overlap traffic.
 * `overrides` replace whole top-level fields.
 */
export function scenarioForTopology(
  kind: GeneratedTopologyKind,
  processes: number,
  overrides: Partial<Omit<Scenario, 'topology'>> = {},
): Scenario {
  return {
    name: `${kind}-${processes}`,
    description: `Generated: ${kind} topology of ${processes} processes with the default token workload.`,
    topology: { kind, processes },
    workload: { kind: 'tokens', initialTokens: 100, sendIntervalMs: 5 },
    delays: { kind: 'uniform', minMs: 1, maxMs: 10 },
    fifo: true,
    checkpoints: { firstAtMs: 50, intervalMs: 100, timeoutMs: 2000 },
    alignmentTimeoutMs: 20,
    channelWindowMessagesMax: 64,
    durationMs: 1000,
    ...overrides,
  };
}

// ---------------------------------------------------------------------------------------------------
// Field groups

/** What is known about the graph's names: all of them for an explicit topology, only the count otherwise. */
interface KnownGraph {
  readonly processCount?: number;
  readonly processes?: ReadonlySet<ProcessId>;
  readonly channels?: ReadonlySet<string>;
}

function checkTopology(v: Validator, value: unknown): KnownGraph {
  const path = 'topology';
  if (value === undefined) {
    v.fail(path, `must be an object with a "kind" (one of ${quoteList(ALL_TOPOLOGY_KINDS)}), but it is missing`);
    return {};
  }
  const kind = v.kindOf(value, path, ALL_TOPOLOGY_KINDS);
  if (kind === undefined) return {};

  if (kind === 'explicit') {
    const t = v.object(value, path, ['kind', 'processes', 'channels']);
    if (t === undefined) return {};
    const processes = v.array(t, 'processes', path);
    const channels = v.array(t, 'channels', path);
    if (processes === undefined || channels === undefined) return {};
    let shapeOk = true;
    processes.forEach((p, i) => {
      if (typeof p !== 'string' || p.length === 0) {
        v.fail(`${path}.processes[${i}]`, `must be a non-empty string, got ${show(p)}`);
        shapeOk = false;
      } else if (p.includes('->')) {
        v.fail(`${path}.processes[${i}]`, `must not contain "->" (it separates channel ends), got ${show(p)}`);
        shapeOk = false;
      }
    });
    channels.forEach((c, i) => {
      const ok = Array.isArray(c) && c.length === 2 && c.every((end) => typeof end === 'string' && end.length > 0);
      if (!ok) {
        v.fail(`${path}.channels[${i}]`, `must be a pair of process names like ["a", "b"], got ${show(c)}`);
        shapeOk = false;
      }
    });
    if (processes.length > SCENARIO_LIMITS.processesMax) {
      v.fail(`${path}.processes`, `must list at most ${SCENARIO_LIMITS.processesMax} processes, got ${processes.length}`);
    }
    if (!shapeOk) return {};
    const names = processes as string[];
    const pairs = channels as [string, string][];
    // The core's graph validation is the one source of truth for what a legal app graph is.
    const graph = validateGraph({ processes: names, channels: pairs.map(([from, to]) => ({ from, to })) });
    if (!graph.ok) {
      for (const error of graph.errors) v.fail(path, `is invalid: ${error.message}`);
      return { processCount: names.length };
    }
    return {
      processCount: names.length,
      processes: new Set(names),
      channels: new Set(graph.graph.channels.map((c) => c.id)),
    };
  }

  const random = kind === 'random-dag' || kind === 'random-cyclic';
  const t = v.object(value, path, random ? ['kind', 'processes', 'degree', 'graphSeed'] : ['kind', 'processes']);
  if (t === undefined) return {};
  const processCount = v.number(t, 'processes', path, {
    min: PROCESSES_MIN[kind],
    integer: true,
    max: SCENARIO_LIMITS.processesMax,
  });
  if (random) {
    v.number(t, 'degree', path, { required: false, min: 0, exclusive: true });
    v.number(t, 'graphSeed', path, { required: false, min: 0, integer: true });
  }
  if (processCount === undefined) return {};
  // Generated graphs name their processes p0..p(n-1); their channels are known unless they depend on
  // the run's seed (a random graph without its own graph seed).
  const spec = t as unknown as TopologySpec;
  const channelsKnown = !random || t['graphSeed'] !== undefined;
  const graph = channelsKnown ? buildTopology(spec, 0) : undefined;
  return {
    processCount,
    processes: new Set(Array.from({ length: processCount }, (_, i) => `p${i}`)),
    ...(graph === undefined ? {} : { channels: new Set(graph.channels.map((c) => c.id)) }),
  };
}

function checkWorkload(v: Validator, value: unknown): void {
  const path = 'workload';
  if (value === undefined) {
    v.fail(path, `must be an object with a "kind" (one of ${quoteList(WORKLOAD_KINDS)}), but it is missing`);
    return;
  }
  const kind = v.kindOf(value, path, WORKLOAD_KINDS);
  if (kind === 'tokens') {
    const w = v.object(value, path, ['kind', 'initialTokens', 'sendIntervalMs']);
    if (w === undefined) return;
    v.number(w, 'initialTokens', path, { min: 0, integer: true });
    v.number(w, 'sendIntervalMs', path, { min: 0, exclusive: true });
  } else if (kind === 'counting') {
    const w = v.object(value, path, ['kind', 'sendIntervalMs']);
    if (w === undefined) return;
    v.number(w, 'sendIntervalMs', path, { min: 0, exclusive: true });
  }
}

function checkDelays(v: Validator, value: unknown): void {
  const path = 'delays';
  if (value === undefined) {
    v.fail(path, `must be an object with a "kind" (one of ${quoteList(DELAY_KINDS)}), but it is missing`);
    return;
  }
  const kind = v.kindOf(value, path, DELAY_KINDS);
  if (kind === 'fixed') {
    const d = v.object(value, path, ['kind', 'ms']);
    if (d !== undefined) v.number(d, 'ms', path, { min: 0 });
  } else if (kind === 'uniform') {
    const d = v.object(value, path, ['kind', 'minMs', 'maxMs']);
    if (d === undefined) return;
    const min = v.number(d, 'minMs', path, { min: 0 });
    const max = v.number(d, 'maxMs', path, { min: 0 });
    if (min !== undefined && max !== undefined && max < min) {
      v.fail(`${path}.maxMs`, `must be >= delays.minMs (${min}), got ${max}`);
    }
  } else if (kind === 'long-tail') {
    const d = v.object(value, path, ['kind', 'medianMs', 'p99Ms', 'maxMs']);
    if (d === undefined) return;
    const median = v.number(d, 'medianMs', path, { min: 0, exclusive: true });
    const p99 = v.number(d, 'p99Ms', path, { min: 0, exclusive: true });
    const max = v.number(d, 'maxMs', path, { required: false, min: 0, exclusive: true });
    if (median !== undefined && p99 !== undefined && p99 < median) {
      v.fail(`${path}.p99Ms`, `must be >= delays.medianMs (${median}), got ${p99}`);
    }
    if (max !== undefined && p99 !== undefined && max < p99) {
      v.fail(`${path}.maxMs`, `must be >= delays.p99Ms (${p99}), got ${max}`);
    }
  }
}

function checkCheckpoints(v: Validator, value: unknown, durationMs: number | undefined, known: KnownGraph): void {
  const path = 'checkpoints';
  if (value === undefined) {
    v.fail(path, 'must be an object with firstAtMs, intervalMs and timeoutMs, but it is missing');
    return;
  }
  const c = v.object(value, path, ['firstAtMs', 'intervalMs', 'count', 'timeoutMs', 'initiators', 'concurrentInitiators']);
  if (c === undefined) return;
  const firstAtMs = v.number(c, 'firstAtMs', path, { min: 0 });
  v.number(c, 'intervalMs', path, { min: 0, exclusive: true });
  v.number(c, 'count', path, { required: false, min: 1, integer: true });
  v.number(c, 'timeoutMs', path, { min: 0, exclusive: true });
  const initiators = v.oneOf(c, 'initiators', path, INITIATOR_KINDS);
  const concurrent = v.number(c, 'concurrentInitiators', path, { required: false, min: 1, integer: true });
  if (concurrent !== undefined && initiators !== 'concurrent') {
    v.fail(`${path}.concurrentInitiators`, 'is only used with checkpoints.initiators "concurrent"; set that too or remove it');
  }
  if (concurrent !== undefined && known.processCount !== undefined && concurrent > known.processCount) {
    v.fail(`${path}.concurrentInitiators`, `must be <= the number of processes (${known.processCount}), got ${concurrent}`);
  }
  if (firstAtMs !== undefined && durationMs !== undefined && firstAtMs >= durationMs) {
    v.fail(`${path}.firstAtMs`, `must be < durationMs (${durationMs}), or no checkpoint is ever triggered; got ${firstAtMs}`);
  }
}

function checkLogChannels(v: Validator, value: unknown, notFifo: boolean, known: KnownGraph): void {
  const path = 'logChannels';
  if (value === undefined) return;
  if (!Array.isArray(value)) {
    v.fail(path, `must be a list of channel ids like ["a->b"], got ${show(value)}`);
    return;
  }
  if (notFifo) v.fail(path, 'needs FIFO channels (a log keeps its order; the barrier is placed by sequence number)');
  value.forEach((channel: unknown, i) => {
    if (typeof channel !== 'string' || parseChannelId(channel) === undefined) v.fail(`${path}[${i}]`, `must be a channel id "from->to", got ${show(channel)}`);
    else if (known.channels !== undefined && !known.channels.has(channel)) v.fail(`${path}[${i}]`, unknownName('channel', channel, known.channels));
  });
}

function checkSkew(v: Validator, value: unknown, known: KnownGraph): void {
  const path = 'skew';
  if (value === undefined) return;
  const s = v.object(value, path, ['slowProcess', 'slowChannel']);
  if (s === undefined) return;
  if (s['slowProcess'] !== undefined) {
    const p = `${path}.slowProcess`;
    const sp = v.object(s['slowProcess'], p, ['process', 'serviceTimeMs']);
    if (sp !== undefined) {
      const process = v.string(sp, 'process', p, { required: true });
      if (process !== undefined && known.processes !== undefined && !known.processes.has(process)) {
        v.fail(`${p}.process`, unknownName('process', process, known.processes));
      }
      v.number(sp, 'serviceTimeMs', p, { min: 0, exclusive: true });
    }
  }
  if (s['slowChannel'] !== undefined) {
    const p = `${path}.slowChannel`;
    const sc = v.object(s['slowChannel'], p, ['channel', 'delayFactor']);
    if (sc !== undefined) {
      const channel = v.string(sc, 'channel', p, { required: true });
      if (channel !== undefined) {
        if (parseChannelId(channel) === undefined) {
          v.fail(`${p}.channel`, `must be a channel id "from->to", got ${show(channel)}`);
        } else if (known.channels !== undefined && !known.channels.has(channel)) {
          v.fail(`${p}.channel`, unknownName('channel', channel, known.channels));
        }
      }
      v.number(sc, 'delayFactor', p, { min: 0, exclusive: true });
    }
  }
}

function checkFaults(v: Validator, value: unknown, durationMs: number | undefined, known: KnownGraph): void {
  const path = 'faults';
  if (value === undefined) return;
  if (!Array.isArray(value)) {
    v.fail(path, `must be an array of faults, got ${show(value)}`);
    return;
  }
  if (value.length > SCENARIO_LIMITS.faultsMax) {
    v.fail(path, `must list at most ${SCENARIO_LIMITS.faultsMax} faults, got ${value.length}`);
  }
  value.forEach((fault, i) => {
    const p = `${path}[${i}]`;
    const kind = v.kindOf(fault, p, FAULT_KINDS);
    if (kind !== 'crash') return;
    const f = v.object(fault, p, ['kind', 'process', 'atMs']);
    if (f === undefined) return;
    const process = v.string(f, 'process', p, { required: true });
    if (process !== undefined && known.processes !== undefined && !known.processes.has(process)) {
      v.fail(`${p}.process`, unknownName('process', process, known.processes));
    }
    const atMs = v.number(f, 'atMs', p, { min: 0 });
    if (atMs !== undefined && durationMs !== undefined && atMs >= durationMs) {
      v.fail(`${p}.atMs`, `must be < durationMs (${durationMs}), or the crash never happens; got ${atMs}`);
    }
  });
}

/**
 * The names in skew and faults checked against the graph a run builds. For a random graph without its
 * own graph seed, the names are only known once the run's seed is: the CLI checks them here, before
 * the run, so a wrong name is reported with the valid ones rather than ignored or refused mid-run.
 */
export function checkNamesInGraph(scenario: Scenario, graph: AppGraph, source: string): string[] {
  const processes = new Set(graph.processes);
  const channels = new Set(graph.channels.map((c) => c.id));
  const problems: string[] = [];
  const slowProcess = scenario.skew?.slowProcess?.process;
  if (slowProcess !== undefined && !processes.has(slowProcess)) {
    problems.push(`${source}: skew.slowProcess.process ${unknownName('process', slowProcess, processes)}`);
  }
  const slowChannel = scenario.skew?.slowChannel?.channel;
  if (slowChannel !== undefined && !channels.has(slowChannel)) {
    problems.push(`${source}: skew.slowChannel.channel ${unknownName('channel', slowChannel, channels)}`);
  }
  (scenario.faults ?? []).forEach((f, i) => {
    if (!processes.has(f.process)) problems.push(`${source}: faults[${i}].process ${unknownName('process', f.process, processes)}`);
  });
  return problems;
}

/** Names listed in a message before the rest are only counted. */
const NAMES_LISTED_MAX = 24;

/** `names no channel of the topology, got "x" (channels: a->b, b->c)`: the valid names, or the first of them. */
export function unknownName(what: string, got: string, valid: Iterable<string>): string {
  return `names no ${what} of the topology, got ${show(got)} (${what === 'process' ? 'processes' : `${what}s`}: ${nameList(valid)})`;
}

/** The names, or the first NAMES_LISTED_MAX of them and how many more there are. */
export function nameList(names: Iterable<string>): string {
  const all = [...names];
  if (all.length === 0) return 'none';
  const listed = all.slice(0, NAMES_LISTED_MAX).join(', ');
  return all.length > NAMES_LISTED_MAX ? `${listed}, ... ${all.length - NAMES_LISTED_MAX} more` : listed;
}

// ---------------------------------------------------------------------------------------------------
// The validator: collects messages; each check returns the value only when it is valid.

type JsonObject = Record<string, unknown>;

interface NumberRule {
  readonly required?: boolean;
  readonly min: number;
  /** `min` itself is not allowed (`> min` rather than `>= min`). */
  readonly exclusive?: boolean;
  readonly integer?: boolean;
  readonly max?: number;
}

class Validator {
  readonly errors: string[] = [];

  constructor(private readonly source: string) {}

  fail(path: string, problem: string): void {
    this.errors.push(`${this.source}: ${path === '' ? 'the scenario' : path} ${problem}`);
  }

  /** A JSON object whose keys are all in `allowed`; unknown keys are reported, the object still returned. */
  object(value: unknown, path: string, allowed: readonly string[]): JsonObject | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(path, `must be an object, got ${show(value)}`);
      return undefined;
    }
    const obj = value as JsonObject;
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        this.fail(join(path, key), `is not a known field (known: ${allowed.join(', ')})`);
      }
    }
    return obj;
  }

  /** The `kind` discriminant of a union member, checked before the member's own fields. */
  kindOf<K extends string>(value: unknown, path: string, kinds: readonly K[]): K | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(path, `must be an object with a "kind" (one of ${quoteList(kinds)}), got ${show(value)}`);
      return undefined;
    }
    return this.oneOf(value as JsonObject, 'kind', path, kinds, true);
  }

  oneOf<K extends string>(
    obj: JsonObject,
    key: string,
    path: string,
    options: readonly K[],
    required = false,
  ): K | undefined {
    const value = obj[key];
    if (value === undefined) {
      if (required) this.fail(join(path, key), `must be one of ${quoteList(options)}, but it is missing`);
      return undefined;
    }
    if (typeof value !== 'string' || !(options as readonly string[]).includes(value)) {
      this.fail(join(path, key), `must be one of ${quoteList(options)}, got ${show(value)}`);
      return undefined;
    }
    return value as K;
  }

  number(obj: JsonObject, key: string, path: string, rule: NumberRule): number | undefined {
    const value = obj[key];
    const required = rule.required ?? true;
    const what = `${rule.integer ? 'an integer' : 'a number'} ${rule.exclusive ? '>' : '>='} ${rule.min}`;
    if (value === undefined) {
      if (required) this.fail(join(path, key), `must be ${what}, but it is missing`);
      return undefined;
    }
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (rule.exclusive ? value > rule.min : value >= rule.min) &&
      (!rule.integer || Number.isSafeInteger(value));
    if (!ok) {
      this.fail(join(path, key), `must be ${what}, got ${show(value)}`);
      return undefined;
    }
    if (rule.max !== undefined && value > rule.max) {
      this.fail(join(path, key), `must be <= ${rule.max}, got ${show(value)}`);
      return undefined;
    }
    return value;
  }

  string(obj: JsonObject, key: string, path: string, rule: { required: boolean; maxLength?: number }): string | undefined {
    const value = obj[key];
    if (value === undefined) {
      if (rule.required) this.fail(join(path, key), 'must be a non-empty string, but it is missing');
      return undefined;
    }
    if (typeof value !== 'string' || value.length === 0) {
      this.fail(join(path, key), `must be a non-empty string, got ${show(value)}`);
      return undefined;
    }
    if (rule.maxLength !== undefined && value.length > rule.maxLength) {
      this.fail(join(path, key), `must be at most ${rule.maxLength} characters, got ${value.length}`);
      return undefined;
    }
    return value;
  }

  boolean(obj: JsonObject, key: string, path: string): boolean | undefined {
    const value = obj[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') {
      this.fail(join(path, key), `must be true or false, got ${show(value)}`);
      return undefined;
    }
    return value;
  }

  array(obj: JsonObject, key: string, path: string): unknown[] | undefined {
    const value = obj[key];
    if (!Array.isArray(value)) {
      this.fail(join(path, key), value === undefined ? 'must be an array, but it is missing' : `must be an array, got ${show(value)}`);
      return undefined;
    }
    return value;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function quoteList(options: readonly string[]): string {
  return options.map((o) => `"${o}"`).join(', ');
}

/** The offending value as JSON, shortened so one huge value cannot flood the message. */
function show(value: unknown): string {
  const SHOWN_CHARS_MAX = 60;
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > SHOWN_CHARS_MAX ? `${text.slice(0, SHOWN_CHARS_MAX - 3)}...` : text;
}
