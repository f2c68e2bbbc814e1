/**
 * snapcoord: the coordinator daemon. Connects to NATS, opens its JetStream store, listens to every
 * agent's events, and serves the gRPC API (with grpc.health.v1) for the protection service.
 *
 *   snapcoord --nats nats://127.0.0.1:4222 --listen 127.0.0.1:50051
 *
 * Exit codes: 0 stopped cleanly (SIGINT/SIGTERM), 1 failed at run time, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import { pino } from 'pino';
import { JetStreamStateObjects } from '../adapters/state-store.js';
import { AgentRegistry, trackAgents } from './agents.js';
import { ControlBus } from './bus.js';
import { recoverLeftOperations } from './checkpoints/recover-operations.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService, INLINE_STATE_BYTES_LIMIT } from './checkpoints/service.js';
import { ok } from './errors.js';
import { startGrpcServer } from './grpc/server.js';
import { PlanRegistry } from './plans.js';
import { openCoordinatorStore } from './store/index.js';
import { createVolumeBackend, type VolumeBackend } from './volumes/backend.js';
import { parseScheduleSpec, PlanSchedule, type ScheduleSpec } from './schedule.js';

const HELP = `snapcoord: the snapshot coordinator

usage: snapcoord [options]

options:
  --nats URL                 NATS server with JetStream (default $NATS_URL or nats://127.0.0.1:4222)
  --listen HOST:PORT         gRPC address (default 127.0.0.1:50051; port 0 picks a free one)
  --timeout-ms MS            default checkpoint timeout (default ${CHECKPOINT_SERVICE_DEFAULTS.defaults.timeoutMs})
  --retain N                 completed checkpoints kept per plan (default ${CHECKPOINT_SERVICE_DEFAULTS.retainedPerPlan})
  --restore-timeout-ms MS    how long a rollback waits for each agent (default ${CHECKPOINT_SERVICE_DEFAULTS.restoreTimeoutMs})
  --inline-state-bytes-max N an app state up to N bytes travels in the ack and is kept in the
                             checkpoint record instead of as an object; 0: always an object
                             (default ${CHECKPOINT_SERVICE_DEFAULTS.inlineStateBytesMax}; a plan's apps share ${CHECKPOINT_SERVICE_DEFAULTS.inlineStateRecordBytesMax} bytes of record)
  --volume-backend SPEC      crash level: directory:PATH (volumes are directories, snapshots go under
                             PATH) or command:FILE.json (argument templates, e.g. rbd snap create)
  --schedule SPEC            periodic checkpoints of a plan (repeatable):
                             plan=ID,interval=MS[,level=app|crash|none][,min-pause=MS][,tolerable-failures=N]
                             (defaults: level app, min-pause 0, tolerable-failures 3; a manual request
                             outranks a periodic checkpoint)
  --log-level LEVEL          pino level (default info)
  -h, --help                 this help

It prints "listening on HOST:PORT" once the gRPC server is up.
exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage error`;

/** How often the coordinator looks for checkpoints left in flight by a coordinator that stopped. */
const STALE_SWEEP_INTERVAL_MS = 60_000;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        nats: { type: 'string', default: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' },
        listen: { type: 'string', default: '127.0.0.1:50051' },
        'timeout-ms': { type: 'string', default: String(CHECKPOINT_SERVICE_DEFAULTS.defaults.timeoutMs) },
        retain: { type: 'string', default: String(CHECKPOINT_SERVICE_DEFAULTS.retainedPerPlan) },
        'restore-timeout-ms': { type: 'string', default: String(CHECKPOINT_SERVICE_DEFAULTS.restoreTimeoutMs) },
        'inline-state-bytes-max': { type: 'string', default: String(CHECKPOINT_SERVICE_DEFAULTS.inlineStateBytesMax) },
        'volume-backend': { type: 'string' },
        schedule: { type: 'string', multiple: true, default: [] },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`snapcoord: ${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const numbers = { timeoutMs: Number(values['timeout-ms']), retain: Number(values.retain), restoreTimeoutMs: Number(values['restore-timeout-ms']) };
  for (const [name, v] of Object.entries(numbers)) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      console.error(`snapcoord: ${name} must be a positive integer, got ${String(v)}`);
      return 2;
    }
  }
  const inlineStateBytesMax = Number(values['inline-state-bytes-max']);
  if (!Number.isSafeInteger(inlineStateBytesMax) || inlineStateBytesMax < 0 || inlineStateBytesMax > INLINE_STATE_BYTES_LIMIT) {
    console.error(`snapcoord: --inline-state-bytes-max must be an integer from 0 to ${INLINE_STATE_BYTES_LIMIT}, got ${values['inline-state-bytes-max']}`);
    return 2;
  }
  const schedules: ScheduleSpec[] = [];
  for (const text of values.schedule) {
    const parsed = parseScheduleSpec(text);
    if (!parsed.ok) {
      console.error(`snapcoord: ${parsed.message}`);
      return 2;
    }
    schedules.push(parsed.spec);
  }
  const logger = pino({ level: values['log-level'], base: { component: 'coordinator' } });
  let volumes: VolumeBackend | undefined;
  if (values['volume-backend'] !== undefined) {
    const created = await createVolumeBackend(values['volume-backend'], logger);
    if (!created.ok) {
      console.error(`snapcoord: ${created.error.message}`);
      return 2;
    }
    volumes = created.value;
  }
  const nc = await connect({ servers: values.nats, name: 'snapshot-coordinator', maxReconnectAttempts: -1 });
  const store = await openCoordinatorStore(nc);
  const objects = new JetStreamStateObjects(nc);
  const bus = new ControlBus(nc, logger.child({ component: 'bus' }));
  const agents = new AgentRegistry({ logger });
  // Agents that registered with a previous coordinator are asked to register again (docs/agent.md).
  trackAgents(bus, agents);
  await bus.start();
  const checkpoints = new CheckpointService(store, objects, bus, logger, {
    ...CHECKPOINT_SERVICE_DEFAULTS,
    defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: numbers.timeoutMs },
    retainedPerPlan: numbers.retain,
    restoreTimeoutMs: numbers.restoreTimeoutMs,
    inlineStateBytesMax,
    agents,
    ...(volumes ? { volumes } : {}),
  });
  const plans = new PlanRegistry({
    store: store.plans,
    logger,
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
  const running = schedules.map((spec) => new PlanSchedule(spec, { take: (r) => checkpoints.take(r), waitFor: (id) => checkpoints.waitFor(id), logger }));
  checkpoints.onEnded((r) => {
    if (r.state === 'completed') for (const s of running) if (s.spec.planId === r.planId) s.noteCompleted();
  });
  // Rounds a stopped coordinator left in flight: aborted and cleaned up before anything new starts
  // (their admission slots count until then). One coordinator at a time: see docs/api.md, restart.
  const recovered = await checkpoints.recover();
  if (!recovered.ok) logger.warn({ error: recovered.error.message }, 'rounds left by a stopped coordinator not recovered');
  // Rollbacks and restores it left under way: finished from their phase or ended (docs/rollback.md).
  const left = await recoverLeftOperations({ store, bus, objects, logger, timeoutMs: numbers.restoreTimeoutMs, nowUnixMs: Date.now });
  if (!left.ok) logger.warn({ error: left.error.message }, 'rollbacks and restores left by a stopped coordinator not recovered');
  for (const s of running) s.start();
  // A record left in flight later on (a run that could not write its end) is swept every minute.
  const sweep = async (): Promise<void> => {
    const swept = await checkpoints.sweepStale();
    if (!swept.ok) logger.warn({ error: swept.error.message }, 'stale checkpoints not swept');
    else if (swept.value.length > 0) logger.warn({ checkpoints: swept.value }, 'stale checkpoints aborted');
  };
  const sweeper = setInterval(() => void sweep(), STALE_SWEEP_INTERVAL_MS);
  sweeper.unref();
  const server = await startGrpcServer({ api: { plans, checkpoints, agents }, address: values.listen, logger });
  const host = values.listen.slice(0, values.listen.lastIndexOf(':'));
  console.log(`listening on ${host}:${server.port}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  logger.info('stopping');
  for (const s of running) s.stop();
  clearInterval(sweeper);
  await server.close();
  bus.stop();
  await nc.drain().catch(() => undefined);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`snapcoord: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
