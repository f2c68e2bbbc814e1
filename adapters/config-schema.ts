/**
 * One configuration schema per daemon (zod), and everything derived from it: the parse of a file,
 * environment variables and command-line flags onto the same keys, error messages that name the
 * key path (and the nearest valid key for a misspelt one), and the generated reference
 * (docs/configuration.md). A limit lives once, in the schema, with its default and its unit.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';

/** What the schema says about one key beyond its type: read by the parser and the docs. */
export interface FieldMeta {
  readonly description: string;
  /** Shown in the reference: ms, bytes, messages, a path, a URL... */
  readonly unit?: string;
  /** A command-line flag (`--timeout-ms`) that sets this key. */
  readonly flag?: string;
  /** An environment variable that sets this key (flags win over it, it wins over the file). */
  readonly env?: string;
  /** Shown instead of a schema default that is worked out at start-up. */
  readonly defaultText?: string;
  /** A list's separator in its environment variable (default ","). */
  readonly envSeparator?: string;
}

/** Attaches the key's description, unit, flag and variable (kept in zod's global registry). */
export function field<T extends z.ZodType>(schema: T, meta: FieldMeta): T {
  return schema.meta({ ...meta });
}

/** The pino levels; anything else is a typo that would otherwise throw deep inside pino. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** An integer in [min, max] whose every error says so (zod's own messages name no bound). */
export function integer(min: number, max?: number): z.ZodNumber {
  const error = max === undefined ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`;
  const s = z.int({ error }).min(min, { error });
  return max === undefined ? s : s.max(max, { error });
}

/** A time limit: a positive whole number of milliseconds (0 and negative timeouts are refused). */
export function durationMs(): z.ZodNumber {
  return integer(1);
}

export type Parsed<T> = { readonly ok: true; readonly config: T } | { readonly ok: false; readonly problems: readonly string[] };

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; element?: z.ZodType; shape?: Record<string, z.ZodType>; defaultValue?: unknown };

function def(s: z.ZodType): Def {
  return (s as unknown as { _zod: { def: Def } })._zod.def;
}

const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'nonoptional', 'catch']);

/** The schema under its wrappers, the first metadata met on the way, and the default if any. */
function unwrap(s: z.ZodType): { core: z.ZodType; meta?: FieldMeta; defaultValue?: unknown; optional: boolean } {
  let meta: FieldMeta | undefined;
  let defaultValue: unknown;
  let optional = false;
  let at = s;
  for (;;) {
    meta ??= z.globalRegistry.get(at) as FieldMeta | undefined;
    const d = def(at);
    if (d.type === 'default') defaultValue ??= d.defaultValue;
    if (d.type === 'optional' || d.type === 'default' || d.type === 'prefault') optional = true;
    if (WRAPPERS.has(d.type) && d.innerType) at = d.innerType;
    else if (d.type === 'pipe' && d.in) at = d.in;
    else break;
  }
  return { core: at, ...(meta ? { meta } : {}), ...(defaultValue !== undefined ? { defaultValue } : {}), optional };
}

/** The object schema at `path` (array indexes step into the element), or undefined. */
function objectAt(schema: z.ZodType, path: readonly PropertyKey[]): Record<string, z.ZodType> | undefined {
  let at = unwrap(schema).core;
  for (const key of path) {
    const d = def(at);
    if (d.type === 'object' && d.shape && typeof key === 'string' && d.shape[key]) at = unwrap(d.shape[key]).core;
    else if (d.type === 'array' && d.element && typeof key === 'number') at = unwrap(d.element).core;
    else return undefined;
  }
  const d = def(at);
  return d.type === 'object' ? d.shape : undefined;
}

export function keyPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`)).join('');
}

/** Edit distance (insert, delete, substitute, swap of neighbours), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) => Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let best = Math.min((d[i - 1]?.[j] ?? 0) + 1, (d[i]?.[j - 1] ?? 0) + 1, (d[i - 1]?.[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) best = Math.min(best, (d[i - 2]?.[j - 2] ?? 0) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return d[x.length]?.[y.length] ?? Math.max(x.length, y.length);
}

/** The valid name nearest to `name`, if it is near enough to be what was meant. */
export function nearest(name: string, valid: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const key of valid) {
    const distance = editDistance(name, key);
    if (!best || distance < best.distance) best = { key, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(name.length / 3)) ? best.key : undefined;
}

function shown(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/** One line per problem, each starting with the key path it is about. */
export function describeIssues(schema: z.ZodType, issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    const path = keyPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const valid = Object.keys(objectAt(schema, issue.path) ?? {});
      return issue.keys.map((key) => {
        const near = nearest(key, valid);
        const at = keyPath([...issue.path, key]);
        return near !== undefined ? `${at} is not a setting; did you mean ${keyPath([...issue.path, near])}?` : `${at} is not a setting; the settings${path ? ` of ${path}` : ''} are ${valid.join(', ')}`;
      });
    }
    const input = (issue as { input?: unknown }).input;
    const subject = path === '' ? 'the configuration' : path;
    // A check across keys says everything itself (`apps[1].name APP1 is listed twice`).
    if (issue.code === 'custom' && (issue.params as { plain?: boolean } | undefined)?.plain === true) return [`${subject} ${issue.message}`];
    if (issue.code === 'invalid_type' && input === undefined) return [`${subject} is required: ${issue.message}`];
    return [`${subject} ${issue.message}, got ${shown(input)}`];
  });
}

export function parseWith<S extends z.ZodType>(schema: S, input: unknown): Parsed<z.output<S>> {
  const r = schema.safeParse(input, { reportInput: true });
  return r.success ? { ok: true, config: r.data } : { ok: false, problems: describeIssues(schema, r.error.issues) };
}

/** A key the schema leads to through objects only (array elements have no flag or variable). */
export interface Leaf {
  readonly path: readonly string[];
  readonly kind: 'string' | 'number' | 'boolean' | 'array' | 'enum' | 'other';
  readonly meta?: FieldMeta;
  readonly defaultValue?: unknown;
  readonly optional: boolean;
  readonly core: z.ZodType;
}

/** Every key of the schema, depth first in schema order; an array of objects lists its element's keys as `name[]`. */
export function leaves(schema: z.ZodType, prefix: readonly string[] = []): Leaf[] {
  const out: Leaf[] = [];
  const shape = def(unwrap(schema).core).shape ?? {};
  for (const [key, child] of Object.entries(shape)) {
    const u = unwrap(child);
    const d = def(u.core);
    const path = [...prefix, key];
    if (d.type === 'object') {
      out.push(...leaves(u.core, path));
      continue;
    }
    const kind = d.type === 'string' || d.type === 'number' || d.type === 'boolean' || d.type === 'array' || d.type === 'enum' ? d.type : 'other';
    out.push({ path, kind, ...(u.meta ? { meta: u.meta } : {}), ...(u.defaultValue !== undefined ? { defaultValue: u.defaultValue } : {}), optional: u.optional, core: u.core });
    const element = d.type === 'array' && d.element ? unwrap(d.element).core : undefined;
    if (element && def(element).type === 'object') out.push(...leaves(element, [...path.slice(0, -1), `${key}[]`]));
  }
  return out;
}

/** A flag's or variable's text as the leaf's type, so the schema judges it like a file's value. */
function fromText(leaf: Leaf, text: string): unknown {
  if (leaf.kind === 'number') return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
  if (leaf.kind === 'boolean') return text === 'true' || text === '1' ? true : text === 'false' || text === '0' ? false : text;
  if (leaf.kind === 'array') return text.split(leaf.meta?.envSeparator ?? ',').map((s) => s.trim()).filter((s) => s !== '');
  return text;
}

function setAt(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let at = target;
  for (const key of path.slice(0, -1)) {
    const next = at[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) at[key] = {};
    at = at[key] as Record<string, unknown>;
  }
  at[path[path.length - 1] as string] = value;
}

/** parseArgs options for every flag the schema names. */
export function flagOptions(schema: z.ZodType): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const leaf of leaves(schema)) {
    const flag = leaf.meta?.flag;
    if (flag === undefined) continue;
    options[flag.replace(/^--/, '')] = leaf.kind === 'array' ? { type: 'string', multiple: true } : { type: 'string' };
  }
  return options;
}

/**
 * The file's object with the environment's variables, then the flags, laid over it (a flag wins
 * over a variable, a variable over the file). An array flag given at all replaces the file's list.
 */
export function overlay(schema: z.ZodType, file: unknown, env: NodeJS.ProcessEnv, flags: Record<string, unknown>): unknown {
  if (typeof file !== 'object' || file === null || Array.isArray(file)) return file;
  const merged = structuredClone(file) as Record<string, unknown>;
  for (const leaf of leaves(schema)) {
    if (leaf.path.some((k) => k.endsWith('[]'))) continue;
    const fromEnv = leaf.meta?.env !== undefined ? env[leaf.meta.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') setAt(merged, leaf.path, fromText(leaf, fromEnv));
    const flag = leaf.meta?.flag?.replace(/^--/, '');
    const given = flag !== undefined ? flags[flag] : undefined;
    if (Array.isArray(given) && given.length > 0) setAt(merged, leaf.path, given.flatMap((t: string) => (leaf.kind === 'array' ? [t] : [fromText(leaf, t)])));
    else if (typeof given === 'string') setAt(merged, leaf.path, fromText(leaf, given));
  }
  return merged;
}

/** A JSON configuration file as an object, or the problem with it. */
export function readConfigFile(path: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { ok: false, problem: `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}` };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, problem: `${path} is not JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}

export interface CommandLine {
  /** The flags that are not configuration keys (--help, --config, a daemon's own). */
  readonly extra: NonNullable<ParseArgsConfig['options']>;
  readonly allowPositionals?: boolean;
}

export type Loaded<T> =
  | { readonly ok: true; readonly config: T; readonly values: Record<string, unknown>; readonly positionals: readonly string[] }
  | { readonly ok: false; readonly kind: 'usage' | 'config'; readonly problems: readonly string[]; readonly values: Record<string, unknown> };

/**
 * A daemon's start-up: its flags parsed (strictly: an unknown flag is a usage error), the JSON file
 * of `--config` (if the daemon has that flag and it is given, else `{}`), the environment and the
 * flags laid over it, and the whole judged by the schema. `--help` and `--version` skip the judging.
 */
export function loadConfig<S extends z.ZodType>(schema: S, argv: readonly string[], env: NodeJS.ProcessEnv, cli: CommandLine): Loaded<z.output<S>> {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: { ...flagOptions(schema), ...cli.extra }, strict: true, allowPositionals: cli.allowPositionals ?? false }));
  } catch (error) {
    return { ok: false, kind: 'usage', problems: [error instanceof Error ? error.message : String(error)], values: {} };
  }
  // Asking for the help or the version needs no valid configuration.
  if (values['help'] === true || values['version'] === true) return { ok: true, config: undefined as z.output<S>, values, positionals };
  let file: unknown = {};
  const configPath = values['config'];
  if (typeof configPath === 'string') {
    const read = readConfigFile(configPath);
    if (!read.ok) return { ok: false, kind: 'config', problems: [read.problem], values };
    file = read.value;
  }
  const parsed = parseWith(schema, overlay(schema, file, env, values));
  return parsed.ok ? { ok: true, config: parsed.config, values, positionals } : { ok: false, kind: 'config', problems: parsed.problems, values };
}

function typeText(leaf: Leaf): string {
  const d = def(leaf.core);
  if (leaf.kind === 'number') {
    const n = leaf.core as z.ZodNumber;
    const int = n.isInt ? 'integer' : 'number';
    const min = n.minValue ?? undefined;
    const max = n.maxValue !== null && n.maxValue < Number.MAX_SAFE_INTEGER ? n.maxValue : undefined;
    return min !== undefined && max !== undefined ? `${int} ${min}..${max}` : min !== undefined && min > -Number.MAX_SAFE_INTEGER ? `${int} >= ${min}` : int;
  }
  if (leaf.kind === 'enum') return (leaf.core as z.ZodEnum).options.map((o) => `\`${String(o)}\``).join(' \\| ');
  if (leaf.kind === 'array' && d.element) {
    const element = unwrap(d.element).core;
    const t = def(element).type;
    return t === 'object' ? 'list of objects' : `list of ${t}s`;
  }
  return leaf.kind;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** The reference table of one schema, in Markdown: key, type, default, unit, flag, variable, meaning. */
export function referenceTable(schema: z.ZodType): string {
  const rows = leaves(schema).map((leaf) => {
    const m = leaf.meta;
    const dflt = m?.defaultText ?? (leaf.defaultValue !== undefined ? `\`${JSON.stringify(leaf.defaultValue)}\`` : leaf.optional ? 'none' : 'required');
    const flag = m?.flag !== undefined ? `\`${m.flag}\`` : '';
    const env = m?.env !== undefined ? `\`${m.env}\`` : '';
    return `| \`${leaf.path.join('.')}\` | ${typeText(leaf)} | ${cell(dflt)} | ${m?.unit ?? ''} | ${flag} | ${env} | ${cell(m?.description ?? '')} |`;
  });
  return ['| key | type | default | unit | flag | environment | meaning |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}
