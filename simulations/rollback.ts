/**
 * Rollback-recovery checkpointing without a coordinator, on the simulator's workloads: `uncoordinated`
 * (each process checkpoints on its own timer) and `cic` (index-based communication-induced
 * checkpointing, BCS: every message carries its sender's checkpoint index, and a receiver takes a
 * forced checkpoint before delivering a message with a higher index than its own).
 *
 * Neither sends markers, so neither needs the barrier core: the processes, channels and clocks are
 * modelled here, with the engine's topology, delays, skew, workload and seeded PRNG. A crash makes
 * the recovery compute the recovery line (the latest local checkpoints with no orphan message,
 * found by rolling back receivers of orphans until none is left: the domino effect), restart the
 * rolled-back processes from it, and replay the messages in transit across it from their senders'
 * logs. The cut checker judges every line, and the run's final state is checked against its channel
 * logs as the engine checks its own.
 */
import { checkCut } from '../src/checker/index.js';
import type { RecordedMessage, SnapshotCounts } from '../src/core/types.js';
import { validateGraph } from '../src/graph/index.js';
import type { ChannelId, ProcessId } from '../src/ids.js';
import { delayModelScheduler } from './delays.js';
import { EventHeap } from './event-heap.js';
import { Prng } from './prng.js';
import { buildTopology } from './topology.js';
import type { CheckpointReport, DeliveryScheduler, RollbackAlgorithm, RunOptions, Scenario, SimResult, TraceEvent, ViolationReport } from './types.js';
import { captureApp, restoreApp, TRANSFER_TOKENS_MAX, type AppState, type LiveApp } from './workload.js';

/** Bytes of the checkpoint index `cic` piggybacks on every message. */
export const CIC_INDEX_BYTES = 4;
/** Bytes a simulated message stands for, as in the engine's channel-state metrics. */
const MESSAGE_BYTES = 24;
const CHANNEL_WINDOW_MESSAGES_DEFAULT = 64;
/** A process's checkpoint timer fires every interval times a factor drawn from 1 ± this. */
const CHECKPOINT_JITTER = 0.1;
const DRAIN_EVENTS_MAX = 50_000_000;

const enum K {
  Tick,
  Arrive,
  ServiceDone,
  Checkpoint,
  Crash,
}

interface Msg {
  readonly k: K.Arrive;
  readonly ch: Chan;
  readonly epoch: number;
  readonly seq: number;
  readonly payload: number;
  /** The sender's checkpoint index (cic). */
  readonly index: number;
  readonly trace: MutableMessageTrace | undefined;
}

type Ev = Msg | { readonly k: K.Tick | K.ServiceDone | K.Checkpoint | K.Crash; readonly proc: Proc; readonly epoch: number };

interface LocalCheckpoint {
  /** The BCS index (cic); the checkpoint's ordinal for uncoordinated. */
  readonly index: number;
  readonly atMs: number;
  readonly app: AppState;
  /** By position in `Proc.outputs` / `Proc.inputs`. */
  readonly sent: readonly number[];
  readonly received: readonly number[];
}

interface Proc extends LiveApp {
  readonly id: ProcessId;
  readonly outputs: Chan[];
  readonly inputs: Chan[];
  readonly isSource: boolean;
  readonly serviceTimeMs: number;
  /** The initial state first, then every local checkpoint in the order taken. */
  readonly checkpoints: LocalCheckpoint[];
  /** The current checkpoint index (cic's piggybacked value). */
  index: number;
  readonly queue: Msg[];
  busy: boolean;
}

interface Chan {
  readonly id: ChannelId;
  readonly from: Proc;
  readonly to: Proc;
  /** Messages sent so far (the last seq). */
  sent: number;
  /** Messages delivered to the receiver's app. */
  delivered: number;
  inFlight: number;
  lastArrivalMs: number;
  /** Payload and piggybacked index of every message sent in the current history, by seq - 1: the sender's log. */
  readonly payloads: number[];
  readonly indexes: number[];
  readonly traced: MutableMessageTrace[];
}

type MutableMessageTrace = { -readonly [K in keyof Extract<TraceEvent, { kind: 'message' }>]: Extract<TraceEvent, { kind: 'message' }>[K] };

/** Where a process restarts: one of its checkpoints, or its current state (a process that need not roll back). */
const CURRENT = -1;

export interface RollbackRunOptions extends RunOptions {
  readonly algorithm: RollbackAlgorithm;
}

export function runRollbackSimulation(scenario: Scenario, options: RollbackRunOptions): SimResult {
  return new RollbackSimulation(scenario, options).run();
}

export class RollbackSimulationError extends Error {}

class RollbackSimulation {
  private readonly rng: Prng;
  private readonly random: () => number;
  private readonly procs: Proc[] = [];
  private readonly channels: Chan[] = [];
  private readonly heap = new EventHeap<Ev>();
  private readonly scheduler: DeliveryScheduler;
  private readonly graphChannels: { id: ChannelId; from: ProcessId; to: ProcessId }[];
  private readonly windowMax: number;
  private readonly cic: boolean;
  private readonly trace: TraceEvent[] | undefined;
  private order = 0;
  private now = 0;
  private epoch = 0;
  private stopped = false;
  private events = 0;
  private messagesSent = 0;
  private messagesDelivered = 0;
  private localCheckpoints = 0;
  private forcedCheckpoints = 0;
  private lostWork = 0;
  private replayedMessages = 0;
  private dominoDepth = 0;
  private recoveryTimeMs = 0;
  private readonly lines: CheckpointReport[] = [];
  private readonly violations: ViolationReport[] = [];

  constructor(
    private readonly scenario: Scenario,
    private readonly options: RollbackRunOptions,
  ) {
    this.rng = new Prng(options.seed);
    this.random = () => this.rng.next();
    const graph = buildTopology(scenario.topology, options.seed);
    const valid = validateGraph(graph);
    if (!valid.ok) throw new RollbackSimulationError(`invalid topology: ${valid.errors.map((e) => e.message).join('; ')}`);
    this.graphChannels = graph.channels.map((c) => ({ id: c.id, from: c.from, to: c.to }));
    // A line is a count of messages per channel, which names the delivered ones only when they
    // arrive in the order sent.
    if (scenario.fifo === false) throw new RollbackSimulationError(`${options.algorithm} needs FIFO channels`);
    this.windowMax = scenario.channelWindowMessagesMax ?? CHANNEL_WINDOW_MESSAGES_DEFAULT;
    this.cic = options.algorithm === 'cic';
    this.scheduler = options.scheduler ?? delayModelScheduler(scenario.delays, scenario.skew?.slowChannel);
    this.trace = options.trace ? [] : undefined;
    const slow = scenario.skew?.slowProcess;
    const byId = new Map<ProcessId, Proc>();
    for (const id of graph.processes) {
      const app = this.initialApp();
      const proc: Proc = {
        id,
        outputs: [],
        inputs: [],
        isSource: !graph.channels.some((c) => c.to === id),
        serviceTimeMs: slow && slow.process === id ? slow.serviceTimeMs : 0,
        checkpoints: [{ index: 0, atMs: 0, app, sent: [], received: [] }],
        index: 0,
        queue: [],
        busy: false,
        tokens: 0,
        count: 0,
        outbox: [],
      };
      restoreApp(proc, app);
      this.procs.push(proc);
      byId.set(id, proc);
    }
    for (const c of graph.channels) {
      const ch: Chan = {
        id: c.id,
        from: byId.get(c.from) as Proc,
        to: byId.get(c.to) as Proc,
        sent: 0,
        delivered: 0,
        inFlight: 0,
        lastArrivalMs: 0,
        payloads: [],
        indexes: [],
        traced: [],
      };
      ch.from.outputs.push(ch);
      ch.to.inputs.push(ch);
      this.channels.push(ch);
    }
    for (const p of this.procs) {
      const initial = p.checkpoints[0] as LocalCheckpoint;
      p.checkpoints[0] = { ...initial, sent: p.outputs.map(() => 0), received: p.inputs.map(() => 0) };
    }
    for (const f of scenario.faults ?? []) {
      const proc = byId.get(f.process);
      if (!proc) throw new RollbackSimulationError(`fault names unknown process ${f.process}`);
      this.push({ k: K.Crash, proc, epoch: 0 }, f.atMs);
    }
  }

  private initialApp(): AppState {
    const w = this.scenario.workload;
    return w.kind === 'tokens' ? { kind: 'tokens', tokens: w.initialTokens } : { kind: 'counting', count: 0, outbox: [] };
  }

  private push(ev: Ev, at: number): void {
    this.heap.push(ev, at, this.order++);
  }

  run(): SimResult {
    const w = this.scenario.workload;
    const s = this.scenario.checkpoints;
    for (const p of this.procs) {
      if (w.kind === 'counting' && !p.isSource) continue;
      this.push({ k: K.Tick, proc: p, epoch: 0 }, this.rng.next() * w.sendIntervalMs);
    }
    // Each process's own timer: its first checkpoint at a seeded offset within the first interval.
    for (const p of this.procs) this.push({ k: K.Checkpoint, proc: p, epoch: 0 }, s.firstAtMs + this.rng.next() * s.intervalMs);
    for (;;) {
      const at = this.heap.minAt;
      const ev = this.heap.pop();
      if (ev === undefined) break;
      this.now = at;
      this.events += 1;
      if (this.events > DRAIN_EVENTS_MAX) throw new RollbackSimulationError(`run exceeded ${DRAIN_EVENTS_MAX} events`);
      if (!this.stopped && this.now >= this.scenario.durationMs) this.stopped = true;
      switch (ev.k) {
        case K.Tick:
          this.onTick(ev.proc);
          break;
        case K.Arrive:
          this.onArrive(ev);
          break;
        case K.ServiceDone:
          if (ev.epoch === this.epoch) this.onServiceDone(ev.proc);
          break;
        case K.Checkpoint:
          this.onCheckpointTimer(ev.proc);
          break;
        case K.Crash:
          this.onCrash(ev.proc);
          break;
      }
    }
    this.checkFinalLegality();
    return this.result();
  }

  // ---- the app --------------------------------------------------------------------------------

  private onTick(p: Proc): void {
    if (this.stopped) return;
    const w = this.scenario.workload;
    this.push({ k: K.Tick, proc: p, epoch: 0 }, this.now + w.sendIntervalMs * (0.5 + this.rng.next()));
    if (w.kind === 'tokens') {
      if (p.tokens <= 0 || p.outputs.length === 0) return;
      const ch = this.rng.pick(p.outputs);
      if (ch.inFlight >= this.windowMax) return;
      const amount = 1 + this.rng.int(Math.min(p.tokens, TRANSFER_TOKENS_MAX));
      p.tokens -= amount;
      this.send(ch, amount);
    } else {
      if (p.outputs.length === 0 || p.outputs.some((c) => c.inFlight >= this.windowMax)) return;
      p.count += 1;
      for (const ch of p.outputs) this.send(ch, p.count);
    }
  }

  private send(ch: Chan, payload: number): void {
    this.messagesSent += 1;
    ch.sent += 1;
    ch.payloads.push(payload);
    ch.indexes.push(ch.from.index);
    let trace: MutableMessageTrace | undefined;
    if (this.trace) {
      trace = { kind: 'message', channel: ch.id, from: ch.from.id, to: ch.to.id, seq: ch.sent, sentAtMs: this.now, recordedIn: [] };
      this.trace.push(trace);
      ch.traced.push(trace);
    }
    this.put(ch, ch.sent, payload, ch.from.index, trace);
  }

  private put(ch: Chan, seq: number, payload: number, index: number, trace: MutableMessageTrace | undefined): void {
    let at = this.scheduler.arrivalMs({ channel: ch.id, kind: 'message', wireIndex: seq, sentAtMs: this.now }, this.random);
    if (at < ch.lastArrivalMs) at = ch.lastArrivalMs;
    if (at < this.now) at = this.now;
    ch.lastArrivalMs = at;
    ch.inFlight += 1;
    this.push({ k: K.Arrive, ch, epoch: this.epoch, seq, payload, index, trace }, at);
  }

  private onArrive(m: Msg): void {
    if (m.epoch !== this.epoch) return; // sent in a history the recovery undid, or replayed by it
    const p = m.ch.to;
    if (p.serviceTimeMs === 0) return this.deliver(m);
    p.queue.push(m);
    if (!p.busy) this.startService(p);
  }

  private startService(p: Proc): void {
    p.busy = true;
    this.push({ k: K.ServiceDone, proc: p, epoch: this.epoch }, this.now + p.serviceTimeMs);
  }

  private onServiceDone(p: Proc): void {
    p.busy = false;
    const m = p.queue.shift();
    if (m) this.deliver(m);
    if (p.queue.length > 0) this.startService(p);
  }

  private deliver(m: Msg): void {
    const ch = m.ch;
    const p = ch.to;
    if (m.seq !== ch.delivered + 1) {
      this.violations.push({ checkpointId: 0, kind: 'channel-failed', channel: ch.id, message: `${p.id} got seq ${m.seq} after ${ch.delivered}` });
    }
    // BCS: a message from a later checkpoint interval forces a checkpoint before it is delivered.
    if (this.cic && m.index > p.index) {
      p.index = m.index;
      this.forcedCheckpoints += 1;
      this.takeCheckpoint(p);
    }
    ch.inFlight -= 1;
    ch.delivered += 1;
    this.messagesDelivered += 1;
    if (m.trace) m.trace.deliveredAtMs = this.now;
    if (this.scenario.workload.kind === 'tokens') {
      p.tokens += m.payload;
      return;
    }
    p.count += 1;
    for (const out of p.outputs) this.send(out, m.payload);
  }

  // ---- checkpoints ------------------------------------------------------------------------------

  private onCheckpointTimer(p: Proc): void {
    if (this.stopped) return;
    const s = this.scenario.checkpoints;
    this.push({ k: K.Checkpoint, proc: p, epoch: 0 }, this.now + s.intervalMs * (1 - CHECKPOINT_JITTER + 2 * CHECKPOINT_JITTER * this.rng.next()));
    p.index += 1;
    this.takeCheckpoint(p);
  }

  private takeCheckpoint(p: Proc): void {
    this.localCheckpoints += 1;
    p.checkpoints.push({
      index: p.index,
      atMs: this.now,
      app: captureApp(this.scenario.workload.kind, p),
      sent: p.outputs.map((c) => c.sent),
      received: p.inputs.map((c) => c.delivered),
    });
    this.trace?.push({ kind: 'snapshot', process: p.id, checkpointId: p.index, atMs: this.now });
  }

  // ---- recovery ---------------------------------------------------------------------------------

  private onCrash(crashed: Proc): void {
    const id = this.lines.length + 1;
    this.trace?.push({ kind: 'crash', process: crashed.id, atMs: this.now });
    // The crashed process lost its state and restarts from its latest checkpoint; the others may go on
    // from where they are, unless the line rolls them back.
    const line = new Map<Proc, number>(this.procs.map((p) => [p, p === crashed ? p.checkpoints.length - 1 : CURRENT]));
    const sentAt = (ch: Chan): number => {
      const k = line.get(ch.from) as number;
      return k === CURRENT ? ch.sent : ((ch.from.checkpoints[k] as LocalCheckpoint).sent[ch.from.outputs.indexOf(ch)] as number);
    };
    const receivedAt = (ch: Chan): number => {
      const k = line.get(ch.to) as number;
      return k === CURRENT ? ch.delivered : ((ch.to.checkpoints[k] as LocalCheckpoint).received[ch.to.inputs.indexOf(ch)] as number);
    };
    if (this.options.recoveryLineUnchecked !== true) {
      // The domino effect: a receiver of an orphan (delivered, but not sent in the sender's line)
      // rolls back to its latest checkpoint before that delivery, which may orphan what it sent.
      // Each step only moves a process back and the initial state has no orphan, so this ends.
      for (let changed = true; changed; ) {
        changed = false;
        for (const ch of this.channels) {
          const limit = sentAt(ch);
          if (receivedAt(ch) <= limit) continue;
          const q = ch.to;
          const input = q.inputs.indexOf(ch);
          let k = line.get(q) as number;
          k = k === CURRENT ? q.checkpoints.length - 1 : k;
          while (((q.checkpoints[k] as LocalCheckpoint).received[input] as number) > limit) k -= 1;
          line.set(q, k);
          changed = true;
        }
      }
    }
    // BCS's guarantee: no checkpoint of an index the crashed process's latest reached is ever
    // orphaned, so the crashed process does not move back past its latest checkpoint.
    if (this.cic && line.get(crashed) !== crashed.checkpoints.length - 1) {
      this.violations.push({ checkpointId: id, kind: 'domino', message: `cic rolled the crashed ${crashed.id} back past its latest checkpoint` });
    }
    this.epoch += 1;
    const counts: Record<ProcessId, SnapshotCounts> = {};
    const tokens: Record<ProcessId, number> = {};
    const channelStates: Record<ChannelId, RecordedMessage<number>[]> = {};
    let depth = 0;
    let behindMs = 0;
    for (const p of this.procs) {
      const k = line.get(p) as number;
      const cp = k === CURRENT ? null : (p.checkpoints[k] as LocalCheckpoint);
      counts[p.id] = {
        sent: Object.fromEntries(p.outputs.map((c, i) => [c.id, cp ? (cp.sent[i] as number) : c.sent])),
        received: Object.fromEntries(p.inputs.map((c, i) => [c.id, cp ? (cp.received[i] as number) : c.delivered])),
      };
      const app = cp ? cp.app : captureApp(this.scenario.workload.kind, p);
      if (app.kind === 'tokens') tokens[p.id] = app.tokens;
      if (cp === null) continue;
      depth = Math.max(depth, p.checkpoints.length - 1 - k);
      behindMs = Math.max(behindMs, this.now - cp.atMs);
      for (const [i, c] of p.outputs.entries()) this.lostWork += c.sent - (cp.sent[i] as number);
      for (const [i, c] of p.inputs.entries()) this.lostWork += c.delivered - (cp.received[i] as number);
      p.checkpoints.length = k + 1;
      p.index = cp.index;
      restoreApp(p, cp.app);
    }
    // Counts first, for every channel, from the line as computed (before any process's counters move).
    const restored = this.channels.map((ch) => ({ ch, sent: sentAt(ch), received: receivedAt(ch) }));
    for (const { ch, sent, received } of restored) {
      ch.sent = sent;
      ch.delivered = received;
      ch.payloads.length = Math.min(ch.payloads.length, sent);
      ch.indexes.length = ch.payloads.length;
      ch.traced.length = Math.min(ch.traced.length, sent);
      ch.inFlight = 0;
      ch.lastArrivalMs = this.now;
      const state: RecordedMessage<number>[] = [];
      for (let seq = received + 1; seq <= sent; seq++) state.push({ seq, payload: ch.payloads[seq - 1] as number });
      if (state.length > 0) channelStates[ch.id] = state;
    }
    for (const p of this.procs) {
      p.queue.length = 0;
      p.busy = false;
    }
    const report = checkCut<number>({
      channels: this.graphChannels,
      snapshots: counts,
      channelStates,
      tokens:
        this.scenario.workload.kind === 'tokens'
          ? { initialTotal: this.scenario.workload.initialTokens * this.procs.length, processTokens: tokens, tokensOf: (amount) => amount }
          : undefined,
    });
    for (const v of report.violations) {
      this.violations.push({ checkpointId: id, kind: v.kind, ...('channel' in v && typeof v.channel === 'string' ? { channel: v.channel } : {}), message: v.message });
    }
    this.trace?.push({ kind: 'recover', checkpointId: id, atMs: this.now });
    // The messages in transit across the line are sent again from their senders' logs, in order.
    let replayed = 0;
    for (const { ch, sent, received } of restored) {
      for (let seq = received + 1; seq <= sent; seq++) {
        const trace = ch.traced[seq - 1];
        if (trace) trace.recordedIn = [...trace.recordedIn, id];
        this.put(ch, seq, ch.payloads[seq - 1] as number, ch.indexes[seq - 1] as number, undefined);
        replayed += 1;
      }
    }
    this.replayedMessages += replayed;
    this.dominoDepth = Math.max(this.dominoDepth, depth);
    this.recoveryTimeMs = Math.max(this.recoveryTimeMs, behindMs);
    this.lines.push({
      id,
      completed: true,
      triggeredAtMs: round(this.now),
      endedAtMs: round(this.now),
      durationMs: 0,
      consistent: report.consistent,
      channelStateMessages: replayed,
      channelStateBytes: replayed * MESSAGE_BYTES,
      bufferedMessages: 0,
      bufferedBytes: 0,
      alignmentStallMsMax: 0,
      alignmentStallMs: {},
      finishedUnaligned: 0,
      throughputRatio: 1,
    });
  }

  /** As the engine's: every app's state is what its channel logs say a legal run gives. */
  private checkFinalLegality(): void {
    const w = this.scenario.workload;
    const sum = (ch: Chan, n: number): number => ch.payloads.slice(0, n).reduce((s, v) => s + v, 0);
    for (const p of this.procs) {
      const received = p.inputs.reduce((s, c) => s + sum(c, c.delivered), 0);
      const receivedCount = p.inputs.reduce((s, c) => s + c.delivered, 0);
      if (w.kind === 'tokens') {
        const sent = p.outputs.reduce((s, c) => s + sum(c, c.sent), 0);
        const expected = w.initialTokens + received - sent;
        if (p.tokens !== expected) {
          this.violations.push({ checkpointId: this.lines.length, kind: 'illegal-run', message: `${p.id} holds ${p.tokens} tokens but its channel logs say ${expected}` });
        }
      } else {
        if (!p.isSource && p.count !== receivedCount) {
          this.violations.push({ checkpointId: this.lines.length, kind: 'illegal-run', message: `${p.id} counted ${p.count} but received ${receivedCount}` });
        }
        for (const c of p.outputs) {
          if (c.sent !== p.count) {
            this.violations.push({ checkpointId: this.lines.length, kind: 'illegal-run', channel: c.id, message: `${p.id} sent ${c.sent} on ${c.id} but counted ${p.count}` });
          }
        }
      }
    }
  }

  private result(): SimResult {
    const runMs = Math.max(1, this.scenario.durationMs);
    return {
      scenario: this.scenario.name,
      algorithm: this.options.algorithm,
      seed: this.options.seed,
      processes: this.procs.map((p) => p.id),
      channels: this.graphChannels,
      consistent: this.violations.length === 0,
      violations: this.violations,
      checkpoints: this.lines,
      metrics: {
        events: this.events,
        messagesSent: this.messagesSent,
        messagesDelivered: this.messagesDelivered,
        barriersSent: 0,
        checkpointsTriggered: this.lines.length,
        checkpointsCompleted: this.lines.length,
        checkpointsAborted: 0,
        durationMsMean: 0,
        channelStateMessagesTotal: this.replayedMessages,
        bufferedMessagesTotal: 0,
        alignmentStallMsMax: 0,
        throughputMsgsPerSec: round((this.messagesDelivered / runMs) * 1000),
        recoveries: this.lines.length,
        localCheckpoints: this.localCheckpoints,
        forcedCheckpoints: this.forcedCheckpoints,
        piggybackBytes: this.cic ? (this.messagesSent + this.replayedMessages) * CIC_INDEX_BYTES : 0,
        lostWork: this.lostWork,
        replayedMessages: this.replayedMessages,
        dominoDepth: this.dominoDepth,
        recoveryTimeMs: round(this.recoveryTimeMs),
      },
      endedAtMs: round(this.now),
      ...(this.trace ? { trace: this.trace } : {}),
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
