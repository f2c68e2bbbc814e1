/**
 * snapctl's command line: argv in, a typed command (or a usage error naming the problem) out. No
 * I/O, so every rule is unit-testable. Parsing is strict (node:util parseArgs): an unknown or
 * misspelt option is an error, never silently ignored.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { FromSite, RestoreRequest, TakeSnapshotRequest } from '../api.js';
import type { AppRef, CheckpointState, SnapshotOptions } from '../model.js';
import type { PolicyInput, SchedulePolicy } from '../policies/model.js';
import type { RetentionRules } from '../../src/control/retention.js';
import { ADDRESS_DEFAULT, HELP } from './help.js';

export type OutputFormat = 'text' | 'wide' | 'json' | 'yaml';

export interface GlobalOptions {
  readonly address: string;
  /** `-o json` (or --json). */
  readonly json: boolean;
  /** `-o text|wide|json|yaml`; text unless given. */
  readonly output: OutputFormat;
}

/** How snapctl reaches a coordinator with TLS or authentication (docs/security.md). */
export interface ConnectionOptions {
  /** --token / $SNAPCTL_TOKEN: sent as `authorization: Bearer <token>`. */
  readonly token?: string;
  /** --ca / $SNAPCTL_CA: TLS, trusting this CA (PEM file). */
  readonly caFile?: string;
  /** --cert and --key / $SNAPCTL_CERT and $SNAPCTL_KEY: TLS with this client certificate (mTLS). */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** --tls-server-name / $SNAPCTL_TLS_SERVER_NAME: the name the coordinator's certificate carries, if not the address's. */
  readonly tlsServerName?: string;
  /** --insecure: a token may go over plaintext to a coordinator that is not on this machine. */
  readonly insecure: boolean;
}

const NO_CONNECTION_OPTIONS: ConnectionOptions = { insecure: false };

export type Command =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'plans-list'; readonly tenant?: string }
  | { readonly kind: 'plans-show'; readonly planId: string }
  | { readonly kind: 'plans-register'; readonly file: string; readonly revision?: number; readonly replace: boolean }
  | { readonly kind: 'plans-delete'; readonly planId: string; readonly withCheckpoints: boolean }
  | { readonly kind: 'take'; readonly request: TakeSnapshotRequest; readonly watch: boolean }
  | { readonly kind: 'list'; readonly planId?: string; readonly states?: readonly CheckpointState[]; readonly limit: number }
  | { readonly kind: 'show'; readonly id: number }
  | { readonly kind: 'rollback'; readonly id: number; readonly skipSafety: boolean; readonly idempotencyKey?: string }
  | { readonly kind: 'restore'; readonly request: RestoreRequest; readonly fromSite?: FromSite }
  | { readonly kind: 'copy'; readonly id: number; readonly site: string }
  | { readonly kind: 'copies'; readonly site: string; readonly planId?: string }
  | { readonly kind: 'verify'; readonly id: number }
  | { readonly kind: 'delete'; readonly id: number; readonly idempotencyKey?: string }
  | { readonly kind: 'cancel'; readonly id: number; readonly idempotencyKey?: string }
  | { readonly kind: 'pin' | 'unpin'; readonly id: number; readonly idempotencyKey?: string }
  | { readonly kind: 'agents'; readonly tenant?: string }
  | { readonly kind: 'policy-create' | 'policy-update'; readonly policy: PolicyInput; readonly revision?: number }
  | { readonly kind: 'policy-show' | 'policy-delete'; readonly planId: string }
  | { readonly kind: 'policy-list'; readonly tenant?: string }
  | { readonly kind: 'stats'; readonly planId: string }
  | { readonly kind: 'watch'; readonly planId?: string; readonly tenant?: string; readonly intervalMs: number }
  | { readonly kind: 'completion'; readonly shell: 'bash' | 'zsh' }
  | { readonly kind: 'audit'; readonly natsUrl: string; readonly tenant?: string; readonly sinceMs?: number };

export type Parsed =
  | { readonly ok: true; readonly global: GlobalOptions; readonly command: Command; readonly connection: ConnectionOptions }
  | { readonly ok: false; readonly error: string; /** The help topic to point at. */ readonly topic: string };

export const LIST_LIMIT_DEFAULT = 100;
/** How often `watch` asks for the checkpoints of its plan or tenant. */
export const WATCH_INTERVAL_MS_DEFAULT = 1_000;
const UINT32_MAX = 0xffff_ffff;
const STATES: readonly CheckpointState[] = ['pending', 'triggering', 'collecting', 'held', 'committing', 'completed', 'aborting', 'aborted'];
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL_OPTIONS: Options = {
  address: { type: 'string' },
  json: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
  token: { type: 'string' },
  ca: { type: 'string' },
  'tls-server-name': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  insecure: { type: 'boolean' },
};

/** Options of each command (besides the global ones), and how many positionals it takes. */
const COMMANDS: Readonly<Record<string, { options: Options; positionals: number }>> = {
  'plans list': { options: { tenant: { type: 'string' } }, positionals: 0 },
  'plans show': { options: {}, positionals: 1 },
  'plans register': { options: { replace: { type: 'boolean' }, revision: { type: 'string' } }, positionals: 1 },
  'plans delete': { options: { 'with-checkpoints': { type: 'boolean' } }, positionals: 1 },
  take: {
    options: {
      plan: { type: 'string' },
      level: { type: 'string' },
      aligned: { type: 'boolean' },
      unaligned: { type: 'boolean' },
      'alignment-timeout': { type: 'string' },
      timeout: { type: 'string' },
      fallback: { type: 'string' },
      'freeze-deadline': { type: 'string' },
      'max-concurrent': { type: 'string' },
      'idempotency-key': { type: 'string' },
      watch: { type: 'boolean' },
    },
    positionals: 0,
  },
  list: { options: { plan: { type: 'string' }, state: { type: 'string', multiple: true }, limit: { type: 'string' } }, positionals: 0 },
  show: { options: {}, positionals: 1 },
  rollback: { options: { 'no-safety': { type: 'boolean' }, 'idempotency-key': { type: 'string' } }, positionals: 1 },
  restore: { options: { map: { type: 'string', multiple: true }, 'idempotency-key': { type: 'string' }, 'from-site': { type: 'string' }, 'source-site': { type: 'string' } }, positionals: 1 },
  copy: { options: { site: { type: 'string' } }, positionals: 1 },
  copies: { options: { site: { type: 'string' }, plan: { type: 'string' } }, positionals: 0 },
  verify: { options: {}, positionals: 1 },
  delete: { options: { 'idempotency-key': { type: 'string' } }, positionals: 1 },
  cancel: { options: { 'idempotency-key': { type: 'string' } }, positionals: 1 },
  pin: { options: { 'idempotency-key': { type: 'string' } }, positionals: 1 },
  unpin: { options: { 'idempotency-key': { type: 'string' } }, positionals: 1 },
  agents: { options: { tenant: { type: 'string' } }, positionals: 0 },
  'policy create': { options: policyOptions(false), positionals: 1 },
  'policy update': { options: policyOptions(true), positionals: 1 },
  'policy show': { options: {}, positionals: 1 },
  'policy list': { options: { tenant: { type: 'string' } }, positionals: 0 },
  'policy delete': { options: {}, positionals: 1 },
  stats: { options: {}, positionals: 1 },
  watch: { options: { plan: { type: 'string' }, tenant: { type: 'string' }, interval: { type: 'string' } }, positionals: 0 },
  completion: { options: {}, positionals: 1 },
  audit: { options: { tenant: { type: 'string' }, since: { type: 'string' }, nats: { type: 'string' } }, positionals: 0 },
};

/** The command words, for `completion` (and its tests). */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/** The options of a command, for `completion`. */
export function commandOptions(command: string): string[] {
  return [...Object.keys(COMMANDS[command]?.options ?? {}), ...Object.keys(GLOBAL_OPTIONS)].map((o) => `--${o}`);
}

function policyOptions(update: boolean): Options {
  return {
    interval: { type: 'string' },
    cron: { type: 'string' },
    level: { type: 'string' },
    window: { type: 'string' },
    jitter: { type: 'string' },
    'min-pause': { type: 'string' },
    'tolerable-failures': { type: 'string' },
    'keep-last': { type: 'string' },
    'keep-daily': { type: 'string' },
    'keep-weekly': { type: 'string' },
    'keep-monthly': { type: 'string' },
    'keep-within': { type: 'string' },
    ...(update ? { revision: { type: 'string' } } : {}),
  };
}

const MULTI_WORD = new Set(['plans', 'policy', 'help']);

class UsageError extends Error {}

function usage(message: string): never {
  throw new UsageError(message);
}

function connectionOptions(values: Record<string, unknown>, env: Readonly<Record<string, string | undefined>>): ConnectionOptions {
  const pick = (flag: string, variable: string): string | undefined => {
    const v = (values[flag] as string | undefined) ?? env[variable];
    if (v === '') usage(`--${flag} (or $${variable}) must not be empty`);
    return v;
  };
  const token = pick('token', 'SNAPCTL_TOKEN');
  const caFile = pick('ca', 'SNAPCTL_CA');
  const certFile = pick('cert', 'SNAPCTL_CERT');
  const keyFile = pick('key', 'SNAPCTL_KEY');
  const tlsServerName = pick('tls-server-name', 'SNAPCTL_TLS_SERVER_NAME');
  if ((certFile === undefined) !== (keyFile === undefined)) usage('--cert and --key go together');
  if (token !== undefined && /\s/.test(token)) usage('--token (or $SNAPCTL_TOKEN) must not contain white space');
  const insecure = values.insecure === true;
  if (insecure && (caFile !== undefined || certFile !== undefined || tlsServerName !== undefined)) usage('--insecure is plaintext: it excludes --ca, --cert, --key and --tls-server-name');
  return {
    ...(token !== undefined ? { token } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(certFile !== undefined ? { certFile } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
    ...(tlsServerName !== undefined ? { tlsServerName } : {}),
    insecure,
  };
}

/** The command words (`take`, `plans list`) found among argv's positionals, skipping option values. */
function commandWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  const takesValue = new Set(['--address', '--output', '-o', '--token', '--ca', '--cert', '--key', '--tls-server-name']);
  for (const c of Object.values(COMMANDS)) for (const [name, o] of Object.entries(c.options)) if (o.type === 'string') takesValue.add(`--${name}`);
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') break;
    if (arg.startsWith('-')) {
      if (takesValue.has(arg)) i++;
      continue;
    }
    words.push(arg);
    if (!MULTI_WORD.has(words[0] ?? '')) break;
  }
  return words;
}

function int(option: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text)) usage(`${option} must be a whole number, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < min || n > max) usage(`${option} must be from ${min} to ${max}, got ${text}`);
  return n;
}

const UNIT_MS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `2h`, `7d`: a duration in ms. */
function durationText(option: string, text: string): number {
  const m = /^([0-9]{1,9})([smhd])$/.exec(text);
  if (m === null) usage(`${option} must be a duration such as 90s, 15m, 2h or 7d, got ${JSON.stringify(text)}`);
  return Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1_000);
}

function checkpointId(text: string | undefined): number {
  if (text === undefined) usage('a checkpoint ID is required');
  const id = int('checkpoint ID', text, 1, Number.MAX_SAFE_INTEGER);
  return id ?? 0;
}

function name(option: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!NAME.test(text)) usage(`${option} ${JSON.stringify(text)} must match [A-Za-z0-9_-]{1,64}`);
  return text;
}

function oneOf<T extends string>(option: string, text: string | undefined, values: readonly T[]): T | undefined {
  if (text === undefined) return undefined;
  if (!(values as readonly string[]).includes(text)) usage(`${option} must be one of ${values.join(', ')}, got ${JSON.stringify(text)}`);
  return text as T;
}

function appRef(text: string, what: string): AppRef {
  const [server, app, ...rest] = text.split('/');
  if (server === undefined || app === undefined || rest.length > 0 || !NAME.test(server) || !NAME.test(app)) usage(`${what} ${JSON.stringify(text)} must be SERVER/APP`);
  return { server, app };
}

function mappings(values: readonly string[]): Pick<RestoreRequest, 'servers' | 'apps'> {
  const servers: Record<string, string> = {};
  const apps: { source: AppRef; target: AppRef }[] = [];
  for (const item of values.flatMap((v) => v.split(',')).filter((v) => v !== '')) {
    const [source, target, ...rest] = item.split('=');
    if (source === undefined || target === undefined || rest.length > 0) usage(`--map ${JSON.stringify(item)} must be SRC=DST`);
    if (source.includes('/') || target.includes('/')) {
      apps.push({ source: appRef(source, '--map source'), target: appRef(target, '--map target') });
    } else {
      name('--map source server', source);
      name('--map target server', target);
      if (source in servers) usage(`--map maps server ${source} twice`);
      servers[source] = target;
    }
  }
  if (Object.keys(servers).length === 0 && apps.length === 0) usage('--map SRC=DST is required');
  return { servers, apps };
}

/** `HH:MM-HH:MM` into the two window fields. */
function windowOf(text: string | undefined): { windowStart: string; windowEnd: string } {
  if (text === undefined) return { windowStart: '', windowEnd: '' };
  const m = /^(\d\d:\d\d)-(\d\d:\d\d)$/.exec(text);
  if (!m) usage(`--window must be HH:MM-HH:MM (UTC), got ${JSON.stringify(text)}`);
  return { windowStart: m[1] as string, windowEnd: m[2] as string };
}

/** A policy from the command line; the coordinator checks the rules across fields (and the cron). */
function policyInput(planId: string, str: (k: string) => string | undefined): PolicyInput {
  const ms = (k: string): number | undefined => int(`--${k}`, str(k), 0, Number.MAX_SAFE_INTEGER);
  const count = (k: string): number | undefined => int(`--${k}`, str(k), 0, UINT32_MAX);
  const interval = int('--interval', str('interval'), 1, Number.MAX_SAFE_INTEGER);
  const cron = str('cron');
  const scheduleGiven = ['interval', 'cron', 'level', 'window', 'jitter', 'min-pause', 'tolerable-failures'].some((k) => str(k) !== undefined);
  if (scheduleGiven && (interval === undefined) === (cron === undefined)) usage('a schedule needs exactly one of --interval MS and --cron EXPR');
  const schedule: SchedulePolicy | undefined = scheduleGiven
    ? {
        intervalMs: interval ?? 0,
        cron: cron ?? '',
        level: oneOf('--level', str('level'), ['none', 'crash', 'app'] as const) ?? 'app',
        ...windowOf(str('window')),
        jitterMs: ms('jitter') ?? 0,
        minPauseMs: ms('min-pause') ?? 0,
        tolerableFailures: int('--tolerable-failures', str('tolerable-failures'), 1, UINT32_MAX) ?? 3,
      }
    : undefined;
  const keeps = ['keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-within'];
  const retention: RetentionRules | undefined = keeps.some((k) => str(k) !== undefined)
    ? { keepLast: count('keep-last') ?? 0, keepDaily: count('keep-daily') ?? 0, keepWeekly: count('keep-weekly') ?? 0, keepMonthly: count('keep-monthly') ?? 0, keepWithinMs: ms('keep-within') ?? 0 }
    : undefined;
  if (schedule === undefined && retention === undefined) usage('a policy needs a schedule (--interval or --cron) or retention (--keep-*), or both');
  return { planId, ...(schedule !== undefined ? { schedule } : {}), ...(retention !== undefined ? { retention } : {}) };
}

function build(key: string, values: Record<string, string | boolean | (string | boolean)[] | undefined>, positionals: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  const str = (k: string): string | undefined => {
    const v = values[k];
    return typeof v === 'string' ? v : undefined;
  };
  const bool = (k: string): boolean => values[k] === true;
  const list = (k: string): string[] => {
    const v = values[k];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  };
  const key2 = (k: string): string | undefined => {
    const v = str(k);
    if (v !== undefined && (v === '' || v.length > 128)) usage(`--${k} must be 1 to 128 characters`);
    return v;
  };
  switch (key) {
    case 'plans list': {
      const tenant = name('--tenant', str('tenant'));
      return { kind: 'plans-list', ...(tenant !== undefined ? { tenant } : {}) };
    }
    case 'plans show':
      return { kind: 'plans-show', planId: name('plan ID', positionals[0]) ?? '' };
    case 'plans register': {
      const revision = int('--revision', str('revision'), 1, Number.MAX_SAFE_INTEGER);
      if (revision !== undefined && bool('replace')) usage('--replace and --revision exclude each other');
      return { kind: 'plans-register', file: positionals[0] ?? '', replace: bool('replace'), ...(revision !== undefined ? { revision } : {}) };
    }
    case 'plans delete':
      return { kind: 'plans-delete', planId: name('plan ID', positionals[0]) ?? '', withCheckpoints: bool('with-checkpoints') };
    case 'take': {
      const planId = name('--plan', str('plan'));
      if (planId === undefined) usage('--plan ID is required');
      const level = oneOf('--level', str('level'), ['none', 'crash', 'app'] as const);
      if (level === undefined) usage('--level none|crash|app is required');
      if (bool('aligned') && bool('unaligned')) usage('--aligned and --unaligned exclude each other');
      const options: { -readonly [K in keyof SnapshotOptions]?: SnapshotOptions[K] } = {};
      if (bool('aligned')) options.alignmentMode = 'aligned';
      if (bool('unaligned')) options.alignmentMode = 'unaligned';
      const alignmentTimeoutMs = int('--alignment-timeout', str('alignment-timeout'), 0, UINT32_MAX);
      if (alignmentTimeoutMs !== undefined) {
        if (bool('unaligned') && alignmentTimeoutMs > 0) usage('--alignment-timeout applies only to aligned checkpoints');
        options.alignmentTimeoutMs = alignmentTimeoutMs;
      }
      const timeoutMs = int('--timeout', str('timeout'), 1, UINT32_MAX);
      if (timeoutMs !== undefined) options.timeoutMs = timeoutMs;
      const freezeDeadlineMs = int('--freeze-deadline', str('freeze-deadline'), 1, UINT32_MAX);
      if (freezeDeadlineMs !== undefined) options.freezeDeadlineMs = freezeDeadlineMs;
      const maxConcurrent = int('--max-concurrent', str('max-concurrent'), 1, UINT32_MAX);
      if (maxConcurrent !== undefined) options.maxConcurrent = maxConcurrent;
      const fallback = oneOf('--fallback', str('fallback'), ['fail', 'downgrade'] as const);
      if (fallback !== undefined) options.fallbackPolicy = fallback;
      const idempotencyKey = key2('idempotency-key');
      return { kind: 'take', request: { planId, level, options, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) }, watch: bool('watch') };
    }
    case 'list': {
      const planId = name('--plan', str('plan'));
      const states = list('state')
        .flatMap((s) => s.split(','))
        .filter((s) => s !== '')
        .map((s) => oneOf('--state', s, STATES) ?? 'pending');
      const limit = int('--limit', str('limit'), 1, 100_000) ?? LIST_LIMIT_DEFAULT;
      return { kind: 'list', limit, ...(planId !== undefined ? { planId } : {}), ...(states.length > 0 ? { states } : {}) };
    }
    case 'show':
      return { kind: 'show', id: checkpointId(positionals[0]) };
    case 'rollback': {
      const idempotencyKey = key2('idempotency-key');
      return { kind: 'rollback', id: checkpointId(positionals[0]), skipSafety: bool('no-safety'), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
    }
    case 'restore': {
      const id = checkpointId(positionals[0]);
      const idempotencyKey = key2('idempotency-key');
      const site = name('--from-site', str('from-site'));
      const sourceSite = name('--source-site', str('source-site'));
      if (site === undefined && sourceSite !== undefined) usage('--source-site applies only with --from-site');
      const request: RestoreRequest = { checkpointId: id, ...mappings(list('map')), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
      return { kind: 'restore', request, ...(site !== undefined ? { fromSite: { site, sourceSite: sourceSite ?? '' } } : {}) };
    }
    case 'copy': {
      const site = name('--site', str('site'));
      if (site === undefined) usage('--site NAME is required: a site configured at the coordinator');
      return { kind: 'copy', id: checkpointId(positionals[0]), site };
    }
    case 'copies': {
      const site = name('--site', str('site'));
      if (site === undefined) usage('--site NAME is required: a site configured at the coordinator');
      const planId = name('--plan', str('plan'));
      return { kind: 'copies', site, ...(planId !== undefined ? { planId } : {}) };
    }
    case 'verify':
      return { kind: 'verify', id: checkpointId(positionals[0]) };
    case 'delete':
    case 'cancel':
    case 'pin':
    case 'unpin': {
      const idempotencyKey = key2('idempotency-key');
      return { kind: key, id: checkpointId(positionals[0]), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
    }
    case 'agents': {
      const tenant = name('--tenant', str('tenant'));
      return { kind: 'agents', ...(tenant !== undefined ? { tenant } : {}) };
    }
    case 'audit': {
      const tenant = str('tenant');
      if (tenant !== undefined && tenant !== '*') name('--tenant', tenant);
      const since = str('since');
      const sinceMs = since === undefined ? undefined : durationText('--since', since);
      return { kind: 'audit', natsUrl: str('nats') ?? env.NATS_URL ?? 'nats://127.0.0.1:4222', ...(tenant !== undefined ? { tenant } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}) };
    }
    case 'policy create':
    case 'policy update': {
      const planId = name('plan ID', positionals[0]) ?? '';
      const revision = int('--revision', str('revision'), 1, Number.MAX_SAFE_INTEGER);
      const policy = policyInput(planId, str);
      return { kind: key === 'policy create' ? 'policy-create' : 'policy-update', policy, ...(revision !== undefined ? { revision } : {}) };
    }
    case 'policy show':
    case 'policy delete':
      return { kind: key === 'policy show' ? 'policy-show' : 'policy-delete', planId: name('plan ID', positionals[0]) ?? '' };
    case 'policy list': {
      const tenant = name('--tenant', str('tenant'));
      return { kind: 'policy-list', ...(tenant !== undefined ? { tenant } : {}) };
    }
    case 'stats':
      return { kind: 'stats', planId: name('plan ID', positionals[0]) ?? '' };
    case 'watch': {
      const planId = name('--plan', str('plan'));
      const tenant = name('--tenant', str('tenant'));
      if ((planId === undefined) === (tenant === undefined)) usage('watch needs exactly one of --plan ID and --tenant T');
      const intervalMs = int('--interval', str('interval'), 100, 3_600_000) ?? WATCH_INTERVAL_MS_DEFAULT;
      return { kind: 'watch', intervalMs, ...(planId !== undefined ? { planId } : {}), ...(tenant !== undefined ? { tenant } : {}) };
    }
    case 'completion':
      return { kind: 'completion', shell: oneOf('shell', positionals[0], ['bash', 'zsh'] as const) ?? 'bash' };
    default:
      return usage(`unknown command ${key}`);
  }
}

export function parseCommandLine(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Parsed {
  const words = commandWords(argv);
  let key = words[0] ?? '';
  if (key === 'plans' || key === 'policy') key = words[1] === undefined ? key : `${key} ${words[1]}`;
  const topic = key in HELP ? key : key.startsWith('plans') ? 'plans' : key.startsWith('policy') ? 'policy' : 'main';
  try {
    if (key === '' || key === 'help') {
      const asked = key === 'help' ? argv.filter((a) => !a.startsWith('-')).slice(1).join(' ') : '';
      // The policy subcommands share one help text.
      const about = asked.startsWith('policy ') && COMMANDS[asked] !== undefined ? 'policy' : asked;
      if (about !== '' && !(about in HELP)) usage(`no help on ${JSON.stringify(about)}`);
      if (key === '' && !argv.includes('--help') && !argv.includes('-h')) usage('a command is required');
      return { ok: true, global: { address: ADDRESS_DEFAULT, json: false, output: 'text' }, connection: NO_CONNECTION_OPTIONS, command: { kind: 'help', text: HELP[about === '' ? 'main' : about] ?? '' } };
    }
    const spec = COMMANDS[key];
    if (spec === undefined) {
      if ((key === 'plans' || key === 'policy') && (argv.includes('--help') || argv.includes('-h'))) {
        return { ok: true, global: { address: ADDRESS_DEFAULT, json: false, output: 'text' }, connection: NO_CONNECTION_OPTIONS, command: { kind: 'help', text: HELP[key] ?? '' } };
      }
      if (key === 'plans') usage('plans needs a subcommand: list, show, register or delete');
      usage(key === 'policy' ? 'policy needs a subcommand: create, update, show, list or delete' : `unknown command ${JSON.stringify(key)}`);
    }
    const parsed = parseArgs({ args: [...argv], options: { ...GLOBAL_OPTIONS, ...spec.options }, allowPositionals: true, strict: true });
    const output = oneOf('-o', parsed.values.output as string | undefined, ['text', 'wide', 'json', 'yaml'] as const) ?? (parsed.values.json === true ? 'json' : 'text');
    if (parsed.values.json === true && output !== 'json') usage('--json and -o ' + output + ' exclude each other');
    const global: GlobalOptions = {
      address: (parsed.values.address as string | undefined) ?? env.SNAPCTL_ADDRESS ?? ADDRESS_DEFAULT,
      json: output === 'json',
      output,
    };
    const connection = connectionOptions(parsed.values, env);
    if (global.address.split(',').some((a) => a.trim() === '')) usage('--address must not be empty, nor have an empty entry in a list');
    if (parsed.values.help === true) return { ok: true, global, connection, command: { kind: 'help', text: HELP[key] ?? HELP[topic] ?? HELP.main ?? '' } };
    const positionals = parsed.positionals.slice(key.split(' ').length);
    if (positionals.length > spec.positionals) usage(`unexpected argument ${JSON.stringify(positionals[spec.positionals])}`);
    if (positionals.length < spec.positionals) usage(`${key} needs ${spec.positionals === 1 ? 'an argument' : `${spec.positionals} arguments`}; see \`snapctl ${key} --help\``);
    return { ok: true, global, connection, command: build(key, parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>, positionals, env) };
  } catch (error) {
    if (error instanceof UsageError) return { ok: false, error: error.message, topic };
    // parseArgs' own errors (unknown option, missing value) are usage errors too.
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) return { ok: false, error: error.message, topic };
    throw error;
  }
}
