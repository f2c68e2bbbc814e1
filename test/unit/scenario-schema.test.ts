/**
 * simulations/scenario.schema.json against what the simulator accepts: every shipped scenario and
 * every default generated one validates; structural mistakes the simulator refuses are refused by the
 * schema too; and the fields the schema knows are the ones the simulator's validator knows.
 *
 * The JSON Schema checker is written here (no schema library is a dependency): it implements the
 * keywords the schema uses and throws on any other, so the schema cannot grow a keyword that this test
 * would silently ignore.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERATED_TOPOLOGY_KINDS, PROCESSES_MIN, parseScenario, scenarioForTopology } from '../../simulations/scenario-file.js';

const root = join(import.meta.dirname, '..', '..');
const schema = JSON.parse(readFileSync(join(root, 'simulations', 'scenario.schema.json'), 'utf8')) as Schema;
const scenariosDir = join(root, 'simulations', 'scenarios');

type Schema = Record<string, unknown>;

/** Keywords that only describe; they never fail a value. */
const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', '$defs']);

/** Problems of `value` against `node` (empty when valid), each naming its JSON path. */
function check(value: unknown, node: Schema, path = '$'): string[] {
  const problems: string[] = [];
  for (const [keyword, arg] of Object.entries(node)) {
    if (ANNOTATIONS.has(keyword)) continue;
    switch (keyword) {
      case '$ref': {
        const ref = arg as string;
        if (!ref.startsWith('#/$defs/')) throw new Error(`unsupported $ref ${ref}`);
        problems.push(...check(value, (schema['$defs'] as Record<string, Schema>)[ref.slice('#/$defs/'.length)]!, path));
        break;
      }
      case 'type': {
        const t = arg as string;
        const okType =
          t === 'object' ? typeof value === 'object' && value !== null && !Array.isArray(value)
          : t === 'array' ? Array.isArray(value)
          : t === 'integer' ? Number.isSafeInteger(value)
          : t === 'number' ? typeof value === 'number' && Number.isFinite(value)
          : typeof value === t;
        if (!okType) return [`${path}: not ${t}`];
        break;
      }
      case 'enum':
        if (!(arg as unknown[]).includes(value)) problems.push(`${path}: not one of ${JSON.stringify(arg)}`);
        break;
      case 'const':
        if (value !== arg) problems.push(`${path}: not ${JSON.stringify(arg)}`);
        break;
      case 'required':
        for (const key of arg as string[]) if (!(key in (value as object))) problems.push(`${path}.${key}: missing`);
        break;
      case 'properties':
        for (const [key, sub] of Object.entries(arg as Record<string, Schema>)) {
          if (key in (value as object)) problems.push(...check((value as Record<string, unknown>)[key], sub, `${path}.${key}`));
        }
        break;
      case 'additionalProperties': {
        if (arg !== false) throw new Error('only additionalProperties: false is supported');
        const known = Object.keys((node['properties'] ?? {}) as object);
        for (const key of Object.keys(value as object)) if (!known.includes(key)) problems.push(`${path}.${key}: not allowed`);
        break;
      }
      case 'items':
        (value as unknown[]).forEach((item, i) => problems.push(...check(item, arg as Schema, `${path}[${i}]`)));
        break;
      case 'minItems':
        if ((value as unknown[]).length < (arg as number)) problems.push(`${path}: fewer than ${arg} items`);
        break;
      case 'maxItems':
        if ((value as unknown[]).length > (arg as number)) problems.push(`${path}: more than ${arg} items`);
        break;
      case 'minimum':
        if ((value as number) < (arg as number)) problems.push(`${path}: < ${arg}`);
        break;
      case 'exclusiveMinimum':
        if ((value as number) <= (arg as number)) problems.push(`${path}: <= ${arg}`);
        break;
      case 'maximum':
        if ((value as number) > (arg as number)) problems.push(`${path}: > ${arg}`);
        break;
      case 'minLength':
        if ([...(value as string)].length < (arg as number)) problems.push(`${path}: shorter than ${arg}`);
        break;
      case 'maxLength':
        if ([...(value as string)].length > (arg as number)) problems.push(`${path}: longer than ${arg}`);
        break;
      case 'pattern':
        if (!new RegExp(arg as string, 'u').test(value as string)) problems.push(`${path}: does not match ${arg}`);
        break;
      case 'oneOf': {
        const passing = (arg as Schema[]).filter((sub) => check(value, sub, path).length === 0).length;
        if (passing !== 1) problems.push(`${path}: matches ${passing} of the oneOf branches, not exactly 1`);
        break;
      }
      default:
        throw new Error(`the schema uses ${keyword}, which this checker does not implement`);
    }
  }
  return problems;
}

const shipped = readdirSync(scenariosDir).filter((f) => f.endsWith('.json')).sort();

/** A valid scenario touching every optional field, for breaking one thing at a time. */
function full(): Record<string, any> {
  return {
    $schema: '../scenario.schema.json',
    name: 'full',
    description: 'every field',
    topology: { kind: 'explicit', processes: ['a', 'b'], channels: [['a', 'b'], ['b', 'a']] },
    workload: { kind: 'tokens', initialTokens: 10, sendIntervalMs: 2 },
    delays: { kind: 'long-tail', medianMs: 2, p99Ms: 9, maxMs: 20 },
    fifo: false,
    checkpoints: { firstAtMs: 10, intervalMs: 50, count: 3, timeoutMs: 500, initiators: 'concurrent', concurrentInitiators: 2 },
    alignmentTimeoutMs: 20,
    channelWindowMessagesMax: 16,
    skew: { slowChannel: { channel: 'a->b', delayFactor: 3 }, slowProcess: { process: 'b', serviceTimeMs: 1 } },
    faults: [{ kind: 'crash', process: 'b', atMs: 100 }],
    durationMs: 300,
  };
}

describe('the scenario JSON Schema', () => {
  it.each(shipped)('accepts the shipped scenario %s', (file) => {
    expect(check(JSON.parse(readFileSync(join(scenariosDir, file), 'utf8')), schema)).toEqual([]);
  });

  it.each(GENERATED_TOPOLOGY_KINDS)('accepts the default %s scenario at its smallest size', (kind) => {
    expect(check(scenarioForTopology(kind, PROCESSES_MIN[kind]), schema)).toEqual([]);
  });

  it('accepts a scenario with every optional field, as the simulator does', () => {
    expect(parseScenario(JSON.stringify(full()), 'full.json').ok).toBe(true);
    expect(check(full(), schema)).toEqual([]);
  });

  it.each<[string, (s: Record<string, any>) => void, string]>([
    ['an unknown top-level field', (s) => (s.alignmentTimeoutMS = 5), '$.alignmentTimeoutMS'],
    ['a missing name', (s) => delete s.name, '$.name'],
    ['an unknown topology kind', (s) => (s.topology = { kind: 'star', processes: 3 }), '$.topology'],
    ['a diamond of three processes', (s) => (s.topology = { kind: 'diamond', processes: 3 }), '$.topology'],
    ['a fractional process count', (s) => (s.topology = { kind: 'ring', processes: 2.5 }), '$.topology'],
    ['a degree on a ring', (s) => (s.topology = { kind: 'ring', processes: 3, degree: 2 }), '$.topology'],
    ['a process name with an arrow', (s) => (s.topology.processes = ['a->x', 'b']), '$.topology'],
    ['a channel of three ends', (s) => (s.topology.channels = [['a', 'b', 'a']]), '$.topology'],
    ['a zero checkpoint interval', (s) => (s.checkpoints.intervalMs = 0), '$.checkpoints.intervalMs'],
    ['an unknown initiators kind', (s) => (s.checkpoints.initiators = 'all'), '$.checkpoints.initiators'],
    ['a string where a number goes', (s) => (s.durationMs = '300'), '$.durationMs'],
    ['an unknown delay kind', (s) => (s.delays = { kind: 'normal', ms: 3 }), '$.delays'],
    ['a slow channel that is not a channel id', (s) => (s.skew.slowChannel.channel = 'ab'), '$.skew.slowChannel.channel'],
    ['a slow channel with two arrows', (s) => (s.skew.slowChannel.channel = 'a->b->c'), '$.skew.slowChannel.channel'],
    ['a fault of another kind', (s) => (s.faults[0].kind = 'partition'), '$.faults[0].kind'],
    ['a window of zero', (s) => (s.channelWindowMessagesMax = 0), '$.channelWindowMessagesMax'],
    ['a run of more than an hour', (s) => (s.durationMs = 3_600_001), '$.durationMs'],
  ])('refuses %s, as the simulator does', (_what, mutate, path) => {
    const s = full();
    mutate(s);
    expect(parseScenario(JSON.stringify(s), 'x.json').ok).toBe(false);
    // Refused for that mistake, at its place: `full()` alone passes, so nothing else can be the cause.
    expect(check(s, schema).map((p) => p.slice(0, p.indexOf(': ')))).toEqual([path]);
  });

  /** The fields the simulator's validator lists when it meets an unknown one at `path`. */
  function validatorFields(place: (s: Record<string, any>) => Record<string, any>, path: string): string[] {
    const s = full();
    place(s)['zzz'] = 1;
    const parsed = parseScenario(JSON.stringify(s), 'x.json');
    const message = parsed.ok ? '' : parsed.error.find((e) => e.includes(`${path === '' ? '' : `${path}.`}zzz is not a known field`)) ?? '';
    return /\(known: (.*)\)$/.exec(message)?.[1]?.split(', ').sort() ?? [];
  }

  const defs = schema['$defs'] as Record<string, Schema>;
  const props = (node: Schema): string[] => Object.keys(node['properties'] as object).sort();

  it.each<[string, (s: Record<string, any>) => Record<string, any>, Schema]>([
    ['', (s) => s, schema],
    ['checkpoints', (s) => s.checkpoints, defs['checkpoints']!],
    ['skew', (s) => s.skew, defs['skew']!],
    ['skew.slowChannel', (s) => s.skew.slowChannel, (defs['skew']!['properties'] as Record<string, Schema>)['slowChannel']!],
    ['delays', (s) => s.delays, (defs['delays']!['oneOf'] as Schema[])[2]!],
    ['faults[0]', (s) => s.faults[0], defs['crash']!],
  ])('knows the same fields as the simulator at "%s"', (path, place, node) => {
    const fields = validatorFields(place, path);
    expect(fields.length).toBeGreaterThan(0);
    expect(props(node)).toEqual(fields);
  });
});
