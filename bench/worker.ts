/**
 * A benchmark worker process (see lib/workers.ts). It hosts, on request, many NATS connections of
 * one of two kinds, never both at once in a measured phase:
 *   - plain-NATS floor members (broadcast responders, chain hops, a publisher or a subscriber);
 *   - agents (`Agent`, each on its own NATS connection) with trivial embedded apps.
 * It answers commands from the main process over IPC.
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { Agent } from '../agent/agent.js';
import { parseAgentConfig } from '../agent/config.js';
import { ConsumerApp, heldSnapshots, ProducerApp, releaseSnapshots, snapshotTimes, TrivialApp, type AppSpec } from './lib/apps.js';
import { startCoordinator, type BenchCoordinator } from './lib/coordinator.js';
import type { PlanInput } from '../coordinator/model.js';
import type { WorkerReply, WorkerRequest } from './lib/workers.js';

/** Agents and connections are opened this many at a time: a burst of 500 handshakes helps nobody. */
const OPEN_CONCURRENCY = 32;
const OBJECT_PUT_TIMEOUT_MS = 120_000;

const index = Number(process.argv[2] ?? 0);
// Logs go to stderr: stdout carries the benchmark's result (one JSON line with --json).
const logger = pino({ level: process.env['BENCH_LOG_LEVEL'] ?? 'warn' }, pino.destination(2)).child({ worker: index });

const connections: NatsConnection[] = [];
const agents: Agent[] = [];
const producers = new Map<string, ProducerApp>();
const consumers = new Map<string, ConsumerApp>();
let chainEnd: (() => void) | undefined;
let chainFirst: { nc: NatsConnection; subject: string } | undefined;

async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += OPEN_CONCURRENCY) await Promise.all(items.slice(i, i + OPEN_CONCURRENCY).map(fn));
}

async function open(url: string, name: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, name, maxReconnectAttempts: -1 });
  connections.push(nc);
  return nc;
}

export interface AgentSpec {
  /** The agent's configuration file, as JSON (agent/config.ts). */
  readonly config: Record<string, unknown>;
  /** The app attached to each configured app name. */
  readonly app: AppSpec;
}

const commands: Record<string, (args: never) => Promise<unknown> | unknown> = {
  ping: () => ({ pid: process.pid }),
  cpu: () => process.cpuUsage(),

  memory: () => {
    (globalThis as { gc?: () => void }).gc?.();
    return { ...process.memoryUsage(), connections: connections.length, agents: agents.length };
  },

  /** Floor: each member on its own connection answers a broadcast with its name on the reply subject. */
  'floor.members': async (a: { url: string; names: string[]; broadcast: string; reply: string }) => {
    await inBatches(a.names, async (name) => {
      const nc = await open(a.url, `floor ${name}`);
      const answer = new TextEncoder().encode(name);
      nc.subscribe(a.broadcast, { callback: (err) => !err && nc.publish(a.reply, answer) });
      await nc.flush();
    });
    return a.names.length;
  },

  /**
   * Floor: hops of a chain, each on its own connection: hop i > 0 listens on `${prefix}.${i}` and
   * forwards to hop i+1; the last hop ends the round. Hop 0 only publishes (chain.round).
   */
  'chain.hops': async (a: { url: string; prefix: string; hops: number[]; last: number }) => {
    await inBatches(a.hops, async (hop) => {
      const nc = await open(a.url, `chain ${hop}`);
      if (hop === 0) {
        chainFirst = { nc, subject: `${a.prefix}.1` };
        return;
      }
      const next = `${a.prefix}.${hop + 1}`;
      nc.subscribe(`${a.prefix}.${hop}`, {
        callback: (err, msg) => {
          if (err) return;
          if (hop === a.last) chainEnd?.();
          else nc.publish(next, msg.data);
        },
      });
      await nc.flush();
    });
    return a.hops.length;
  },

  /** Floor: one trip down the chain, timed here (this worker holds the first and the last hop). */
  'chain.round': async () => {
    if (!chainFirst) throw new Error('this worker holds no first hop');
    const first = chainFirst;
    const done = new Promise<void>((resolve) => (chainEnd = resolve));
    const t0 = performance.now();
    first.nc.publish(first.subject, new Uint8Array(64));
    await done;
    return performance.now() - t0;
  },

  /** Floor: subscribes and counts (see pubsub.until). */
  'pubsub.subscribe': async (a: { url: string; subject: string }) => {
    const nc = await open(a.url, 'floor subscriber');
    let received = 0;
    let target = Number.POSITIVE_INFINITY;
    let done: (() => void) | undefined;
    nc.subscribe(a.subject, {
      callback: () => {
        received += 1;
        if (received >= target) done?.();
      },
    });
    await nc.flush();
    subscriber = (total) => {
      target = total;
      return new Promise<void>((resolve) => (received >= target ? resolve() : (done = resolve)));
    };
    return true;
  },
  /** Resolves once the subscriber received `total` messages since it subscribed. */
  'pubsub.until': async (a: { total: number }) => {
    if (!subscriber) throw new Error('no subscriber here');
    await subscriber(a.total);
    return true;
  },
  /** Floor: publishes `count` payloads as fast as the connection takes them, flushing every `flushEvery`. */
  'pubsub.publish': async (a: { url: string; subject: string; count: number; payloadBytes: number; flushEvery: number }) => {
    const nc = publisher ?? (publisher = await open(a.url, 'floor publisher'));
    const payload = new Uint8Array(a.payloadBytes).fill(0x61);
    for (let i = 1; i <= a.count; i++) {
      nc.publish(a.subject, payload);
      if (i % a.flushEvery === 0) await nc.flush();
    }
    await nc.flush();
    return true;
  },

  /** Floor of the state benchmark: plain Object Store puts of `bytes` each, all at once. */
  'objects.put': async (a: { url: string; bucket: string; names: string[]; bytes: number }) => {
    const nc = objectsConnection ?? (objectsConnection = await open(a.url, 'floor objects'));
    // A generous timeout: a large put under load waits long for its chunks' acks.
    const os = await nc.jetstream({ timeout: OBJECT_PUT_TIMEOUT_MS }).views.os(a.bucket, { replicas: 1 });
    const data = new Uint8Array(a.bytes);
    for (let i = 0; i < a.bytes; i += 4096) data[i] = (i / 4096) & 0xff;
    const t0 = performance.now();
    await Promise.all(a.names.map((name) => os.putBlob({ name }, data)));
    const ms = performance.now() - t0;
    await Promise.all(a.names.map((name) => os.delete(name)));
    return ms;
  },

  /** Starts agents, each on its own connection, with the app each configured app gets. */
  'agents.start': async (a: { specs: AgentSpec[] }) => {
    await inBatches(a.specs, async (spec) => {
      const parsed = parseAgentConfig(spec.config);
      if (!parsed.ok) throw new Error(parsed.problems.join('; '));
      const agent = await Agent.start(parsed.config, logger);
      agents.push(agent);
      for (const appConfig of parsed.config.apps) {
        const key = `${parsed.config.server}/${appConfig.name}`;
        const app =
          spec.app.kind === 'trivial'
            ? new TrivialApp(key, spec.app.stateBytes, spec.app.holdSnapshots ?? false, spec.app.snapshotMs ?? 0)
            : spec.app.kind === 'producer'
              ? new ProducerApp()
              : new ConsumerApp();
        const attached = agent.attach(appConfig.name, app);
        if (!attached.ok) throw new Error(attached.error.message);
        if (app instanceof ProducerApp) {
          app.bind(attached.link);
          producers.set(key, app);
        }
        if (app instanceof ConsumerApp) consumers.set(key, app);
      }
      await agent.ready();
    });
    return agents.length;
  },

  'apps.snapshotTimes': (a: { checkpointId: number }) => Object.fromEntries(snapshotTimes.get(a.checkpointId) ?? []),
  'apps.heldSnapshots': () => heldSnapshots(),
  'apps.release': () => releaseSnapshots(),

  'producer.run': async (a: { app: string; count: number; payloadBytes: number; window: number }) => {
    const p = producers.get(a.app);
    if (!p) throw new Error(`no producer ${a.app} here`);
    await p.run(a.count, a.payloadBytes, a.window);
    return true;
  },
  /** Resolves once the consumer received `total` messages since it was attached. */
  'consumer.until': async (a: { app: string; total: number }) => {
    const c = consumers.get(a.app);
    if (!c) throw new Error(`no consumer ${a.app} here`);
    await c.until(a.total);
    return true;
  },

  /** The memory benchmark runs the coordinator in a process of its own, so its RSS is its own. */
  'coordinator.start': async (a: { url: string; plan: PlanInput; timeoutMs: number }) => {
    coordinator = await startCoordinator(a.url, { timeoutMs: a.timeoutMs, retainedPerPlan: 1_000, logLevel: process.env['BENCH_LOG_LEVEL'] ?? 'warn' });
    await coordinator.createPlan(a.plan);
    return true;
  },
  'coordinator.agents': async () => {
    if (!coordinator) throw new Error('no coordinator here');
    const listed = await coordinator.registry.list(undefined);
    if (!listed.ok) throw new Error(listed.error.message);
    return listed.value.length;
  },
  /** Starts a checkpoint; `coordinator.ended` waits for it. */
  'coordinator.take': async (a: { planId: string }) => {
    if (!coordinator) throw new Error('no coordinator here');
    const started = await coordinator.start(a.planId);
    if (!started) throw new Error('a checkpoint is still running');
    const t0 = performance.now();
    inFlight = started.ended.then((record) => ({ state: record.state, ms: performance.now() - t0 }));
    return started.id;
  },
  'coordinator.ended': async () => {
    if (!inFlight) throw new Error('no checkpoint started here');
    return inFlight;
  },
  /** Peak RSS of this process so far (getrusage ru_maxrss), bytes. */
  'memory.peak': () => process.resourceUsage().maxRSS * 1024,

  /** Closes everything this worker opened (the worker stays up for the next phase). */
  reset: async () => {
    await closeAll();
    return true;
  },

  stop: async () => {
    await closeAll();
    setImmediate(() => process.exit(0));
    return true;
  },
};

let subscriber: ((total: number) => Promise<void>) | undefined;
let publisher: NatsConnection | undefined;
let objectsConnection: NatsConnection | undefined;
let coordinator: BenchCoordinator | undefined;
let inFlight: Promise<{ state: string; ms: number }> | undefined;

async function closeAll(): Promise<void> {
  await coordinator?.stop();
  coordinator = undefined;
  inFlight = undefined;
  await Promise.allSettled(agents.map((a) => a.stop()));
  agents.length = 0;
  producers.clear();
  consumers.clear();
  snapshotTimes.clear();
  releaseSnapshots();
  await Promise.allSettled(connections.map((nc) => nc.close()));
  connections.length = 0;
  subscriber = undefined;
  publisher = undefined;
  objectsConnection = undefined;
  chainFirst = undefined;
  chainEnd = undefined;
}

process.on('message', (m: WorkerRequest) => {
  const fn = commands[m.cmd];
  const reply = (r: WorkerReply): void => {
    process.send?.(r);
  };
  if (!fn) {
    reply({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
    return;
  }
  Promise.resolve()
    .then(() => fn(m.args as never))
    .then(
      (value) => reply({ id: m.id, ok: true, value }),
      (error: unknown) => reply({ id: m.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
});

// The main process going away takes the worker with it.
process.on('disconnect', () => {
  void closeAll().finally(() => process.exit(0));
});
