/**
 * snapcoord: the coordinator daemon. Connects to NATS, opens its JetStream store, listens to every
 * agent's events, and serves the gRPC API (with grpc.health.v1) for the protection service.
 * Several may run: one leads by a lease (lease.ts) and runs the checkpoints; the others stand by,
 * answer UNAVAILABLE to the calls that change things, and take over when the leader dies
 * (docs/ha.md).
 *
 *   snapcoord --nats nats://127.0.0.1:4222 --listen 127.0.0.1:50051
 *   snapcoord --config /etc/snapcoord/config.json
 *
 * Options: coordinator/config-schema.ts (file, environment and flags; docs/configuration.md).
 * Exit codes: 0 stopped cleanly (SIGINT/SIGTERM), 1 failed at run time, 2 bad usage or configuration.
 */
import { existsSync, readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from 'nats';
import { loadConfig } from '../adapters/config-schema.js';
import { rootLogger } from '../adapters/logger.js';
import { VERSION } from '../adapters/version.js';
import { JetStreamStateObjects } from '../adapters/state-store.js';
import { TenantConnections } from './nats-auth/tenant-connections.js';
import { createStateBuckets } from './nats-auth/state-buckets.js';
import { AgentRegistry, trackAgents } from './agents.js';
import { ControlBus } from './bus.js';
import { jetStreamLogStreams, LogRetentionWatch } from './checkpoints/log-retention.js';
import { recoverLeftOperations } from './checkpoints/recover-operations.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService, ORPHAN_SWEEP_INTERVAL_MS_DEFAULT } from './checkpoints/service.js';
import { coordinatorConfigSchema } from './config-schema.js';
import { ok } from './errors.js';
import { leaderOnly } from './ha/leader-only.js';
import { LeaderLease, leaseOptionsDefault, processHolderId } from './lease.js';
import { FencedCheckpointStore, FencedOperationStore, leaseChecked, type Fence } from './store/fenced.js';
import { storeProbe, watchReadiness } from './grpc/readiness.js';
import { startGrpcServer, type GrpcServerOptions } from './grpc/server.js';
import { tokensFileAuthenticator } from './grpc/auth.js';
import { serverCredentialsFrom } from './grpc/tls.js';
import { jetStreamAudit } from './audit.js';
import type { ServerCredentials } from '@grpc/grpc-js';
import { serveCoordinatorMetrics } from './metrics/index.js';
import { deletingPolicies, PolicyRegistry } from './policies/registry.js';
import { JetStreamPolicyStore } from './store/policies.js';
import { PlanRegistry } from './plans.js';
import { openCoordinatorStore, openLeaderBucket } from './store/index.js';
import { bucketOptionsDefault } from './store/kv.js';
import { createVolumeBackend, type VolumeBackend } from './volumes/backend.js';
import { createServerBackend, withServerBackend, type ServerBackend } from './servers/index.js';
import { PlanSchedule } from './schedule.js';
import { COORDINATOR_NATS_OPTIONS } from './nats-options.js';
import { COPY_CATCH_UP_INTERVAL_MS, startSites } from './sites/index.js';

const HELP = `snapcoord: the snapshot coordinator

usage: snapcoord [--config FILE] [options]

options (each sets the configuration key in brackets; a flag wins over its environment variable,
which wins over the file; docs/configuration.md lists every key with its default and unit):
  --config FILE              configuration file (JSON) of the keys below
  --nats URL[,URL...]        [natsUrl] NATS server with JetStream, or a cluster's nodes (env NATS_URL, default nats://127.0.0.1:4222)
  --nats-creds FILE          [natsCredsFile] NATS credentials of the coordinator (operator mode, docs/security.md)
  --nats-tenant-creds-dir DIR [natsTenantCredsDir] TENANT/coordinator.creds for each tenant's state bucket
  --replicas N               [replicas] copies of each JetStream bucket: 3 on a 3-node cluster, 1 on one server (default 1)
  --listen HOST:PORT         [listen] gRPC address (default 127.0.0.1:50051; port 0 picks a free one)
  --timeout-ms MS            [timeoutMs] default checkpoint timeout (default ${CHECKPOINT_SERVICE_DEFAULTS.defaults.timeoutMs})
  --retain N                 [retain] completed checkpoints kept per plan (default ${CHECKPOINT_SERVICE_DEFAULTS.retainedPerPlan})
  --restore-timeout-ms MS    [restoreTimeoutMs] how long a rollback waits for each agent (default ${CHECKPOINT_SERVICE_DEFAULTS.restoreTimeoutMs})
  --orphan-sweep-interval-ms MS [orphanSweepIntervalMs] how often the leader deletes stored objects no
                             checkpoint owns any more, and once at takeover (default ${ORPHAN_SWEEP_INTERVAL_MS_DEFAULT})
  --inline-state-bytes-max N [inlineStateBytesMax] an app state up to N bytes travels in the ack and is
                             kept in the checkpoint record instead of as an object; 0: always an object
                             (default ${CHECKPOINT_SERVICE_DEFAULTS.inlineStateBytesMax}; a plan's apps share ${CHECKPOINT_SERVICE_DEFAULTS.inlineStateRecordBytesMax} bytes of record)
  --volume-backend SPEC      [volumeBackend] crash level: directory:PATH (volumes are directories,
                             snapshots go under PATH) or command:FILE.json (argument templates, e.g. rbd snap create)
  --server-backend SPEC      [serverBackend] crash level for servers without an agent: qemu (QMP) or
                             command:FILE.json (templates, e.g. virsh suspend); docs/backends.md
  --schedule SPEC            [schedules] periodic checkpoints of a plan (repeatable):
                             plan=ID,interval=MS[,level=app|crash|none][,min-pause=MS][,tolerable-failures=N]
                             (defaults: level app, min-pause 0, tolerable-failures 3; a manual request
                             outranks a periodic checkpoint)
  --metrics-port PORT        [metrics.port] serve Prometheus /metrics on this port (default: off)
  --metrics-host HOST        [metrics.host] address of /metrics (default 127.0.0.1)
  --lease-ms MS              [leaseMs] a standby takes over once the leader has not renewed for this long (default ${leaseOptionsDefault.leaseMs})
  --advertise HOST:PORT      [advertise] the gRPC address standbys give callers (default: the listening address)
  --tls-cert FILE            [tls.certFile] serve the gRPC API over TLS with this certificate (PEM) ...
  --tls-key FILE             [tls.keyFile] ... and this key (PEM)
  --tls-client-ca FILE       [tls.clientCaFile] mTLS: clients present a certificate signed by this CA
  --auth-tokens FILE         [auth.tokensFile] authenticate every call: identities, tenants and roles (docs/security.md);
                             without it the API is anonymous (a warning at start)
  --site-name NAME           [siteName] this deployment's site name, the source of its copies (default local)
                             [sites] other sites to copy checkpoints to: only in the file (docs/sites.md)
  --log-level LEVEL          [logLevel] pino level (default info)
  --version                  print the version and exit
  -h, --help                 this help

It prints "listening on HOST:PORT" once the gRPC server is up and this coordinator leads (recovery
done) or stands by behind a live leader.
exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage or configuration error,
3 deposed (it lost the leader lease; started again, it stands by)`;

/** Exit code of a leader that lost its lease: its in-memory rounds are not its to finish any more. */
const EXIT_DEPOSED = 3;

/** A lease call retries 503 only briefly: the next renewal is the retry. */
const LEASE_NOT_READY_RETRY_MS = 500;

/** With 2 pings outstanding, a NATS node that stopped answering is left after about 3 intervals. */
const NATS_PING_INTERVAL_MS = 2_000;

/** How often the coordinator looks for checkpoints left in flight by a coordinator that stopped. */
const STALE_SWEEP_INTERVAL_MS = 60_000;

async function main(): Promise<number> {
  const loaded = loadConfig(coordinatorConfigSchema, process.argv.slice(2), process.env, {
    extra: { config: { type: 'string' }, version: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (loaded.values['version'] === true) {
    console.log(VERSION);
    return 0;
  }
  if (!loaded.ok) {
    const where = typeof loaded.values['config'] === 'string' ? ` ${loaded.values['config']}` : '';
    console.error(loaded.kind === 'usage' ? `snapcoord: ${loaded.problems.join('; ')}\n\n${HELP}` : `snapcoord: invalid configuration${where}:\n  ${loaded.problems.join('\n  ')}`);
    return 2;
  }
  if (loaded.values['help'] === true) {
    console.log(HELP);
    return 0;
  }
  const options = loaded.config;
  const logger = rootLogger({ level: options.logLevel, bindings: { component: 'coordinator' } });
  let volumes: VolumeBackend | undefined;
  if (options.volumeBackend !== undefined) {
    const created = await createVolumeBackend(options.volumeBackend, logger);
    if (!created.ok) {
      console.error(`snapcoord: ${created.error.message}`);
      return 2;
    }
    volumes = created.value;
  }
  let servers: ServerBackend | undefined;
  if (options.serverBackend !== undefined) {
    const created = await createServerBackend(options.serverBackend, logger);
    if (!created.ok) {
      console.error(`snapcoord: ${created.error.message}`);
      return 2;
    }
    servers = created.value;
  }
  // TLS files are checked before anything connects: a bad one is a configuration error (exit 2).
  let credentials: ServerCredentials | undefined;
  if (options.tls !== undefined) {
    const loaded = serverCredentialsFrom(options.tls);
    if (!loaded.ok) {
      console.error(`snapcoord: ${loaded.error.message}`);
      return 2;
    }
    credentials = loaded.value;
  }
  // Several URLs (comma-separated) name a cluster's nodes. Pings find a paused node (its socket
  // stays open) in seconds, so the connection moves to another node.
  let creds: Buffer | undefined;
  if (options.natsCredsFile !== undefined) {
    try {
      creds = readFileSync(options.natsCredsFile);
    } catch (error) {
      console.error(`snapcoord: cannot read the NATS credentials ${options.natsCredsFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return 2;
    }
  }
  if (options.natsTenantCredsDir !== undefined && !existsSync(options.natsTenantCredsDir)) {
    console.error(`snapcoord: natsTenantCredsDir ${options.natsTenantCredsDir} does not exist (snapctl nats init makes it)`);
    return 2;
  }
  const connectOptions = { ...COORDINATOR_NATS_OPTIONS, servers: options.natsUrl.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: NATS_PING_INTERVAL_MS, maxPingOut: 2 };
  const nc = await connect({ ...connectOptions, name: 'snapshot-coordinator', ...(creds !== undefined ? { authenticator: credsAuthenticator(creds) } : {}) });
  if (creds === undefined) logger.warn('NATS without credentials: agents and tenants are kept apart by nothing but the coordinator\'s checks; see docs/security.md for operator mode');
  const shared = await openCoordinatorStore(nc, { replicas: options.replicas });
  // Set once the gRPC address is known; until then this process neither leads nor writes.
  let lease: LeaderLease | undefined;
  // Every checkpoint and operation record write carries the leader's term and is refused for a
  // stale one or without a valid lease; the other records' writes need a valid lease (store/fenced.ts).
  const fence: Fence = { term: () => lease?.term(), refused: (reason) => lease?.stepDown(reason) };
  const store = {
    ...shared,
    checkpoints: new FencedCheckpointStore(shared.checkpoints, fence),
    operations: new FencedOperationStore(shared.operations, fence),
    plans: leaseChecked(shared.plans, 'plans', ['create', 'update', 'delete'], fence),
    epochs: leaseChecked(shared.epochs, 'epochs', ['bump'], fence),
    slots: leaseChecked(shared.slots, 'admission slots', ['transact'], fence),
    keyed: leaseChecked(shared.keyed, 'idempotency keys', ['claim', 'finish'], fence),
  };
  // With tenant credentials, each tenant's state bucket is in the tenant's own NATS account.
  const tenantConnections = options.natsTenantCredsDir === undefined ? undefined : new TenantConnections(options.natsTenantCredsDir, connectOptions);
  /** A tenant's JetStream: its own account's with tenant credentials, else this connection's. */
  const tenantConnection = (tenant: string): Promise<NatsConnection> => (tenantConnections === undefined ? Promise.resolve(nc) : tenantConnections.get(tenant));
  const objects = new JetStreamStateObjects(tenantConnections === undefined ? nc : (tenant) => tenantConnections.get(tenant), { replicas: options.replicas });
  // With a server backend, freeze/thaw of servers without an agent and their disks go to it.
  const routed = servers ? withServerBackend(nc, logger.child({ component: 'bus' }), servers, store, volumes) : undefined;
  const bus = routed?.bus ?? new ControlBus(nc, logger.child({ component: 'bus' }));
  volumes = routed?.volumes ?? volumes;
  const agents = new AgentRegistry({ logger });
  // Agents that registered with a previous coordinator are asked to register again (docs/agent.md).
  trackAgents(bus, agents);
  // The coordinator creates each tenant's state bucket: an agent with a credential may not.
  createStateBuckets(bus, tenantConnection, { replicas: options.replicas, bucketBytesMax: 0 }, logger);
  await bus.start();
  const checkpoints: CheckpointService = new CheckpointService(store, objects, bus, logger, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: options.timeoutMs },
    retainedPerPlan: options.retain,
    restoreTimeoutMs: options.restoreTimeoutMs,
    inlineStateBytesMax: options.inlineStateBytesMax,
    agents,
    fences: agents,
    ...(volumes ? { volumes } : {}),
    retentionFor: (planId) => policies.retentionFor(planId),
    logRetention: new LogRetentionWatch({
      store,
      objects,
      streams: jetStreamLogStreams(tenantConnection),
      logger: logger.child({ component: 'log-retention' }),
    }),
  });
  const policies: PolicyRegistry = new PolicyRegistry({
    store: leaseChecked(new JetStreamPolicyStore(store.buckets.plans, 1_000), 'policies', ['create', 'update', 'delete'], fence),
    plans: store.plans,
    logger,
    take: (r) => checkpoints.take(r),
    waitFor: (id) => checkpoints.waitFor(id),
  });
  const sites = startSites({ siteName: options.siteName, sites: options.sites, store, objects, restore: (r) => checkpoints.restore(r), onEnded: (l) => checkpoints.onEnded(l), onDeleted: (l) => checkpoints.onDeleted(l), logger });
  const plans = new PlanRegistry({
    store: store.plans,
    logger,
    siteNames: sites.names,
    hasCheckpoints: async (planId) => {
      const page = await store.checkpoints.list({ planId }, 1, '');
      return page.ok ? ok(page.value.items.length > 0) : page;
    },
    deleteCheckpoints: async (planId) => {
      for (;;) {
        const page = await store.checkpoints.list({ planId }, 100, '');
        if (!page.ok) return page;
        if (page.value.items.length === 0) return ok(undefined);
        for (const c of page.value.items) {
          const r = await checkpoints.delete(c.id);
          if (!r.ok) return r;
        }
      }
    },
  });
  const metricsPort = options.metrics.port;
  const metricsServer = metricsPort === undefined ? undefined : await serveCoordinatorMetrics({ checkpoints, agents, plans, sites: sites.copies, host: options.metrics.host, port: metricsPort, logger });
  if (metricsServer !== undefined && !metricsServer.ok) {
    console.error(`snapcoord: ${metricsServer.error.message}`);
    return 2;
  }
  const running = options.schedules.map((spec) => new PlanSchedule(spec, { take: (r) => checkpoints.take(r), waitFor: (id) => checkpoints.waitFor(id), logger }));
  checkpoints.onEnded((r) => {
    if (r.state !== 'completed') return;
    for (const s of running) if (s.spec.planId === r.planId) s.noteCompleted();
    policies.noteCompleted(r.planId);
  });
  const leadership = { leading: () => lease?.leading() ?? false, leaderAddress: () => lease?.leaderAddress() };
  let auth: GrpcServerOptions['auth'];
  if (options.auth !== undefined) {
    const authenticator = tokensFileAuthenticator(options.auth.tokensFile, { onReloadFailed: (message) => logger.error({ tokensFile: options.auth?.tokensFile }, `tokens file not reloaded, the previous one stays in force: ${message}`) });
    if (!authenticator.ok) {
      console.error(`snapcoord: ${authenticator.error.message}`);
      return 2;
    }
    auth = { authenticator: authenticator.value, audit: await jetStreamAudit(nc, { replicas: options.replicas, logger }) };
    if (options.tls === undefined) logger.warn('the gRPC API authenticates callers but serves plaintext: bearer tokens cross the network readable; configure tls');
  } else {
    logger.warn('the gRPC API is UNAUTHENTICATED: anyone who reaches its address can read and roll back every plan; configure auth (docs/security.md)');
  }
  // A standby answers the calls that change things with UNAVAILABLE and the leader's address (ha/leader-only.ts).
  const server = await startGrpcServer({
    api: leaderOnly({ plans: deletingPolicies(plans, policies), checkpoints, agents, policies, sites: sites.copies }, leadership),
    address: options.listen,
    logger,
    ...(credentials !== undefined ? { credentials } : {}),
    ...(auth !== undefined ? { auth } : {}),
  });
  const host = options.listen.slice(0, options.listen.lastIndexOf(':'));
  const address = options.advertise ?? `${host}:${server.port}`;
  // Health follows NATS and the store (grpc/readiness.ts) while this coordinator leads; NOT_SERVING otherwise.
  let leaderReady = false;
  server.health.setAll('NOT_SERVING');
  const readiness = watchReadiness({ nc, probeStore: storeProbe(store.buckets), setStatus: (s) => server.health.setAll(leaderReady && leadership.leading() ? s : 'NOT_SERVING'), logger });
  let sweeper: NodeJS.Timeout | undefined;
  let orphanSweeper: NodeJS.Timeout | undefined;
  let copyCatchUp: NodeJS.Timeout | undefined;
  // Runs once this process takes the lease: what the previous leader left is ended first.
  const lead = async (term: number): Promise<void> => {
    const started = performance.now();
    // Rounds a stopped coordinator left in flight: aborted and cleaned up before anything new starts
    // (their admission slots count until then); each aborted record is stamped with this term.
    const recovered = await checkpoints.recover();
    if (!recovered.ok) logger.warn({ error: recovered.error.message }, 'rounds left by a stopped coordinator not recovered');
    // Rollbacks and restores it left under way: finished from their phase or ended (docs/rollback.md).
    const left = await recoverLeftOperations({ store, bus, objects, logger, timeoutMs: options.restoreTimeoutMs, nowUnixMs: Date.now });
    if (!left.ok) logger.warn({ error: left.error.message }, 'rollbacks and restores left by a stopped coordinator not recovered');
    if (!leadership.leading()) return;
    for (const s of running) s.start();
    // Plans' policies from the store: their schedules start, their retention holds (coordinator/policies/).
    const applied = await policies.start();
    if (!applied.ok) logger.warn({ error: applied.error.message }, 'policies not read: no policy schedules until the next start');
    // A record left in flight later on (a run that could not write its end) is swept every minute.
    const sweep = async (): Promise<void> => {
      const swept = await checkpoints.sweepStale();
      if (!swept.ok) logger.warn({ error: swept.error.message }, 'stale checkpoints not swept');
      else if (swept.value.length > 0) logger.warn({ checkpoints: swept.value }, 'stale checkpoints aborted');
    };
    sweeper = setInterval(() => void sweep(), STALE_SWEEP_INTERVAL_MS);
    sweeper.unref();
    // Objects no checkpoint owns (F11 in docs/RELIABILITY.md): what the previous leader's rounds
    // could not clean up before it died is found now, and later leftovers every interval.
    const sweepOrphans = async (): Promise<void> => {
      const swept = await checkpoints.sweepOrphans();
      if (!swept.ok) logger.warn({ error: swept.error.message }, 'orphaned objects not swept');
      else for (const problem of swept.value.problems) logger.warn({ problem }, 'orphan sweep incomplete: the next sweep tries again');
    };
    void sweepOrphans();
    orphanSweeper = setInterval(() => void sweepOrphans(), options.orphanSweepIntervalMs);
    orphanSweeper.unref();
    // Automatic copies to sites never made (a site down past the retries, a coordinator stopped
    // before its copies): the newest completed checkpoint of each plan gets them (docs/sites.md).
    let catchingUp = false;
    const catchUpCopies = async (): Promise<void> => {
      if (catchingUp || !leadership.leading()) return;
      catchingUp = true;
      const made = await sites.catchUp().finally(() => (catchingUp = false));
      if (!made.ok) logger.warn({ error: made.error.message }, 'missing automatic copies not looked for: tried again at the next catch-up');
    };
    void catchUpCopies();
    copyCatchUp = setInterval(() => void catchUpCopies(), COPY_CATCH_UP_INTERVAL_MS);
    copyCatchUp.unref();
    leaderReady = true;
    server.health.setAll(readiness.serving() ? 'SERVING' : 'NOT_SERVING');
    logger.info({ term, address, recoveryMs: Math.round(performance.now() - started) }, 'leading: recovery done, serving');
  };
  let leading: Promise<void> | undefined;
  let deposed: ((reason: string) => void) | undefined;
  const deposition = new Promise<string>((resolve) => {
    deposed = resolve;
  });
  lease = new LeaderLease(
    await openLeaderBucket(nc, { ...bucketOptionsDefault, replicas: options.replicas, notReadyRetryMs: LEASE_NOT_READY_RETRY_MS }),
    { holder: processHolderId(), address },
    { ...leaseOptionsDefault, leaseMs: options.leaseMs },
    logger,
  );
  lease.onElected((term) => {
    leading = lead(term);
  });
  lease.onDeposed((reason) => {
    server.health.setAll('NOT_SERVING');
    deposed?.(reason);
  });
  await lease.start();
  if (leading !== undefined) await leading;
  console.log(`listening on ${host}:${server.port}`);
  const stopped = await Promise.race([
    new Promise<'signal'>((resolve) => {
      process.once('SIGINT', () => resolve('signal'));
      process.once('SIGTERM', () => resolve('signal'));
    }),
    deposition,
  ]);
  if (stopped === 'signal') logger.info('stopping');
  else logger.warn({ reason: stopped }, `deposed: exiting with code ${EXIT_DEPOSED}; started again, this coordinator stands by`);
  for (const s of running) s.stop();
  policies.stop();
  if (sweeper !== undefined) clearInterval(sweeper);
  if (orphanSweeper !== undefined) clearInterval(orphanSweeper);
  if (copyCatchUp !== undefined) clearInterval(copyCatchUp);
  readiness.stop();
  // Released before the slow part of the stop, so a standby takes over at once.
  await lease.stop();
  await server.close();
  await metricsServer?.value.close();
  await sites.close();
  bus.stop();
  await tenantConnections?.close();
  await nc.drain().catch(() => undefined);
  return stopped === 'signal' ? 0 : EXIT_DEPOSED;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`snapcoord: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
