/**
 * The agent's configuration file (JSON), validated once at start-up against one schema
 * (`agentConfigSchema`, zod): a bad file is a list of clear problems, each naming its key path, never
 * an agent that half works. Unknown keys are refused with the nearest real key suggested.
 */
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import { z } from 'zod';
import { field, integer, LOG_LEVELS, overlay, parseWith, readConfigFile, type FieldMeta } from '../adapters/config-schema.js';
import type { ChannelId } from '../src/ids.js';
import { isChannelId, isLogSubject, isName, splitProcessId } from '../src/wire/index.js';
import { parseChannelId } from '../src/ids.js';
import { CHANNEL_LIMITS_DEFAULT, type ChannelLimits } from './channels/types.js';
import type { StateEncryptionConfig } from '../adapters/state-crypto.js';

export interface AgentAppConfig {
  readonly name: string;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
  /** Inputs and outputs that are log channels (docs/channels.md, *Log channels*); the rest are in-band. */
  readonly logChannels?: readonly AgentLogChannelConfig[];
}

export interface AgentLogChannelConfig {
  readonly channel: ChannelId;
  readonly stream: string;
  readonly subject: string;
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
    /** A `.creds` file from `snapctl agent enroll`: this agent's NATS user (docs/security.md). */
    readonly credsFile?: string;
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
  /** Absent: states are stored as the apps give them (docs/security.md). */
  readonly stateEncryption?: StateEncryptionConfig;
}

export const AGENT_DEFAULTS = {
  heartbeatIntervalMs: 2_000,
  controlIdsRememberedMax: 4_096,
  triggerWaitMs: 2_000,
  logLevel: 'info',
} as const satisfies { logLevel: (typeof LOG_LEVELS)[number] } & Record<string, unknown>;

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; problems: string[] };

const name = (what: string): z.ZodString => z.string({ error: `must be ${what}: a name of [A-Za-z0-9_-]{1,64}` }).refine(isName, { error: `must be ${what}: a name of [A-Za-z0-9_-]{1,64}` });
const absolutePath = (): z.ZodType<string, string> =>
  z
    .string({ error: 'must be an absolute path' })
    .refine((p) => isAbsolute(p), { error: 'must be an absolute path' })
    .transform((p) => normalize(p));
const channelId = z.string({ error: 'must be a channel id like s1/app1->s2/app2' }).refine(isChannelId, { error: 'must be a channel id like s1/app1->s2/app2' });
const positive = (fallback: number, meta: FieldMeta): z.ZodDefault<z.ZodNumber> => field(integer(1).default(fallback), meta);
const freezeLimit = (key: keyof typeof FREEZE_DEFAULTS & string, min: number, meta: FieldMeta, max?: number): z.ZodDefault<z.ZodNumber> =>
  field(integer(min, max).default(FREEZE_DEFAULTS[key] as number), meta);

const mountPoint = absolutePath().refine((m) => !m.includes(':'), { error: "contains ':', the separator of SNAP_MOUNTS" });

const freezeSchema = z
  .strictObject(
    {
      hooksDir: field(absolutePath().optional(), {
        description: 'hook directory (qemu-ga fsfreeze-hook.d style, docs/hooks.md); absent: only the built-in steps. Must exist at start-up; a directory in it that names no configured app is refused',
        unit: 'path',
        flag: '--hooks-dir',
        env: 'SNAPAGENT_HOOKS_DIR',
      }),
      mounts: field(
        z
          .array(mountPoint, { error: 'must be a list of absolute mount points' })
          .superRefine((mounts, ctx) => {
            mounts.forEach((m, i) => {
              if (mounts.indexOf(m) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `${m} is listed twice`, params: { plain: true } });
            });
          })
          .default([]),
        { description: 'mount points frozen with fsfreeze -f in this order (list a nested mount before its parent), thawed in reverse', unit: 'paths' },
      ),
      sync: field(z.boolean({ error: 'must be true or false' }).default(FREEZE_DEFAULTS.sync), { description: 'run sync before the mounts are frozen' }),
      hookTimeoutMs: freezeLimit('hookTimeoutMs', 1, { description: 'one attempt of one hook (or built-in step); then SIGTERM', unit: 'ms' }),
      hookRetriesMax: freezeLimit('hookRetriesMax', 0, { description: 'further attempts after a failed one; 0: a single attempt', unit: 'attempts' }, HOOK_RETRIES_MAX_LIMIT),
      hookKillGraceMs: freezeLimit('hookKillGraceMs', 1, { description: 'from SIGTERM to SIGKILL for a hook or session that overran', unit: 'ms' }),
      freezeDeadlineMsMax: freezeLimit('freezeDeadlineMsMax', 1, { description: "the longest frozen window: a coordinator's longer deadline is cut to this; the watchdog thaws at the deadline", unit: 'ms' }),
      sessionReadyTimeoutMs: freezeLimit('sessionReadyTimeoutMs', 1, { description: 'how long a hook session may take to print "ready"', unit: 'ms' }),
      sessionReleaseTimeoutMs: freezeLimit('sessionReleaseTimeoutMs', 1, { description: 'how long a hook session may take to exit after "release"; then it is killed', unit: 'ms' }),
    },
    { error: 'must be an object: {"hooksDir": ..., "mounts": [...], ...}' },
  )
  .prefault({});

const logChannelSchema = z.strictObject(
  {
    channel: field(channelId, { description: 'one of the inputs or outputs of the app' }),
    stream: field(name('a stream name'), { description: 'the JetStream stream that carries it (made by the operator; the plan names the same)' }),
    subject: field(
      z.string({ error: 'must be a subject' }).refine(isLogSubject, { error: 'must be dot-separated tokens of [A-Za-z0-9_-], no wildcards, at most 255 characters' }),
      { description: "the subject of the channel's messages in the stream, held by no other channel" },
    ),
  },
  { error: 'must be an object: {"channel": ..., "stream": ..., "subject": ...}' },
);

const appSchema = z.strictObject(
  {
    name: field(name('an app name'), { description: 'the app, unique on this server' }),
    inputs: field(z.array(channelId, { error: 'must be a list of channel ids' }).default([]), { description: 'channels into the app; each must end at SERVER/NAME' }),
    outputs: field(z.array(channelId, { error: 'must be a list of channel ids' }).default([]), { description: 'channels out of the app; each must start at SERVER/NAME' }),
    logChannels: field(z.array(logChannelSchema, { error: 'must be a list of log channels' }).default([]), {
      description: 'inputs and outputs that are log channels over JetStream (docs/channels.md); the others are in-band',
    }),
  },
  { error: 'must be an object: {"name": ..., "inputs": [...], "outputs": [...]}' },
);

const stateKeySchema = z.strictObject(
  {
    id: field(name('a key id'), { description: 'the key id, written into the header of every state sealed with this key' }),
    file: field(absolutePath(), { description: 'the key file: 32 random bytes, raw or base64 (e.g. head -c 32 /dev/urandom | base64)', unit: 'path' }),
  },
  { error: 'must be an object: {"id": ..., "file": "/path/to/key"}' },
);

const stateEncryptionSchema = z
  .strictObject(
    {
      current: field(name('a key id'), { description: 'the key new states are sealed with; one of keys' }),
      keys: field(z.array(stateKeySchema, { error: 'must be a non-empty list of keys' }).min(1, { error: 'must be a non-empty list of keys' }), {
        description: 'every key this agent opens states with: keep the older keys listed after a rotation so older checkpoints still restore',
      }),
    },
    { error: 'must be an object: {"current": ..., "keys": [{"id": ..., "file": ...}]}' },
  )
  .superRefine((c, ctx) => {
    const ids = c.keys.map((k) => k.id);
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: ['keys', i, 'id'], message: `${id} is listed twice`, params: { plain: true } });
    });
    if (!ids.includes(c.current)) ctx.addIssue({ code: 'custom', path: ['current'], message: `${c.current} is not one of the keys (${ids.join(', ')})`, params: { plain: true } });
  });

/** The agent's configuration file; docs/configuration.md is generated from it. */
export const agentConfigSchema = z
  .strictObject(
    {
      tenant: field(name('the tenant'), { description: "the tenant this VM belongs to (its NATS subjects are the tenant's)", flag: '--tenant', env: 'SNAPAGENT_TENANT' }),
      server: field(name('the server'), { description: 'this server (VM), as the plans name it', flag: '--server', env: 'SNAPAGENT_SERVER' }),
      nats: field(
        z
          .strictObject(
            {
              servers: field(z.array(z.string().min(1), { error: 'must be a non-empty list of URLs, e.g. ["nats://127.0.0.1:4222"]' }).min(1, { error: 'must be a non-empty list of URLs, e.g. ["nats://127.0.0.1:4222"]' }), {
                description: 'NATS servers (the flag is repeated, the variable separates URLs by ",")',
                unit: 'URLs',
                flag: '--nats',
                env: 'SNAPAGENT_NATS_SERVERS',
              }),
              user: field(z.string({ error: 'must be a string' }).optional(), { description: 'NATS user', env: 'SNAPAGENT_NATS_USER' }),
              pass: field(z.string({ error: 'must be a string' }).optional(), { description: 'NATS password', env: 'SNAPAGENT_NATS_PASS' }),
              token: field(z.string({ error: 'must be a string' }).optional(), { description: 'NATS token', env: 'SNAPAGENT_NATS_TOKEN' }),
              credsFile: field(absolutePath().optional(), {
                description: "this agent's NATS credentials (a .creds file written by snapctl agent enroll; docs/security.md). Read at start-up: an unreadable file, or one that is not a credentials file, stops the agent",
                unit: 'path',
                flag: '--nats-creds',
                env: 'SNAPAGENT_NATS_CREDS',
              }),
            },
            { error: 'must be an object: {"servers": ["nats://..."]}' },
          ),
        { description: 'the NATS connection' },
      ),
      apps: field(z.array(appSchema, { error: 'must list at least one app: [{"name": ..., "inputs": [...], "outputs": [...]}]' }).min(1, { error: 'must list at least one app: [{"name": ..., "inputs": [...], "outputs": [...]}]' }), {
        description: 'the apps this agent hosts, with their channels',
      }),
      localApiSocket: field(z.string({ error: 'must be a path' }).min(1, { error: 'must be a path' }).optional(), {
        description: 'Unix socket of the local API for apps in other processes (docs/apps.md); absent: embedded apps only',
        unit: 'path',
      }),
      heartbeatIntervalMs: positive(AGENT_DEFAULTS.heartbeatIntervalMs, { description: 'a heartbeat while the agent sends nothing else', unit: 'ms' }),
      controlIdsRememberedMax: positive(AGENT_DEFAULTS.controlIdsRememberedMax, {
        description: 'control request ids remembered, with the answers given, to answer a duplicate without doing the work again',
        unit: 'request ids',
      }),
      triggerWaitMs: positive(AGENT_DEFAULTS.triggerWaitMs, { description: 'how long a trigger or restore waits for its app to attach', unit: 'ms' }),
      channels: field(
        z
          .strictObject(
            {
              creditWindowMessages: positive(CHANNEL_LIMITS_DEFAULT.creditWindowMessages, { description: 'messages the receiver lets the sender have in flight beyond what it consumed', unit: 'messages' }),
              inFlightBytesMax: positive(CHANNEL_LIMITS_DEFAULT.inFlightBytesMax, { description: 'bytes the sender lets be in flight, whatever the window; a receiver credits at half of its own value, so give both ends the same', unit: 'bytes' }),
              outboundQueueMessagesMax: positive(CHANNEL_LIMITS_DEFAULT.outboundQueueMessagesMax, { description: 'messages an outbound channel queues (waiting for credit) before sends are refused', unit: 'messages' }),
              creditRefreshMs: positive(CHANNEL_LIMITS_DEFAULT.creditRefreshMs, { description: 'how often the receiver repeats its credit (every fifth time only while messages keep arriving: docs/channels.md)', unit: 'ms' }),
              gapRepairMs: positive(CHANNEL_LIMITS_DEFAULT.gapRepairMs, { description: 'how long a receiver waits for the sender to publish again what a broker fault lost before the channel fails', unit: 'ms' }),
              overtakeQueuedBytesMax: positive(CHANNEL_LIMITS_DEFAULT.overtakeQueuedBytesMax, {
                description: "an unaligned checkpoint's barrier overtakes the sender's queued messages only while they take at most this much (docs/channels.md)",
                unit: 'bytes',
              }),
            },
            { error: 'must be an object' },
          )
          .prefault({}),
        { description: 'in-band channel limits (docs/channels.md)' },
      ),
      logLevel: field(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default(AGENT_DEFAULTS.logLevel), {
        description: 'pino log level (JSON lines on stdout)',
        flag: '--log-level',
        env: 'SNAPAGENT_LOG_LEVEL',
      }),
      freeze: field(freezeSchema, { description: 'crash consistency on this server (docs/hooks.md)' }),
      stateDir: field(absolutePath().optional(), {
        description: 'runtime state: the freeze status file (snapagent status), hook state directories; never on a frozen mount',
        unit: 'path',
        flag: '--state-dir',
        env: 'SNAPAGENT_STATE_DIR',
        defaultText: '/run/snapagent/TENANT-SERVER as root; else $XDG_RUNTIME_DIR/snapagent/TENANT-SERVER, else TMPDIR/snapagent-UID/TENANT-SERVER',
      }),
      stateEncryption: field(stateEncryptionSchema.optional(), {
        description: 'AES-256-GCM encryption of app, channel and inline states at rest (docs/security.md); absent: states are stored as the apps give them. Every key file is read at start-up: an unreadable one, or one that is not 32 bytes, stops the agent',
      }),
    },
    { error: 'must be a JSON object' },
  )
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.apps.forEach((app, i) => {
      if (seen.has(app.name)) ctx.addIssue({ code: 'custom', path: ['apps', i, 'name'], message: `${app.name} is listed twice`, params: { plain: true } });
      seen.add(app.name);
      for (const end of ['inputs', 'outputs'] as const) {
        app[end].forEach((channel, j) => {
          const ends = parseChannelId(channel);
          const here = ends && splitProcessId(end === 'inputs' ? ends.to : ends.from);
          if (!here || here.server !== c.server || here.app !== app.name) {
            ctx.addIssue({ code: 'custom', path: ['apps', i, end, j], message: `${channel} does not ${end === 'inputs' ? 'end' : 'start'} at ${c.server}/${app.name}`, params: { plain: true } });
          }
        });
      }
      app.logChannels.forEach((l, j) => {
        if (!app.inputs.includes(l.channel) && !app.outputs.includes(l.channel)) {
          ctx.addIssue({ code: 'custom', path: ['apps', i, 'logChannels', j, 'channel'], message: `${l.channel} is not an input or output of ${app.name}`, params: { plain: true } });
        }
        if (app.logChannels.findIndex((o) => o.channel === l.channel) !== j) {
          ctx.addIssue({ code: 'custom', path: ['apps', i, 'logChannels', j, 'channel'], message: `${l.channel} is listed twice`, params: { plain: true } });
        }
      });
    });
  })
  // The state directory's default depends on the tenant and server, and on who runs the agent.
  .transform((c): AgentConfig => ({ ...c, stateDir: c.stateDir ?? defaultStateDir(c.tenant, c.server) }));

/** The configuration judged by the schema: the config, or one problem per key, each naming its path. */
export function parseAgentConfig(json: unknown): ConfigResult {
  const parsed = parseWith(agentConfigSchema, json);
  return parsed.ok ? { ok: true, config: parsed.config } : { ok: false, problems: [...parsed.problems] };
}

/** The flags and environment variables laid over the file (docs/configuration.md), then judged. */
export function agentConfigFrom(file: unknown, env: NodeJS.ProcessEnv, flags: Record<string, unknown>): ConfigResult {
  return parseAgentConfig(overlay(agentConfigSchema, file, env, flags));
}
