/**
 * One checkpoint in flight: the xstate lifecycle supplies the phases, the core's CheckpointTracker
 * does the ack accounting, and this shell carries out the named actions: triggers to every agent of
 * the plan, the commit (every part present with its digest, the cut checked, the record written as
 * completed), the complete or abort notices, and the clean-up of an aborted checkpoint's parts.
 */
import type { Logger } from 'pino';
import { createActor, type Actor } from 'xstate';
import { checkCut } from '../../src/checker/index.js';
import { CheckpointTracker } from '../../src/core/tracker.js';
import type { PolicyConfig, SnapshotCounts } from '../../src/core/types.js';
import type { CheckpointId, ProcessId } from '../../src/ids.js';
import { processId, type AgentEvent, type WireDeclineReason } from '../../src/wire/index.js';
import { sha256Digest, type StateObjects } from '../../adapters/state-store.js';
import type { ControlBus } from '../bus.js';
import type { AppPart, CheckpointRecord, FailureReason, InlineState, Plan, ProgressEvent } from '../model.js';
import type { CheckpointStore, StoredCheckpoint } from '../store/index.js';
import { checkpointLifecycle } from './lifecycle.js';
import { CommitError, progressEvent, RecordWriter, stateFields } from './record-writer.js';
import type { VolumeBackend } from '../volumes/backend.js';
import type { VolumeSnapshot } from '../model.js';
import { deleteCheckpointObjects } from './part-state.js';
import { PartTable } from './part-table.js';
import { initiatorsFor, serverTriggers, type PlanGraph } from './plan-graph.js';

type AckEvent = Extract<AgentEvent, { type: 'ack' }>;

export interface RunDeps {
  readonly bus: ControlBus;
  readonly store: CheckpointStore;
  readonly objects: StateObjects;
  readonly logger: Logger;
  readonly nowUnixMs: () => number;
  /** Called with every progress event (the service fans them out to watchers). */
  readonly progress: (e: ProgressEvent) => void;
  /** Whether anyone watches this checkpoint's progress. */
  readonly watched: (id: CheckpointId) => boolean;
  /** The trigger's inline_state_bytes_max: an app's state up to this size comes in its ack. */
  readonly inlineStateBytesMax: number;
  /** The record as the service created it (its revision spares the first write a read). */
  readonly stored?: StoredCheckpoint;
  /** The plan's newest completed checkpoint before this one, announced with the triggers. */
  readonly completedBefore?: CheckpointId;
  /** Called once, when the checkpoint ended either way. */
  readonly ended: (record: CheckpointRecord) => void;
  readonly commitTimeoutMs: number;
  /** Level none with volumes: each volume is copied on its own, one after another, no freeze. */
  readonly volumes?: VolumeBackend;
}

export function declineToFailure(reason: WireDeclineReason): FailureReason {
  switch (reason) {
    case 'subsumed':
      return 'subsumed';
    case 'channel-failed':
      return 'channel-failed';
    case 'timeout':
      return 'timeout';
    case 'store-failed':
      return 'store-failed';
    case 'hook-failed':
      return 'hook-failed';
    case 'freeze-failed':
      return 'freeze-failed';
    case 'stale-epoch':
      return 'epoch-changed';
    case 'unknown-app':
      return 'agent-unavailable';
    default:
      return 'declined';
  }
}

export class CheckpointRun {
  private readonly actor: Actor<typeof checkpointLifecycle>;
  private readonly tracker: CheckpointTracker<AckEvent>;
  private readonly log: Logger;
  /** The record but for its parts, which live in the part table. */
  private base: CheckpointRecord;
  private readonly parts: PartTable;
  private assembled: CheckpointRecord | undefined;
  private readonly writer: RecordWriter;
  private refresh: NodeJS.Timeout | undefined;
  /** The fields the commit stored with the completed record. */
  private committed: Partial<CheckpointRecord> | undefined;
  /** Set when the commit writes the completed record: refreshes stop. */
  private sealed = false;
  private finished = false;
  /** The last progress phase each app reported, to say who is missing when the checkpoint times out. */
  private readonly phases = new Map<ProcessId, string>();
  /** The missing apps, described once when the checkpoint timed out (the abort must not change it). */
  private missing: string | undefined;

  constructor(
    initial: CheckpointRecord,
    private readonly plan: Plan,
    private readonly g: PlanGraph,
    private readonly policy: PolicyConfig,
    private readonly deps: RunDeps,
  ) {
    this.base = initial;
    this.parts = new PartTable(initial.parts);
    this.log = deps.logger.child({ checkpointId: initial.id, plan: plan.id, tenant: plan.tenant });
    this.writer = new RecordWriter(deps.store, initial.id, this.log, deps.stored);
    const tracker = CheckpointTracker.create<AckEvent>({
      participants: g.participants,
      checkpointTimeoutMs: initial.options.timeoutMs,
      checkpointsInFlightMax: 1,
    });
    if (!tracker.ok) throw new Error(tracker.error.message);
    this.tracker = tracker.tracker;
    const machine = checkpointLifecycle.provide({
      actions: {
        recordState: (_, params) => this.recordState(params.state as CheckpointRecord['state'], params.failure),
        sendTriggers: () => this.sendTriggers(),
        commit: () => this.commit(),
        // The complete notice rides on the plan's next trigger (Trigger.completed_checkpoint_id); only a
        // sync participant, paused until it hears, gets one of its own.
        sendCompletes: () => (this.policy.kind === 'sync' ? this.notify('complete') : undefined),
        sendAborts: (_, params) => this.notify('abort', params.detail),
        cleanUp: () => this.cleanUp(),
      },
    });
    this.actor = createActor(machine, {
      input: { checkpointId: initial.id, timeoutMs: initial.options.timeoutMs, commitTimeoutMs: deps.commitTimeoutMs },
    });
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
    // setBase drops the assembled record; a patched part gives a new parts array.
    if (this.assembled?.parts !== parts) this.assembled = { ...this.base, parts };
    return this.assembled;
  }

  private setBase(fields: Partial<CheckpointRecord>): void {
    this.base = { ...this.base, ...fields };
    this.assembled = undefined;
  }

  start(): void {
    this.actor.start();
    this.actor.send({ type: 'START' });
  }

  cancel(detail: string): void {
    if (this.finished) return;
    this.actor.send({ type: 'FAIL', reason: 'cancelled', detail });
  }

  /** Every agent event about this checkpoint. */
  onEvent(e: AgentEvent): void {
    if (this.finished) return;
    if (e.type === 'ack') return this.onAck(e);
    if (e.type === 'decline') {
      const who = e.app !== undefined ? processId(e.server, e.app) : e.server;
      this.log.warn({ server: e.server, app: e.app, reason: e.reason }, `declined: ${e.detail}`);
      this.patchPart(e.server, e.app, { failureReason: declineToFailure(e.reason), failureDetail: e.detail });
      this.emit('app-declined', e.server, e.app, `${e.reason}: ${e.detail}`);
      this.actor.send({ type: 'FAIL', reason: declineToFailure(e.reason), detail: `${who} declined (${e.reason}): ${e.detail}` });
      return;
    }
    if (e.type === 'progress') {
      this.phases.set(processId(e.server, e.app), e.phase);
      this.emit('app-progress', e.server, e.app, e.phase);
    }
  }

  /**
   * A timeout names the apps that did not ack, those that never answered the trigger first: the
   * one that is silent is the one to look at, the others usually wait for it (alignment).
   */
  private withMissingApps(failure: { reason: FailureReason; detail: string } | null): { reason: FailureReason; detail: string } | null {
    if (!failure || failure.reason !== 'timeout') return failure;
    if (this.missing === undefined) {
      const waiting = this.record.parts.filter((p) => !p.acked).map((p) => ({ who: processId(p.server, p.app), phase: this.phases.get(processId(p.server, p.app)) }));
      const silent = waiting.filter((w) => w.phase === undefined).map((w) => w.who);
      const answered = waiting.filter((w) => w.phase !== undefined).map((w) => `${w.who} (${w.phase})`);
      this.missing = [
        ...(silent.length > 0 ? [`no answer from ${silent.join(', ')}`] : []),
        ...(answered.length > 0 ? [`no ack yet from ${answered.join(', ')}`] : []),
      ].join('; ');
      for (const who of silent) {
        const [server, app] = who.split('/');
        this.patchPart(server as string, app, { failureReason: 'timeout', failureDetail: 'no answer to the trigger before the timeout' });
      }
    }
    return this.missing === '' ? failure : { reason: failure.reason, detail: `${failure.detail}: ${this.missing}` };
  }

  private onAck(e: AckEvent): void {
    const process = processId(e.server, e.app);
    if (e.state.kind === 'inline' && e.state.bytes.byteLength > this.deps.inlineStateBytesMax) {
      // The agent broke the trigger's limit: the record would outgrow its budget, so the part is refused.
      const detail = `${process} acked ${e.state.bytes.byteLength} bytes of state inline, above the trigger's limit of ${this.deps.inlineStateBytesMax}`;
      this.log.warn({ server: e.server, app: e.app }, detail);
      this.actor.send({ type: 'FAIL', reason: 'declined', detail });
      return;
    }
    const result = this.tracker.step({ type: 'ack', checkpointId: this.base.id, process, ack: e });
    if (result.rejected) {
      this.log.warn({ server: e.server, app: e.app, reason: result.rejected.reason }, result.rejected.detail);
      return;
    }
    // Built field by field: spreads in the middle of a literal take Node 20's slow path, once per ack.
    const patch: { -readonly [K in keyof AppPart]?: AppPart[K] } = { acked: true, ackedAtUnixMs: this.deps.nowUnixMs() };
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
    this.patchPart(e.server, e.app, patch);
    if (this.log.isLevelEnabled('info')) this.log.info(Object.assign({ server: e.server, app: e.app }, e.stats), 'app acked');
    this.emit('app-acked', e.server, e.app, undefined);
    if (result.effects.some((x) => x.type === 'completed')) this.actor.send({ type: 'ALL_ACKED' });
  }

  private patchPart(server: string, app: string | undefined, patch: Partial<AppPart>): void {
    if (this.parts.patch(server, app, patch)) this.refreshSoon();
  }

  private recordState(state: CheckpointRecord['state'], failureIn: { reason: FailureReason; detail: string } | null): void {
    const failure = state === 'aborting' || state === 'aborted' ? this.withMissingApps(failureIn) : failureIn;
    const now = this.deps.nowUnixMs();
    // The completed record was written by the commit; its fields are the ones that were stored.
    const extra = state === 'completed' && this.committed ? this.committed : stateFields(state, failure, now, this.base.levelRequested);
    this.setBase({ state, ...extra });
    this.log.info({ state, ...(extra.failureReason ? { failure: extra.failureReason, detail: extra.failureDetail } : {}) }, `checkpoint ${state}`);
    if (state === 'aborting' || state === 'aborted') this.persistNow();
    else if (state !== 'completed') this.refreshSoon();
    else if (this.refresh !== undefined) clearTimeout(this.refresh);
    this.emit('state-changed', undefined, undefined, extra.failureDetail);
    if (state === 'completed' || state === 'aborted') {
      this.finished = true;
      void this.writer.flushed().then(() => this.deps.ended(this.record));
    }
  }

  /** Queues a write of the live record (state, fields and parts as they are when it is written). */
  private persistNow(): void {
    if (this.refresh !== undefined) clearTimeout(this.refresh);
    this.refresh = undefined;
    this.writer.persist((r) => ({ ...r, ...this.record }), 'live');
  }

  /**
   * While the checkpoint runs, the stored record follows the live one (which Get and Watch serve)
   * within RECORD_REFRESH_MS: a round of a thousand acks is then not a thousand writes of a growing
   * record, and a round that ends sooner is written once, at its end. The end and an abort are
   * written at once: those are what another reader must not miss.
   */
  private refreshSoon(): void {
    if (this.refresh !== undefined || this.finished || this.sealed) return;
    this.refresh = setTimeout(() => {
      this.refresh = undefined;
      this.persistNow();
    }, RECORD_REFRESH_MS);
    this.refresh.unref();
  }

  private emit(kind: ProgressEvent['kind'], server: string | undefined, app: string | undefined, detail: string | undefined): void {
    // Building an event assembles the whole record: not once per ack of a large plan that nobody watches.
    if (!this.deps.watched(this.base.id)) return;
    this.deps.progress(progressEvent(kind, this.deps.nowUnixMs(), this.record, { server, app, detail }));
  }

  private sendTriggers(): void {
    const initiators = initiatorsFor(this.g, this.policy);
    const started = this.tracker.step({ type: 'start', checkpointId: this.base.id, initiators });
    if (started.rejected) {
      queueMicrotask(() => this.actor.send({ type: 'FAIL', reason: 'internal', detail: started.rejected?.detail ?? 'tracker refused' }));
      return;
    }
    const aligned = this.policy.kind === 'aligned' || this.policy.kind === 'aligned-timeout';
    const triggers = serverTriggers(this.g, initiators, aligned);
    try {
      for (const server of this.g.servers) {
        const t = triggers.get(server) ?? { initiatorApps: [], backEdgeChannels: [] };
        this.deps.bus.send({
          type: 'trigger',
          tenant: this.plan.tenant,
          server,
          plan: this.plan.id,
          epoch: this.base.epoch,
          checkpointId: this.base.id,
          policy: this.policy,
          timeoutMs: this.base.options.timeoutMs,
          initiatorApps: t.initiatorApps,
          backEdgeChannels: t.backEdgeChannels,
          inlineStateBytesMax: this.deps.inlineStateBytesMax,
          completedCheckpointId: this.deps.completedBefore,
        });
      }
    } catch (error) {
      queueMicrotask(() => this.actor.send({ type: 'FAIL', reason: 'internal', detail: String(error) }));
      return;
    }
    queueMicrotask(() => this.actor.send({ type: 'TRIGGERS_SENT' }));
  }

  /**
   * The atomic commit: every part's objects exist with the digest its app acked, the cut passes the
   * checker on the acked counts, and only then is the record written as completed.
   */
  private commit(): void {
    void (async () => {
      const stored = this.record.parts.flatMap((p) => [p.state, p.channelState].flatMap((ref) => (ref ? [{ who: `${p.server}/${p.app}`, ref }] : [])));
      // Independent look-ups, so several at a time; bounded, so a large plan does not flood NATS.
      await eachLimited(stored, COMMIT_LOOKUPS_IN_FLIGHT_MAX, async ({ who, ref }) => {
        const info = await this.deps.objects.info(this.plan.tenant, ref.name);
        if (!info.ok) throw new CommitError('store-failed', `${who}: ${ref.name}: ${info.error.message}`);
        if (info.value.digest !== ref.digest) throw new CommitError('store-failed', `${who}: ${ref.name} has digest ${info.value.digest}, the app acked ${ref.digest}`);
      });
      if (this.policy.kind !== 'none') {
        const snapshots: Record<ProcessId, SnapshotCounts> = {};
        for (const p of this.record.parts) if (p.counts) snapshots[processId(p.server, p.app)] = p.counts;
        const report = checkCut({ channels: this.g.graph.channels, snapshots, channelStates: {} });
        const orphans = report.violations.filter((v) => v.kind === 'orphan' || v.kind === 'missing-snapshot');
        if (orphans.length > 0) throw new CommitError('internal', `the cut is not consistent: ${orphans.map((v) => v.message).join('; ')}`);
      }
      if (this.policy.kind === 'none' && this.plan.volumes.length > 0) await this.copyVolumesOneByOne();
      // The commit point (RecordWriter.commitCompleted). No refresh may land after its write: it
      // would store the live state, still `committing`.
      this.sealed = true;
      if (this.refresh !== undefined) clearTimeout(this.refresh);
      this.refresh = undefined;
      this.committed = await this.writer.commitCompleted(() => this.record, this.base.levelRequested, this.deps.nowUnixMs());
      this.actor.send({ type: 'COMMITTED' });
    })().catch((error: unknown) => {
      const reason = error instanceof CommitError ? error.reason : 'store-failed';
      this.actor.send({ type: 'FAIL', reason, detail: error instanceof Error ? error.message : String(error) });
    });
  }

  /**
   * The baseline's volumes: what a naive protection service does, each volume backed up on its own
   * at its own moment while the apps keep running. Kept to show what that gets wrong.
   */
  private async copyVolumesOneByOne(): Promise<void> {
    if (!this.deps.volumes) throw new CommitError('volume-snapshot-failed', `plan ${this.plan.id} has volumes but the coordinator has no volume backend`);
    const taken: VolumeSnapshot[] = [];
    for (const v of this.plan.volumes) {
      const r = await this.deps.volumes.snapshot([v], this.base.id);
      if (!r.ok) throw new CommitError('volume-snapshot-failed', r.error.message);
      for (const s of r.value) {
        taken.push({ volumeId: s.volumeId, server: s.server, snapshotRef: s.snapshotRef, frozenAtUnixMs: 0, snapshotAtUnixMs: s.startedAtUnixMs, thawedAtUnixMs: 0 });
      }
    }
    this.setBase({ volumes: taken });
    this.refreshSoon();
  }

  private notify(notice: 'complete' | 'abort', detail = ''): void {
    for (const server of this.g.servers) {
      try {
        const base = { tenant: this.plan.tenant, server, plan: this.plan.id, epoch: this.base.epoch, checkpointId: this.base.id };
        if (notice === 'complete') this.deps.bus.send({ ...base, type: 'complete' });
        else this.deps.bus.send({ ...base, type: 'abort', reason: detail.slice(0, 500) });
      } catch (error) {
        // Notices are best effort: an agent that misses one times its part out by itself.
        this.log.warn({ server, err: error }, `${notice} notice not sent`);
      }
    }
  }

  /** An aborted checkpoint leaves nothing behind: the parts some apps already stored are deleted. */
  private cleanUp(): void {
    void (async () => {
      const r = await deleteCheckpointObjects(this.deps.objects, this.record);
      if (!r.ok) this.log.warn({ error: r.message }, 'parts of an aborted checkpoint not deleted');
    })()
      .catch((error: unknown) => this.log.warn({ err: error }, 'parts of an aborted checkpoint not deleted'))
      .finally(() => this.actor.send({ type: 'CLEANED' }));
  }
}

function inlineState(bytes: Uint8Array): InlineState {
  return { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), digest: sha256Digest(bytes), sizeBytes: bytes.byteLength };
}

/** How far the stored record of a running checkpoint may lag behind the live one. */
const RECORD_REFRESH_MS = 1_000;

/** Object look-ups of a commit in flight at once. */
const COMMIT_LOOKUPS_IN_FLIGHT_MAX = 32;

/** Runs `fn` on every item with at most `limit` calls in flight; rejects with the first failure. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
