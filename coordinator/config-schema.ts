/**
 * The coordinator's options: one schema for the configuration file (`--config FILE`, JSON), the
 * environment and the command-line flags. docs/configuration.md is generated from it
 * (`npm run gen:config-docs`).
 */
import { z } from 'zod';
import { field, durationMs, integer, LOG_LEVELS, type Parsed, parseWith } from '../adapters/config-schema.js';
import { CHECKPOINT_SERVICE_DEFAULTS, INLINE_STATE_BYTES_LIMIT, ORPHAN_SETTLE_MS, ORPHAN_SWEEP_INTERVAL_MS_DEFAULT } from './checkpoints/service.js';
import { leaseOptionsDefault } from './lease.js';
import { parseScheduleSpec, type ScheduleSpec } from './schedule.js';
import { siteNameSchema, sitesSchema } from './sites/config.js';

/** The shortest lease that leaves two renewals within its validity (lease.ts validateLeaseOptions). */
const LEASE_MS_MIN = leaseOptionsDefault.marginMs + 2 * leaseOptionsDefault.renewMs;

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/;

const scheduleSpec = z.string({ error: 'must be a schedule text' }).transform((text, ctx): ScheduleSpec => {
  const parsed = parseScheduleSpec(text);
  if (parsed.ok) return parsed.spec;
  // parseScheduleSpec speaks of the flag ("--schedule TEXT: ..."); the path already names the entry.
  ctx.addIssue({ code: 'custom', message: parsed.message.slice(`--schedule ${text}: `.length), input: text });
  return z.NEVER;
});

export const coordinatorConfigSchema = z.strictObject({
  natsUrl: field(z.string({ error: 'must be a NATS URL' }).min(1, { error: 'must be a NATS URL' }).default('nats://127.0.0.1:4222'), {
    description: "NATS server with JetStream (the store lives in its KV and Object Store); a cluster's nodes separated by commas",
    unit: 'URL',
    flag: '--nats',
    env: 'NATS_URL',
  }),
  natsCredsFile: field(z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }).optional(), {
    description: "the coordinator's NATS credentials (a .creds file: DIR/coordinator/user.creds of snapctl nats init; docs/security.md); absent: it connects without credentials",
    unit: 'path',
    flag: '--nats-creds',
    env: 'SNAPCOORD_NATS_CREDS',
  }),
  natsTenantCredsDir: field(z.string({ error: 'must be a directory path' }).min(1, { error: 'must be a directory path' }).optional(), {
    description: "where the coordinator finds TENANT/coordinator.creds, its user in each tenant's NATS account, to reach the tenant's state bucket (DIR/tenants of snapctl nats init; docs/security.md); absent: every tenant's bucket through its own connection (a NATS without accounts)",
    unit: 'path',
    flag: '--nats-tenant-creds-dir',
    env: 'SNAPCOORD_NATS_TENANT_CREDS_DIR',
  }),
  replicas: field(integer(1, 5).default(1), {
    description: "copies of each of the coordinator's JetStream buckets: 3 on a 3-node NATS cluster (docs/ha.md), 1 on a single server. An existing bucket keeps the replicas it was created with",
    unit: 'copies',
    flag: '--replicas',
    env: 'SNAPCOORD_REPLICAS',
  }),
  listen: field(z.string({ error: 'must be HOST:PORT' }).regex(HOST_PORT, { error: 'must be HOST:PORT' }).default('127.0.0.1:50051'), {
    description: 'address of the gRPC API (port 0 picks a free one)',
    unit: 'HOST:PORT',
    flag: '--listen',
    env: 'SNAPCOORD_LISTEN',
  }),
  advertise: field(z.string({ error: 'must be HOST:PORT' }).regex(HOST_PORT, { error: 'must be HOST:PORT' }).optional(), {
    description: "the gRPC address other coordinators' callers are sent to while this one leads (a standby names it in its UNAVAILABLE answers); absent: the listening address with its actual port",
    unit: 'HOST:PORT',
    flag: '--advertise',
    env: 'SNAPCOORD_ADVERTISE',
  }),
  leaseMs: field(integer(LEASE_MS_MIN).default(leaseOptionsDefault.leaseMs), {
    description: `the leader lease (docs/ha.md): a standby takes over once the leader has not renewed it for this long by the standby's clock; the leader renews every ${leaseOptionsDefault.renewMs} ms and stops writing ${leaseOptionsDefault.marginMs} ms before its lease could be taken`,
    unit: 'ms',
    flag: '--lease-ms',
    env: 'SNAPCOORD_LEASE_MS',
  }),
  timeoutMs: field(durationMs().default(CHECKPOINT_SERVICE_DEFAULTS.defaults.timeoutMs), {
    description: "a checkpoint's timeout when its request gives none",
    unit: 'ms',
    flag: '--timeout-ms',
    env: 'SNAPCOORD_TIMEOUT_MS',
  }),
  retain: field(integer(1).default(CHECKPOINT_SERVICE_DEFAULTS.retainedPerPlan), {
    description: 'completed checkpoints kept per plan (older ones are deleted, pinned ones kept)',
    unit: 'checkpoints',
    flag: '--retain',
    env: 'SNAPCOORD_RETAIN',
  }),
  restoreTimeoutMs: field(durationMs().default(CHECKPOINT_SERVICE_DEFAULTS.restoreTimeoutMs), {
    description: 'how long a rollback or restore waits for each agent',
    unit: 'ms',
    flag: '--restore-timeout-ms',
    env: 'SNAPCOORD_RESTORE_TIMEOUT_MS',
  }),
  orphanSweepIntervalMs: field(integer(1_000).default(ORPHAN_SWEEP_INTERVAL_MS_DEFAULT), {
    description: `how often the leader deletes stored objects no checkpoint owns any more (an aborted checkpoint's, once its timeout and ${ORPHAN_SETTLE_MS / 1000} s have passed; one whose record is gone): what a round's own clean-up missed because its coordinator died, or an agent without a purge right left (docs/RELIABILITY.md, F11); also once at takeover`,
    unit: 'ms',
    flag: '--orphan-sweep-interval-ms',
    env: 'SNAPCOORD_ORPHAN_SWEEP_INTERVAL_MS',
  }),
  inlineStateBytesMax: field(integer(0, INLINE_STATE_BYTES_LIMIT).default(CHECKPOINT_SERVICE_DEFAULTS.inlineStateBytesMax), {
    description: `an app state up to this size travels in its ack and is kept in the checkpoint record instead of as an object; 0: always an object (a plan's apps share ${CHECKPOINT_SERVICE_DEFAULTS.inlineStateRecordBytesMax} bytes of record)`,
    unit: 'bytes',
    flag: '--inline-state-bytes-max',
    env: 'SNAPCOORD_INLINE_STATE_BYTES_MAX',
  }),
  volumeBackend: field(z.string({ error: 'must be directory:PATH or command:FILE.json' }).regex(/^(directory|command):.+$/, { error: 'must be directory:PATH or command:FILE.json' }).optional(), {
    description: 'crash level: directory:PATH (volumes are directories, snapshots go under PATH) or command:FILE.json (argument templates, e.g. rbd snap create); none: plans with volumes cannot take crash checkpoints',
    flag: '--volume-backend',
    env: 'SNAPCOORD_VOLUME_BACKEND',
  }),
  serverBackend: field(z.string({ error: 'must be qemu or command:FILE.json' }).regex(/^(qemu|command:.+)$/, { error: 'must be qemu or command:FILE.json' }).optional(), {
    description: "crash level for servers without an agent (a plan's agentlessServers, docs/backends.md): qemu (pause over each server's QMP socket, one QMP transaction snapshots all its disks) or command:FILE.json (templates, e.g. virsh suspend); none: such plans cannot take crash checkpoints",
    flag: '--server-backend',
    env: 'SNAPCOORD_SERVER_BACKEND',
  }),
  schedules: field(z.array(scheduleSpec, { error: 'must be a list of schedule texts' }).default([]), {
    description:
      'periodic checkpoints, one text per plan: plan=ID,interval=MS[,level=app|crash|none][,min-pause=MS][,tolerable-failures=N] (defaults: level app, min-pause 0, tolerable-failures 3; a manual request outranks a periodic checkpoint); the flag is repeated, the variable separates texts by ";"',
    flag: '--schedule',
    env: 'SNAPCOORD_SCHEDULES',
    envSeparator: ';',
  }),
  logLevel: field(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'), {
    description: 'pino log level (JSON lines on stdout)',
    flag: '--log-level',
    env: 'SNAPCOORD_LOG_LEVEL',
  }),
  tls: field(
    z
      .strictObject(
        {
          certFile: field(z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }), {
            description: "the gRPC server's certificate chain (PEM)",
            unit: 'path',
            flag: '--tls-cert',
            env: 'SNAPCOORD_TLS_CERT',
          }),
          keyFile: field(z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }), {
            description: "the gRPC server's private key (PEM)",
            unit: 'path',
            flag: '--tls-key',
            env: 'SNAPCOORD_TLS_KEY',
          }),
          clientCaFile: field(z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }).optional(), {
            description: 'CA certificates (PEM) of client certificates: given, every client must present a certificate it signed (mTLS); absent: TLS without client certificates',
            unit: 'path',
            flag: '--tls-client-ca',
            env: 'SNAPCOORD_TLS_CLIENT_CA',
          }),
        },
        { error: 'must be an object' },
      )
      .optional(),
    { description: 'TLS of the gRPC API (docs/security.md); absent: plaintext' },
  ),
  auth: field(
    z
      .strictObject(
        {
          tokensFile: field(z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }), {
            description: 'the identities (bearer tokens, client certificate names) with their tenant and role, JSON (docs/security.md); read again when it changes',
            unit: 'path',
            flag: '--auth-tokens',
            env: 'SNAPCOORD_AUTH_TOKENS',
          }),
        },
        { error: 'must be an object' },
      )
      .optional(),
    { description: 'authentication, roles, tenant scoping and the audit stream of the gRPC API (docs/security.md); absent: every call is served, anonymous, and the coordinator warns at start' },
  ),
  siteName: siteNameSchema,
  sites: sitesSchema,
  metrics: field(
    z
      .strictObject({
        port: field(integer(0, 65_535).optional(), {
          description: 'port of the Prometheus /metrics endpoint; absent: no endpoint (0 picks a free one)',
          flag: '--metrics-port',
          env: 'SNAPCOORD_METRICS_PORT',
        }),
        host: field(z.string({ error: 'must be a host name or address' }).min(1, { error: 'must be a host name or address' }).default('127.0.0.1'), {
          description: 'address the /metrics endpoint listens on',
          flag: '--metrics-host',
          env: 'SNAPCOORD_METRICS_HOST',
        }),
      }, { error: 'must be an object' })
      .prefault({}),
    { description: 'the Prometheus endpoint' },
  ),
});

export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;

export function parseCoordinatorConfig(input: unknown): Parsed<CoordinatorConfig> {
  return parseWith(coordinatorConfigSchema, input);
}
