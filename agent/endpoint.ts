/**
 * One app endpoint inside the agent: the production core (`Participant`) for that app, fed one input
 * at a time from its channels, the coordinator's commands, timers and the app's own sends, and the
 * effects carried out in order: envelopes onto the wire, deliveries to the app, the state captured at
 * the cut and uploaded, acks and declines published. No protocol decision is made here.
 *
 * Inputs are serialised through one promise chain, because some effects wait for the app (a local-API
 * app answers a snapshot request over a socket): nothing after a `snapshot` effect may run before the
 * app's state is captured. Sends are never awaited inside the chain (a send waits for the receiver's
 * credit, and waiting here would stop this endpoint from consuming, which on a cycle is a deadlock).
 */
import type { Logger } from 'pino';
import { BadTrafficLog } from '../adapters/bad-traffic-log.js';
import { epochOfSeq } from '../src/core/log-range.js';
import { Participant } from '../src/core/participant.js';
import type { CheckpointAck, Effect, Input, InputHandle, OutputHandle, PolicyConfig, RecordedMessage, RejectReason, SnapshotCounts } from '../src/core/types.js';
import type { ChannelId, CheckpointId, Epoch } from '../src/ids.js';
import {
  encodeChannelState,
  type AgentEventBody,
  type AppState,
  type ObjectRef,
  type StoredLogRange,
  type StoredLogRanges,
  type WireAckStats,
  type WireDeclineReason,
} from '../src/wire/index.js';
import { AppSendError, type AppHandler, type AppLink } from './app.js';
import type { InboundChannel, InboundItem, LogInboundPosition, OutboundChannel } from './channels/types.js';
import { levelEnabled } from './lazy-log.js';

type Payload = Uint8Array;
type Ack = CheckpointAck<Payload>;
type Deliver = Extract<Effect<Payload>, { type: 'deliver' }>;
const DRAIN: Input<Payload> = { type: 'drain' };
/** What feeding an input gives: the rejection reason, if any, at once or once its effects are done. */
type FeedResult = RejectReason | undefined | Promise<RejectReason | undefined>;

/** Where app state and channel state go; the agent adapts the tenant's Object Store to this. */
export interface StatePort {
  /** Stores the bytes under the name; rejects when the store fails. */
  put(name: string, bytes: Uint8Array): Promise<ObjectRef>;
  /** Reads an object back and checks its digest; rejects on a mismatch or a missing object. */
  get(ref: ObjectRef): Promise<Uint8Array>;
  /**
   * Deletes an object; one already gone is no error. Rejects when the store fails. Absent where the
   * agent may not delete (a NATS credential has no right to purge: docs/security.md).
   */
  readonly delete?: (name: string) => Promise<void>;
}

export interface EndpointClock {
  nowMs(): number;
  setTimer(afterMs: number, fire: () => void): () => void;
}

export interface EndpointLimits {
  /**
   * How long a barrier of a checkpoint whose trigger has not reached this agent yet is held back
   * (with everything behind it on its channel) so the checkpoint runs with the requested policy.
   */
  readonly triggerWaitMs: number;
  /** An app still without an ack this long after its trigger reports that it has the trigger. */
  readonly progressAfterMs: number;
}

export const ENDPOINT_LIMITS_DEFAULT: EndpointLimits = { triggerWaitMs: 2_000, progressAfterMs: 1_000 };

export interface EndpointOptions {
  readonly server: string;
  readonly app: string;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
  /** Inputs that are log channels (their ends come from the same `openInbound`, with a `logPosition`). */
  readonly logInputs?: readonly ChannelId[];
  readonly epoch: Epoch;
  readonly handler: AppHandler;
  readonly openOutbound: (channel: ChannelId, epoch: Epoch, lastSentSeq: number) => Promise<OutboundChannel>;
  readonly openInbound: (
    channel: ChannelId,
    epoch: Epoch,
    deliveredSeq: number,
    onEnvelope: (e: InboundItem) => void,
  ) => Promise<InboundChannel>;
  readonly state: StatePort;
  /** Publishes an event from this app to the coordinator (the agent adds the header). */
  readonly publish: (event: AgentEventBody) => void;
  readonly clock: EndpointClock;
  readonly logger: Logger;
  /** Where refused traffic is counted and logged at a bounded rate; the endpoint's own if absent. */
  readonly badTraffic?: BadTrafficLog;
  readonly limits?: Partial<EndpointLimits>;
}

/** What the coordinator's trigger told this app about a checkpoint. */
export interface TriggerInfo {
  readonly checkpointId: CheckpointId;
  readonly policy: PolicyConfig;
  readonly timeoutMs: number;
  readonly initiator: boolean;
  readonly backEdgeInputs: readonly ChannelId[];
  /** A state of at most this many bytes goes inline in the ack instead of into an object; 0: never. */
  readonly inlineStateBytesMax: number;
}

export interface RestoreInfo {
  readonly checkpointId: CheckpointId;
  readonly epoch: Epoch;
  readonly state: AppState;
  readonly channelState?: ObjectRef;
  readonly counts: SnapshotCounts;
  /** Channel ids recorded in the channel state -> the ids they have now (restore into other apps). */
  readonly channelAliases: Readonly<Record<ChannelId, ChannelId>>;
}

/**
 * A log range recorded under another channel's name, read back from the stream for a restore into
 * other apps: fed to the core during the restore; the consumer then reads the channel's own
 * subject from right after `resumeAfter`, the stream's end at the read.
 */
export interface LogReplay {
  readonly messages: readonly RecordedMessage<Uint8Array>[];
  readonly resumeAfter: number;
}

/**
 * The ranges read back under another name (`replays`) were recorded in the source plan's epochs,
 * which mean nothing on this plan's epoch line (the restore's new epoch may even be below them).
 * Their messages were already picked by those epochs; to the core they are replays of the epoch
 * right before the restore's, the one label its check accepts. Later snapshots of the input begin
 * after the range, so the label never reaches a stored range.
 */
function relabelReplayed(ranges: StoredLogRanges, replays: Readonly<Record<ChannelId, LogReplay>>, epoch: Epoch): StoredLogRanges {
  let out: Record<ChannelId, StoredLogRange> | undefined;
  for (const [channel, range] of Object.entries(ranges)) {
    if (replays[channel] === undefined || epoch < 1) continue;
    (out ??= { ...ranges })[channel] = { ...range, epochs: range.throughSeq > range.afterSeq ? [{ epoch: epoch - 1, fromSeq: range.afterSeq + 1 }] : [] };
  }
  return out ?? ranges;
}

interface CheckpointTiming {
  readonly firstSeenMs: number;
  triggerMs?: number;
  snapshotStartMs?: number;
  syncMs?: number;
  asyncMs?: number;
  uploadStartMs?: number;
  inlineStateBytesMax?: number;
  state?: AppState;
  /** Log inputs: the stream sequence of the last message consumed at the snapshot. */
  logOffsets?: Map<ChannelId, number>;
  cancelTimeout?: () => void;
  /** Cancels the delayed "started" progress event. */
  cancelStarted?: () => void;
}

interface HeldChannel {
  readonly checkpointId: CheckpointId;
  readonly items: InboundItem[];
  readonly cancel: () => void;
}

export interface EndpointStats {
  readonly delivered: number;
  readonly acks: number;
  readonly declines: number;
  readonly channelFailures: number;
  /** Barriers dropped because no trigger announced their checkpoint within triggerWaitMs. */
  readonly barriersWithoutTrigger: number;
  readonly rejections: Partial<Record<RejectReason, number>>;
}

/** A restore the core refused before anything was touched (a stale or forged command): nothing changed. */
export class RestoreRefusedError extends Error {}

export function objectName(checkpointId: CheckpointId, server: string, app: string, kind: 'state' | 'channels'): string {
  return `cp/${checkpointId}/${server}/${app}/${kind}`;
}

export class Endpoint implements AppLink {
  readonly app: string;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
  private readonly core: Participant<Payload>;
  private readonly log: Logger;
  private readonly badTraffic: BadTrafficLog;
  private readonly limits: EndpointLimits;
  /** By the core's handle of the channel (its position in `outputs`, `inputs`). */
  private readonly outbound: OutboundChannel[] = [];
  private readonly inbound: InboundChannel[] = [];
  private chain: Promise<void> = Promise.resolve();
  /** Tasks queued or running on the chain. */
  private tasks = 0;
  /** Depth of `feed` calls under way (a step carried out may feed another). */
  private feeding = 0;
  /** Inline states stored during the step under way, fed once it is done (queueStoredSoon). */
  private readonly storedSoon: CheckpointId[] = [];
  /** The envelopes of the last task queued, while that task is a batch of envelopes that still takes more. */
  private openBatch: InboundItem[] | undefined;
  private readonly timings = new Map<CheckpointId, CheckpointTiming>();
  private readonly timers = new Map<CheckpointId, () => void>();
  private readonly held = new Map<ChannelId, HeldChannel>();
  private highestTriggerId = 0;
  /** The policy and back edges last configured, as JSON; undefined before the first. */
  private configuredRules: string | undefined;
  /** Sends wait while the core pauses the app (sync) or a restore is in progress. */
  private heldSends: (() => void)[] = [];
  private sendsPaused = false;
  /** True while the app handles a delivery (the last effect of its step). */
  private delivering = false;
  private closed = false;
  private transmitted: Promise<void> | undefined;
  private counters = { delivered: 0, acks: 0, declines: 0, channelFailures: 0, barriersWithoutTrigger: 0 };
  /** Inputs the core failed (a gap), with why: a checkpoint declined for it says so. Cleared by a restore. */
  private readonly failedInputs = new Map<ChannelId, string>();

  /** Creates the endpoint and opens its channels (subscriptions are ready when this resolves). */
  static async open(o: EndpointOptions): Promise<Endpoint> {
    const endpoint = new Endpoint(o);
    try {
      await endpoint.openChannels(o.epoch);
    } catch (error) {
      await endpoint.close();
      throw error;
    }
    return endpoint;
  }

  private constructor(private readonly o: EndpointOptions) {
    this.app = o.app;
    this.inputs = o.inputs;
    this.outputs = o.outputs;
    this.log = o.logger.child({ app: o.app });
    this.badTraffic = o.badTraffic ?? new BadTrafficLog(this.log);
    this.limits = { ...ENDPOINT_LIMITS_DEFAULT, ...o.limits };
    const created = Participant.create<Payload>({
      id: `${o.server}/${o.app}`,
      inputs: o.inputs,
      outputs: o.outputs,
      policy: { kind: 'aligned' },
      logInputs: o.logInputs ?? [],
    });
    if (!created.ok) throw new Error(created.error.message);
    this.core = created.participant;
    // The agent starts endpoints at the agent's epoch; a fresh core is at 0, so move it there.
    if (o.epoch > 0) {
      const logRanges = Object.fromEntries((o.logInputs ?? []).map((c) => [c, { afterSeq: 0, throughSeq: 0, epochs: [] }]));
      this.feed({ type: 'restore', epoch: o.epoch, counts: { sent: {}, received: {} }, channelStates: {}, logRanges });
    }
  }

  get stats(): EndpointStats {
    return { ...this.counters, rejections: { ...this.core.rejections } };
  }

  inFlight(): CheckpointId[] {
    return this.core.inFlight();
  }

  /** The app's fence: the coordinator's next checkpoint id must be above it (Participant.highestCheckpointId). */
  highestCheckpointId(): CheckpointId {
    return this.core.highestCheckpointId;
  }

  /** The stream position of every log input at a snapshot: where its consumer restarts on a rollback. */
  private logOffsets(): Map<ChannelId, number> | undefined {
    let offsets: Map<ChannelId, number> | undefined;
    for (const [h, inb] of this.inbound.entries()) {
      const offset = inb.logPosition?.offsetOf(this.core.deliveredFrom(h));
      if (offset !== undefined) (offsets ??= new Map()).set(inb.id, offset);
    }
    return offsets;
  }

  private async openChannels(epoch: Epoch): Promise<void> {
    for (const [h, c] of this.o.outputs.entries()) this.outbound.push(await this.o.openOutbound(c, epoch, this.core.sentOn(h)));
    for (const [h, c] of this.o.inputs.entries()) {
      this.inbound.push(await this.o.openInbound(c, epoch, this.core.deliveredFrom(h), (e) => this.onEnvelope(e)));
    }
  }

  // ---- the app's side ---------------------------------------------------------------------------

  send(channel: ChannelId, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new AppSendError('closed', `${this.app} is detached`));
    const output = this.core.outputHandle(channel);
    if (output === undefined) {
      return Promise.reject(new AppSendError('unknown-channel', `${channel} is not an output of ${this.app}; outputs: ${this.outputs.join(', ') || 'none'}`));
    }
    if (this.delivering && !this.sendsPaused) return this.sendNow(output, payload);
    // Nothing is queued or running before it: the send goes into the core now, where a queued one
    // would have gone too, without the promises of the queue (a send is the hot path of a producer).
    if (this.tasks === 0 && !this.sendsPaused && this.core.paused === null) return this.sendNow(output, payload);
    return new Promise<void>((resolve, reject) => {
      const attempt = (): void => {
        this.enqueue(async () => {
          if (this.sendsPaused) {
            this.heldSends.push(attempt);
            return;
          }
          this.transmitted = undefined;
          const rejected = await this.feed({ type: 'send', channel: output, payload });
          if (rejected === 'paused') {
            this.heldSends.push(attempt);
            return;
          }
          const sent = this.transmitted as Promise<void> | undefined;
          if (!sent) reject(new AppSendError('channel-failed', `the core did not transmit on ${channel} (${rejected ?? 'no effect'})`));
          else sent.then(resolve, reject);
        });
      };
      attempt();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const cancel of this.timers.values()) cancel();
    for (const h of this.held.values()) h.cancel();
    for (const t of this.timings.values()) stopTimers(t);
    for (const id of this.core.inFlight()) this.decline(id, 'internal', `${this.app} detached`);
    await Promise.allSettled([...this.outbound, ...this.inbound].map((c) => c.close()));
  }

  // ---- the coordinator's commands ------------------------------------------------------------

  trigger(info: TriggerInfo): void {
    if (info.checkpointId > this.highestTriggerId) this.highestTriggerId = info.checkpointId;
    this.enqueue(async () => {
      const now = this.o.clock.nowMs();
      const timing = this.timing(info.checkpointId, now);
      timing.triggerMs = now;
      timing.inlineStateBytesMax = info.inlineStateBytesMax;
      // Tells the coordinator this app has the trigger, so that a timeout names the apps that never
      // answered; only for an app still busy after a while, since a round of a thousand apps would
      // otherwise carry a thousand extra messages that say nothing the ack does not.
      timing.cancelStarted = this.o.clock.setTimer(this.limits.progressAfterMs, () =>
        this.o.publish({ type: 'progress', checkpointId: info.checkpointId, app: this.app, phase: 'started', bytesDone: 0 }),
      );
      const rules = JSON.stringify([info.policy, info.backEdgeInputs]);
      if (rules !== this.configuredRules) {
        // Other rules than the last ones applied. Checkpoints older than this one that are still in
        // flight would keep the old rules in force; they are given up first (they could not complete
        // beside a newer checkpoint under other rules), so that a trigger whose rules were wrong (a
        // corrupted or forged one, docs/security.md) cannot outlast the next true trigger.
        const older = this.core.inFlight().filter((id) => id < info.checkpointId);
        if (older.length > 0 && older.length === this.core.inFlight().length) {
          this.log.info({ checkpointId: info.checkpointId, older }, 'other rules requested: giving up the older checkpoints in flight');
          for (const id of older) {
            await this.feed({ type: 'abort', checkpointId: id });
            this.decline(id, 'subsumed', `${this.app}: checkpoint ${info.checkpointId} requests other rules`);
          }
        }
      }
      if (this.core.inFlight().length === 0 && this.core.paused === null) {
        // A configure has no effects to carry out: it only sets the rules of the next checkpoint.
        const refused = this.core.step({ type: 'configure', policy: info.policy, backEdgeInputs: info.backEdgeInputs });
        if (refused) this.log.warn({ checkpointId: info.checkpointId, reason: refused.detail }, 'could not apply the requested policy');
        else this.configuredRules = rules;
      } else if (rules !== this.configuredRules) {
        this.log.info({ checkpointId: info.checkpointId, policy: this.core.policyKind, requested: info.policy.kind }, 'checkpoints in flight: keeping the current policy');
      }
      // The agent gives its part up by itself if no abort comes: the abort may be lost.
      timing.cancelTimeout = this.o.clock.setTimer(info.timeoutMs, () =>
        this.enqueue(async () => {
          if (!this.core.inFlight().includes(info.checkpointId)) return;
          await this.feed({ type: 'abort', checkpointId: info.checkpointId });
          this.decline(info.checkpointId, 'timeout', `${this.app} gave up after ${info.timeoutMs} ms`);
        }),
      );
      if (info.initiator) await this.feed({ type: 'trigger', checkpointId: info.checkpointId });
    });
    this.releaseHeld(info.checkpointId);
  }

  abort(checkpointId: CheckpointId): void {
    this.enqueue(async () => {
      this.forget(checkpointId);
      await this.feed({ type: 'abort', checkpointId });
    });
  }

  complete(checkpointId: CheckpointId): void {
    this.enqueue(async () => {
      await this.feed({ type: 'complete', checkpointId });
    });
  }

  /**
   * Puts the app back to a checkpoint: the app's state first, then the core re-delivers the recorded
   * channel state; the app's sends stay held until `resume`, so nothing of the new epoch reaches an
   * app that has not been restored yet.
   */
  restore(
    info: RestoreInfo,
    channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<Payload>[]>>,
    state: Uint8Array,
    logRanges: StoredLogRanges = {},
    replays: Readonly<Record<ChannelId, LogReplay>> = {},
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.enqueue(async () => {
        try {
          // Asked before the app is touched: a refused restore (a stale or forged command) must leave
          // the app's state, its held envelopes and its sends as they were.
          const ranges = relabelReplayed(logRanges, replays, info.epoch);
          const refused = this.core.restoreRefusal(info.epoch, info.counts, channelStates, ranges);
          if (refused) throw new RestoreRefusedError(`the core refused the restore: ${refused.reason}: ${refused.detail}`);
          this.sendsPaused = true;
          this.o.handler.paused?.();
          for (const cancel of this.timers.values()) cancel();
          this.timers.clear();
          for (const t of this.timings.values()) stopTimers(t);
          this.timings.clear();
          for (const h of this.held.values()) h.cancel();
          this.held.clear();
          await this.o.handler.restore(state, info.checkpointId);
          const rejected = await this.feed({ type: 'restore', epoch: info.epoch, counts: info.counts, channelStates, logRanges: ranges });
          if (rejected) throw new Error(`the core refused the restore: ${rejected}`);
          for (const [h, out] of this.outbound.entries()) out.reset(info.epoch, this.core.sentOn(h));
          for (const [h, inb] of this.inbound.entries()) {
            const range = ranges[inb.id];
            const replay = replays[inb.id];
            if (inb.logPosition !== undefined && range !== undefined && replay !== undefined) await this.replayRange(h, inb.logPosition, info.epoch, range, replay);
            // A log input's consumer restarts after the recorded message: the stream replays the range.
            else if (inb.logPosition !== undefined && range !== undefined) inb.logPosition.resetAt(info.epoch, this.core.deliveredFrom(h), range.afterOffset);
            else inb.reset(info.epoch, this.core.deliveredFrom(h));
          }
          this.failedInputs.clear();
          resolve();
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
  }

  /**
   * Feeds a range read back under its recorded name, within the restore: the core has delivered it
   * before any barrier can come, so every later snapshot's position on this input is on the
   * channel's own subject (`resumeAfter`), where its consumer goes on.
   */
  private async replayRange(h: number, position: LogInboundPosition, epoch: Epoch, range: StoredLogRange, replay: LogReplay): Promise<void> {
    position.resetAt(epoch, this.core.deliveredFrom(h), replay.resumeAfter);
    for (const m of replay.messages) {
      const sentIn = epochOfSeq(range.epochs, m.seq);
      if (sentIn === undefined) throw new Error(`log range of ${this.o.inputs[h] ?? h}: no epoch for message ${m.seq}`);
      position.offer(m.seq, replay.resumeAfter);
      const fed = await this.feed({ type: 'message', channel: h, seq: m.seq, epoch: sentIn, payload: m.payload });
      position.settle(fed === undefined);
      if (fed !== undefined) throw new Error(`the core refused message ${m.seq} of the log range read back for ${this.o.inputs[h] ?? h}: ${fed}`);
    }
  }

  resume(): void {
    this.enqueue(async () => {
      this.sendsPaused = false;
      this.o.handler.resumed?.();
      this.flushHeldSends();
    });
  }

  // ---- the channels ---------------------------------------------------------------------------

  private onEnvelope(e: InboundItem): void {
    if (this.closed) return;
    const held = this.held.get(e.channel);
    if (held) {
      held.items.push(e);
      return;
    }
    // A barrier of a checkpoint this agent has not been told about yet: hold its channel (FIFO) until
    // the trigger brings the requested policy, or for triggerWaitMs at most.
    if (e.type === 'barrier' && e.epoch === this.core.epoch && e.checkpointId > this.highestTriggerId) {
      const cancel = this.o.clock.setTimer(this.limits.triggerWaitMs, () => {
        // Only the coordinator starts checkpoints, and every agent of the plan gets its trigger: a
        // barrier that none announced comes from a broken or forged sender. Taken, it would begin a
        // checkpoint nobody runs and raise this app's fence past the plan's real ids (docs/security.md).
        this.counters.barriersWithoutTrigger += 1;
        this.badTraffic.warn(
          'barrier-without-trigger',
          { checkpointId: e.checkpointId, channel: e.channel, waitedMs: this.limits.triggerWaitMs },
          'barrier of a checkpoint no trigger announced dropped',
        );
        this.releaseChannel(e.channel, e);
      });
      this.held.set(e.channel, { checkpointId: e.checkpointId, items: [e], cancel });
      return;
    }
    this.enqueueEnvelope(e);
  }

  private releaseHeld(checkpointId: CheckpointId): void {
    for (const [channel, h] of [...this.held]) if (h.checkpointId <= checkpointId) this.releaseChannel(channel);
  }

  /** Lets the items held on `channel` in, in their order, all but `dropped`. */
  private releaseChannel(channel: ChannelId, dropped?: InboundItem): void {
    const h = this.held.get(channel);
    if (!h) return;
    h.cancel();
    this.held.delete(channel);
    for (const e of h.items) if (e !== dropped) this.onEnvelope(e);
  }

  /**
   * Envelopes that arrive one after another share one task: a burst of messages costs one turn of
   * the queue instead of one each. An envelope joins the last queued task only if that task is a
   * batch of envelopes and nothing else was queued since, so every input still reaches the core in
   * arrival order.
   */
  private enqueueEnvelope(e: InboundItem): void {
    if (this.openBatch !== undefined) {
      this.openBatch.push(e);
      return;
    }
    const batch: InboundItem[] = [e];
    // Open before it is queued: on an idle endpoint it is fed at once, and closes itself when done.
    this.openBatch = batch;
    this.enqueue(() => this.feedEnvelopes(batch), batch);
  }

  private async feedEnvelopes(batch: InboundItem[]): Promise<void> {
    // The length is read at every turn: envelopes that arrive while one waits for the app join here.
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i] as InboundItem;
      try {
        // Each inbound channel passes on only envelopes of its own id, an input's: the core refuses
        // the handle -1 as an unknown channel, should one ever come.
        const channel = this.core.inputHandle(e.channel) ?? -1;
        let fed: FeedResult;
        if (e.type === 'message' && 'run' in e) {
          // Read before a restore restarted the stream consumer: the restarted one reads it again if it belongs.
          if (e.run.stopped) continue;
          const position = this.inbound[channel]?.logPosition;
          position?.offer(e.seq, e.offset);
          fed = this.feed({ type: 'message', channel, seq: e.seq, epoch: e.epoch, payload: e.payload });
          if (fed instanceof Promise) fed = fed.then((reason) => (position?.settle(reason === undefined), reason));
          else position?.settle(fed === undefined);
        } else if (e.type === 'message') {
          fed = this.feed({ type: 'message', channel, seq: e.seq, epoch: e.epoch, payload: e.payload });
        } else {
          this.timing(e.checkpointId, this.o.clock.nowMs());
          fed = this.feed({ type: 'barrier', channel, checkpointId: e.checkpointId, epoch: e.epoch, afterSeq: e.afterSeq, overtaking: e.overtaking === true });
        }
        if (fed instanceof Promise) await fed;
      } catch (error) {
        // As a task of its own would have: the failure is logged and the envelopes after it still go in.
        this.log.error({ err: error, channel: e.channel, type: e.type }, 'endpoint task failed');
      }
    }
    // Closed in the same turn as the last check of the length, so no envelope is left behind in it.
    if (this.openBatch === batch) this.openBatch = undefined;
  }

  // ---- driving the core ---------------------------------------------------------------------

  /**
   * Runs `task` after every task queued before it. On an idle endpoint it starts at once, in the
   * caller's turn, where a queued one would have started next anyway: a trigger or a barrier then
   * costs no promise steps before its work begins (they showed in every agent's profile, once per
   * checkpoint and app). `batch`: the open batch of envelopes this task feeds, left open for it.
   * A task waits only for the app (or with its sends paused), never for the agent's own I/O: an app's
   * send made while the queue is busy queues too, and must reach the core before any barrier that
   * had not yet been fed when the app sent (its state no longer holds what it sent).
   */
  private enqueue(task: () => Promise<void>, batch?: InboundItem[]): void {
    if (this.openBatch !== batch) this.openBatch = undefined;
    this.tasks += 1;
    let run: Promise<void>;
    if (this.tasks === 1) {
      try {
        run = task();
      } catch (error) {
        run = Promise.reject(error);
      }
    } else run = this.chain.then(task);
    this.chain = run.then(
      () => {
        this.tasks -= 1;
      },
      (error: unknown) => {
        this.tasks -= 1;
        this.log.error({ err: error }, 'endpoint task failed');
      },
    );
  }

  /**
   * Feeds one input and carries out its effects; gives the rejection reason, if any. Synchronous
   * unless an effect has to wait (the app's delivery or snapshot returned a promise): a message to
   * an app that handles it at once costs no turn of the event loop.
   */
  private feed(input: Input<Payload>): FeedResult {
    const mark = this.core.effects.length;
    this.feeding += 1;
    let rejected: ReturnType<Participant<Payload>['step']>;
    let waiting: Promise<void> | undefined;
    try {
      rejected = this.core.step(input);
      if (rejected) {
        const { reason, detail } = rejected;
        const quiet = reason.startsWith('duplicate') || reason.startsWith('stale') || reason === 'paused';
        this.log[quiet ? 'debug' : 'warn']({ input: input.type, reason, ...('checkpointId' in input ? { checkpointId: input.checkpointId } : {}) }, detail);
      }
      waiting = this.carryOut(mark, mark, this.core.effects.length);
    } finally {
      this.feeding -= 1;
    }
    const reason = rejected?.reason;
    if (this.feeding === 0) this.queueStoredSoon();
    return waiting === undefined ? reason : waiting.then(() => reason);
  }

  /**
   * The inline states taken while a step was carried out go in as tasks of their own once it is
   * done, as any later input: the barriers that step forwarded are then written to the socket
   * before the ack is even built (nats.js writes in a microtask after the first publish onto an
   * empty buffer, and the task runs after it), so a pipeline's next hop does not wait for the ack's
   * encoding and the core's step for it. That costs an agent a second socket write per checkpoint;
   * depth 20 went from 3.12 to 2.93 ms (medians of five alternating runs; docs/BENCHMARKS.md).
   */
  private queueStoredSoon(): void {
    for (const id of this.storedSoon.splice(0)) {
      this.enqueue(async () => {
        await this.feed({ type: 'snapshot-stored', checkpointId: id });
      });
    }
  }

  /**
   * Carries out the effects `from`..`end` of the step that wrote them from `mark` on, in order, and
   * releases them; then whatever the core released meanwhile: released items wait until the app has
   * handled the delivery before them (and sent what it would). While an effect waits, the step's
   * effects stay unreleased: a send made meanwhile (`sendNow`) writes and releases its own after them.
   */
  private carryOut(mark: number, from: number, end: number): Promise<void> | undefined {
    const effects = this.core.effects;
    for (let i = from; i < end; i++) {
      const e = effects.at(i);
      const waiting = this.effect(e);
      if (waiting !== undefined) {
        const next = e.type === 'snapshot' ? this.barriersAhead(i + 1, end) : i + 1;
        return waiting.then(
          () => this.carryOut(mark, next, end),
          (error: unknown) => {
            effects.release(mark);
            throw error;
          },
        );
      }
    }
    effects.release(mark);
    if (this.core.backlogSize === 0) return undefined;
    this.core.step(DRAIN);
    return this.carryOut(mark, mark, effects.length);
  }

  /**
   * The barriers that follow a snapshot the app takes its time over go out before it is done, as
   * Flink sends a checkpoint's barrier downstream before it takes the operator's state: the cut is
   * already fixed by the counts the core took, the app gets no delivery until its snapshot is done,
   * and a send it makes meanwhile reaches the core only after this task (the queue is busy), so
   * behind the barrier and outside the snapshot, as it would be anyway. What that saves is the
   * snapshot's time at every hop of a pipeline (an app behind the local API answers over a socket).
   * Returns the index of the first effect after them.
   */
  private barriersAhead(from: number, end: number): number {
    const effects = this.core.effects;
    let i = from;
    for (; i < end; i++) {
      const e = effects.at(i);
      if (e.type !== 'send-barrier') break;
      this.effect(e);
    }
    return i;
  }

  /**
   * A send straight into the core. Made while the app handles a delivery it must go in at once: a
   * delivery is always the last effect of its step, so the send lands right after it, before anything
   * queued behind. Made with nothing queued, it lands where the queue would have put it.
   */
  private sendNow(channel: OutputHandle, payload: Uint8Array): Promise<void> {
    const effects = this.core.effects;
    const mark = effects.length;
    const rejected = this.core.step({ type: 'send', channel, payload });
    let sent: Promise<void> | undefined;
    let other: string | undefined;
    for (let i = mark; i < effects.length; i++) {
      const e = effects.at(i);
      if (e.type === 'transmit') sent = (this.outbound[e.channel] as OutboundChannel).sendMessage(e.seq, e.epoch, e.payload);
      else other = e.type;
    }
    effects.release(mark);
    if (other !== undefined) throw new Error(`a send produced ${other}: a bug in the core`);
    if (rejected) return Promise.reject(new AppSendError(rejected.reason === 'unknown-channel' ? 'unknown-channel' : 'channel-failed', rejected.detail));
    return sent ?? Promise.reject(new AppSendError('channel-failed', `the core did not transmit on ${this.core.outputId(channel)}`));
  }

  /** Carries out one effect; a promise only when the effect has to wait. */
  private effect(e: Effect<Payload>): Promise<void> | undefined {
    switch (e.type) {
      case 'transmit': {
        const sent = (this.outbound[e.channel] as OutboundChannel).sendMessage(e.seq, e.epoch, e.payload);
        this.transmitted = sent;
        // The app that sent it sees a failure through its own promise; this copy must not go unhandled.
        sent.catch(() => undefined);
        return;
      }
      case 'send-barrier': {
        const out = this.outbound[e.channel] as OutboundChannel;
        const checkpointId = e.checkpointId;
        const channel = this.core.outputId(e.channel);
        // An unaligned checkpoint records what its barrier overtakes, so its barrier need not wait
        // behind messages queued for credit; under any other policy it keeps its FIFO place.
        out.sendBarrier(checkpointId, e.epoch, e.afterSeq, this.core.policyKind === 'unaligned').catch((error: unknown) => {
          this.log.warn({ checkpointId, channel, err: error }, 'barrier not sent');
        });
        return;
      }
      case 'deliver':
        return this.deliver(e);
      case 'snapshot':
        return this.onSnapshot(e.checkpointId);
      case 'ack':
        this.onAck(e.ack);
        return undefined;
      case 'decline': {
        const failed = [...this.failedInputs].map(([c, why]) => `input ${c} failed: ${why}`).join('; ');
        this.decline(e.checkpointId, e.reason, `${this.app}: ${e.reason === 'channel-failed' && failed !== '' ? failed : e.reason}`);
        return;
      }
      case 'start-timer': {
        // The effect's record is reused once released; the timer key it points to is the shell's.
        const timer = e.timer;
        const id = timer.checkpointId;
        this.timers.set(
          id,
          this.o.clock.setTimer(e.afterMs, () => {
            this.timers.delete(id);
            this.enqueue(async () => {
              await this.feed({ type: 'timer', timer });
            });
          }),
        );
        return;
      }
      case 'cancel-timer':
        this.timers.get(e.timer.checkpointId)?.();
        this.timers.delete(e.timer.checkpointId);
        return;
      case 'paused':
        this.sendsPaused = true;
        this.o.handler.paused?.();
        return;
      case 'resumed':
        this.sendsPaused = false;
        this.o.handler.resumed?.();
        this.flushHeldSends();
        return;
      case 'channel-failed': {
        const channel = this.core.inputId(e.channel);
        this.counters.channelFailures += 1;
        this.failedInputs.set(channel, e.detail);
        this.log.error({ channel, detail: e.detail }, 'input channel failed: no checkpoint can complete until a rollback');
        return;
      }
    }
  }

  private deliver(e: Deliver): Promise<void> | undefined {
    this.counters.delivered += 1;
    this.delivering = true;
    let handled: void | Promise<void>;
    try {
      handled = this.o.handler.deliver(this.core.inputId(e.channel), e.payload);
    } catch (error) {
      this.delivered(e, error);
      return undefined;
    }
    if (!isThenable(handled)) {
      this.delivered(e, undefined);
      return undefined;
    }
    return Promise.resolve(handled).then(
      () => this.delivered(e, undefined),
      (error: unknown) => this.delivered(e, error ?? new Error('rejected without a reason')),
    );
  }

  private delivered(e: Deliver, error: unknown): void {
    this.delivering = false;
    if (error !== undefined) this.log.error({ channel: this.core.inputId(e.channel), seq: e.seq, err: error }, 'the app failed to handle a message');
    this.inbound[e.channel]?.consumed(this.core.deliveredFrom(e.channel));
  }

  private flushHeldSends(): void {
    const held = this.heldSends;
    this.heldSends = [];
    for (const attempt of held) attempt();
  }

  /** The checkpoint is over for this app: its timers stop and its timing goes. */
  private forget(id: CheckpointId): void {
    const t = this.timings.get(id);
    if (t) stopTimers(t);
    this.timings.delete(id);
  }

  private timing(id: CheckpointId, now: number): CheckpointTiming {
    let t = this.timings.get(id);
    if (!t) {
      t = { firstSeenMs: now };
      this.timings.set(id, t);
    }
    return t;
  }

  /**
   * Captures the app's state at the cut (the chain waits), then uploads it in the background. An
   * app whose snapshot returns its bytes at once is carried on in the same turn: the barrier it
   * forwards next is one hop of every pipeline's checkpoint, and a promise step there is latency.
   */
  private onSnapshot(id: CheckpointId): Promise<void> | undefined {
    const t = this.timing(id, this.o.clock.nowMs());
    t.snapshotStartMs = this.o.clock.nowMs();
    const offsets = this.logOffsets();
    if (offsets !== undefined) t.logOffsets = offsets;
    let taken: Uint8Array | Promise<Uint8Array>;
    try {
      taken = this.o.handler.snapshot(id);
    } catch (error) {
      return this.snapshotFailed(id, error);
    }
    const startMs = t.snapshotStartMs;
    if (taken instanceof Uint8Array) {
      this.snapshotTaken(id, t, startMs, taken);
      return undefined;
    }
    return Promise.resolve(taken).then(
      (bytes) => this.snapshotTaken(id, t, startMs, bytes),
      (error: unknown) => this.snapshotFailed(id, error),
    );
  }

  private async snapshotFailed(id: CheckpointId, error: unknown): Promise<void> {
    this.log.error({ checkpointId: id, err: error }, 'the app failed to snapshot');
    await this.feed({ type: 'abort', checkpointId: id });
    this.decline(id, 'internal', `${this.app} failed to snapshot: ${error instanceof Error ? error.message : String(error)}`);
  }

  private snapshotTaken(id: CheckpointId, t: CheckpointTiming, startMs: number, bytes: Uint8Array): void {
    t.syncMs = this.o.clock.nowMs() - startMs;
    t.uploadStartMs = this.o.clock.nowMs();
    if (bytes.byteLength <= (t.inlineStateBytesMax ?? 0)) {
      // Small enough to travel in the ack: no object, no upload (Flink's memory threshold).
      t.state = { kind: 'inline', bytes };
      if (this.feeding > 0) this.storedSoon.push(id);
      else {
        this.enqueue(async () => {
          await this.feed({ type: 'snapshot-stored', checkpointId: id });
        });
      }
      return;
    }
    this.o.publish({ type: 'progress', checkpointId: id, app: this.app, phase: 'snapshot-taken', bytesDone: 0 });
    this.o.state.put(objectName(id, this.o.server, this.app, 'state'), bytes).then(
      (ref) => {
        t.state = { kind: 'object', ref };
        this.enqueue(async () => {
          // Not awaited: the queue would wait on the store, and a send the app made meanwhile would
          // queue behind a barrier that came before it, outside the snapshot's counts and state both.
          if (!this.timings.has(id)) return void this.discardLate(id, ref.name);
          await this.feed({ type: 'snapshot-stored', checkpointId: id });
        });
      },
      (error: unknown) => {
        this.enqueue(async () => {
          this.log.error({ checkpointId: id, err: error }, 'state upload failed');
          await this.feed({ type: 'abort', checkpointId: id });
          this.decline(id, 'store-failed', `${this.app}: state upload failed: ${error instanceof Error ? error.message : String(error)}`);
        });
      },
    );
  }

  private onAck(e: Ack): void {
    const t = this.timings.get(e.checkpointId);
    let logRanges: Record<ChannelId, StoredLogRange> | undefined;
    for (const [channel, range] of Object.entries(e.logRanges ?? {})) {
      const afterOffset = t?.logOffsets?.get(channel);
      if (afterOffset === undefined) {
        this.decline(e.checkpointId, 'internal', `${this.app}: no stream position for ${channel} at the snapshot`);
        return;
      }
      (logRanges ??= {})[channel] = Object.assign({ afterOffset }, range);
    }
    const hasChannelState = anyRecorded(e.channelStates) || logRanges !== undefined;
    if (!hasChannelState) {
      this.publishAck(e, t, undefined);
      return;
    }
    const encoded = encodeChannelState(e.channelStates, logRanges);
    if (!encoded.ok) {
      this.decline(e.checkpointId, 'internal', `${this.app}: channel state not encodable: ${encoded.error.message}`);
      return;
    }
    this.o.state.put(objectName(e.checkpointId, this.o.server, this.app, 'channels'), encoded.value).then(
      (ref) => (this.timings.has(e.checkpointId) ? this.publishAck(e, t, ref) : void this.discardLate(e.checkpointId, ref.name)),
      (error: unknown) => this.decline(e.checkpointId, 'store-failed', `${this.app}: channel state upload failed: ${String(error)}`),
    );
  }

  /**
   * A method, not a closure in onAck: under tsx (esbuild's keepNames) every closure made costs a
   * call that names it, and this runs once per app and checkpoint.
   */
  private publishAck(e: Ack, t: CheckpointTiming | undefined, channelState: ObjectRef | undefined): void {
    const now = this.o.clock.nowMs();
    this.forget(e.checkpointId);
    this.counters.acks += 1;
    // Object.assign rather than a spread followed by more fields (slow on Node 20; once per ack).
    const stats: WireAckStats = Object.assign({}, e.stats, {
      startDelayMs: t?.triggerMs !== undefined ? Math.max(0, Math.round(t.firstSeenMs - t.triggerMs)) : 0,
      alignmentMs: t?.snapshotStartMs !== undefined ? Math.round(t.snapshotStartMs - t.firstSeenMs) : 0,
      syncMs: Math.round(t?.syncMs ?? 0),
      asyncMs: t?.uploadStartMs !== undefined ? Math.round(now - t.uploadStartMs) : 0,
    });
    if (!t?.state) {
      this.log.error({ checkpointId: e.checkpointId }, 'ack without a stored state: a bug');
      this.decline(e.checkpointId, 'internal', `${this.app}: no stored state`);
      return;
    }
    const ack: AgentEventBody = { type: 'ack', checkpointId: e.checkpointId, app: this.app, counts: e.counts, state: t.state, stats };
    if (channelState) Object.assign(ack, { channelState });
    this.o.publish(ack);
    // Built only when it is written: once per app and checkpoint.
    if (levelEnabled(this.log, 'info')) this.log.info(Object.assign({ checkpointId: e.checkpointId }, stats), 'acked');
  }

  /**
   * An object stored after its checkpoint was aborted here (or rolled back past): nobody will ask for
   * it, and the coordinator's clean-up of the checkpoint may already have run, so the agent that
   * wrote it deletes it (docs/RELIABILITY.md, F11), where it may. A failure is logged; the
   * coordinator's late sweep is the second chance.
   */
  private async discardLate(id: CheckpointId, name: string): Promise<void> {
    const remove = this.o.state.delete;
    if (remove === undefined) {
      this.log.info({ checkpointId: id, object: name }, "object stored after its checkpoint ended here: left to the coordinator's late sweep");
      return;
    }
    try {
      await remove(name);
      this.log.info({ checkpointId: id, object: name }, 'object stored after its checkpoint ended here: deleted');
    } catch (error) {
      this.log.warn({ checkpointId: id, object: name, err: error }, 'object stored after its checkpoint ended here: not deleted');
    }
  }

  private decline(checkpointId: CheckpointId, reason: WireDeclineReason, detail: string): void {
    this.counters.declines += 1;
    this.forget(checkpointId);
    this.log.warn({ checkpointId, reason }, detail);
    this.o.publish({ type: 'decline', checkpointId, app: this.app, reason, detail });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function stopTimers(t: CheckpointTiming): void {
  t.cancelTimeout?.();
  t.cancelStarted?.();
}

/** Whether any input recorded a message (without the arrays Object.values would make per ack). */
function anyRecorded(states: Readonly<Record<string, readonly unknown[]>>): boolean {
  for (const channel in states) if ((states[channel] as readonly unknown[]).length > 0) return true;
  return false;
}
