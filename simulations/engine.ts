/**
 * The deterministic discrete-event simulator. It drives the production core from `src/` (one
 * `Participant` per process, one `CheckpointTracker` for the coordinator) over virtual time, with the
 * scenario's delays, workload, skew and faults, all randomness drawn from one seeded PRNG. The same
 * scenario and seed give the same run, event for event.
 */
import { checkCut } from '../src/checker/index.js';
import { EffectBuffer } from '../src/core/effects.js';
import { Participant } from '../src/core/participant.js';
import { CheckpointTracker, type TrackerEffect } from '../src/core/tracker.js';
import { epochOfSeq } from '../src/core/log-range.js';
import type { CheckpointAck, Effect, Input, InputHandle, LogRange, OutputHandle, PolicyConfig, RecordedMessage, Rejection, SnapshotCounts } from '../src/core/types.js';
import { backEdges, initiators, stronglyConnectedComponents, validateGraph, type AppGraph } from '../src/graph/index.js';
import type { ChannelId, CheckpointId, Epoch, ProcessId } from '../src/ids.js';
import { ChannelLogs } from './channel-logs.js';
import { delayModelScheduler, delayReachMs, sampleDelayMs } from './delays.js';
import { agendaBucketMs, EventQueue } from './event-queue.js';
import { Prng } from './prng.js';
import { runRollbackSimulation } from './rollback.js';
import { buildTopology } from './topology.js';
import {
  LIVENESS_VIOLATION,
  isRollbackAlgorithm,
  type CheckpointReport,
  type CoordinatedAlgorithm,
  type DelayModel,
  type DeliveryScheduler,
  type RunOptions,
  type Scenario,
  type SimResult,
  type TraceEvent,
  type ViolationReport,
} from './types.js';
import { captureApp, restoreApp, TRANSFER_TOKENS_MAX, type AppState, type LiveApp } from './workload.js';

/** Bytes a simulated message stands for in channel-state and buffer metrics (seq, epoch, payload). */
const MESSAGE_BYTES = 24;
const STORE_DELAY_MS = 1;
const CHANNEL_WINDOW_MESSAGES_DEFAULT = 64;
const ALIGNMENT_TIMEOUT_MS_DEFAULT = 20;
const IN_FLIGHT_CHECKPOINTS_MAX = 8;
/** A run that keeps generating events after its duration is a bug; stop it rather than spin. */
const DRAIN_EVENTS_MAX = 50_000_000;
/**
 * Ticks per agenda bucket (see EventQueue): every process ticks once per send interval, and the
 * messages those ticks send add about as many events again, so a bucket holds a few dozen events.
 */
const AGENDA_TICKS_PER_BUCKET = 16;
/** A tick is scheduled at most this many send intervals ahead (see onTick). */
const TICK_REACH_INTERVALS = 1.5;

type Payload = number;
type Ack = CheckpointAck<Payload>;
/** The drain input carries nothing, so every drain shares one. */
const DRAIN: Input<Payload> = { type: 'drain' };

const enum K {
  Arrive,
  Tick,
  Control,
  ToCoordinator,
  Stored,
  Timer,
  StartCheckpoint,
  CheckpointTimeout,
  Crash,
  ServiceDone,
}

type ToCoordinator = { ack: Ack } | { decline: CheckpointId; reason: string };

/**
 * What the agenda holds. A process stands for its own next tick (it has exactly one): ticks are most
 * of a run's events, and this way a tick loads no event object besides the process it runs.
 */
type Agendum = SimProcess | SimEvent;

/**
 * An entry of the agenda other than a tick. Every kind is this one class, so the hot path sees one
 * object shape; a field a kind does not use keeps its default. What each kind uses:
 * - `Arrive`: `ch` and the wire item: `epoch`, `seq`, `payload`, `id` (the barrier's checkpoint, 0 for
 *   a data message) and `trace`;
 * - `ServiceDone`, `Crash`: `proc`;
 * - `Control`: `proc`, `epoch`, `input`; `ToCoordinator`: `proc`, `epoch`, `msg`;
 * - `Stored`, `Timer`: `proc`, `epoch`, `id`; `CheckpointTimeout`: `epoch`, `id`; `StartCheckpoint`: nothing.
 * Arrivals (most of the rest) are recycled through a free list once handled: they would otherwise
 * live just long enough in the agenda to be promoted out of V8's young generation.
 */
class SimEvent {
  k: Exclude<K, K.Tick> = K.Arrive;
  proc: SimProcess | null = null;
  ch: SimChannel | null = null;
  epoch: Epoch = 0;
  id: CheckpointId = 0;
  seq = 0;
  payload: Payload = 0;
  trace: MutableTrace | undefined = undefined;
  input: Input<Payload> | null = null;
  msg: ToCoordinator | null = null;
  /** A cancelled timer stays in the agenda and is skipped when it comes up. */
  cancelled = false;
}

interface SimProcess extends LiveApp {
  /** As an agendum (see Agendum), the process is its next tick. */
  readonly k: K.Tick;
  readonly id: ProcessId;
  readonly index: number;
  readonly core: Participant<Payload>;
  /** By output handle: the core's outputs are listed in the order of this array. */
  readonly outputs: SimChannel[];
  readonly isSource: boolean;
  /** No outputs; a tick reads this rather than the `outputs` array, another object. */
  readonly isSink: boolean;
  readonly snapshots: Map<CheckpointId, AppState>;
  readonly firstSeenAt: Map<CheckpointId, number>;
  readonly stallMs: Map<CheckpointId, number>;
  readonly serviceTimeMs: number;
  /** Arrivals waiting for a slow process (its `Arrive` events, held back from recycling). */
  readonly queue: SimEvent[];
  busy: boolean;
  controlArrivalMs: number;
  /** Alignment timers still queued, by checkpoint, so a cancel removes them from the agenda. */
  readonly timers: Map<CheckpointId, SimEvent>;
}

interface SimChannel {
  readonly id: ChannelId;
  /** Position in `channels`, the channel's number in the logs. */
  readonly index: number;
  readonly from: SimProcess;
  readonly to: SimProcess;
  /** The channel's handle in the sender's core (its position in `from.outputs`). */
  readonly outHandle: OutputHandle;
  /** The channel's handle in the receiver's core. */
  readonly inHandle: InputHandle;
  lastArrivalMs: number;
  /** Arrival of the last barrier that overtook messages: such barriers keep their order among themselves. */
  lastAheadArrivalMs: number;
  wireIndex: number;
  /** The scenario's slow-channel factor for this channel (1 for all others), for the default scheduler. */
  readonly delayFactor: number;
  inFlight: number;
  /** Trace records of the current epoch's messages, by seq, when tracing. */
  traced: MutableTrace[];
}

type MutableTrace = { -readonly [K in keyof TraceEvent]: TraceEvent[K] } & Record<string, unknown>;

interface CompletedRecord {
  readonly id: CheckpointId;
  readonly apps: Map<ProcessId, AppState>;
  readonly counts: Map<ProcessId, SnapshotCounts>;
  readonly channelStates: Map<ProcessId, Record<ChannelId, readonly RecordedMessage<Payload>[]>>;
  /** Log inputs' ranges, by receiving process (only processes with log inputs). */
  readonly logRanges: Map<ProcessId, Readonly<Record<ChannelId, LogRange>>>;
}

interface CheckpointLog {
  readonly id: CheckpointId;
  readonly triggeredAtMs: number;
  endedAtMs: number | null;
  completed: boolean;
  abortReason?: string;
  consistent: boolean;
  channelStateMessages: number;
  bufferedMessages: number;
  finishedUnaligned: number;
  readonly stallMs: Record<ProcessId, number>;
}

function policyFor(algorithm: CoordinatedAlgorithm, alignmentTimeoutMs: number): PolicyConfig {
  switch (algorithm) {
    case 'chandy-lamport':
      return { kind: 'unaligned' };
    case 'abs':
      return { kind: 'aligned' };
    case 'abs-timeout':
      return { kind: 'aligned-timeout', alignmentTimeoutMs };
    case 'sync':
      return { kind: 'sync' };
    case 'none':
      return { kind: 'none' };
  }
}

export class SimulationError extends Error {}

export function runSimulation(scenario: Scenario, options: RunOptions): SimResult {
  const algorithm = options.algorithm;
  if (isRollbackAlgorithm(algorithm)) {
    if ((scenario.logChannels ?? []).length > 0) throw new SimulationError(`log channels are modelled for the coordinated algorithms only, not ${algorithm}`);
    return runRollbackSimulation(scenario, { ...options, algorithm });
  }
  return new Simulation(scenario, { ...options, algorithm }).run();
}

interface CoordinatedRunOptions extends RunOptions {
  readonly algorithm: CoordinatedAlgorithm;
}

class Simulation {
  private readonly rng: Prng;
  private readonly graph: AppGraph;
  private readonly procs: SimProcess[] = [];
  private readonly byId = new Map<ProcessId, SimProcess>();
  private readonly channels: SimChannel[] = [];
  private readonly sentPayloads: ChannelLogs;
  /** The scenario's log channels (docs/simulator.md): their state is a range of the sender's log. */
  private readonly logChannels: ReadonlySet<ChannelId>;
  private readonly queue: EventQueue<Agendum>;
  /**
   * The inputs of the hottest steps, reused: the core reads an input during `step` and keeps nothing
   * of it, and a step fed while carrying out another's effects starts after that step returned.
   */
  private readonly sendInput = { type: 'send' as const, channel: 0 as OutputHandle, payload: 0 as Payload };
  private readonly messageInput = { type: 'message' as const, channel: 0 as InputHandle, seq: 0, epoch: 0 as Epoch, payload: 0 as Payload };
  private readonly barrierInput = { type: 'barrier' as const, channel: 0 as InputHandle, checkpointId: 0 as CheckpointId, epoch: 0 as Epoch };
  private readonly aheadBarrierInput = {
    type: 'barrier' as const,
    channel: 0 as InputHandle,
    checkpointId: 0 as CheckpointId,
    epoch: 0 as Epoch,
    afterSeq: 0,
    overtaking: true,
  };
  /** Every core writes its effects here: `feed` carries out and releases each step's before it returns. */
  private readonly effects = new EffectBuffer<Payload>();
  /** Handled arrivals, for reuse (see SimEvent). */
  private readonly spare: SimEvent[] = [];
  private readonly tracker: CheckpointTracker<Ack>;
  private readonly scheduler: DeliveryScheduler;
  /** The scenario's delay model when the default scheduler is in use: `put` then samples it directly. */
  private readonly delays: DelayModel | null;
  private readonly random: () => number;
  private readonly fifo: boolean;
  /** Unaligned barriers overtake the messages in flight (`Scenario.overtaking`, FIFO channels only). */
  private readonly overtaking: boolean;
  private readonly windowMax: number;
  private readonly trace: MutableTrace[] | undefined;
  private readonly abInitiators: ProcessId[];
  private readonly sourceComponents: ProcessId[][];
  private now = 0;
  private epoch: Epoch = 0;
  private nextCheckpointId = 1;
  private checkpointsStarted = 0;
  private stopped = false;
  private latest: CompletedRecord | null = null;
  private readonly logs = new Map<CheckpointId, CheckpointLog>();
  private readonly timeouts = new Map<CheckpointId, SimEvent>();
  private readonly violations: ViolationReport[] = [];
  private readonly initialApps = new Map<ProcessId, AppState>();
  private deliveriesPerMs = new Uint32Array(1024);
  private events = 0;
  private stepDepth = 0;
  private messagesSent = 0;
  private messagesDelivered = 0;
  private barriersSent = 0;
  private recoveries = 0;
  /** The recovery figures (`RunOptions.recoveryFigures`), summed or maximised over the crashes. */
  private lostWork = 0;
  private replayedMessages = 0;
  private recoveryTimeMs = 0;

  constructor(
    private readonly scenario: Scenario,
    private readonly options: CoordinatedRunOptions,
  ) {
    this.rng = new Prng(options.seed);
    this.random = () => this.rng.next();
    this.graph = buildTopology(scenario.topology, options.seed);
    const valid = validateGraph(this.graph);
    if (!valid.ok) throw new SimulationError(`invalid topology: ${valid.errors.map((e) => e.message).join('; ')}`);
    const interval = scenario.workload.sendIntervalMs;
    const reachMs = Math.max(TICK_REACH_INTERVALS * interval, delayReachMs(scenario.delays));
    this.queue = new EventQueue(agendaBucketMs(this.graph.processes.length / interval, AGENDA_TICKS_PER_BUCKET, reachMs));
    this.fifo = scenario.fifo ?? true;
    if (scenario.overtaking === true && !this.fifo) throw new SimulationError('overtaking needs FIFO channels');
    this.logChannels = new Set(scenario.logChannels ?? []);
    if (this.logChannels.size > 0 && !this.fifo) throw new SimulationError('log channels need FIFO channels');
    this.overtaking = scenario.overtaking === true;
    this.windowMax = scenario.channelWindowMessagesMax ?? CHANNEL_WINDOW_MESSAGES_DEFAULT;
    this.scheduler = options.scheduler ?? delayModelScheduler(scenario.delays, scenario.skew?.slowChannel);
    this.delays = options.scheduler ? null : scenario.delays;
    this.trace = options.trace ? [] : undefined;
    const back = backEdges(this.graph);
    this.abInitiators = initiators(this.graph);
    this.sourceComponents = sourceComponents(this.graph);
    const policy = policyFor(options.algorithm, scenario.alignmentTimeoutMs ?? ALIGNMENT_TIMEOUT_MS_DEFAULT);
    const inputs = new Map<ProcessId, ChannelId[]>();
    const outputs = new Map<ProcessId, ChannelId[]>();
    for (const c of this.graph.channels) {
      push(outputs, c.from, c.id);
      push(inputs, c.to, c.id);
    }
    this.graph.processes.forEach((id, index) => {
      const ins = inputs.get(id) ?? [];
      const created = Participant.create<Payload>(
        {
          id,
          inputs: ins,
          outputs: outputs.get(id) ?? [],
          backEdgeInputs: ins.filter((c) => back.has(c)),
          policy,
          channelOrder: this.fifo ? 'fifo-checked' : 'unchecked',
          ...(this.logChannels.size > 0 ? { logInputs: ins.filter((c) => this.logChannels.has(c)) } : {}),
        },
        { effects: this.effects },
      );
      if (!created.ok) throw new SimulationError(created.error.message);
      const slow = scenario.skew?.slowProcess;
      const app = this.initialApp();
      this.initialApps.set(id, app);
      const proc: SimProcess = {
        k: K.Tick,
        id,
        index,
        core: created.participant,
        outputs: [],
        isSource: ins.length === 0,
        isSink: !outputs.has(id),
        tokens: 0,
        count: 0,
        outbox: [],
        snapshots: new Map(),
        firstSeenAt: new Map(),
        stallMs: new Map(),
        serviceTimeMs: slow && slow.process === id ? slow.serviceTimeMs : 0,
        queue: [],
        busy: false,
        controlArrivalMs: 0,
        timers: new Map(),
      };
      restoreApp(proc, app);
      this.procs.push(proc);
      this.byId.set(id, proc);
    });
    const slowChannel = scenario.skew?.slowChannel;
    for (const c of this.graph.channels) {
      const from = this.byId.get(c.from) as SimProcess;
      const to = this.byId.get(c.to) as SimProcess;
      const outHandle = from.core.outputHandle(c.id);
      const inHandle = to.core.inputHandle(c.id);
      // The outputs were handed to the core in this same order: a handle indexes `from.outputs`.
      if (outHandle !== from.outputs.length || inHandle === undefined) {
        throw new SimulationError(`channel ${c.id} has output handle ${String(outHandle)} and input handle ${String(inHandle)}`);
      }
      const ch: SimChannel = {
        id: c.id,
        index: this.channels.length,
        from,
        to,
        outHandle,
        inHandle,
        lastArrivalMs: 0,
        lastAheadArrivalMs: 0,
        wireIndex: 0,
        delayFactor: slowChannel && slowChannel.channel === c.id ? slowChannel.delayFactor : 1,
        inFlight: 0,
        traced: [],
      };
      from.outputs.push(ch);
      this.channels.push(ch);
    }
    this.sentPayloads = new ChannelLogs(this.channels.length);
    const tracker = CheckpointTracker.create<Ack>({
      participants: this.graph.processes,
      checkpointTimeoutMs: scenario.checkpoints.timeoutMs,
      checkpointsInFlightMax: options.algorithm === 'sync' ? 1 : IN_FLIGHT_CHECKPOINTS_MAX,
    });
    if (!tracker.ok) throw new SimulationError(tracker.error.message);
    this.tracker = tracker.tracker;
  }

  private initialApp(): AppState {
    const w = this.scenario.workload;
    if (w.kind === 'tokens') return { kind: 'tokens', tokens: w.initialTokens };
    return { kind: 'counting', count: 0, outbox: [] };
  }

  run(): SimResult {
    const interval = this.scenario.workload.sendIntervalMs;
    for (const p of this.procs) {
      if (this.scenario.workload.kind === 'counting' && !p.isSource) continue;
      this.scheduleTick(p, this.rng.next() * interval);
    }
    this.schedule(this.event(K.StartCheckpoint), this.scenario.checkpoints.firstAtMs);
    for (const f of this.scenario.faults ?? []) {
      const proc = this.byId.get(f.process);
      if (!proc) throw new SimulationError(`fault names unknown process ${f.process}`);
      const crash = this.event(K.Crash);
      crash.proc = proc;
      this.schedule(crash, f.atMs);
    }
    for (;;) {
      const next = this.queue.pop();
      if (next === undefined) break;
      // A cancelled timer must not move time forward: the run ends at its last real event.
      if (next.k !== K.Tick && next.cancelled) continue;
      this.now = this.queue.lastAt;
      this.events += 1;
      if (!this.stopped && this.now >= this.scenario.durationMs) this.stopped = true;
      if (this.events > DRAIN_EVENTS_MAX) throw new SimulationError(`run exceeded ${DRAIN_EVENTS_MAX} events`);
      if (next.k === K.Tick) {
        this.onTick(next);
        continue;
      }
      this.handle(next);
      // A held arrival is in its process's service queue; any other arrival is done with.
      if (next.k === K.Arrive && (next.ch as SimChannel).to.serviceTimeMs === 0) this.recycle(next);
    }
    this.checkFinalLegality();
    return this.result();
  }

  /** A blank event of kind `k`; the caller fills in the fields its kind uses, then schedules it. */
  private event(k: Exclude<K, K.Tick>): SimEvent {
    const ev = this.spare.pop() ?? new SimEvent();
    ev.k = k;
    return ev;
  }

  private schedule(ev: SimEvent, at: number): SimEvent {
    this.queue.push(ev, at);
    return ev;
  }

  private scheduleTick(p: SimProcess, at: number): void {
    this.queue.push(p, at);
  }

  /** Drops the references a handled event holds and keeps it for reuse. */
  private recycle(ev: SimEvent): void {
    ev.proc = null;
    ev.ch = null;
    ev.trace = undefined;
    ev.input = null;
    ev.msg = null;
    ev.epoch = 0;
    ev.id = 0;
    ev.seq = 0;
    ev.payload = 0;
    this.spare.push(ev);
  }

  private handle(ev: SimEvent): void {
    switch (ev.k) {
      case K.Arrive:
        return this.onArrive(ev);
      case K.ServiceDone:
        return this.onServiceDone(ev.proc as SimProcess);
      case K.Control:
        if (ev.epoch !== this.epoch) return; // a control message from before a recovery: fenced
        return this.step(ev.proc as SimProcess, ev.input as Input<Payload>);
      case K.Stored:
        if (ev.epoch !== this.epoch) return;
        return this.step(ev.proc as SimProcess, { type: 'snapshot-stored', checkpointId: ev.id });
      case K.Timer:
        (ev.proc as SimProcess).timers.delete(ev.id);
        if (ev.epoch !== this.epoch) return;
        return this.step(ev.proc as SimProcess, { type: 'timer', timer: { kind: 'alignment', checkpointId: ev.id } });
      case K.ToCoordinator: {
        if (ev.epoch !== this.epoch) return;
        const msg = ev.msg as ToCoordinator;
        const process = (ev.proc as SimProcess).id;
        if ('ack' in msg) return this.coordinate({ type: 'ack', checkpointId: msg.ack.checkpointId, process, ack: msg.ack });
        return this.coordinate({ type: 'decline', checkpointId: msg.decline, process, reason: msg.reason });
      }
      case K.StartCheckpoint:
        return this.onStartCheckpoint();
      case K.CheckpointTimeout:
        this.timeouts.delete(ev.id);
        if (ev.epoch !== this.epoch) return;
        return this.coordinate({ type: 'timeout', checkpointId: ev.id });
      case K.Crash:
        return this.onCrash(ev.proc as SimProcess);
    }
  }

  // ---- the app side -------------------------------------------------------------------------

  private onTick(p: SimProcess): void {
    if (this.stopped) return;
    const w = this.scenario.workload;
    this.scheduleTick(p, this.now + w.sendIntervalMs * (0.5 + this.rng.next()));
    // Most ticks send nothing. The checks draw nothing from the PRNG, so their order is free: those
    // that read only the process come first, the core (another object) last.
    if (w.kind === 'tokens') {
      if (p.tokens <= 0 || p.isSink || p.core.paused !== null) return;
      const ch = this.rng.pick(p.outputs);
      if (ch.inFlight >= this.windowMax) return; // backpressure: the app waits for credit
      const amount = 1 + this.rng.int(Math.min(p.tokens, TRANSFER_TOKENS_MAX));
      p.tokens -= amount;
      this.send(p, ch, amount);
    } else {
      if (p.isSink || p.core.paused !== null) return;
      if (p.outputs.some((c) => c.inFlight >= this.windowMax)) return;
      p.count += 1;
      for (const ch of p.outputs) this.send(p, ch, p.count);
    }
  }

  private onDeliver(p: SimProcess, payload: Payload): void {
    this.messagesDelivered += 1;
    const ms = Math.floor(this.now);
    if (ms >= this.deliveriesPerMs.length) {
      const grown = new Uint32Array(Math.max(ms + 1, this.deliveriesPerMs.length * 2));
      grown.set(this.deliveriesPerMs);
      this.deliveriesPerMs = grown;
    }
    this.deliveriesPerMs[ms] = (this.deliveriesPerMs[ms] as number) + 1;
    if (this.scenario.workload.kind === 'tokens') {
      p.tokens += payload;
      return;
    }
    p.count += 1;
    for (const ch of p.outputs) {
      if (p.core.paused !== null) p.outbox.push({ channel: ch.id, value: payload });
      else this.send(p, ch, payload);
    }
  }

  private send(p: SimProcess, ch: SimChannel, payload: Payload): void {
    const send = this.sendInput;
    send.channel = ch.outHandle;
    send.payload = payload;
    this.step(p, send);
  }

  private flushOutbox(p: SimProcess): void {
    if (this.scenario.workload.kind !== 'counting') return;
    const pending = p.outbox;
    p.outbox = [];
    for (const o of pending) this.send(p, this.channelById(p, o.channel), o.value);
  }

  // ---- the network --------------------------------------------------------------------------

  /** Puts a data message (`barrier` 0) or a barrier on the wire of `ch`. */
  private put(ch: SimChannel, epoch: Epoch, seq: number, payload: Payload, barrier: CheckpointId, trace: MutableTrace | undefined): void {
    let at = this.sampleArrival(ch, barrier === 0 ? 'message' : 'barrier');
    if (this.fifo && at < ch.lastArrivalMs) at = ch.lastArrivalMs;
    if (at < this.now) at = this.now;
    ch.lastArrivalMs = at;
    if (barrier === 0) ch.inFlight += 1;
    this.arrive(ch, epoch, seq, payload, barrier, trace, at);
  }

  /**
   * Puts an unaligned checkpoint's barrier on the wire ahead of the messages in flight, as the
   * agent's outbound queue sends it ahead of messages waiting for credit: its arrival is not held
   * behind theirs, while everything sent after it still arrives after it. `seq` carries its
   * afterSeq (> 0, there are messages in flight), which marks the arrival as overtaking.
   */
  private putAhead(ch: SimChannel, epoch: Epoch, afterSeq: number, barrier: CheckpointId, trace: MutableTrace | undefined): void {
    let at = this.sampleArrival(ch, 'barrier');
    if (at < ch.lastAheadArrivalMs) at = ch.lastAheadArrivalMs;
    if (at < this.now) at = this.now;
    ch.lastAheadArrivalMs = at;
    if (at > ch.lastArrivalMs) ch.lastArrivalMs = at;
    this.arrive(ch, epoch, afterSeq, 0, barrier, trace, at);
  }

  private sampleArrival(ch: SimChannel, kind: 'message' | 'barrier'): number {
    ch.wireIndex += 1;
    // The default scheduler, inlined (same draws, same arithmetic): this runs for every message.
    if (this.delays) return this.now + sampleDelayMs(this.delays, this.random) * ch.delayFactor;
    return this.scheduler.arrivalMs({ channel: ch.id, kind, wireIndex: ch.wireIndex, sentAtMs: this.now }, this.random);
  }

  private arrive(ch: SimChannel, epoch: Epoch, seq: number, payload: Payload, barrier: CheckpointId, trace: MutableTrace | undefined, at: number): void {
    const ev = this.event(K.Arrive);
    ev.ch = ch;
    ev.epoch = epoch;
    ev.seq = seq;
    ev.payload = payload;
    ev.id = barrier;
    ev.trace = trace;
    this.queue.push(ev, at);
  }

  private onArrive(ev: SimEvent): void {
    const p = (ev.ch as SimChannel).to;
    if (p.serviceTimeMs > 0) {
      p.queue.push(ev);
      if (!p.busy) this.startService(p);
      return;
    }
    this.apply(ev);
  }

  private startService(p: SimProcess): void {
    p.busy = true;
    const ev = this.event(K.ServiceDone);
    ev.proc = p;
    this.schedule(ev, this.now + p.serviceTimeMs);
  }

  private onServiceDone(p: SimProcess): void {
    p.busy = false;
    const item = p.queue.shift();
    if (item) {
      this.apply(item);
      this.recycle(item);
    }
    if (p.queue.length > 0) this.startService(p);
  }

  /** Hands an arrived wire item (an `Arrive` event) to the receiving core. */
  private apply(w: SimEvent): void {
    const ch = w.ch as SimChannel;
    const barrier = w.id;
    if (w.epoch === this.epoch && barrier === 0) ch.inFlight -= 1;
    if (w.trace && w.epoch === this.epoch) w.trace['deliveredAtMs'] = this.now;
    const p = ch.to;
    if (barrier === 0) {
      const message = this.messageInput;
      message.channel = ch.inHandle;
      message.seq = w.seq;
      message.epoch = w.epoch;
      message.payload = w.payload;
      this.step(p, message);
    } else {
      if (!p.firstSeenAt.has(barrier)) p.firstSeenAt.set(barrier, this.now);
      if (w.seq > 0 && this.options.overtakingUnflagged !== true) {
        const ahead = this.aheadBarrierInput;
        ahead.channel = ch.inHandle;
        ahead.checkpointId = barrier;
        ahead.epoch = w.epoch;
        ahead.afterSeq = w.seq;
        this.step(p, ahead);
        return;
      }
      const input = this.barrierInput;
      input.channel = ch.inHandle;
      input.checkpointId = barrier;
      input.epoch = w.epoch;
      this.step(p, input);
    }
  }

  // ---- driving the core -----------------------------------------------------------------------

  private step(p: SimProcess, input: Input<Payload>): void {
    if (input.type === 'trigger' && !p.firstSeenAt.has(input.checkpointId)) p.firstSeenAt.set(input.checkpointId, this.now);
    this.feed(p, input);
    // Released items are pumped only at the top: an app still handling a delivery sends first.
    if (this.stepDepth === 0) {
      while (p.core.backlogSize > 0) this.feed(p, DRAIN);
    }
  }

  /** One core step and its effects, carried out in order; a step its effects feed nests inside. */
  private feed(p: SimProcess, input: Input<Payload>): Rejection | undefined {
    this.stepDepth += 1;
    const effects = this.effects;
    const mark = effects.length;
    const rejected = p.core.step(input);
    const end = effects.length;
    for (let i = mark; i < end; i++) this.effect(p, effects.at(i));
    effects.release(mark);
    this.stepDepth -= 1;
    return rejected;
  }

  private effect(p: SimProcess, e: Effect<Payload>): void {
    switch (e.type) {
      case 'transmit': {
        const ch = p.outputs[e.channel] as SimChannel;
        this.messagesSent += 1;
        this.sentPayloads.record(ch.index, e.seq, e.payload);
        let trace: MutableTrace | undefined;
        if (this.trace) {
          trace = {
            kind: 'message',
            channel: ch.id,
            from: p.id,
            to: ch.to.id,
            seq: e.seq,
            sentAtMs: this.now,
            recordedIn: [] as CheckpointId[],
          } as unknown as MutableTrace;
          this.trace.push(trace);
          ch.traced[e.seq - 1] = trace;
        }
        this.put(ch, e.epoch, e.seq, e.payload, 0, trace);
        return;
      }
      case 'send-barrier': {
        const ch = p.outputs[e.channel] as SimChannel;
        this.barriersSent += 1;
        let trace: MutableTrace | undefined;
        if (this.trace) {
          trace = {
            kind: 'barrier',
            channel: ch.id,
            from: p.id,
            to: ch.to.id,
            checkpointId: e.checkpointId,
            sentAtMs: this.now,
          } as unknown as MutableTrace;
          this.trace.push(trace);
        }
        if (this.overtaking && ch.inFlight > 0 && p.core.policyKind === 'unaligned') this.putAhead(ch, e.epoch, e.afterSeq, e.checkpointId, trace);
        else this.put(ch, e.epoch, 0, 0, e.checkpointId, trace);
        return;
      }
      case 'deliver':
        return this.onDeliver(p, e.payload);
      case 'snapshot': {
        p.snapshots.set(e.checkpointId, captureApp(this.scenario.workload.kind, p));
        const first = p.firstSeenAt.get(e.checkpointId) ?? this.now;
        p.stallMs.set(e.checkpointId, this.now - first);
        this.trace?.push({ kind: 'snapshot', process: p.id, checkpointId: e.checkpointId, atMs: this.now } as MutableTrace);
        const stored = this.event(K.Stored);
        stored.proc = p;
        stored.epoch = this.epoch;
        stored.id = e.checkpointId;
        this.schedule(stored, this.now + STORE_DELAY_MS);
        return;
      }
      case 'ack':
      case 'decline': {
        const at = this.now + this.controlDelay();
        const ev = this.event(K.ToCoordinator);
        ev.epoch = this.epoch;
        ev.proc = p;
        ev.msg = e.type === 'ack' ? { ack: e.ack } : { decline: e.checkpointId, reason: e.reason };
        this.schedule(ev, at);
        return;
      }
      case 'start-timer': {
        const timer = this.event(K.Timer);
        timer.proc = p;
        timer.epoch = this.epoch;
        timer.id = e.timer.checkpointId;
        p.timers.set(e.timer.checkpointId, this.schedule(timer, this.now + e.afterMs));
        return;
      }
      case 'cancel-timer':
        cancel(p.timers, e.timer.checkpointId);
        return;
      case 'paused':
        return;
      case 'resumed':
        return this.flushOutbox(p);
      case 'channel-failed':
        this.violations.push({ checkpointId: 0, kind: 'channel-failed', channel: p.core.inputId(e.channel), message: e.detail });
        return;
    }
  }

  private channelById(p: SimProcess, id: ChannelId): SimChannel {
    for (const ch of p.outputs) if (ch.id === id) return ch;
    throw new SimulationError(`${p.id} has no output ${id}`);
  }

  private controlDelay(): number {
    return this.scheduler.arrivalMs(
      { channel: 'coordinator', kind: 'message', wireIndex: 0, sentAtMs: 0 },
      this.random,
    );
  }

  /** Control messages to one process stay in order, as on one NATS subject from one connection. */
  private control(p: SimProcess, input: Input<Payload>): void {
    let at = this.now + this.controlDelay();
    if (at < p.controlArrivalMs) at = p.controlArrivalMs;
    p.controlArrivalMs = at;
    const ev = this.event(K.Control);
    ev.proc = p;
    ev.epoch = this.epoch;
    ev.input = input;
    this.schedule(ev, at);
  }

  // ---- the coordinator ------------------------------------------------------------------------

  private onStartCheckpoint(): void {
    const s = this.scenario.checkpoints;
    if (this.stopped || (s.count !== undefined && this.checkpointsStarted >= s.count)) return;
    this.schedule(this.event(K.StartCheckpoint), this.now + s.intervalMs);
    const rounds = this.options.algorithm === 'chandy-lamport' && s.initiators === 'concurrent' ? Math.max(1, s.concurrentInitiators ?? 2) : 1;
    for (let r = 0; r < rounds; r++) {
      if (s.count !== undefined && this.checkpointsStarted >= s.count) return;
      const id = this.nextCheckpointId;
      const result = this.tracker.step({ type: 'start', checkpointId: id, initiators: this.chooseInitiators() });
      if (result.rejected) return; // too many in flight: this tick is skipped, as a paced scheduler would
      this.nextCheckpointId += 1;
      this.checkpointsStarted += 1;
      this.logs.set(id, {
        id,
        triggeredAtMs: this.now,
        endedAtMs: null,
        completed: false,
        consistent: true,
        channelStateMessages: 0,
        bufferedMessages: 0,
        finishedUnaligned: 0,
        stallMs: {},
      });
      this.trackerEffects(result.effects);
    }
  }

  private chooseInitiators(): ProcessId[] {
    switch (this.options.algorithm) {
      case 'abs':
      case 'abs-timeout':
        return this.abInitiators;
      case 'sync':
      case 'none':
        return this.graph.processes.slice();
      case 'chandy-lamport':
        // Any process may initiate, but a marker reaches only what is downstream of it: one initiator
        // per source component of the graph (one in all for a strongly connected graph).
        return this.sourceComponents.map((members) => this.rng.pick(members));
    }
  }

  private coordinate(input: Parameters<CheckpointTracker<Ack>['step']>[0]): void {
    const result = this.tracker.step(input);
    this.trackerEffects(result.effects);
  }

  private trackerEffects(effects: readonly TrackerEffect<Ack>[]): void {
    for (const e of effects) {
      switch (e.type) {
        case 'trigger':
          this.control(this.byId.get(e.process) as SimProcess, { type: 'trigger', checkpointId: e.checkpointId });
          break;
        case 'start-timer': {
          const timeout = this.event(K.CheckpointTimeout);
          timeout.epoch = this.epoch;
          timeout.id = e.checkpointId;
          this.timeouts.set(e.checkpointId, this.schedule(timeout, this.now + e.afterMs));
          break;
        }
        case 'cancel-timer':
          cancel(this.timeouts, e.checkpointId);
          break;
        case 'completed':
          this.onCompleted(e.checkpointId, e.acks);
          break;
        case 'aborted': {
          const log = this.logs.get(e.checkpointId);
          if (log) {
            log.endedAtMs = this.now;
            log.abortReason = `${e.reason}: ${e.detail}`;
          }
          this.trace?.push({ kind: 'checkpoint-end', checkpointId: e.checkpointId, completed: false, atMs: this.now } as MutableTrace);
          break;
        }
        case 'notify':
          this.control(this.byId.get(e.process) as SimProcess, { type: e.notice, checkpointId: e.checkpointId });
          break;
      }
    }
  }

  private onCompleted(id: CheckpointId, acks: ReadonlyMap<ProcessId, Ack>): void {
    const log = this.logs.get(id) as CheckpointLog;
    log.endedAtMs = this.now;
    log.completed = true;
    this.trace?.push({ kind: 'checkpoint-end', checkpointId: id, completed: true, atMs: this.now } as MutableTrace);
    const snapshots: Record<ProcessId, SnapshotCounts> = {};
    const channelStates: Record<ChannelId, readonly RecordedMessage<Payload>[]> = {};
    const record: CompletedRecord = { id, apps: new Map(), counts: new Map(), channelStates: new Map(), logRanges: new Map() };
    const logRanges: Record<ChannelId, LogRange> = {};
    const tokens: Record<ProcessId, number> = {};
    for (const p of this.procs) {
      const ack = acks.get(p.id) as Ack;
      const app = p.snapshots.get(id) as AppState;
      p.snapshots.delete(id);
      snapshots[p.id] = ack.counts;
      record.apps.set(p.id, app);
      record.counts.set(p.id, ack.counts);
      record.channelStates.set(p.id, Object.assign({}, ack.channelStates));
      if (app.kind === 'tokens') tokens[p.id] = app.tokens;
      for (const [ch, msgs] of Object.entries(ack.channelStates)) {
        channelStates[ch] = msgs;
        log.channelStateMessages += msgs.length;
        if (this.trace) this.markRecorded(ch, msgs, id);
      }
      if (ack.logRanges !== undefined) {
        record.logRanges.set(p.id, ack.logRanges);
        for (const [ch, range] of Object.entries(ack.logRanges)) {
          logRanges[ch] = range;
          // What the range holds, read from the log: checked and counted like a recorded state.
          channelStates[ch] = this.logMessages(ch, range);
        }
      }
      log.bufferedMessages += ack.stats.bufferedMessages;
      if (ack.stats.finishedUnaligned) log.finishedUnaligned += 1;
      log.stallMs[p.id] = p.stallMs.get(id) ?? 0;
      p.stallMs.delete(id);
      p.firstSeenAt.delete(id);
    }
    const w = this.scenario.workload;
    const report = checkCut<Payload>({
      channels: this.graph.channels,
      snapshots,
      channelStates,
      ...(this.logChannels.size > 0 ? { logRanges } : {}),
      tokens:
        w.kind === 'tokens'
          ? { initialTotal: w.initialTokens * this.procs.length, processTokens: tokens, tokensOf: (amount) => amount }
          : undefined,
    });
    log.consistent = report.consistent;
    for (const v of report.violations) {
      this.violations.push({
        checkpointId: id,
        kind: v.kind,
        ...('channel' in v && typeof v.channel === 'string' ? { channel: v.channel } : {}),
        message: v.message,
      });
    }
    this.latest = record;
  }

  /** The messages of a log range as the log holds them (a recovery cut the log to the valid history). */
  private logMessages(channel: ChannelId, range: LogRange): RecordedMessage<Payload>[] {
    const ch = this.channels.find((c) => c.id === channel) as SimChannel;
    const out: RecordedMessage<Payload>[] = [];
    for (let seq = range.afterSeq + 1; seq <= range.throughSeq; seq++) out.push({ seq, payload: this.sentPayloads.payload(ch.index, seq) });
    return out;
  }

  private markRecorded(channel: ChannelId, msgs: readonly RecordedMessage<Payload>[], id: CheckpointId): void {
    const ch = this.channels.find((c) => c.id === channel);
    if (!ch) return;
    for (const m of msgs) (ch.traced[m.seq - 1]?.['recordedIn'] as CheckpointId[] | undefined)?.push(id);
  }

  // ---- faults -----------------------------------------------------------------------------------

  /**
   * A process crashed: every process rolls back to the latest completed checkpoint (or the initial
   * state), a new epoch fences everything still in flight, and the recorded channel states are
   * re-delivered before anything new.
   */
  private onCrash(p: SimProcess): void {
    this.recoveries += 1;
    this.trace?.push({ kind: 'crash', process: p.id, atMs: this.now } as MutableTrace);
    for (const id of this.tracker.inFlightIds()) {
      this.trackerEffects(this.tracker.step({ type: 'cancel', checkpointId: id, reason: `${p.id} crashed` }).effects.filter((e) => e.type !== 'notify'));
    }
    this.epoch += 1;
    const rec = this.latest;
    if (this.options.recoveryFigures === true) this.measureRecovery(rec);
    this.trace?.push({ kind: 'recover', checkpointId: rec ? rec.id : null, atMs: this.now } as MutableTrace);
    for (const ch of this.channels) {
      const sent = rec ? (rec.counts.get(ch.from.id)?.sent[ch.id] ?? 0) : 0;
      this.sentPayloads.truncate(ch.index, sent);
      ch.traced.length = Math.min(ch.traced.length, sent);
      ch.inFlight = 0;
    }
    for (const q of this.procs) {
      q.queue.length = 0;
      q.snapshots.clear();
      q.firstSeenAt.clear();
      q.stallMs.clear();
      restoreApp(q, rec ? (rec.apps.get(q.id) as AppState) : (this.initialApps.get(q.id) as AppState));
    }
    for (const q of this.procs) {
      const counts = rec ? (rec.counts.get(q.id) as SnapshotCounts) : { sent: {}, received: {} };
      const states = rec ? (rec.channelStates.get(q.id) ?? {}) : {};
      const ranges = rec ? rec.logRanges.get(q.id) : undefined;
      const logRanges = ranges ?? this.emptyLogRanges(q);
      const rejected = this.feed(q, { type: 'restore', epoch: this.epoch, counts, channelStates: states, ...(logRanges !== undefined ? { logRanges } : {}) });
      if (rejected) {
        this.violations.push({
          checkpointId: rec ? rec.id : 0,
          kind: 'restore-rejected',
          message: `${q.id} could not restore: ${rejected.detail}`,
        });
      }
      if (!rejected && logRanges !== undefined) this.replayLogRanges(q, logRanges);
      this.flushOutbox(q);
    }
  }

  /** A process's log inputs restored to the initial state: empty ranges. */
  private emptyLogRanges(q: SimProcess): Record<ChannelId, LogRange> | undefined {
    if (this.logChannels.size === 0) return undefined;
    const out: Record<ChannelId, LogRange> = {};
    for (const ch of this.channels) if (ch.to === q && this.logChannels.has(ch.id)) out[ch.id] = { afterSeq: 0, throughSeq: 0, epochs: [] };
    return out;
  }

  /**
   * The log replays each range from after what was received, each message of the epoch that sent it
   * (the receiver's consumer restarted at the recorded offset), before anything new arrives.
   */
  private replayLogRanges(q: SimProcess, ranges: Readonly<Record<ChannelId, LogRange>>): void {
    for (const [channel, range] of Object.entries(ranges)) {
      const ch = this.channels.find((c) => c.id === channel) as SimChannel;
      for (let seq = range.afterSeq + 1; seq <= range.throughSeq; seq++) {
        const rejected = this.feed(q, { type: 'message', channel: ch.inHandle, seq, epoch: epochOfSeq(range.epochs, seq) ?? -1, payload: this.sentPayloads.payload(ch.index, seq) });
        if (rejected) this.violations.push({ checkpointId: 0, kind: 'restore-rejected', message: `${q.id} refused message ${seq} of ${channel} replayed from the log: ${rejected.detail}` });
        while (q.core.backlogSize > 0) this.feed(q, { type: 'drain' });
      }
    }
  }

  /**
   * What restoring `rec` (null: the initial state) undoes and resends, measured before the restore:
   * every process goes back to it, so the lost work is every send and delivery since its counts, the
   * replayed messages are its channel states, and its work is redone from its trigger on.
   */
  private measureRecovery(rec: CompletedRecord | null): void {
    for (const ch of this.channels) {
      const sent = rec ? (rec.counts.get(ch.from.id)?.sent[ch.id] ?? 0) : 0;
      const received = rec ? (rec.counts.get(ch.to.id)?.received[ch.id] ?? 0) : 0;
      this.lostWork += ch.from.core.sentOn(ch.outHandle) - sent + ch.to.core.deliveredFrom(ch.inHandle) - received;
    }
    for (const states of rec?.channelStates.values() ?? []) {
      for (const msgs of Object.values(states)) this.replayedMessages += msgs.length;
    }
    for (const ranges of rec?.logRanges.values() ?? []) {
      for (const r of Object.values(ranges)) this.replayedMessages += r.throughSeq - r.afterSeq;
    }
    const since = rec ? (this.logs.get(rec.id) as CheckpointLog).triggeredAtMs : 0;
    this.recoveryTimeMs = Math.max(this.recoveryTimeMs, this.now - since);
  }

  /**
   * Invariant 4 after the run: every app's state must be what its channel logs say a legal run gives.
   * Tokens: initial + received - sent per process (and so the total is conserved). Counting: a
   * process counted exactly what it received and forwarded (or holds) every count.
   */
  private checkFinalLegality(): void {
    const w = this.scenario.workload;
    const inputs: SimChannel[][] = this.procs.map(() => []);
    for (const ch of this.channels) (inputs[ch.to.index] as SimChannel[]).push(ch);
    for (const p of this.procs) {
      let received = 0;
      let receivedCount = 0;
      for (const ch of inputs[p.index] as SimChannel[]) {
        const n = p.core.deliveredFrom(ch.inHandle);
        receivedCount += n;
        received = this.sentPayloads.sum(ch.index, n, received);
      }
      if (w.kind === 'tokens') {
        let sent = 0;
        for (const ch of p.outputs) sent = this.sentPayloads.sum(ch.index, p.core.sentOn(ch.outHandle), sent);
        const expected = w.initialTokens + received - sent;
        if (p.tokens !== expected) {
          this.violations.push({
            checkpointId: this.latest?.id ?? 0,
            kind: 'illegal-run',
            message: `${p.id} holds ${p.tokens} tokens but its channel logs say ${expected} (initial ${w.initialTokens} + received ${received} - sent ${sent})`,
          });
        }
      } else {
        if (!p.isSource && p.count !== receivedCount) {
          this.violations.push({
            checkpointId: this.latest?.id ?? 0,
            kind: 'illegal-run',
            message: `${p.id} counted ${p.count} but received ${receivedCount}`,
          });
        }
        for (const ch of p.outputs) {
          const owed = p.outbox.filter((o) => o.channel === ch.id).length;
          if (p.core.sentOn(ch.outHandle) + owed !== p.count) {
            this.violations.push({
              checkpointId: this.latest?.id ?? 0,
              kind: 'illegal-run',
              channel: ch.id,
              message: `${p.id} sent ${p.core.sentOn(ch.outHandle)} (+${owed} held) on ${ch.id} but counted ${p.count}`,
            });
          }
        }
      }
    }
  }

  private result(): SimResult {
    const totalDeliveries = this.messagesDelivered;
    const runMs = Math.max(1, this.scenario.durationMs);
    const avgRate = totalDeliveries / runMs;
    const prefix: number[] = [0];
    const len = this.deliveriesPerMs.length;
    for (let i = 0; i < len; i++) prefix.push((prefix[i] as number) + (this.deliveriesPerMs[i] ?? 0));
    const deliveredBetween = (a: number, b: number): number => {
      const lo = Math.min(len, Math.max(0, Math.floor(a)));
      const hi = Math.min(len, Math.max(0, Math.floor(b) + 1));
      return (prefix[hi] as number) - (prefix[lo] as number);
    };
    const checkpoints: CheckpointReport[] = [...this.logs.values()].map((l) => {
      const ended = l.endedAtMs ?? this.now;
      const duration = ended - l.triggeredAtMs;
      const stalls = Object.values(l.stallMs);
      const windowMs = Math.max(1, duration);
      const rate = deliveredBetween(l.triggeredAtMs, ended) / windowMs;
      return {
        id: l.id,
        completed: l.completed,
        ...(l.abortReason !== undefined ? { abortReason: l.abortReason } : l.endedAtMs === null ? { abortReason: 'run ended first' } : {}),
        triggeredAtMs: round(l.triggeredAtMs),
        endedAtMs: round(ended),
        durationMs: round(duration),
        consistent: l.consistent,
        channelStateMessages: l.channelStateMessages,
        channelStateBytes: l.channelStateMessages * MESSAGE_BYTES,
        bufferedMessages: l.bufferedMessages,
        bufferedBytes: l.bufferedMessages * MESSAGE_BYTES,
        alignmentStallMsMax: round(stalls.length ? Math.max(...stalls) : 0),
        alignmentStallMs: Object.fromEntries(Object.entries(l.stallMs).map(([k, v]) => [k, round(v)])),
        finishedUnaligned: l.finishedUnaligned,
        throughputRatio: avgRate > 0 ? round(rate / avgRate) : 1,
      };
    });
    const completed = checkpoints.filter((c) => c.completed);
    const metrics = {
      events: this.events,
      messagesSent: this.messagesSent,
      messagesDelivered: this.messagesDelivered,
      barriersSent: this.barriersSent,
      checkpointsTriggered: checkpoints.length,
      checkpointsCompleted: completed.length,
      checkpointsAborted: checkpoints.length - completed.length,
      durationMsMean: round(completed.length ? completed.reduce((s, c) => s + c.durationMs, 0) / completed.length : 0),
      channelStateMessagesTotal: completed.reduce((s, c) => s + c.channelStateMessages, 0),
      bufferedMessagesTotal: completed.reduce((s, c) => s + c.bufferedMessages, 0),
      alignmentStallMsMax: round(Math.max(0, ...completed.map((c) => c.alignmentStallMsMax))),
      throughputMsgsPerSec: round((totalDeliveries / runMs) * 1000),
      recoveries: this.recoveries,
      // A coordinated recovery restores the latest completed checkpoint, never an older one: no domino.
      ...(this.options.recoveryFigures === true
        ? { lostWork: this.lostWork, replayedMessages: this.replayedMessages, dominoDepth: 0, recoveryTimeMs: round(this.recoveryTimeMs) }
        : {}),
    };
    return {
      scenario: this.scenario.name,
      algorithm: this.options.algorithm,
      seed: this.options.seed,
      processes: this.graph.processes,
      channels: this.graph.channels,
      // `consistent` is safety alone (invariants 1-4); liveness is reported beside it, as a violation.
      consistent: this.violations.length === 0,
      violations: [...this.violations, ...livenessViolations(checkpoints, this.scenario)],
      checkpoints,
      metrics,
      endedAtMs: round(this.now),
      ...(this.trace ? { trace: this.trace as unknown as TraceEvent[] } : {}),
    };
  }
}

/**
 * Invariant 5 (DESIGN §4): with no failures every triggered checkpoint completes. The run drains its
 * queue after `durationMs`, so every checkpoint has ended by now, completed or aborted. A scenario
 * with faults may abort checkpoints (the recovery is checked instead); one without may not, whatever
 * the reason: a timeout there is a protocol that stalled, or a timeout shorter than the network needs.
 */
function livenessViolations(checkpoints: readonly CheckpointReport[], scenario: Scenario): ViolationReport[] {
  if ((scenario.faults ?? []).length > 0) return [];
  return checkpoints
    .filter((c) => !c.completed)
    .map((c) => ({
      checkpointId: c.id,
      kind: LIVENESS_VIOLATION,
      message: `did not complete in a run without faults (${c.abortReason ?? 'no reason recorded'})`,
    }));
}

function cancel(timers: Map<CheckpointId, SimEvent>, id: CheckpointId): void {
  const ev = timers.get(id);
  if (ev) ev.cancelled = true;
  timers.delete(id);
}

/** One list per strongly connected component that no other component feeds. */
function sourceComponents(graph: AppGraph): ProcessId[][] {
  const sccs = stronglyConnectedComponents(graph);
  const component = new Map<ProcessId, number>();
  sccs.forEach((members, i) => members.forEach((m) => component.set(m, i)));
  const fed = new Set<number>();
  for (const c of graph.channels) {
    const a = component.get(c.from);
    const b = component.get(c.to);
    if (a !== b && b !== undefined) fed.add(b);
  }
  return sccs.filter((_, i) => !fed.has(i));
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Metrics are rounded to microseconds so reports are stable and readable. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
