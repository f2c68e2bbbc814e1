/**
 * The one shell of a checkpoint round, for every level. It feeds the pure round machine
 * (src/control/round.ts) with agent events, timer firings and the outcomes of the I/O it asked for,
 * and carries out the machine's effects: commands over the bus, the record (parts, frozen windows,
 * volumes, state) and its writes, timers, the volume backend, the commit's digest checks and the
 * clean-up. It makes no protocol decision: which phase comes next, what fails a round, what is
 * cleaned up and when are the machine's.
 */
import type { Logger } from 'pino';
import { Round, type TakenVolume as GivenVolume, type CommitObject, type RoundEffect, type RoundFailure, type RoundInput, type RoundLevel, type RoundRejection, type RoundTimer, type TakenVolume } from '../../src/control/round.js';
import type { NegativeControls } from '../../src/control/negative-controls.js';
import type { AgentEvent } from '../../src/wire/index.js';
import { sha256Digest, type StateObjects } from '../../adapters/state-store.js';
import type { ControlBus } from '../bus.js';
import type { AppPart, CheckpointRecord, ConsistencyLevel, InlineState, Plan, ProgressEvent, ServerFreeze } from '../model.js';
import type { CheckpointStore, StoredCheckpoint } from '../store/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { deleteCheckpointObjects } from './part-state.js';
import { PartTable } from './part-table.js';
import { CommitError, progressEvent, RecordWriter, stateFields } from './record-writer.js';

export interface RunnerDeps {
  readonly bus: ControlBus;
  readonly store: CheckpointStore;
  readonly objects: StateObjects;
  readonly volumes: VolumeBackend | undefined;
  readonly logger: Logger;
  readonly nowUnixMs: () => number;
  /** Called with every progress event (the service fans them out to watchers). */
  readonly progress: (e: ProgressEvent) => void;
  /** Whether anyone watches this checkpoint's progress. */
  readonly watched: (id: number) => boolean;
  /** The record as the service created it (its revision spares the first write a read). */
  readonly stored?: StoredCheckpoint;
  /** Called once, when the checkpoint ended either way, after its record is written. */
  readonly ended: (record: CheckpointRecord) => void;
  readonly commitTimeoutMs: number;
  /** How long each thaw may take to be confirmed. */
  readonly thawTimeoutMs: number;
  /** How long an abort waits for answers under way before it cleans up. */
  readonly settleMs: number;
  readonly negativeControls: NegativeControls;
}

/** How far the stored record of a running checkpoint may lag behind the live one. */
const RECORD_REFRESH_MS = 1_000;

/** Object look-ups of a commit in flight at once. */
const COMMIT_LOOKUPS_IN_FLIGHT_MAX = 32;

export class CheckpointRunner {
  private readonly round: Round;
  private readonly log: Logger;
  /** The record but for its parts, which live in the part table. */
  private base: CheckpointRecord;
  private readonly parts: PartTable;
  private assembled: CheckpointRecord | undefined;
  private readonly servers = new Map<string, ServerFreeze>();
  private readonly writer: RecordWriter;
  private readonly timers = new Map<RoundTimer, NodeJS.Timeout>();
  private readonly levelAchieved: ConsistencyLevel;
  /** The fields the commit stored with the completed record. */
  private committed: Partial<CheckpointRecord> | undefined;
  /** Inputs that arrived while effects were being carried out (a send failing at once). */
  private readonly queue: RoundInput[] = [];
  private stepping = false;
  /** The commit's checks and write: a read-back of the record waits for it to settle. */
  private commitTask: Promise<void> = Promise.resolve();
  /** Why the step just fed was rejected (a cancel and a finish answer with it). */
  private lastRejection: RoundRejection | undefined;

  constructor(
    initial: CheckpointRecord,
    private readonly plan: Plan,
    level: RoundLevel,
    private readonly deps: RunnerDeps,
  ) {
    this.base = initial;
    this.parts = new PartTable(initial.parts);
    this.levelAchieved = level.kind === 'crash' ? 'crash' : initial.levelRequested;
    this.log = deps.logger.child({ checkpointId: initial.id, plan: plan.id, tenant: plan.tenant, level: level.kind });
    this.writer = new RecordWriter(deps.store, initial.id, this.log, deps.stored);
    this.writer.onWritten((r) => this.feed({ type: 'stored', ok: r.ok, ...(r.ok ? {} : { detail: r.error.message }), nowMs: this.deps.nowUnixMs() }));
    const round = Round.create(
      {
        checkpointId: initial.id,
        timeoutMs: initial.options.timeoutMs,
        commitTimeoutMs: deps.commitTimeoutMs,
        refreshMs: RECORD_REFRESH_MS,
        settleMs: deps.settleMs,
        negativeControls: deps.negativeControls,
        ...(initial.holdMs !== undefined ? { staged: { holdMs: initial.holdMs } } : {}),
      },
      level,
    );
    if (!round.ok) throw new Error(round.error.message);
    this.round = round.round;
  }

  get id(): number {
    return this.base.id;
  }

  get tenant(): string {
    return this.base.tenant;
  }

  get epoch(): number {
    return this.base.epoch;
  }

  get current(): CheckpointRecord {
    return this.record;
  }

  private get record(): CheckpointRecord {
    const parts = this.parts.all;
    // A change of the base drops the assembled record; a patched part gives a new parts array.
    if (this.assembled?.parts !== parts) this.assembled = Object.assign({}, this.base, { parts });
    return this.assembled;
  }

  start(): void {
    this.feed({ type: 'start', nowMs: this.deps.nowUnixMs() });
  }

  /** Why the round refused the cancel (it ended, or its commit is under way and decides), if it did. */
  cancel(detail: string): RoundRejection | undefined {
    this.lastRejection = undefined;
    this.feed({ type: 'cancel', detail, nowMs: this.deps.nowUnixMs() });
    return this.lastRejection;
  }

  /** A staged checkpoint's finish with the caller's volume snapshots; why the round refused it, if it did. */
  finish(volumes: readonly GivenVolume[]): RoundRejection | undefined {
    this.lastRejection = undefined;
    this.feed({ type: 'finish', volumes, nowMs: this.deps.nowUnixMs() });
    return this.lastRejection;
  }

  /**
   * Every agent event about this checkpoint, also after it ended (when the service still routes
   * them): an answer that comes after the abort names objects the round then deletes.
   */
  onEvent(e: AgentEvent): void {
    if (e.type !== 'ack' && e.type !== 'decline' && e.type !== 'progress' && e.type !== 'frozen' && e.type !== 'thawed' && e.type !== 'quiesced' && e.type !== 'captured') return;
    this.feed({ type: e.type, event: e, nowMs: this.deps.nowUnixMs() } as RoundInput);
  }

  private feed(input: RoundInput): void {
    if (this.stepping) {
      this.queue.push(input);
      return;
    }
    this.stepping = true;
    try {
      this.step(input);
      while (this.queue.length > 0) this.step(this.queue.shift() as RoundInput);
    } finally {
      this.stepping = false;
    }
  }

  private step(input: RoundInput): void {
    const r = this.round.step(input);
    if (input.type === 'cancel' || input.type === 'finish') this.lastRejection = r.rejected;
    if (r.rejected) {
      const fields = { input: input.type, reason: r.rejected.reason, ...('event' in input ? { server: input.event.server } : {}) };
      // Events after the end are expected (progress, a late thaw): not worth a warning.
      if (r.rejected.reason === 'finished') this.log.debug(fields, r.rejected.detail);
      else this.log.warn(fields, r.rejected.detail);
    }
    for (const e of r.effects) this.apply(e);
  }

  private apply(e: RoundEffect): void {
    switch (e.type) {
      case 'set-state':
        return this.setState(e.state, e.failure, e.nowMs);
      case 'set-failure':
        return this.setBase({ failureReason: e.failure.reason, failureDetail: e.failure.detail });
      case 'persist':
        this.writer.persist((r) => Object.assign({}, r, this.record), 'live');
        return;
      case 'patch-part':
        this.parts.patch(e.server, e.app, e.patch);
        return;
      case 'part-acked':
        return this.partAcked(e.ack, e.atMs);
      case 'patch-server': {
        const prior = this.servers.get(e.server) ?? { server: e.server, hooks: [] };
        this.servers.set(e.server, Object.assign({}, prior, e.patch));
        this.setBase({ servers: this.plan.servers.map((s) => this.servers.get(s) ?? { server: s, hooks: [] }) });
        return;
      }
      case 'set-volumes':
        // A staged round's volumes are the caller's snapshots: kept apart, so that deleting the
        // checkpoint never deletes them through this coordinator's backend.
        return this.setBase(this.base.holdMs !== undefined ? { callerVolumes: e.volumes } : { volumes: e.volumes });
      case 'progress':
        // Building an event assembles the whole record: not once per ack of a large plan that nobody watches.
        if (this.deps.watched(this.base.id)) this.deps.progress(progressEvent(e.kind, this.deps.nowUnixMs(), this.record, { server: e.server, app: e.app, detail: e.detail }));
        return;
      case 'log':
        this.log[e.level](e.fields ?? {}, e.message);
        return;
      case 'trigger':
        return this.sendTriggers(e);
      case 'publish':
        try {
          this.deps.bus.send(Object.assign({ tenant: this.plan.tenant, server: e.server, plan: this.plan.id, epoch: this.base.epoch }, e.command));
        } catch (error) {
          if (e.bestEffort) this.log.warn({ server: e.server, command: e.command.type, err: error }, 'command not sent (best effort)');
          else this.feed({ type: 'publish-failed', server: e.server, command: e.command.type, detail: String(error), nowMs: this.deps.nowUnixMs() });
        }
        return;
      case 'request-thaw':
        for (const server of e.servers) this.requestThaw(server);
        return;
      case 'start-timer': {
        clearTimeout(this.timers.get(e.name));
        const timer = setTimeout(() => {
          this.timers.delete(e.name);
          this.feed({ type: 'timer-fired', name: e.name, nowMs: this.deps.nowUnixMs() });
        }, e.ms);
        // The refresh and the sweep after an abort must not keep a process alive; the round's deadlines must fire.
        if (e.name === 'refresh' || e.name === 'late-sweep') timer.unref();
        this.timers.set(e.name, timer);
        return;
      }
      case 'cancel-timer':
        clearTimeout(this.timers.get(e.name));
        this.timers.delete(e.name);
        return;
      case 'snapshot-volumes':
        return this.snapshotVolumes(e.oneByOne);
      case 'commit':
        return this.commit(e.objects);
      case 'read-record':
        return this.readRecord();
      case 'clean-up':
        return this.cleanUp(e.objects, e.volumes, e.lateObjects ?? []);
      case 'ended':
        // The sweep an aborted round arms as it ends fires after the end; nothing else may.
        for (const [name, t] of this.timers) {
          if (name === 'late-sweep') continue;
          clearTimeout(t);
          this.timers.delete(name);
        }
        void this.writer.flushed().then(() => this.deps.ended(this.record));
        return;
    }
  }

  private setBase(fields: Partial<CheckpointRecord>): void {
    this.base = Object.assign({}, this.base, fields);
    this.assembled = undefined;
  }

  private setState(state: CheckpointRecord['state'], failure: RoundFailure | null, nowMs: number): void {
    // The completed record was written by the commit; its fields are the ones that were stored.
    const extra = state === 'completed' && this.committed ? this.committed : stateFields(state, failure, nowMs, this.levelAchieved);
    this.setBase(Object.assign({ state }, extra));
    this.log.info(extra.failureReason ? { state, failure: extra.failureReason, detail: extra.failureDetail } : { state }, `checkpoint ${state}`);
    if (this.deps.watched(this.base.id)) this.deps.progress(progressEvent('state-changed', this.deps.nowUnixMs(), this.record, { detail: extra.failureDetail }));
  }

  private partAcked(e: Extract<AgentEvent, { type: 'ack' }>, atMs: number): void {
    // Built field by field: spreads in the middle of a literal take Node 20's slow path, once per ack.
    const patch: { -readonly [K in keyof AppPart]?: AppPart[K] } = { acked: true, ackedAtUnixMs: atMs };
    if (e.state.kind === 'object') patch.state = e.state.ref;
    else patch.inlineState = inlineState(e.state.bytes);
    if (e.channelState) patch.channelState = e.channelState;
    patch.counts = e.counts;
    patch.startDelayMs = e.stats.startDelayMs;
    patch.alignmentMs = e.stats.alignmentMs;
    patch.syncMs = e.stats.syncMs;
    patch.asyncMs = e.stats.asyncMs;
    patch.bufferedMessages = e.stats.bufferedMessages;
    patch.channelStateMessages = e.stats.channelStateMessages;
    patch.finishedUnaligned = e.stats.finishedUnaligned;
    this.parts.patch(e.server, e.app, patch);
    if (this.log.isLevelEnabled('info')) this.log.info(Object.assign({ server: e.server, app: e.app }, e.stats), 'app acked');
  }

  /**
   * One trigger for the whole plan on its trigger subject (DESIGN.md section 5, decided 2026-12): a
   * round of N servers is one publish instead of N; the bus sends a server its own part only while
   * it is not known to hold the plan's layout (coordinator/plan-layouts.ts).
   */
  private sendTriggers(e: Extract<RoundEffect, { type: 'trigger' }>): void {
    try {
      this.deps.bus.broadcastTrigger({
        tenant: this.plan.tenant,
        plan: this.plan.id,
        epoch: this.base.epoch,
        checkpointId: this.base.id,
        policy: e.policy,
        timeoutMs: e.timeoutMs,
        inlineStateBytesMax: e.inlineStateBytesMax,
        ...(e.completedCheckpointId !== undefined ? { completedCheckpointId: e.completedCheckpointId } : {}),
        servers: e.triggers,
      });
    } catch (error) {
      const first = e.triggers[0]?.server ?? '';
      this.feed({ type: 'publish-failed', server: first, command: 'trigger', detail: String(error), nowMs: this.deps.nowUnixMs() });
    }
  }

  private requestThaw(server: string): void {
    const thaw = { type: 'thaw' as const, tenant: this.plan.tenant, server, plan: this.plan.id, epoch: this.base.epoch, checkpointId: this.base.id, afterRestore: false };
    let reply: Promise<AgentEvent | undefined>;
    try {
      reply = this.deps.bus.request(thaw, this.deps.thawTimeoutMs);
    } catch (error) {
      this.log.error({ server, err: error }, 'thaw not sent');
      reply = Promise.resolve(undefined);
    }
    void reply.then((r) => this.feed({ type: 'thaw-answered', server, confirmed: r?.type === 'thawed', nowMs: this.deps.nowUnixMs() }));
  }

  /**
   * One call for the group, or (level none) one per volume, one after another: what a naive
   * protection service does. Whatever exists when a call fails is reported, so that it is deleted.
   */
  private snapshotVolumes(oneByOne: boolean): void {
    const backend = this.deps.volumes;
    const run = async (): Promise<{ ok: boolean; taken: TakenVolume[]; detail?: string }> => {
      if (!backend) return { ok: false, taken: [], detail: `plan ${this.plan.id} has volumes but the coordinator has no volume backend` };
      if (!oneByOne) {
        const r = await backend.snapshot(this.plan.volumes, this.base.id);
        return r.ok ? { ok: true, taken: r.value } : { ok: false, taken: [], detail: r.error.message };
      }
      const taken: TakenVolume[] = [];
      for (const v of this.plan.volumes) {
        const r = await backend.snapshot([v], this.base.id);
        if (!r.ok) return { ok: false, taken, detail: r.error.message };
        taken.push(...r.value);
      }
      return { ok: true, taken };
    };
    void run()
      .catch((error: unknown) => ({ ok: false, taken: [] as TakenVolume[], detail: error instanceof Error ? error.message : String(error) }))
      .then((r) => this.feed({ type: 'volume-snapshot-finished', ok: r.ok, taken: r.taken, ...(r.detail !== undefined ? { detail: r.detail } : {}), nowMs: this.deps.nowUnixMs() }));
  }

  /**
   * The atomic commit: every object exists with the digest its app acked, and only then is the
   * record written as completed. That write is the commit point (RecordWriter.commitCompleted): a
   * check that fails means the record was not written; a write that fails may have landed, which
   * the round resolves by reading the record back.
   */
  private commit(objects: readonly CommitObject[]): void {
    const checked = (async () => {
      // Independent look-ups, so several at a time; bounded, so a large plan does not flood NATS.
      await eachLimited(objects, COMMIT_LOOKUPS_IN_FLIGHT_MAX, async ({ who, ref }) => {
        const info = await this.deps.objects.info(this.plan.tenant, ref.name);
        if (!info.ok) throw new CommitError('store-failed', `${who}: ${ref.name}: ${info.error.message}`);
        if (info.value.digest !== ref.digest) throw new CommitError('store-failed', `${who}: ${ref.name} has digest ${info.value.digest}, the app acked ${ref.digest}`);
      });
    })();
    this.commitTask = checked.then(
      async () => {
        const written = await this.writer.commitCompleted(() => this.record, this.levelAchieved, this.deps.nowUnixMs());
        if (written.ok) {
          this.committed = written.value;
          this.feed({ type: 'committed', ok: true, nowMs: this.deps.nowUnixMs() });
        } else this.feed({ type: 'commit-unknown', detail: `the completed record may not have been stored: ${written.error.message}`, nowMs: this.deps.nowUnixMs() });
      },
      (error: unknown) => {
        // An object missing or different, or its look-up failed: the record was not written.
        this.feed({ type: 'committed', ok: false, reason: 'store-failed', detail: error instanceof Error ? error.message : String(error), nowMs: this.deps.nowUnixMs() });
      },
    );
  }

  /** After the commit settled (its write cannot land later), the record as stored. */
  private readRecord(): void {
    void this.commitTask
      .then(() => this.writer.readBack())
      .then((r) => {
        if (r.ok && r.value.state === 'completed') this.committed = { finishedAtUnixMs: r.value.finishedAtUnixMs, levelAchieved: r.value.levelAchieved };
        this.feed(r.ok ? { type: 'record-read', ok: true, state: r.value.state, nowMs: this.deps.nowUnixMs() } : { type: 'record-read', ok: false, detail: r.error.message, nowMs: this.deps.nowUnixMs() });
      });
  }

  /** Deletes what an aborted round stored: its objects (found by the record, the checkpoint's prefix and late acks) and volume snapshots. */
  private cleanUp(objects: boolean, volumes: readonly TakenVolume[], lateObjects: readonly string[]): void {
    const run = async (): Promise<{ objectsError?: string; volumesError?: string }> => {
      const out: { objectsError?: string; volumesError?: string } = {};
      if (objects) {
        const r = await deleteCheckpointObjects(this.deps.objects, this.record, lateObjects).catch((error: unknown) => ({ ok: false as const, message: String(error) }));
        if (!r.ok) out.objectsError = r.message;
      } else if (lateObjects.length > 0) {
        const r = await this.deps.objects.delete(this.plan.tenant, lateObjects).catch((error: unknown) => ({ ok: false as const, error: { message: String(error) } }));
        if (!r.ok) out.objectsError = r.error.message;
      }
      if (volumes.length > 0) {
        if (!this.deps.volumes) out.volumesError = 'the coordinator has no volume backend';
        else {
          const r = await this.deps.volumes.delete(volumes).catch((error: unknown) => ({ ok: false as const, error: { message: String(error) } }));
          if (!r.ok) out.volumesError = r.error.message;
        }
      }
      return out;
    };
    void run().then((r) => this.feed(Object.assign({ type: 'cleaned' as const, volumes, nowMs: this.deps.nowUnixMs() }, r)));
  }
}

function inlineState(bytes: Uint8Array): InlineState {
  return { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), digest: sha256Digest(bytes), sizeBytes: bytes.byteLength };
}

/** Runs `fn` on every item with at most `limit` calls in flight; rejects with the first failure. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
