/**
 * A participant is one Chandy-Lamport process (one app endpoint) as a sans-I/O state machine:
 * `step(input)` writes the effects the shell must carry out, in order, into `effects`. It owns what every barrier
 * policy shares: per-channel sequence numbers and gap detection, epoch fencing, blocked-input buffers,
 * channel-state recording, completion and restore. The policy (see policy.ts) only decides when to
 * snapshot and whether an input blocks.
 *
 * Nothing here reads a clock, starts a timer or does I/O: timers are effects, their firing an input.
 */
import type { ChannelId, CheckpointId, Epoch, ProcessId } from '../ids.js';
import { EffectBuffer } from './effects.js';
import { FinishedIds } from './finished-ids.js';
import { epochOfSeq, logRange } from './log-range.js';
import { newPending, type PendingCheckpoint } from './pending.js';
import { createPolicy, type BarrierPolicy, type PolicyController } from './policy.js';
import type {
  ChannelOrder,
  DeclineReason,
  Effects,
  Input,
  InputHandle,
  LogEpoch,
  LogRange,
  OutputHandle,
  ParticipantConfig,
  PolicyConfig,
  RecordedMessage,
  Rejection,
  RejectReason,
  SnapshotCounts,
  TimerKey,
} from './types.js';

/**
 * Items held back on a blocked input, oldest first, as parallel lists so that holding one allocates
 * no object: under aligned checkpoints of a busy graph a large share of all messages waits here (the
 * simulator's benchmark buffers 0.45 messages per message sent), often long enough to outlive the
 * young generation. An item is a message (`number` its seq) or a barrier (`number` its checkpoint id).
 * The lists keep their room when cleared: a blocked input fills again at the next checkpoint.
 */
class Held<P> {
  readonly isBarrier: boolean[] = [];
  readonly number: number[] = [];
  readonly payload: (P | undefined)[] = [];
  length = 0;

  push(isBarrier: boolean, n: number, payload: P | undefined): void {
    const i = this.length;
    if (i === this.number.length) {
      this.isBarrier.push(isBarrier);
      this.number.push(n);
      this.payload.push(payload);
    } else {
      this.isBarrier[i] = isBarrier;
      this.number[i] = n;
      this.payload[i] = payload;
    }
    this.length = i + 1;
  }

  clear(): void {
    for (let i = 0; i < this.length; i++) this.payload[i] = undefined;
    this.length = 0;
  }
}

/**
 * Released items not processed yet, as `Held` and with the input each came from; `done` once
 * processed or moved back into its input's buffer. Lists again: a release moves every item a blocked
 * input held, so an object each would cost what `Held` saves.
 */
class Backlog<P> extends Held<P> {
  readonly ch: (InputChannel<P> | undefined)[] = [];
  readonly done: boolean[] = [];

  add(ch: InputChannel<P>, isBarrier: boolean, n: number, payload: P | undefined): void {
    const i = this.length;
    if (i === this.ch.length) {
      this.ch.push(ch);
      this.done.push(false);
    } else {
      this.ch[i] = ch;
      this.done[i] = false;
    }
    this.push(isBarrier, n, payload);
  }

  override clear(): void {
    for (let i = 0; i < this.length; i++) this.ch[i] = undefined;
    super.clear();
  }
}

interface InputChannel<P> {
  readonly id: ChannelId;
  readonly handle: InputHandle;
  backEdge: boolean;
  /** Highest sequence number that arrived (delivered or buffered). */
  lastArrived: number;
  /** Messages handed to the app: the `received` count of a snapshot. */
  delivered: number;
  blockedFor: PendingCheckpoint | null;
  readonly buffer: Held<P>;
  /**
   * Open channel-state recordings this input feeds (one per checkpoint recording it). Replaced, never
   * changed in place, and `NO_RECORDERS` when there are none: a delivery then reads a list shared by
   * every input, not one of its own.
   */
  recorders: readonly RecordedMessage<P>[][];
  failed: string | null;
  /** Items of this input waiting in the backlog: while > 0, new arrivals queue behind them. */
  backlogged: number;
  /**
   * Barriers that overtook messages and are to be handled at once (unaligned), by checkpoint: the
   * seq of the last message before each. Read when the barrier is processed; created when needed.
   */
  overtook: Map<CheckpointId, number> | undefined;
  /**
   * Checkpoints whose barrier overtook messages on this input and whose recording of it closes when
   * the last of those messages is delivered (see `PendingCheckpoint.overtaken`). Replaced, never changed.
   */
  closers: readonly PendingCheckpoint[];
  /**
   * Overtaking barriers held until the message they follow arrives (a policy other than unaligned),
   * and every early barrier of a log input, oldest first: each then takes its FIFO place.
   */
  held: readonly HeldBarrier[];
  /** A log input's history, which epoch sent which seqs (see `LogEpoch`), oldest first; undefined: in-band. */
  log: LogEpoch[] | undefined;
}

interface HeldBarrier {
  readonly id: CheckpointId;
  readonly afterSeq: number;
}

interface OutputChannel {
  readonly id: ChannelId;
  readonly handle: OutputHandle;
  sent: number;
}

const NO_LOG_RANGES: Readonly<Record<ChannelId, LogRange>> = {};

/** What a step that releases nothing hands on: shared, so such a step allocates no list. */
const NOTHING_RELEASED: readonly never[] = [];
const NO_RECORDERS: readonly never[] = [];
const NO_CLOSERS: readonly never[] = [];
const NO_HELD: readonly never[] = [];

const FINISHED_IDS_REMEMBERED_MAX_DEFAULT = 1024;

export interface ParticipantOptions<P> {
  /**
   * The buffer this participant writes its effects into; by default one of its own. Participants
   * that one synchronous shell drives may share one: each step appends after whatever is
   * unreleased, whichever participant wrote it, and the shell releases every step's effects before
   * it goes back to the step that fed it (a shell that waits in the middle of a step's effects
   * cannot share). The simulator shares one among its thousand processes, so the records it reads
   * stay in the processor's cache.
   */
  readonly effects?: EffectBuffer<P>;
}

export type ParticipantConfigError = { readonly kind: 'invalid-config'; readonly message: string };

export class Participant<P> {
  readonly id: ProcessId;
  private policy: BarrierPolicy;
  private readonly order: ChannelOrder;
  /** By id, to resolve handles and the ids of a restore or a configure; the hot path uses the lists. */
  private readonly inputs = new Map<ChannelId, InputChannel<P>>();
  private readonly inputList: InputChannel<P>[] = [];
  private readonly outputs = new Map<ChannelId, OutputChannel>();
  private readonly outputList: OutputChannel[] = [];
  private readonly pending = new Map<CheckpointId, PendingCheckpoint>();
  private readonly finished: FinishedIds;
  private highestSeen = 0;
  private epochNow: Epoch = 0;
  private pausedFor: CheckpointId | null = null;
  private failedInputs = 0;
  private readonly out: EffectBuffer<P>;
  /** What the steps wrote and the shell has not released yet (see `Effects`). */
  readonly effects: Effects<P>;
  /**
   * Released items not processed yet. A step stops at a barrier once it has delivered a message, so a
   * `deliver` is never followed by a snapshot or a barrier in the same batch: whatever the app sends
   * while handling a delivery is then ordered before the next cut. The shell pumps the rest with
   * `{type:'drain'}` while `backlogSize > 0`.
   */
  private readonly backlog = new Backlog<P>();
  private backlogHead = 0;
  /** Backlog items not processed yet (not `done`): the sum of every input's `backlogged`. */
  private backlogWaiting = 0;
  private deliveredThisStep = false;
  private readonly controller: PolicyController;
  /** Every rejection by reason, including those of buffered inputs replayed after a release. */
  readonly rejections: Partial<Record<RejectReason, number>> = {};

  /** Validates the configuration once; a bad one is a value, not a half-built participant. */
  static create<P>(
    config: ParticipantConfig,
    options: ParticipantOptions<P> = {},
  ): { ok: true; participant: Participant<P> } | { ok: false; error: ParticipantConfigError } {
    const problems: string[] = [];
    const policy = createPolicy(config.policy);
    if (!policy.ok) problems.push(policy.error.message);
    const seen = new Set<ChannelId>();
    for (const c of [...config.inputs, ...config.outputs]) {
      if (seen.has(c)) problems.push(`channel ${c} is listed twice`);
      seen.add(c);
    }
    for (const b of config.backEdgeInputs ?? []) {
      if (!config.inputs.includes(b)) problems.push(`back edge ${b} is not an input of ${config.id}`);
    }
    for (const l of config.logInputs ?? []) {
      if (!config.inputs.includes(l)) problems.push(`log input ${l} is not an input of ${config.id}`);
    }
    if ((config.logInputs ?? []).length > 0 && config.channelOrder === 'unchecked') {
      problems.push('log inputs need fifo-checked order: their barriers are placed by sequence number');
    }
    const max = config.finishedIdsRememberedMax ?? FINISHED_IDS_REMEMBERED_MAX_DEFAULT;
    if (!Number.isSafeInteger(max) || max < 1) problems.push(`finishedIdsRememberedMax must be >= 1, got ${max}`);
    if (problems.length > 0 || !policy.ok) {
      return { ok: false, error: { kind: 'invalid-config', message: `participant ${config.id}: ${problems.join('; ')}` } };
    }
    return { ok: true, participant: new Participant<P>(config, policy.value, max, options.effects ?? new EffectBuffer<P>()) };
  }

  private constructor(config: ParticipantConfig, policy: BarrierPolicy, finishedMax: number, effects: EffectBuffer<P>) {
    this.out = effects;
    this.effects = effects;
    this.id = config.id;
    this.policy = policy;
    this.order = config.channelOrder ?? 'fifo-checked';
    this.finished = new FinishedIds(finishedMax);
    const backEdges = new Set(config.backEdgeInputs ?? []);
    const logs = new Set(config.logInputs ?? []);
    for (const id of config.inputs) {
      const ch: InputChannel<P> = {
        id,
        handle: this.inputList.length,
        backEdge: backEdges.has(id),
        lastArrived: 0,
        delivered: 0,
        blockedFor: null,
        buffer: new Held<P>(),
        recorders: NO_RECORDERS,
        failed: null,
        backlogged: 0,
        overtook: undefined,
        closers: NO_CLOSERS,
        held: NO_HELD,
        log: logs.has(id) ? [{ epoch: 0, fromSeq: 1 }] : undefined,
      };
      this.inputs.set(id, ch);
      this.inputList.push(ch);
    }
    for (const id of config.outputs) {
      const ch = { id, handle: this.outputList.length, sent: 0 };
      this.outputs.set(id, ch);
      this.outputList.push(ch);
    }
    this.controller = this.makeController();
  }

  get epoch(): Epoch {
    return this.epochNow;
  }

  /** The checkpoint whose sync pause holds the app's sends, if any. */
  get paused(): CheckpointId | null {
    return this.pausedFor;
  }

  inFlight(): CheckpointId[] {
    return [...this.pending.keys()];
  }

  /**
   * The highest checkpoint id this participant has begun (0: none). Unless the policy's concurrency
   * is independent, a checkpoint below it that is not in flight is refused as stale, so whoever
   * issues ids must issue the next one above it.
   */
  get highestCheckpointId(): CheckpointId {
    return this.highestSeen;
  }

  /** The handle of an input channel, or undefined when it is not one; resolve once, then keep it. */
  inputHandle(channel: ChannelId): InputHandle | undefined {
    return this.inputs.get(channel)?.handle;
  }

  /** The handle of an output channel, or undefined when it is not one. */
  outputHandle(channel: ChannelId): OutputHandle | undefined {
    return this.outputs.get(channel)?.handle;
  }

  /** The channel id of an input handle. */
  inputId(channel: InputHandle): ChannelId {
    return this.input(channel).id;
  }

  /** The channel id of an output handle. */
  outputId(channel: OutputHandle): ChannelId {
    return this.output(channel).id;
  }

  isBlocked(channel: InputHandle): boolean {
    return this.input(channel).blockedFor !== null;
  }

  /** Messages sent on an output so far (its last sequence number). */
  sentOn(channel: OutputHandle): number {
    return this.output(channel).sent;
  }

  /** Messages delivered to the app from an input so far. */
  deliveredFrom(channel: InputHandle): number {
    return this.input(channel).delivered;
  }

  private input(channel: InputHandle): InputChannel<P> {
    const ch = this.inputList[channel];
    if (ch === undefined) throw new RangeError(`${this.id} has no input ${channel} (${this.inputList.length} inputs)`);
    return ch;
  }

  private output(channel: OutputHandle): OutputChannel {
    const ch = this.outputList[channel];
    if (ch === undefined) throw new RangeError(`${this.id} has no output ${channel} (${this.outputList.length} outputs)`);
    return ch;
  }

  /** Released items still to process: feed `{type:'drain'}` until this is 0. */
  get backlogSize(): number {
    return this.backlogWaiting;
  }

  /**
   * Feeds one input. Its effects are appended to `effects`, in the order they must be carried out;
   * a rejected input (a value, never an exception) may still have effects (a gap declines checkpoints).
   */
  step(input: Input<P>): Rejection | undefined {
    this.deliveredThisStep = false;
    const rejected = this.dispatch(input);
    if (rejected) this.count(rejected.reason);
    return rejected;
  }

  private dispatch(input: Input<P>): Rejection | undefined {
    switch (input.type) {
      case 'send':
        return this.onSend(input.channel, input.payload);
      case 'message':
        return this.onMessage(input.channel, input.seq, input.epoch, input.payload);
      case 'barrier':
        if (!isCheckpointId(input.checkpointId)) return invalidId(input.checkpointId, 'barrier');
        return this.onBarrier(input.channel, input.checkpointId, input.epoch, input.afterSeq, input.overtaking === true);
      case 'trigger':
        if (!isCheckpointId(input.checkpointId)) return invalidId(input.checkpointId, 'trigger');
        return this.onTrigger(input.checkpointId);
      case 'snapshot-stored':
        return this.onStored(input.checkpointId);
      case 'abort':
        return this.onAbort(input.checkpointId);
      case 'complete':
        return this.onComplete(input.checkpointId);
      case 'timer':
        return this.onTimer(input.timer.checkpointId);
      case 'restore':
        return this.onRestore(input.epoch, input.counts, input.channelStates, input.logRanges ?? NO_LOG_RANGES);
      case 'configure':
        return this.onConfigure(input.policy, input.backEdgeInputs);
      case 'drain':
        this.processBacklog();
        return undefined;
    }
  }

  private onConfigure(config: PolicyConfig, backEdgeInputs: readonly ChannelId[]): Rejection | undefined {
    if (this.pending.size > 0 || this.pausedFor !== null) {
      return reject('busy', `${this.id} has checkpoints in flight (${this.inFlight().join(', ') || `paused for ${this.pausedFor}`}); configure between checkpoints`);
    }
    const created = createPolicy(config);
    if (!created.ok) return reject('invalid-config', created.error.message);
    for (const b of backEdgeInputs) {
      if (!this.inputs.has(b)) return reject('unknown-channel', `back edge ${b} is not an input of ${this.id}`);
    }
    this.policy = created.value;
    const back = new Set(backEdgeInputs);
    for (const ch of this.inputList) ch.backEdge = back.has(ch.id);
    return undefined;
  }

  get policyKind(): PolicyConfig['kind'] {
    return this.policy.kind;
  }

  private onSend(channel: OutputHandle, payload: P): Rejection | undefined {
    const out = this.outputList[channel];
    if (out === undefined) return reject('unknown-channel', `output ${channel} is not one of the ${this.outputList.length} outputs of ${this.id}`);
    if (this.pausedFor !== null) {
      return reject('paused', `${this.id} is paused by sync checkpoint ${this.pausedFor}; hold the send until resumed`);
    }
    out.sent += 1;
    this.out.transmit(channel, out.sent, this.epochNow, payload);
    return undefined;
  }

  /** `seq`: a message's, 0 for a barrier (only messages of a log input's older epochs may be replays). */
  private arrival(channel: InputHandle, epoch: Epoch, seq: number): InputChannel<P> | Rejection {
    const ch = this.inputList[channel];
    if (ch === undefined) return reject('unknown-channel', `input ${channel} is not one of the ${this.inputList.length} inputs of ${this.id}`);
    if (epoch < this.epochNow && !(seq > 0 && ch.log !== undefined && epochOfSeq(ch.log, seq) === epoch)) {
      return reject('stale-epoch', `epoch ${epoch} on ${ch.id} is older than ${this.epochNow}`);
    }
    if (epoch > this.epochNow) {
      return reject('future-epoch', `epoch ${epoch} on ${ch.id} is ahead of ${this.epochNow}: restore first`);
    }
    if (ch.failed !== null) return reject('channel-failed', `${ch.id} failed earlier: ${ch.failed}`);
    return ch;
  }

  private onMessage(channel: InputHandle, seq: number, epoch: Epoch, payload: P): Rejection | undefined {
    const ch = this.arrival(channel, epoch, seq);
    if (!isInput(ch)) return ch;
    if (this.order === 'fifo-checked') {
      if (seq <= ch.lastArrived) return reject('duplicate-message', `seq ${seq} on ${ch.id} already arrived (last ${ch.lastArrived})`);
      if (seq !== ch.lastArrived + 1) {
        const detail = `expected seq ${ch.lastArrived + 1} on ${ch.id}, got ${seq}: ${seq - ch.lastArrived - 1} message(s) lost`;
        this.failChannel(ch, detail);
        return reject('gap', detail);
      }
      ch.lastArrived = seq;
    } else if (seq > ch.lastArrived) {
      ch.lastArrived = seq;
    }
    if (ch.backlogged > 0) {
      this.toBacklog(ch, false, seq, payload);
      this.processBacklog();
    } else if (ch.blockedFor !== null) {
      ch.buffer.push(false, seq, payload);
      ch.blockedFor.bufferedMessages += 1;
    } else {
      this.deliver(ch, seq, payload);
    }
    if (ch.held.length > 0) this.releaseHeldBarriers(ch, seq);
    return undefined;
  }

  /**
   * The message an overtaking barrier follows has arrived: the barrier takes its FIFO place right
   * behind it, through the backlog, as a barrier behind a delivery in the same step must.
   */
  private releaseHeldBarriers(ch: InputChannel<P>, seq: number): void {
    let n = 0;
    while (n < ch.held.length && (ch.held[n] as HeldBarrier).afterSeq <= seq) n += 1;
    if (n === 0) return;
    const due = ch.held.slice(0, n);
    ch.held = n === ch.held.length ? NO_HELD : ch.held.slice(n);
    for (const b of due) this.toBacklog(ch, true, b.id, undefined);
    this.processBacklog();
  }

  private deliver(ch: InputChannel<P>, seq: number, payload: P): void {
    this.deliveredThisStep = true;
    ch.delivered = this.order === 'fifo-checked' ? seq : ch.delivered + 1;
    if (ch.recorders.length > 0) {
      for (const rec of ch.recorders) rec.push({ seq, payload });
    }
    this.out.deliver(ch.handle, seq, payload);
    if (ch.closers.length > 0) this.closeOvertaken(ch, seq);
  }

  /** Closes the recordings of this input that an overtaking barrier left open until `seq`. */
  private closeOvertaken(ch: InputChannel<P>, seq: number): void {
    const due = ch.closers.filter((p) => (p.overtaken?.get(ch.handle) ?? 0) <= seq);
    if (due.length === 0) return;
    const rest = ch.closers.filter((p) => !due.includes(p));
    ch.closers = rest.length === 0 ? NO_CLOSERS : rest;
    for (const p of due) {
      p.overtaken?.delete(ch.handle);
      this.controller.closeRecording(p, ch.handle);
    }
  }

  private onBarrier(
    channel: InputHandle,
    id: CheckpointId,
    epoch: Epoch,
    afterSeq: number | undefined,
    overtaking: boolean,
  ): Rejection | undefined {
    const ch = this.arrival(channel, epoch, 0);
    if (!isInput(ch)) {
      // A barrier behind a gap still names a checkpoint that cannot complete: say so now, not at timeout.
      if (ch.reason === 'channel-failed' && !this.finished.has(id) && !this.pending.has(id)) this.begin(id);
      return ch;
    }
    if ((overtaking || ch.log !== undefined) && afterSeq !== undefined && this.order === 'fifo-checked' && afterSeq > ch.lastArrived) {
      // Not a gap: the messages up to afterSeq are still on their way behind the barrier. A log
      // input's messages stay in the log, so its barrier always waits for its place: recording
      // them as channel state would copy what the log keeps anyway.
      if (this.policy.kind !== 'unaligned' || ch.log !== undefined) {
        // Only unaligned records what follows a barrier on its input, so the barrier waits for them.
        ch.held = [...ch.held, { id, afterSeq }];
        return undefined;
      }
      (ch.overtook ??= new Map()).set(id, afterSeq);
    } else if (afterSeq !== undefined && this.order === 'fifo-checked' && afterSeq !== ch.lastArrived) {
      const detail = `barrier ${id} on ${ch.id} follows seq ${afterSeq} but seq ${ch.lastArrived} arrived last: ${afterSeq > ch.lastArrived ? `${afterSeq - ch.lastArrived} message(s) lost` : 'messages out of order'}`;
      this.failChannel(ch, detail);
      if (!this.finished.has(id) && !this.pending.has(id)) this.begin(id);
      return reject('gap', detail);
    }
    if (ch.backlogged > 0) {
      this.toBacklog(ch, true, id, undefined);
      this.processBacklog();
      return undefined;
    }
    if (ch.blockedFor !== null) {
      ch.buffer.push(true, id, undefined);
      return undefined;
    }
    return this.processBarrier(ch, id);
  }

  private processBarrier(ch: InputChannel<P>, id: CheckpointId): Rejection | undefined {
    const owedUntil = ch.overtook === undefined ? undefined : this.takeOvertook(ch, id);
    // Refused here, on the one path every barrier takes (directly or out of the backlog), before it
    // could start a checkpoint; it also narrows the policy to one that has a barrier handler.
    const policy = this.policy;
    if (policy.kind === 'none') {
      return reject('unexpected-barrier', `barrier ${id} on ${ch.id}: policy none sends no barriers`);
    }
    if (this.finished.has(id)) return reject('stale-barrier', `checkpoint ${id} already finished at ${this.id}`);
    let p = this.pending.get(id);
    let released: readonly InputChannel<P>[] = NOTHING_RELEASED;
    if (!p) {
      if (this.policy.concurrency !== 'independent' && id < this.highestSeen) {
        return reject('stale-barrier', `barrier ${id} on ${ch.id} is older than checkpoint ${this.highestSeen}`);
      }
      released = this.subsumeOlder(id);
      p = this.begin(id);
      if (!p) return this.release(released);
    }
    if (p.barrierChannels.has(ch.handle)) {
      this.release(released);
      return reject('duplicate-barrier', `barrier ${id} on ${ch.id} already arrived`);
    }
    p.barrierChannels.add(ch.handle);
    if (owedUntil !== undefined && owedUntil > ch.delivered) {
      (p.overtaken ??= new Map()).set(ch.handle, owedUntil);
      ch.closers = [...ch.closers, p];
    }
    const rejected = policy.onBarrier(this.controller, p, ch.handle);
    this.release(released);
    return rejected;
  }

  /** The seq an overtaking barrier of `id` follows on `ch`, forgotten once read. */
  private takeOvertook(ch: InputChannel<P>, id: CheckpointId): number | undefined {
    const map = ch.overtook as Map<CheckpointId, number>;
    const seq = map.get(id);
    map.delete(id);
    if (map.size === 0) ch.overtook = undefined;
    return seq;
  }

  private onTrigger(id: CheckpointId): Rejection | undefined {
    if (this.finished.has(id)) return reject('stale-trigger', `checkpoint ${id} already finished at ${this.id}`);
    let p = this.pending.get(id);
    if (p && (p.triggered || p.phase === 'snapshotted')) {
      return reject('duplicate-trigger', `checkpoint ${id} is already snapshotted or triggered at ${this.id}`);
    }
    let released: readonly InputChannel<P>[] = NOTHING_RELEASED;
    if (!p) {
      if (this.policy.concurrency !== 'independent' && id < this.highestSeen) {
        return reject('stale-trigger', `trigger ${id} is older than checkpoint ${this.highestSeen}`);
      }
      released = this.subsumeOlder(id);
      p = this.begin(id);
      if (!p) return this.release(released);
    }
    if (this.pausedFor !== null && this.pausedFor < id) this.resume();
    p.triggered = true;
    this.policy.onTrigger(this.controller, p);
    return this.release(released);
  }

  /** Starts tracking a checkpoint, or declines it at once when an input has failed. */
  private begin(id: CheckpointId): PendingCheckpoint | undefined {
    if (id > this.highestSeen) this.highestSeen = id;
    const p = newPending(id);
    if (this.failedInputs > 0) {
      this.out.decline(id, 'channel-failed');
      this.finished.add(id);
      return undefined;
    }
    this.pending.set(id, p);
    return p;
  }

  /**
   * Applies the concurrency rule before a newer checkpoint starts: the older ones it subsumes are
   * declined and their blocked inputs returned, to be released once the newer one is set up.
   */
  private subsumeOlder(id: CheckpointId): readonly InputChannel<P>[] {
    const rule = this.policy.concurrency;
    if (rule === 'independent') return NOTHING_RELEASED;
    const released: InputChannel<P>[] = [];
    for (const q of [...this.pending.values()]) {
      if (q.id >= id) continue;
      if (rule === 'one-aligning' && q.phase !== 'aligning') continue;
      released.push(...this.abandon(q, 'subsumed'));
    }
    return released;
  }

  /** Ends a checkpoint without an ack; returns its blocked inputs for the caller to release. */
  private abandon(p: PendingCheckpoint, decline: DeclineReason | null): InputChannel<P>[] {
    if (decline) this.out.decline(p.id, decline);
    this.cancelTimer(p);
    const blocked: InputChannel<P>[] = [];
    for (const h of p.blocked) {
      const ch = this.inputList[h] as InputChannel<P>;
      ch.blockedFor = null;
      blocked.push(ch);
    }
    p.blocked.clear();
    for (const [h, rec] of p.recording) stopRecording(this.inputList[h] as InputChannel<P>, rec);
    p.recording.clear();
    if (p.overtaken !== undefined) {
      for (const h of p.overtaken.keys()) {
        const ch = this.inputList[h] as InputChannel<P>;
        const rest = ch.closers.filter((q) => q !== p);
        ch.closers = rest.length === 0 ? NO_CLOSERS : rest;
      }
      p.overtaken.clear();
    }
    this.pending.delete(p.id);
    this.finished.add(p.id);
    return blocked;
  }

  /** Moves what released inputs held into the backlog, in arrival order, and processes it. */
  private release(channels: readonly InputChannel<P>[]): undefined {
    for (const ch of channels) {
      const held = ch.buffer;
      if (ch.blockedFor !== null || held.length === 0) continue;
      for (let i = 0; i < held.length; i++) this.toBacklog(ch, held.isBarrier[i] as boolean, held.number[i] as number, held.payload[i]);
      held.clear();
    }
    this.processBacklog();
    return undefined;
  }

  private toBacklog(ch: InputChannel<P>, isBarrier: boolean, n: number, payload: P | undefined): void {
    ch.backlogged += 1;
    this.backlogWaiting += 1;
    this.backlog.add(ch, isBarrier, n, payload);
  }

  /**
   * Processes the backlog in order until it is empty, or until the next item is a barrier and this
   * step has delivered a message. An item of an input that is blocked again goes back into that
   * input's buffer together with every later backlog item of the same input, so its order holds.
   */
  private processBacklog(): void {
    const b = this.backlog;
    while (this.backlogHead < b.length) {
      const i = this.backlogHead;
      if (b.done[i]) {
        this.backlogHead += 1;
        continue;
      }
      const ch = b.ch[i] as InputChannel<P>;
      if (ch.blockedFor !== null) {
        for (let j = i; j < b.length; j++) {
          if (b.done[j] || b.ch[j] !== ch) continue;
          b.done[j] = true;
          ch.backlogged -= 1;
          this.backlogWaiting -= 1;
          const isBarrier = b.isBarrier[j] as boolean;
          ch.buffer.push(isBarrier, b.number[j] as number, b.payload[j]);
          if (!isBarrier) ch.blockedFor.bufferedMessages += 1;
        }
        continue;
      }
      const isBarrier = b.isBarrier[i] as boolean;
      if (isBarrier && this.deliveredThisStep) break;
      b.done[i] = true;
      this.backlogHead += 1;
      ch.backlogged -= 1;
      this.backlogWaiting -= 1;
      if (!isBarrier) this.deliver(ch, b.number[i] as number, b.payload[i] as P);
      else {
        const rejected = this.processBarrier(ch, b.number[i] as number);
        if (rejected) this.count(rejected.reason);
      }
    }
    if (this.backlogHead > 0 && this.backlogHead === b.length) {
      b.clear();
      this.backlogHead = 0;
    }
  }

  private onStored(id: CheckpointId): Rejection | undefined {
    const p = this.pending.get(id);
    if (!p) return reject('unknown-checkpoint', `checkpoint ${id} is not in flight at ${this.id}`);
    if (p.phase !== 'snapshotted') return reject('not-snapshotted', `checkpoint ${id} has no snapshot yet at ${this.id}`);
    if (p.stored) return reject('duplicate-stored', `checkpoint ${id} was already stored at ${this.id}`);
    p.stored = true;
    this.maybeComplete(p);
    return undefined;
  }

  private onAbort(id: CheckpointId): Rejection | undefined {
    const p = this.pending.get(id);
    const wasPaused = this.pausedFor === id;
    if (p) this.release(this.abandon(p, null));
    else this.finished.add(id);
    if (wasPaused) this.resume();
    if (!p && !wasPaused) return reject('unknown-checkpoint', `checkpoint ${id} is not in flight at ${this.id}`);
    return undefined;
  }

  private onComplete(id: CheckpointId): Rejection | undefined {
    // The notice is best effort and may overtake nothing we care about; only a sync pause waits for it.
    if (this.pausedFor !== null && id >= this.pausedFor) this.resume();
    return undefined;
  }

  private onTimer(id: CheckpointId): Rejection | undefined {
    const p = this.pending.get(id);
    if (!p || !p.alignmentTimerRunning) return reject('stale-timer', `no alignment timer runs for ${id} at ${this.id}`);
    p.alignmentTimerRunning = false;
    this.policy.onAlignmentTimeout(this.controller, p);
    return undefined;
  }

  /**
   * Why a restore with these inputs would be refused, or undefined if it would be taken; changes
   * nothing. A shell that must touch the app before the core (the app's state goes back first) asks
   * this first, so a refused restore leaves the app as it was too.
   */
  restoreRefusal(
    epoch: Epoch,
    counts: SnapshotCounts,
    channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>,
    logRanges: Readonly<Record<ChannelId, LogRange>>,
  ): Rejection | undefined {
    if (epoch <= this.epochNow) {
      return reject('epoch-not-increasing', `restore epoch ${epoch} must exceed the current epoch ${this.epochNow}`);
    }
    for (const channel of Object.keys(channelStates)) {
      if (!this.inputs.has(channel)) return reject('unknown-channel', `channel state for ${channel}, not an input of ${this.id}`);
    }
    for (const channel of [...Object.keys(counts.sent)]) {
      if (!this.outputs.has(channel)) return reject('unknown-channel', `sent count for ${channel}, not an output of ${this.id}`);
    }
    for (const channel of [...Object.keys(counts.received)]) {
      if (!this.inputs.has(channel)) return reject('unknown-channel', `received count for ${channel}, not an input of ${this.id}`);
    }
    const badRange = this.checkLogRanges(epoch, counts, channelStates, logRanges);
    if (badRange !== undefined) return reject('invalid-log-range', badRange);
    if (this.order === 'fifo-checked') {
      for (const [channel, msgs] of Object.entries(channelStates)) {
        let expected = (counts.received[channel] ?? 0) + 1;
        for (const m of msgs) {
          if (m.seq !== expected) return reject('gap', `channel state of ${channel} has seq ${m.seq} where ${expected} was expected`);
          expected += 1;
        }
      }
    }
    return undefined;
  }

  private onRestore(
    epoch: Epoch,
    counts: SnapshotCounts,
    channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>,
    logRanges: Readonly<Record<ChannelId, LogRange>>,
  ): Rejection | undefined {
    // Validate everything before touching anything, so a bad restore leaves the participant as it was.
    const refused = this.restoreRefusal(epoch, counts, channelStates, logRanges);
    if (refused !== undefined) return refused;
    for (const p of [...this.pending.values()]) this.abandon(p, null);
    if (this.pausedFor !== null) this.resume();
    this.epochNow = epoch;
    this.failedInputs = 0;
    for (const out of this.outputList) out.sent = counts.sent[out.id] ?? 0;
    this.backlog.clear();
    this.backlogHead = 0;
    this.backlogWaiting = 0;
    for (const ch of this.inputList) {
      ch.backlogged = 0;
      ch.delivered = counts.received[ch.id] ?? 0;
      ch.lastArrived = ch.delivered;
      ch.buffer.clear();
      ch.blockedFor = null;
      ch.recorders = NO_RECORDERS;
      ch.failed = null;
      ch.overtook = undefined;
      ch.closers = NO_CLOSERS;
      ch.held = NO_HELD;
      if (ch.log !== undefined) {
        // The range's messages come again from the log, each of the epoch that sent it; the new
        // epoch's messages follow the range.
        const range = logRanges[ch.id] as LogRange;
        ch.log = [...range.epochs, { epoch, fromSeq: range.throughSeq + 1 }];
      }
    }
    // The recorded messages go to the app before anything new can arrive on the new epoch.
    for (const ch of this.inputList) {
      for (const m of channelStates[ch.id] ?? []) {
        if (m.seq > ch.lastArrived) ch.lastArrived = m.seq;
        this.deliver(ch, m.seq, m.payload);
      }
    }
    return undefined;
  }

  /** Why the log ranges of a restore do not fit this participant's log inputs, if they do not. */
  private checkLogRanges(
    epoch: Epoch,
    counts: SnapshotCounts,
    channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>,
    logRanges: Readonly<Record<ChannelId, LogRange>>,
  ): string | undefined {
    for (const channel of Object.keys(logRanges)) {
      if (this.inputs.get(channel)?.log === undefined) return `log range for ${channel}, not a log input of ${this.id}`;
    }
    for (const ch of this.inputList) {
      if (ch.log === undefined) continue;
      const range = logRanges[ch.id];
      if (range === undefined) return `no log range for log input ${ch.id}: its in-flight messages would be lost`;
      if ((channelStates[ch.id] ?? []).length > 0) return `channel state recorded for log input ${ch.id}: its range is in the log`;
      const received = counts.received[ch.id] ?? 0;
      if (range.afterSeq !== received || range.throughSeq < range.afterSeq) {
        return `log range of ${ch.id} is (${range.afterSeq}, ${range.throughSeq}], but ${received} messages were received`;
      }
      let prev: LogEpoch | undefined;
      for (const part of range.epochs) {
        const ordered = prev === undefined ? part.fromSeq <= range.afterSeq + 1 : part.fromSeq > prev.fromSeq && part.epoch > prev.epoch;
        if (!ordered || part.fromSeq > range.throughSeq || part.epoch >= epoch) {
          return `log range of ${ch.id} has epochs out of order or outside the range: ${JSON.stringify(range.epochs)}`;
        }
        prev = part;
      }
      if (range.throughSeq > range.afterSeq && range.epochs.length === 0) return `log range of ${ch.id} names no epoch for its messages`;
    }
    return undefined;
  }

  private failChannel(ch: InputChannel<P>, detail: string): void {
    ch.failed = detail;
    this.failedInputs += 1;
    this.out.channelFailed(ch.handle, detail);
    for (const p of [...this.pending.values()]) this.release(this.abandon(p, 'channel-failed'));
  }

  private maybeComplete(p: PendingCheckpoint): void {
    if (p.phase !== 'snapshotted' || !p.stored || p.recording.size > 0) return;
    if (p.counts === undefined) broken(`checkpoint ${p.id} snapshotted without counts`);
    if (p.blocked.size !== 0) broken(`checkpoint ${p.id} completing with blocked inputs`);
    const channelStates: Record<ChannelId, readonly RecordedMessage<P>[]> = {};
    let logRanges: Record<ChannelId, LogRange> | undefined;
    for (const ch of this.inputList) {
      channelStates[ch.id] = (p.channelStates.get(ch.handle) ?? []) as RecordedMessage<P>[];
      if (ch.log !== undefined) {
        const afterSeq = p.counts.received[ch.id] ?? 0;
        (logRanges ??= {})[ch.id] = logRange(ch.log, afterSeq, p.logThrough?.get(ch.handle) ?? afterSeq);
      }
    }
    this.out.ack({
      checkpointId: p.id,
      counts: p.counts,
      channelStates,
      ...(logRanges !== undefined ? { logRanges } : {}),
      stats: {
        bufferedMessages: p.bufferedMessages,
        channelStateMessages: p.channelStateMessages,
        finishedUnaligned: p.finishedUnaligned,
      },
    });
    this.pending.delete(p.id);
    this.finished.add(p.id);
  }

  private snapshotCounts(): SnapshotCounts {
    const sent: Record<ChannelId, number> = {};
    const received: Record<ChannelId, number> = {};
    for (const out of this.outputList) sent[out.id] = out.sent;
    for (const ch of this.inputList) received[ch.id] = ch.delivered;
    return { sent, received };
  }

  private cancelTimer(p: PendingCheckpoint): void {
    if (!p.alignmentTimerRunning) return;
    p.alignmentTimerRunning = false;
    this.out.cancelTimer(alignmentTimer(p.id));
  }

  private resume(): void {
    const id = this.pausedFor;
    if (id === null) return;
    this.pausedFor = null;
    this.out.resumed(id);
  }

  private count(reason: RejectReason): void {
    this.rejections[reason] = (this.rejections[reason] ?? 0) + 1;
  }

  private makeController(): PolicyController {
    return {
      snapshot: (p, how) => {
        if (p.phase !== 'aligning') broken(`checkpoint ${p.id} snapshotted twice at ${this.id}`);
        if (this.deliveredThisStep) broken(`checkpoint ${p.id} snapshotted after a delivery in the same step at ${this.id}`);
        p.counts = this.snapshotCounts();
        p.phase = 'snapshotted';
        this.out.snapshot(p.id, p.counts);
        if (how.sendBarriers) {
          for (const out of this.outputList) this.out.sendBarrier(out.handle, p.id, this.epochNow, out.sent);
        }
        if (how.recordOpenInputs) {
          for (const ch of this.inputList) {
            if (p.barrierChannels.has(ch.handle) && p.overtaken?.has(ch.handle) !== true) continue;
            const rec: RecordedMessage<P>[] = [];
            p.recording.set(ch.handle, rec as RecordedMessage<unknown>[]);
            // A log input's recording only waits for its barrier: the messages stay in the log.
            if (ch.log === undefined) ch.recorders = [...ch.recorders, rec];
          }
        }
        this.cancelTimer(p);
        const blocked: InputChannel<P>[] = [];
        for (const h of p.blocked) {
          const ch = this.inputList[h] as InputChannel<P>;
          ch.blockedFor = null;
          blocked.push(ch);
        }
        p.blocked.clear();
        this.release(blocked);
      },
      block: (p, channel) => {
        const ch = this.inputList[channel] as InputChannel<P>;
        if (ch.blockedFor !== null) broken(`${ch.id} blocked twice at ${this.id}`);
        ch.blockedFor = p;
        p.blocked.add(channel);
      },
      closeRecording: (p, channel) => {
        // An overtaking barrier's input stays recorded until the messages it overtook are delivered.
        if (p.overtaken?.has(channel) === true) return;
        const ch = this.inputList[channel] as InputChannel<P>;
        const rec = p.recording.get(channel);
        if (rec === undefined) broken(`no recording of ${ch.id} for ${p.id} at ${this.id}`);
        stopRecording(ch, rec);
        p.recording.delete(channel);
        if (ch.log !== undefined) (p.logThrough ??= new Map()).set(channel, ch.delivered);
        p.channelStates.set(channel, rec);
        p.channelStateMessages += rec.length;
        this.maybeComplete(p);
      },
      forwardInputsAligned: (p) => {
        for (const ch of this.inputList) {
          if (!ch.backEdge && !p.barrierChannels.has(ch.handle)) return false;
        }
        return true;
      },
      allInputsAligned: (p) => {
        for (const ch of this.inputList) {
          if (!p.barrierChannels.has(ch.handle)) return false;
        }
        return true;
      },
      startAlignmentTimer: (p, afterMs) => {
        p.alignmentTimerRunning = true;
        this.out.startTimer(alignmentTimer(p.id), afterMs);
      },
      pauseAndFlush: (p) => {
        if (this.pausedFor === null) {
          this.pausedFor = p.id;
          this.out.paused(p.id);
        }
        for (const out of this.outputList) this.out.sendBarrier(out.handle, p.id, this.epochNow, out.sent);
      },
      inputId: (channel) => (this.inputList[channel] as InputChannel<P>).id,
    };
  }
}

function stopRecording<P>(ch: InputChannel<P>, rec: RecordedMessage<unknown>[]): void {
  const rest = ch.recorders.filter((r) => r !== rec);
  ch.recorders = rest.length === 0 ? NO_RECORDERS : rest;
}

function alignmentTimer(checkpointId: CheckpointId): TimerKey {
  return { kind: 'alignment', checkpointId };
}

function reject(reason: RejectReason, detail: string): Rejection {
  return { reason, detail };
}

function isInput<P>(value: InputChannel<P> | Rejection): value is InputChannel<P> {
  return 'backEdge' in value;
}

/**
 * A broken invariant is a bug in this file: crash loudly rather than produce a wrong cut. Each check
 * is an `if` that builds its message only when it fails: the checks run on every barrier.
 */
function broken(message: string): never {
  throw new Error(`snapshot core invariant violated: ${message}`);
}

/** Checkpoint ids are positive safe integers; 0 would read as finished (FinishedIds' floor starts there). */
function isCheckpointId(id: number): boolean {
  return Number.isSafeInteger(id) && id > 0;
}

function invalidId(id: number, input: 'trigger' | 'barrier'): Rejection {
  return reject('invalid-checkpoint-id', `${input} of checkpoint ${String(id)}: checkpoint ids are positive integers (1, 2, ...)`);
}
