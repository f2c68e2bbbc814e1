/**
 * The agent's configuration file (JSON), validated once at start-up: a bad file is a list of clear
 * problems, never an agent that half works.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import type { ChannelId } from '../src/ids.js';
import { isChannelId, isName, splitProcessId } from '../src/wire/index.js';
import { parseChannelId } from '../src/ids.js';
import { CHANNEL_LIMITS_DEFAULT, type ChannelLimits } from './channels/types.js';

export interface AgentAppConfig {
  readonly name: string;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
}

/**
 * Crash consistency on this server (docs/hooks.md): the hook directory, the mounts to fsfreeze, and
 * the bounds of every step. Every limit is named with its unit last and checked here, at start-up.
 */
export interface FreezeConfig {
  /** Absent: no hook files, only the built-in steps. */
  readonly hooksDir?: string;
  /** Mount points frozen with `fsfreeze -f` in this order (list a nested mount before its parent). */
  readonly mounts: readonly string[];
  /** Run `sync` before the mounts are frozen. */
  readonly sync: boolean;
  /** One attempt of one hook (or built-in step); then SIGTERM. */
  readonly hookTimeoutMs: number;
  /** Further attempts after a failed one; 0: a single attempt. */
  readonly hookRetriesMax: number;
  /** Between SIGTERM and SIGKILL for a hook or session that overran. */
  readonly hookKillGraceMs: number;
  /** The longest frozen window: a coordinator's longer deadline is cut to this. */
  readonly freezeDeadlineMsMax: number;
  /** How long a session may take to print `ready`. */
  readonly sessionReadyTimeoutMs: number;
  /** How long a session may take to exit after `release`; then it is killed. */
  readonly sessionReleaseTimeoutMs: number;
}

export const FREEZE_DEFAULTS = {
  sync: true,
  hookTimeoutMs: 30_000,
  hookRetriesMax: 1,
  hookKillGraceMs: 2_000,
  freezeDeadlineMsMax: 60_000,
  sessionReadyTimeoutMs: 10_000,
  sessionReleaseTimeoutMs: 10_000,
} as const;

/** Above this, retries only make a stuck freeze longer. */
export const HOOK_RETRIES_MAX_LIMIT = 10;

const freezeKeys = ['hooksDir', 'mounts', 'sync', 'hookTimeoutMs', 'hookRetriesMax', 'hookKillGraceMs', 'freezeDeadlineMsMax', 'sessionReadyTimeoutMs', 'sessionReleaseTimeoutMs'];

/**
 * Where the agent keeps its runtime state (the freeze status file, hook state directories) when the
 * configuration names none: under /run for root (a tmpfs, emptied at boot, like a freeze), else in
 * the user's runtime directory or a per-user directory under the system's temporary directory.
 */
export function defaultStateDir(tenant: string, server: string): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const leaf = `${tenant}-${server}`;
  if (uid === 0) return join('/run/snapagent', leaf);
  const runtime = process.env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && isAbsolute(runtime)) return join(runtime, 'snapagent', leaf);
  return join(tmpdir(), `snapagent-${uid ?? 'user'}`, leaf);
}

export interface AgentConfig {
  readonly tenant: string;
  readonly server: string;
  readonly nats: {
    readonly servers: readonly string[];
    readonly user?: string;
    readonly pass?: string;
    readonly token?: string;
  };
  readonly apps: readonly AgentAppConfig[];
  /** Unix socket of the local API for apps in other processes; absent: embedded apps only. */
  readonly localApiSocket?: string;
  readonly heartbeatIntervalMs: number;
  /** Control request ids remembered, with the answers given, to answer a duplicate without doing the work again. */
  readonly controlIdsRememberedMax: number;
  readonly triggerWaitMs: number;
  readonly channels: ChannelLimits;
  readonly logLevel: string;
  readonly freeze: FreezeConfig;
  /** Runtime state: the freeze status file (`snapagent status`), hook state directories. */
  readonly stateDir: string;
}

export const AGENT_DEFAULTS = {
  heartbeatIntervalMs: 2_000,
  controlIdsRememberedMax: 4_096,
  triggerWaitMs: 2_000,
  logLevel: 'info',
} as const;

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; problems: string[] };

export function loadAgentConfig(path: string): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { ok: false, problems: [`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`] };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problems: [`${path} is not JSON: ${error instanceof Error ? error.message : String(error)}`] };
  }
  return parseAgentConfig(json);
}

export function parseAgentConfig(json: unknown): ConfigResult {
  const problems: string[] = [];
  const o = (json ?? {}) as Record<string, unknown>;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, problems: ['the configuration must be a JSON object'] };
  const name = (field: string): string => {
    const v = o[field];
    if (typeof v !== 'string' || !isName(v)) problems.push(`${field} must be a name of [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(v)}`);
    return typeof v === 'string' ? v : '';
  };
  const positive = (field: string, fallback: number, from: Record<string, unknown> = o, path = field): number => {
    const v = from[field];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) problems.push(`${path} must be a positive integer, got ${JSON.stringify(v)}`);
    return typeof v === 'number' ? v : fallback;
  };
  const tenant = name('tenant');
  const server = name('server');
  const natsRaw = (o['nats'] ?? {}) as Record<string, unknown>;
  const servers = natsRaw['servers'];
  if (!Array.isArray(servers) || servers.length === 0 || servers.some((s) => typeof s !== 'string' || s === '')) {
    problems.push('nats.servers must be a non-empty list of URLs, e.g. ["nats://127.0.0.1:4222"]');
  }
  const optionalText = (field: string): string | undefined => {
    const v = natsRaw[field];
    if (v !== undefined && typeof v !== 'string') problems.push(`nats.${field} must be a string`);
    return typeof v === 'string' ? v : undefined;
  };
  const apps: AgentAppConfig[] = [];
  const rawApps = o['apps'];
  if (!Array.isArray(rawApps) || rawApps.length === 0) problems.push('apps must list at least one app: [{"name": ..., "inputs": [...], "outputs": [...]}]');
  const seen = new Set<string>();
  (Array.isArray(rawApps) ? rawApps : []).forEach((a: unknown, i) => {
    const app = (a ?? {}) as Record<string, unknown>;
    const appName = app['name'];
    if (typeof appName !== 'string' || !isName(appName)) problems.push(`apps[${i}].name must be a name, got ${JSON.stringify(appName)}`);
    else if (seen.has(appName)) problems.push(`apps[${i}].name ${appName} is listed twice`);
    else seen.add(appName);
    const channels = (field: 'inputs' | 'outputs'): ChannelId[] => {
      const list = app[field] ?? [];
      if (!Array.isArray(list)) {
        problems.push(`apps[${i}].${field} must be a list of channel ids`);
        return [];
      }
      return list.flatMap((c: unknown, j) => {
        if (typeof c !== 'string' || !isChannelId(c)) {
          problems.push(`apps[${i}].${field}[${j}] must be a channel id like s1/app1->s2/app2, got ${JSON.stringify(c)}`);
          return [];
        }
        const ends = parseChannelId(c);
        const here = ends && splitProcessId(field === 'inputs' ? ends.to : ends.from);
        if (!here || here.server !== server || here.app !== appName) {
          problems.push(`apps[${i}].${field}[${j}] ${c} does not ${field === 'inputs' ? 'end' : 'start'} at ${server}/${String(appName)}`);
        }
        return [c];
      });
    };
    apps.push({ name: typeof appName === 'string' ? appName : '', inputs: channels('inputs'), outputs: channels('outputs') });
  });
  const socket = o['localApiSocket'];
  if (socket !== undefined && (typeof socket !== 'string' || socket === '')) problems.push('localApiSocket must be a path');
  const ch = (o['channels'] ?? {}) as Record<string, unknown>;
  const channels: ChannelLimits = {
    creditWindowMessages: positive('creditWindowMessages', CHANNEL_LIMITS_DEFAULT.creditWindowMessages, ch, 'channels.creditWindowMessages'),
    outboundQueueMessagesMax: positive('outboundQueueMessagesMax', CHANNEL_LIMITS_DEFAULT.outboundQueueMessagesMax, ch, 'channels.outboundQueueMessagesMax'),
    inFlightBytesMax: positive('inFlightBytesMax', CHANNEL_LIMITS_DEFAULT.inFlightBytesMax, ch, 'channels.inFlightBytesMax'),
    creditRefreshMs: positive('creditRefreshMs', CHANNEL_LIMITS_DEFAULT.creditRefreshMs, ch, 'channels.creditRefreshMs'),
  };
  const logLevel = typeof o['logLevel'] === 'string' ? o['logLevel'] : AGENT_DEFAULTS.logLevel;
  const freeze = parseFreezeConfig(o['freeze'], problems);
  const stateDirRaw = o['stateDir'];
  if (stateDirRaw !== undefined && (typeof stateDirRaw !== 'string' || !isAbsolute(stateDirRaw))) problems.push(`stateDir must be an absolute path, got ${JSON.stringify(stateDirRaw)}`);
  const stateDir = typeof stateDirRaw === 'string' && isAbsolute(stateDirRaw) ? normalize(stateDirRaw) : defaultStateDir(tenant || 'tenant', server || 'server');
  const config: AgentConfig = {
    tenant,
    server,
    nats: {
      servers: Array.isArray(servers) ? (servers as string[]) : [],
      ...(optionalText('user') !== undefined ? { user: optionalText('user') as string } : {}),
      ...(optionalText('pass') !== undefined ? { pass: optionalText('pass') as string } : {}),
      ...(optionalText('token') !== undefined ? { token: optionalText('token') as string } : {}),
    },
    apps,
    ...(typeof socket === 'string' && socket !== '' ? { localApiSocket: socket } : {}),
    heartbeatIntervalMs: positive('heartbeatIntervalMs', AGENT_DEFAULTS.heartbeatIntervalMs),
    controlIdsRememberedMax: positive('controlIdsRememberedMax', AGENT_DEFAULTS.controlIdsRememberedMax),
    triggerWaitMs: positive('triggerWaitMs', AGENT_DEFAULTS.triggerWaitMs),
    channels,
    logLevel,
    freeze,
    stateDir,
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config };
}

function parseFreezeConfig(raw: unknown, problems: string[]): FreezeConfig {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    problems.push('freeze must be an object: {"hooksDir": ..., "mounts": [...], ...}');
    raw = {};
  }
  const f = (raw ?? {}) as Record<string, unknown>;
  // A misspelt limit silently left at its default is how a configured timeout gets ignored.
  for (const key of Object.keys(f)) if (!freezeKeys.includes(key)) problems.push(`freeze.${key} is not a setting; the settings are ${freezeKeys.join(', ')}`);
  const integer = (field: keyof typeof FREEZE_DEFAULTS & string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = f[field];
    const fallback = FREEZE_DEFAULTS[field] as number;
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      problems.push(`freeze.${field} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  };
  const hooksDir = f['hooksDir'];
  if (hooksDir !== undefined && (typeof hooksDir !== 'string' || !isAbsolute(hooksDir))) problems.push(`freeze.hooksDir must be an absolute path, got ${JSON.stringify(hooksDir)}`);
  const mountsRaw = f['mounts'] ?? [];
  const mounts: string[] = [];
  if (!Array.isArray(mountsRaw)) problems.push('freeze.mounts must be a list of absolute mount points');
  else {
    mountsRaw.forEach((m: unknown, i) => {
      if (typeof m !== 'string' || !isAbsolute(m)) problems.push(`freeze.mounts[${i}] must be an absolute path, got ${JSON.stringify(m)}`);
      else if (m.includes(':')) problems.push(`freeze.mounts[${i}] ${m} contains ':', the separator of SNAP_MOUNTS`);
      else if (mounts.includes(normalize(m))) problems.push(`freeze.mounts[${i}] ${m} is listed twice`);
      else mounts.push(normalize(m));
    });
  }
  const sync = f['sync'];
  if (sync !== undefined && typeof sync !== 'boolean') problems.push(`freeze.sync must be true or false, got ${JSON.stringify(sync)}`);
  return {
    ...(typeof hooksDir === 'string' && isAbsolute(hooksDir) ? { hooksDir: normalize(hooksDir) } : {}),
    mounts,
    sync: typeof sync === 'boolean' ? sync : FREEZE_DEFAULTS.sync,
    hookTimeoutMs: integer('hookTimeoutMs', 1),
    hookRetriesMax: integer('hookRetriesMax', 0, HOOK_RETRIES_MAX_LIMIT),
    hookKillGraceMs: integer('hookKillGraceMs', 1),
    freezeDeadlineMsMax: integer('freezeDeadlineMsMax', 1),
    sessionReadyTimeoutMs: integer('sessionReadyTimeoutMs', 1),
    sessionReleaseTimeoutMs: integer('sessionReleaseTimeoutMs', 1),
  };
}
