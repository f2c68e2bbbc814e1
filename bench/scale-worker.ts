/**
 * A worker process of the scale benchmark (bench/scale.ts; the pool is lib/workers.ts). It hosts
 * many agents (`Agent`, each on its own NATS connection, as bench/worker.ts starts them) whose apps
 * are relays: each sends on every output at a steady rate and counts what arrives, in time buckets,
 * so the main process can compare the traffic in windows with a checkpoint in flight against the
 * windows without. Before the agents, it can host plain-NATS members for the floor of the checkpoint
 * time (a broadcast answered by one connection per server).
 */
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { Agent } from '../agent/agent.js';
import type { AppHandler, AppLink } from '../agent/app.js';
import { parseAgentConfig } from '../agent/config.js';
import type { ChannelId } from '../src/ids.js';
import type { WorkerReply, WorkerRequest } from './lib/workers.js';

/** Agents and connections are opened this many at a time: a burst of 500 handshakes helps nobody. */
const OPEN_CONCURRENCY = 32;
/** Every output sends its share of the rate, for the time since it last sent, once per TICK_MS. */
const TICK_MS = 100;
/**
 * The agents' turns are spread over the tick: a timer every TICK_MS / TICK_SLICES serves every
 * TICK_SLICES-th agent, as the machines the agents stand for, each its own VM, send at independent
 * times. One timer for all of a worker's hundreds of agents sent in one burst that held the loop for
 * tens of milliseconds every tick, with every barrier waiting in a socket behind it. An agent's apps
 * still send together, in one socket write.
 */
const TICK_SLICES = 10;
/**
 * Sends an output may have waiting for credit; above it a tick sends nothing there (counted as held
 * back). The rate is offered, not forced: a channel that cannot keep up shows as held-back sends.
 */
const OUTSTANDING_PER_OUTPUT_MAX = 64;

const index = Number(process.argv[2] ?? 0);
// Each agent that may freeze listens for the process's exit (to thaw): one listener per agent, and
// this process hosts hundreds, where production has one agent per process.
process.setMaxListeners(0);
// Logs go to stderr: stdout carries the benchmark's result (one JSON line with --json).
const logger = pino({ level: process.env['BENCH_LOG_LEVEL'] ?? 'warn' }, pino.destination(2)).child({ worker: index });

export interface ScaleTraffic {
  /** Messages a second on each channel. */
  readonly ratePerChannel: number;
  readonly payloadBytes: number;
  /** Width of the delivery-count buckets (wall clock, the same on every process of the machine). */
  readonly bucketMs: number;
}

/** What a worker counted since its agents started. */
export interface ScaleCounts {
  /** [bucket start (Unix ms), messages delivered to this worker's apps in it]. */
  readonly buckets: readonly (readonly [number, number])[];
  readonly sent: number;
  readonly delivered: number;
  readonly heldBack: number;
  readonly sendFailures: number;
  readonly firstSendFailure?: string;
  /**
   * This process's event-loop delay since the traffic started (ms): every agent of the worker shares
   * the loop, so a barrier's hop through an agent waits this long beyond its own work.
   */
  readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /**
   * The garbage collector's pauses since the traffic started, by kind (V8's scavenges are `minor`,
   * its mark-compacts `major`): whether a stall of the loop was the collector's.
   */
  readonly gcMs: Readonly<Record<GcKind, GcPauses>>;
  /**
   * Each time the loop ran no timer for over STALL_MS: [when it began (Unix ms), how long (ms), the
   * collector's pauses within it (ms)].
   */
  readonly stalls: readonly (readonly [number, number, number])[];
}

type GcKind = 'minor' | 'major' | 'other';
interface GcPauses {
  count: number;
  totalMs: number;
  maxMs: number;
}

class Traffic {
  readonly delivered = new Map<number, number>();
  deliveredTotal = 0;
  sent = 0;
  heldBack = 0;
  sendFailures = 0;
  firstSendFailure: string | undefined;

  constructor(readonly o: ScaleTraffic) {}

  countDelivery(): void {
    const bucket = Math.floor(Date.now() / this.o.bucketMs) * this.o.bucketMs;
    this.delivered.set(bucket, (this.delivered.get(bucket) ?? 0) + 1);
    this.deliveredTotal += 1;
  }
}

/** An app of the scale plan: counts what arrives, sends on its outputs when the worker's timer says so. */
class RelayApp implements AppHandler {
  private link: AppLink | undefined;
  private received = 0;
  private sentHere = 0;
  private readonly outstanding = new Map<ChannelId, number>();
  private credit = 0;
  private readonly payload: Uint8Array;

  constructor(private readonly traffic: Traffic) {
    this.payload = new Uint8Array(traffic.o.payloadBytes).fill(0x61);
  }

  bind(link: AppLink): void {
    this.link = link;
    for (const c of link.outputs) this.outstanding.set(c, 0);
  }

  deliver(): void {
    this.received += 1;
    this.traffic.countDelivery();
  }

  /**
   * Called every tick with the time since the last one (a late tick, on a busy process, sends more):
   * sends that time's share of the rate on each output, fractions carried over.
   */
  tick(elapsedMs: number): void {
    const link = this.link;
    if (!link || link.outputs.length === 0) return;
    this.credit += (this.traffic.o.ratePerChannel * elapsedMs) / 1000;
    const n = Math.floor(this.credit);
    this.credit -= n;
    for (const channel of link.outputs) {
      for (let i = 0; i < n; i++) {
        const waiting = this.outstanding.get(channel) ?? 0;
        if (waiting >= OUTSTANDING_PER_OUTPUT_MAX) {
          this.traffic.heldBack += n - i;
          break;
        }
        this.outstanding.set(channel, waiting + 1);
        this.sentHere += 1;
        this.traffic.sent += 1;
        link.send(channel, this.payload).then(
          () => this.settle(channel),
          (error: unknown) => {
            this.settle(channel);
            this.traffic.sendFailures += 1;
            this.traffic.firstSendFailure ??= error instanceof Error ? error.message : String(error);
          },
        );
      }
    }
  }

  private settle(channel: ChannelId): void {
    this.outstanding.set(channel, (this.outstanding.get(channel) ?? 1) - 1);
  }

  snapshot(): Uint8Array {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, BigInt(this.sentHere));
    v.setBigUint64(8, BigInt(this.received));
    return b;
  }

  restore(): void {}
}

const connections: NatsConnection[] = [];
const agents: Agent[] = [];
/** Each agent's relays, with when they last sent. */
const relayGroups: { readonly relays: RelayApp[]; lastMs: number }[] = [];
let traffic: Traffic | undefined;
let timer: NodeJS.Timeout | undefined;
/** The delay histogram's sampling timer; each sample is this interval plus the delay, so it is taken off. */
const LOOP_DELAY_RESOLUTION_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
/** A loop that runs no timer for this long is stalled: listed with its time, to set beside the checkpoints'. */
const STALL_MS = 1_000;
const STALL_CHECK_MS = 50;
/** [from, to] on performance.now()'s clock, and when it began (Unix ms). */
let stalls: [number, number, number][] = [];
const GC_KINDS: readonly GcKind[] = ['minor', 'major', 'other'];
/** Every pause of the collector: start (performance.now()'s clock), duration and kind (GC_KINDS' index), flat. */
let gcSpans: number[] = [];
let stallTimer: NodeJS.Timeout | undefined;
function watchStalls(): void {
  let last = performance.now();
  stallTimer = setInterval(() => {
    const now = performance.now();
    if (now - last - STALL_CHECK_MS > STALL_MS) stalls.push([last, now, Date.now() - (now - last)]);
    last = now;
  }, STALL_CHECK_MS);
}

/** The collector's pause time within [from, to]. */
function gcWithin(from: number, to: number): number {
  let ms = 0;
  for (let i = 0; i < gcSpans.length; i += 3) {
    const start = gcSpans[i] as number;
    const end = start + (gcSpans[i + 1] as number);
    if (end > from && start < to) ms += Math.min(end, to) - Math.max(start, from);
  }
  return ms;
}
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind;
    gcSpans.push(entry.startTime, entry.duration, kind === perfConstants.NODE_PERFORMANCE_GC_MINOR ? 0 : kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR ? 1 : 2);
  }
});

async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += OPEN_CONCURRENCY) await Promise.all(items.slice(i, i + OPEN_CONCURRENCY).map(fn));
}

const commands: Record<string, (args: never) => Promise<unknown> | unknown> = {
  ping: () => ({ pid: process.pid }),
  cpu: () => process.cpuUsage(),
  'memory.peak': () => process.resourceUsage().maxRSS * 1024,

  /** Floor: each member on its own connection answers a broadcast with its name on the reply subject. */
  'floor.members': async (a: { url: string; names: string[]; broadcast: string; reply: string }) => {
    await inBatches(a.names, async (name) => {
      const nc = await connect({ servers: a.url, name: `floor ${name}` });
      connections.push(nc);
      const answer = new TextEncoder().encode(name);
      nc.subscribe(a.broadcast, { callback: (err) => !err && nc.publish(a.reply, answer) });
      await nc.flush();
    });
    return a.names.length;
  },
  'floor.close': async () => {
    await Promise.allSettled(connections.splice(0).map((nc) => nc.close()));
    return true;
  },

  /**
   * Starts agents (their configuration files as JSON), a relay on every configured app. Channels
   * open once both ends are up, which may be on the other worker: `scale.ready` waits for that.
   */
  'scale.agents': async (a: { configs: Record<string, unknown>[]; traffic: ScaleTraffic }) => {
    traffic ??= new Traffic(a.traffic);
    const t = traffic;
    await inBatches(a.configs, async (raw) => {
      const parsed = parseAgentConfig(raw);
      if (!parsed.ok) throw new Error(parsed.problems.join('; '));
      const agent = await Agent.start(parsed.config, logger);
      agents.push(agent);
      const group = { relays: [] as RelayApp[], lastMs: 0 };
      for (const app of parsed.config.apps) {
        const relay = new RelayApp(t);
        const attached = agent.attach(app.name, relay);
        if (!attached.ok) throw new Error(attached.error.message);
        relay.bind(attached.link);
        group.relays.push(relay);
      }
      relayGroups.push(group);
    });
    return agents.length;
  },
  'scale.ready': async () => {
    await Promise.all(agents.map((a) => a.ready()));
    return agents.length;
  },
  'scale.traffic': (a: { on: boolean }) => {
    clearInterval(timer);
    timer = undefined;
    clearInterval(stallTimer);
    if (!a.on) {
      loopDelay.disable();
      gcObserver.disconnect();
    } else {
      loopDelay.reset();
      loopDelay.enable();
      gcObserver.observe({ entryTypes: ['gc'] });
      stalls = [];
      gcSpans = [];
      watchStalls();
      const start = performance.now();
      for (const g of relayGroups) g.lastMs = start;
      let slice = 0;
      timer = setInterval(() => {
        const now = performance.now();
        for (let i = slice; i < relayGroups.length; i += TICK_SLICES) {
          const g = relayGroups[i] as (typeof relayGroups)[number];
          for (const r of g.relays) r.tick(now - g.lastMs);
          g.lastMs = now;
        }
        slice = (slice + 1) % TICK_SLICES;
      }, TICK_MS / TICK_SLICES);
    }
    return true;
  },
  'scale.counts': (): ScaleCounts => {
    const t = traffic;
    const ms = (ns: number): number => Math.max(0, Math.round((ns / 1e6 - LOOP_DELAY_RESOLUTION_MS) * 100) / 100);
    const loopDelayMs = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) };
    const r = (x: number): number => Math.round(x * 10) / 10;
    const gcMs = Object.fromEntries(GC_KINDS.map((k) => [k, { count: 0, totalMs: 0, maxMs: 0 }])) as Record<GcKind, GcPauses>;
    for (let i = 0; i < gcSpans.length; i += 3) {
      const p = gcMs[GC_KINDS[gcSpans[i + 2] as number] as GcKind];
      const ms = gcSpans[i + 1] as number;
      p.count += 1;
      p.totalMs += ms;
      p.maxMs = Math.max(p.maxMs, ms);
    }
    for (const p of Object.values(gcMs)) Object.assign(p, { totalMs: r(p.totalMs), maxMs: r(p.maxMs) });
    const stalled = stalls.map(([from, to, atUnixMs]) => [Math.round(atUnixMs), Math.round(to - from - STALL_CHECK_MS), Math.round(gcWithin(from, to))] as const);
    if (!t) return { buckets: [], sent: 0, delivered: 0, heldBack: 0, sendFailures: 0, loopDelayMs, gcMs, stalls: stalled };
    return {
      loopDelayMs,
      gcMs,
      stalls: stalled,
      buckets: [...t.delivered.entries()],
      sent: t.sent,
      delivered: t.deliveredTotal,
      heldBack: t.heldBack,
      sendFailures: t.sendFailures,
      ...(t.firstSendFailure !== undefined ? { firstSendFailure: t.firstSendFailure } : {}),
    };
  },

  stop: async () => {
    await closeAll();
    setImmediate(() => process.exit(0));
    return true;
  },
};

async function closeAll(): Promise<void> {
  clearInterval(timer);
  timer = undefined;
  clearInterval(stallTimer);
  await Promise.allSettled(agents.splice(0).map((a) => a.stop()));
  relayGroups.length = 0;
  traffic = undefined;
  await Promise.allSettled(connections.splice(0).map((nc) => nc.close()));
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
