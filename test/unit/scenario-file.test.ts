import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  GENERATED_TOPOLOGY_KINDS,
  parseScenario,
  PROCESSES_MIN,
  scenarioForTopology,
  validateScenario,
} from '../../simulations/scenario-file.js';

const scenariosDir = join(import.meta.dirname, '..', '..', 'simulations', 'scenarios');

/** A valid scenario as plain JSON data; each table row breaks one thing in a copy of it. */
function valid(): Record<string, any> {
  return {
    name: 'base',
    description: 'a valid scenario that each row breaks in one way',
    topology: { kind: 'explicit', processes: ['a', 'b', 'c'], channels: [['a', 'b'], ['b', 'c'], ['c', 'a']] },
    workload: { kind: 'tokens', initialTokens: 10, sendIntervalMs: 2 },
    delays: { kind: 'uniform', minMs: 1, maxMs: 5 },
    fifo: true,
    checkpoints: { firstAtMs: 10, intervalMs: 50, timeoutMs: 500 },
    alignmentTimeoutMs: 20,
    channelWindowMessagesMax: 16,
    skew: { slowChannel: { channel: 'a->b', delayFactor: 3 }, slowProcess: { process: 'c', serviceTimeMs: 1 } },
    faults: [{ kind: 'crash', process: 'b', atMs: 100 }],
    durationMs: 300,
  };
}

function errorsOf(mutate: (s: Record<string, any>) => void): readonly string[] {
  const s = valid();
  mutate(s);
  const result = parseScenario(JSON.stringify(s), 'test.json');
  return result.ok ? [] : result.error;
}

/** [what is wrong, how to break the scenario, a message that must be among the errors]. */
const INVALID: [string, (s: Record<string, any>) => void, string][] = [
  ['a missing name', (s) => delete s.name, 'name must be a non-empty string, but it is missing'],
  ['an empty name', (s) => (s.name = ''), 'name must be a non-empty string, got ""'],
  ['an unknown top-level field', (s) => (s.alignmentTimeoutMS = 5), 'alignmentTimeoutMS is not a known field'],
  ['a missing topology', (s) => delete s.topology, 'topology must be an object with a "kind"'],
  ['an unknown topology kind', (s) => (s.topology = { kind: 'star', processes: 3 }), 'topology.kind must be one of "pipeline"'],
  ['a topology of too few processes', (s) => (s.topology = { kind: 'ring', processes: 1 }), 'topology.processes must be an integer >= 2, got 1'],
  ['a diamond of three processes', (s) => (s.topology = { kind: 'diamond', processes: 3 }), 'topology.processes must be an integer >= 4, got 3'],
  ['a fractional process count', (s) => (s.topology = { kind: 'pipeline', processes: 2.5 }), 'topology.processes must be an integer >= 2, got 2.5'],
  ['a huge process count', (s) => (s.topology = { kind: 'pipeline', processes: 1e9 }), 'topology.processes must be <= 10000'],
  ['a degree on a non-random topology', (s) => (s.topology = { kind: 'ring', processes: 3, degree: 2 }), 'topology.degree is not a known field'],
  [
    'a negative graph seed',
    (s) => (s.topology = { kind: 'random-dag', processes: 3, graphSeed: -1 }),
    'topology.graphSeed must be an integer >= 0, got -1',
  ],
  ['an explicit process that is not a string', (s) => (s.topology.processes[1] = 7), 'topology.processes[1] must be a non-empty string, got 7'],
  ['an explicit channel that is not a pair', (s) => (s.topology.channels[0] = ['a']), 'topology.channels[0] must be a pair of process names'],
  ['a channel to an undeclared process', (s) => s.topology.channels.push(['a', 'z']), 'topology is invalid: channel a->z ends at undeclared process z'],
  ['a self-loop', (s) => s.topology.channels.push(['a', 'a']), 'topology is invalid: channel a->a connects process a to itself'],
  ['a duplicated process', (s) => s.topology.processes.push('a'), 'topology is invalid: process a is declared 2 times'],
  ['a process name containing the channel arrow', (s) => (s.topology.processes[0] = 'x->y'), 'must not contain "->"'],
  ['a missing workload', (s) => delete s.workload, 'workload must be an object with a "kind" (one of "tokens", "counting")'],
  ['negative initial tokens', (s) => (s.workload.initialTokens = -1), 'workload.initialTokens must be an integer >= 0, got -1'],
  ['a zero send interval', (s) => (s.workload.sendIntervalMs = 0), 'workload.sendIntervalMs must be a number > 0, got 0'],
  ['a tokens field on a counting workload', (s) => (s.workload.kind = 'counting'), 'workload.initialTokens is not a known field'],
  ['an unknown delay kind', (s) => (s.delays = { kind: 'normal' }), 'delays.kind must be one of "fixed", "uniform", "long-tail", got "normal"'],
  ['a uniform range that goes down', (s) => (s.delays = { kind: 'uniform', minMs: 5, maxMs: 1 }), 'delays.maxMs must be >= delays.minMs (5), got 1'],
  ['a long tail below its median', (s) => (s.delays = { kind: 'long-tail', medianMs: 5, p99Ms: 2 }), 'delays.p99Ms must be >= delays.medianMs (5), got 2'],
  ['a fixed delay given as a string', (s) => (s.delays = { kind: 'fixed', ms: '3' }), 'delays.ms must be a number >= 0, got "3"'],
  ['fifo given as a string', (s) => (s.fifo = 'no'), 'fifo must be true or false, got "no"'],
  ['a missing checkpoint schedule', (s) => delete s.checkpoints, 'checkpoints must be an object with firstAtMs, intervalMs and timeoutMs'],
  ['a string checkpoint interval', (s) => (s.checkpoints.intervalMs = '100'), 'checkpoints.intervalMs must be a number > 0, got "100"'],
  ['a missing checkpoint interval', (s) => delete s.checkpoints.intervalMs, 'checkpoints.intervalMs must be a number > 0, but it is missing'],
  ['a zero checkpoint timeout', (s) => (s.checkpoints.timeoutMs = 0), 'checkpoints.timeoutMs must be a number > 0, got 0'],
  ['a zero checkpoint count', (s) => (s.checkpoints.count = 0), 'checkpoints.count must be an integer >= 1, got 0'],
  ['the first checkpoint after the end', (s) => (s.checkpoints.firstAtMs = 300), 'checkpoints.firstAtMs must be < durationMs (300)'],
  ['an unknown initiator mode', (s) => (s.checkpoints.initiators = 'all'), 'checkpoints.initiators must be one of "one", "concurrent", got "all"'],
  [
    'concurrent initiators without the concurrent mode',
    (s) => (s.checkpoints.concurrentInitiators = 2),
    'checkpoints.concurrentInitiators is only used with checkpoints.initiators "concurrent"',
  ],
  [
    'more concurrent initiators than processes',
    (s) => Object.assign(s.checkpoints, { initiators: 'concurrent', concurrentInitiators: 4 }),
    'checkpoints.concurrentInitiators must be <= the number of processes (3), got 4',
  ],
  ['a negative alignment timeout', (s) => (s.alignmentTimeoutMs = -5), 'alignmentTimeoutMs must be a number > 0, got -5'],
  ['a zero channel window', (s) => (s.channelWindowMessagesMax = 0), 'channelWindowMessagesMax must be an integer >= 1, got 0'],
  ['a slow channel that is not a channel id', (s) => (s.skew.slowChannel.channel = 'ab'), 'skew.slowChannel.channel must be a channel id "from->to", got "ab"'],
  ['a slow channel that is not in the graph', (s) => (s.skew.slowChannel.channel = 'b->a'), 'skew.slowChannel.channel names no channel of the topology, got "b->a" (channels: a->b, b->c, c->a)'],
  ['a zero delay factor', (s) => (s.skew.slowChannel.delayFactor = 0), 'skew.slowChannel.delayFactor must be a number > 0, got 0'],
  ['a slow process that is not in the graph', (s) => (s.skew.slowProcess.process = 'z'), 'skew.slowProcess.process names no process of the topology, got "z" (processes: a, b, c)'],
  [
    'a slow process of a generated graph that does not exist',
    (s) => Object.assign(s, { topology: { kind: 'ring', processes: 3 }, skew: { slowProcess: { process: 'p3', serviceTimeMs: 1 } }, faults: [] }),
    'skew.slowProcess.process names no process of the topology, got "p3"',
  ],
  ['faults that are not an array', (s) => (s.faults = { kind: 'crash' }), 'faults must be an array of faults'],
  ['an unknown fault kind', (s) => (s.faults[0].kind = 'partition'), 'faults[0].kind must be one of "crash", got "partition"'],
  ['a crash of an unknown process', (s) => (s.faults[0].process = 'z'), 'faults[0].process names no process of the topology, got "z" (processes: a, b, c)'],
  ['a crash after the end of the run', (s) => (s.faults[0].atMs = 1000), 'faults[0].atMs must be < durationMs (300), or the crash never happens'],
  ['a missing duration', (s) => delete s.durationMs, 'durationMs must be a number > 0, but it is missing'],
  ['an absurd duration', (s) => (s.durationMs = 1e12), 'durationMs must be <= 3600000'],
];

describe('scenario files', () => {
  it('the base scenario of the table below is itself valid', () => {
    expect(errorsOf(() => {})).toEqual([]);
  });

  it.each(INVALID)('a scenario with %s is rejected with a message naming the JSON path', (_what, mutate, message) => {
    const errors = errorsOf(mutate);
    expect(errors.some((e) => e.includes(message)), `expected "${message}" among:\n${errors.join('\n')}`).toBe(true);
    // Every message says which file it is about.
    for (const e of errors) expect(e.startsWith('test.json: ')).toBe(true);
  });

  it('text that is not JSON is rejected with the parser message and the source', () => {
    const result = parseScenario('{ "name": ', 'broken.json');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error[0]).toMatch(/^broken\.json: not valid JSON: /);
  });

  it('a value that is not an object is rejected as a whole', () => {
    const result = parseScenario('[1, 2]', 'array.json');
    expect(result).toEqual({ ok: false, error: ['array.json: the scenario must be an object, got [1,2]'] });
  });

  it('every problem in a file is reported at once, not just the first', () => {
    const errors = errorsOf((s) => {
      s.durationMs = -1;
      s.checkpoints.intervalMs = 0;
      s.workload.sendIntervalMs = 'fast';
    });
    expect(errors).toHaveLength(3);
  });

  it('a long offending value is shortened in the message', () => {
    const errors = errorsOf((s) => (s.fifo = 'x'.repeat(500)));
    expect(errors[0]!.length).toBeLessThan(200);
    expect(errors[0]).toContain('...');
  });

  const shipped = readdirSync(scenariosDir).filter((f) => f.endsWith('.json'));

  it('at least seven scenarios are shipped', () => {
    expect(shipped.length).toBeGreaterThanOrEqual(7);
  });

  it.each(shipped)('shipped scenario %s parses and says what behaviour it shows', (file) => {
    const result = parseScenario(readFileSync(join(scenariosDir, file), 'utf8'), file);
    expect(result.ok ? [] : result.error).toEqual([]);
    if (!result.ok) return;
    expect(result.value.name).toBe(file.replace(/\.json$/, ''));
    expect(result.value.description?.length ?? 0).toBeGreaterThan(40);
  });

  it('the shipped scenarios cover the behaviours the simulator is meant to show', () => {
    const scenarios = shipped.map((f) => {
      const r = parseScenario(readFileSync(join(scenariosDir, f), 'utf8'), f);
      if (!r.ok) throw new Error(r.error.join('\n'));
      return r.value;
    });
    expect(scenarios.some((s) => s.skew?.slowChannel !== undefined)).toBe(true);
    expect(scenarios.some((s) => s.skew?.slowProcess !== undefined)).toBe(true);
    expect(scenarios.some((s) => s.checkpoints.initiators === 'concurrent')).toBe(true);
    expect(scenarios.some((s) => (s.faults ?? []).length > 0)).toBe(true);
    expect(scenarios.some((s) => s.fifo === false)).toBe(true);
    expect(scenarios.some((s) => s.workload.kind === 'counting' && s.topology.kind === 'pipeline')).toBe(true);
    expect(scenarios.some((s) => s.topology.kind === 'ring')).toBe(true);
    expect(scenarios.some((s) => s.topology.kind === 'random-cyclic' && s.topology.processes === 12)).toBe(true);
  });
});

describe('default scenarios for --topology KIND --processes N', () => {
  it.each(GENERATED_TOPOLOGY_KINDS)('the default %s scenario is valid at its smallest size', (kind) => {
    const scenario = scenarioForTopology(kind, PROCESSES_MIN[kind]);
    expect(validateScenario(scenario, kind)).toEqual({ ok: true, value: scenario });
  });

  it('the defaults are a token workload, 1-10 ms uniform delays and checkpoints every 100 ms from 50 ms', () => {
    const s = scenarioForTopology('ring', 5);
    expect(s.name).toBe('ring-5');
    expect(s.topology).toEqual({ kind: 'ring', processes: 5 });
    expect(s.workload.kind).toBe('tokens');
    expect(s.delays).toEqual({ kind: 'uniform', minMs: 1, maxMs: 10 });
    expect(s.checkpoints).toEqual({ firstAtMs: 50, intervalMs: 100, timeoutMs: 2000 });
    expect(s.durationMs).toBe(1000);
    expect(s.channelWindowMessagesMax).toBe(64);
    expect(s.alignmentTimeoutMs).toBe(20);
  });

  it('overrides replace whole fields and keep the rest', () => {
    const s = scenarioForTopology('pipeline', 3, { durationMs: 200, fifo: false });
    expect(s.durationMs).toBe(200);
    expect(s.fifo).toBe(false);
    expect(s.checkpoints.intervalMs).toBe(100);
  });
});
