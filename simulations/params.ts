/**
 * Scenario parameters that the CLI can set (`run --set skew=4`) or sweep (`sweep skew=1..8`): one
 * registry, so a swept run can always be reproduced as a single `run` with the same `--set`.
 *
 * Each parameter says how to apply a value to a scenario. Applying never validates the whole
 * scenario; the caller runs `validateScenario` on the result, so one set of messages covers files,
 * flags and sweeps alike.
 */
import type { AppGraph } from '../src/graph/index.js';
import { err, ok, type Result } from '../src/result.js';
import { buildTopology } from './topology.js';
import type { Scenario } from './types.js';

export type ParamName = 'processes' | 'skew' | 'service-time' | 'interval' | 'seed' | 'window' | 'alignment-timeout';

export interface ParamSpec {
  readonly name: ParamName;
  readonly description: string;
  readonly integer: boolean;
  /** Smallest allowed value; `exclusive` means the value must be strictly greater. */
  readonly min: number;
  readonly exclusive: boolean;
}

export const PARAMS: readonly ParamSpec[] = [
  { name: 'processes', description: 'number of processes (generated topologies only)', integer: true, min: 2, exclusive: false },
  { name: 'skew', description: 'delay factor of the slow channel (skew.slowChannel.delayFactor)', integer: false, min: 0, exclusive: true },
  {
    name: 'service-time',
    description: 'ms the slow process takes per delivery (skew.slowProcess.serviceTimeMs; 0: no slow process)',
    integer: false,
    min: 0,
    exclusive: false,
  },
  { name: 'interval', description: 'checkpoint interval in ms (checkpoints.intervalMs)', integer: false, min: 0, exclusive: true },
  { name: 'seed', description: 'run seeds, the replicates of every point (sweep only; run and compare take --seed)', integer: true, min: 0, exclusive: false },
  { name: 'window', description: 'messages in flight per channel (channelWindowMessagesMax)', integer: true, min: 1, exclusive: false },
  { name: 'alignment-timeout', description: 'alignment timeout in ms (alignmentTimeoutMs, for abs-timeout)', integer: false, min: 0, exclusive: true },
];

export const SEED_MAX = 0xffff_ffff;

export function paramSpec(name: string): ParamSpec | undefined {
  return PARAMS.find((p) => p.name === name);
}

/** What a param did to the run, for messages such as which channel `skew` chose. */
export interface Applied {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly note?: string;
}

export type ApplyResult = Result<Applied, string>;

export function applyParam(scenario: Scenario, seed: number, name: ParamName, value: number): ApplyResult {
  const applied = (s: Scenario, note?: string): ApplyResult => ok(note === undefined ? { scenario: s, seed } : { scenario: s, seed, note });
  switch (name) {
    case 'processes': {
      const t = scenario.topology;
      if (t.kind === 'explicit') {
        return err('processes can only be set for a generated topology (the scenario lists its processes explicitly)');
      }
      // A generated scenario is named after its size; keep the name telling the truth.
      const name = scenario.name === `${t.kind}-${t.processes}` ? `${t.kind}-${value}` : scenario.name;
      return applied({ ...scenario, name, topology: { ...t, processes: value } });
    }
    case 'skew': {
      const existing = scenario.skew?.slowChannel;
      if (existing !== undefined) {
        return applied({ ...scenario, skew: { ...scenario.skew, slowChannel: { ...existing, delayFactor: value } } });
      }
      const channel = defaultSlowChannel(buildTopology(scenario.topology, seed));
      if (channel === undefined) return err('skew needs a channel to slow down, and the topology has none');
      return applied(
        { ...scenario, skew: { ...scenario.skew, slowChannel: { channel, delayFactor: value } } },
        `skew slows channel ${channel} (set skew.slowChannel in a scenario file to choose another)`,
      );
    }
    case 'service-time': {
      // Which process is hot is the scenario's choice, not a guess: there is no natural default.
      const existing = scenario.skew?.slowProcess;
      if (existing === undefined) return err('service-time needs a scenario with skew.slowProcess (it names the slow process)');
      const { slowProcess: _, ...rest } = scenario.skew ?? {};
      if (value > 0) return applied({ ...scenario, skew: { ...rest, slowProcess: { ...existing, serviceTimeMs: value } } });
      const { skew: __, ...uniform } = scenario;
      return applied(rest.slowChannel === undefined ? uniform : { ...uniform, skew: rest });
    }
    case 'interval':
      return applied({ ...scenario, checkpoints: { ...scenario.checkpoints, intervalMs: value } });
    case 'seed':
      return ok({ scenario, seed: value });
    case 'window':
      return applied({ ...scenario, channelWindowMessagesMax: value });
    case 'alignment-timeout':
      return applied({ ...scenario, alignmentTimeoutMs: value });
  }
}

/**
 * The channel that makes skew visible: the first input of the process with the most inputs, where
 * aligned barriers have to wait for the slowest one. Ties go to declaration order, so the choice is
 * the same every time.
 */
export function defaultSlowChannel(graph: AppGraph): string | undefined {
  const inputs = new Map<string, string[]>();
  for (const c of graph.channels) inputs.set(c.to, [...(inputs.get(c.to) ?? []), c.id]);
  let best: string[] | undefined;
  for (const p of graph.processes) {
    const list = inputs.get(p) ?? [];
    if (list.length > 0 && (best === undefined || list.length > best.length)) best = list;
  }
  return best?.[0];
}

/** Parses one value for a param: a finite number meeting the param's rules. */
export function parseParamValue(spec: ParamSpec, text: string): Result<number, string> {
  const value = Number(text);
  const what = `${spec.integer ? 'an integer' : 'a number'} ${spec.exclusive ? '>' : '>='} ${spec.min}`;
  const valid =
    text.trim() !== '' &&
    Number.isFinite(value) &&
    (spec.exclusive ? value > spec.min : value >= spec.min) &&
    (!spec.integer || Number.isSafeInteger(value)) &&
    (spec.name !== 'seed' || value <= SEED_MAX);
  if (!valid) return err(`${spec.name} must be ${what}${spec.name === 'seed' ? ` and <= ${SEED_MAX}` : ''}, got "${text}"`);
  return ok(value);
}

/** Most points one sweep may have, so a typo in a range cannot start a million runs. */
const SWEEP_POINTS_MAX = 1000;

export interface SweepSpec {
  readonly param: ParamSpec;
  readonly values: readonly number[];
}

/**
 * `PARAM=FROM..TO[:STEP]` (inclusive, STEP defaults to 1) or `PARAM=V1,V2,...`. Points are computed as
 * FROM + i * STEP and rounded to 10 decimals, so `0.1` steps do not drift into `0.30000000000000004`.
 */
export function parseSweep(text: string): Result<SweepSpec, string> {
  const eq = text.indexOf('=');
  if (eq <= 0) return err(`sweep expects PARAM=FROM..TO[:STEP], got "${text}"`);
  const name = text.slice(0, eq);
  const spec = paramSpec(name);
  if (spec === undefined) {
    return err(`unknown sweep parameter "${name}" (known: ${PARAMS.map((p) => p.name).join(', ')})`);
  }
  const body = text.slice(eq + 1);
  const colon = body.indexOf(':');
  const rangeText = colon < 0 ? body : body.slice(0, colon);
  const ends = rangeText.split('..');
  let values: number[];
  if (ends.length === 2) {
    const [from, to, step] = [ends[0]!, ends[1]!, colon < 0 ? '1' : body.slice(colon + 1)];
    const parsedFrom = parseParamValue(spec, from);
    if (!parsedFrom.ok) return parsedFrom;
    const parsedTo = parseParamValue(spec, to);
    if (!parsedTo.ok) return parsedTo;
    const stepValue = Number(step);
    if (step.trim() === '' || !Number.isFinite(stepValue) || stepValue <= 0 || (spec.integer && !Number.isSafeInteger(stepValue))) {
      return err(`sweep step must be ${spec.integer ? 'an integer' : 'a number'} > 0, got "${step}"`);
    }
    if (parsedTo.value < parsedFrom.value) {
      return err(`sweep range must go up (FROM <= TO), got ${parsedFrom.value}..${parsedTo.value}`);
    }
    const count = Math.floor((parsedTo.value - parsedFrom.value) / stepValue + 1e-9) + 1;
    if (count > SWEEP_POINTS_MAX) {
      return err(`sweep has ${count} points; at most ${SWEEP_POINTS_MAX} are allowed`);
    }
    values = Array.from({ length: count }, (_, i) => Number((parsedFrom.value + i * stepValue).toFixed(10)));
  } else if (ends.length === 1 && colon < 0) {
    const parts = body.split(',');
    if (parts.length > SWEEP_POINTS_MAX) {
      return err(`sweep has ${parts.length} points; at most ${SWEEP_POINTS_MAX} are allowed`);
    }
    values = [];
    for (const part of parts) {
      const parsed = parseParamValue(spec, part);
      if (!parsed.ok) return err(`${parsed.error} (sweep expects PARAM=FROM..TO[:STEP] or PARAM=V1,V2,...)`);
      values.push(parsed.value);
    }
  } else {
    return err(`sweep expects PARAM=FROM..TO[:STEP] or PARAM=V1,V2,..., got "${text}"`);
  }
  return ok({ param: spec, values });
}
