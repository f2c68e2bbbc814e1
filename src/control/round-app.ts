/**
 * The app level of a round (`RoundLevel`): triggers to the initiators the graph analysis picks, the
 * core's CheckpointTracker for the ack accounting, the cut checked on the acked counts before the
 * commit, abort notices to every server. Policy `none` (the baseline) with volumes copies each volume
 * on its own, one after another, while the apps keep running: what a naive protection service does.
 *
 * Staged (BeginCheckpoint at level app), under policy `sync`: each app holds its sends from its
 * snapshot until the complete notice (or the abort, or its own timeout, which the trigger sets to
 * the hold deadline). The caller's volume snapshots, taken while held, must start after the last
 * ack and end by the finish.
 */
import { checkCut } from '../checker/index.js';
import { CheckpointTracker } from '../core/tracker.js';
import type { PolicyConfig, SnapshotCounts } from '../core/types.js';
import type { ProcessId } from '../ids.js';
import { processId, splitProcessId, type AgentEvent } from '../wire/index.js';
import {
  declineToFailure,
  type CommitObject,
  type LevelContext,
  type RoundEventInput,
  type RoundLevel,
  type RoundRejection,
  type RoundVolumeRecord,
  type TakenVolume,
} from './round.js';
import { initiatorsFor, serverTriggers, type PlanGraph } from './round-graph.js';
import { checkGivenVolumes, givenOutsideWindow } from './round-crash.js';

type AckEvent = Extract<AgentEvent, { type: 'ack' }>;

export interface AppLevelConfig {
  readonly checkpointId: number;
  readonly graph: PlanGraph;
  readonly policy: PolicyConfig;
  readonly timeoutMs: number;
  /** An app's state up to this size comes inline in its ack; a larger inline state is refused. */
  readonly inlineStateBytesMax: number;
  /** The plan's newest completed checkpoint, announced with the triggers. */
  readonly completedBefore: number | undefined;
  /** Policy none: the plan's volumes, copied one by one before the commit. */
  readonly volumes: readonly { readonly id: string; readonly server: string }[];
  readonly volumeBackend: boolean;
  readonly planId: string;
}

export class AppLevel implements RoundLevel {
  readonly kind = 'app';
  readonly storesObjects = true;
  private readonly tracker: CheckpointTracker<AckEvent>;
  /** The last progress phase each app reported: a timeout names who never answered first. */
  private readonly phases = new Map<ProcessId, string>();
  private readonly acked = new Set<ProcessId>();
  private acks: ReadonlyMap<ProcessId, AckEvent> | undefined;
  /** When the last ack came: from then on every app holds (staged, policy sync). */
  private lastAckAt = 0;

  static create(config: AppLevelConfig): { ok: true; level: AppLevel } | { ok: false; message: string } {
    if (!Number.isSafeInteger(config.inlineStateBytesMax) || config.inlineStateBytesMax < 0) {
      return { ok: false, message: `inlineStateBytesMax must be an integer >= 0, got ${config.inlineStateBytesMax}` };
    }
    const tracker = CheckpointTracker.create<AckEvent>({ participants: config.graph.participants, checkpointTimeoutMs: config.timeoutMs, checkpointsInFlightMax: 1 });
    if (!tracker.ok) return { ok: false, message: tracker.error.message };
    return { ok: true, level: new AppLevel(config, tracker.tracker) };
  }

  private constructor(
    private readonly config: AppLevelConfig,
    tracker: CheckpointTracker<AckEvent>,
  ) {
    this.tracker = tracker;
  }

  start(ctx: LevelContext): void {
    const initiators = initiatorsFor(this.config.graph, this.config.policy);
    // The tracker's own timer is not used: the round's checkpoint timer covers it.
    const started = this.tracker.step({ type: 'start', checkpointId: this.config.checkpointId, initiators });
    if (started.rejected) {
      ctx.fail('internal', started.rejected.detail);
      return;
    }
    const aligned = this.config.policy.kind === 'aligned' || this.config.policy.kind === 'aligned-timeout';
    ctx.emit({
      type: 'trigger',
      triggers: serverTriggers(this.config.graph, initiators, aligned),
      policy: this.config.policy,
      timeoutMs: this.config.timeoutMs,
      inlineStateBytesMax: this.config.inlineStateBytesMax,
      completedCheckpointId: this.config.completedBefore,
    });
  }

  event(input: RoundEventInput, ctx: LevelContext): RoundRejection | undefined {
    switch (input.type) {
      case 'ack':
        return this.ack(input.event, ctx);
      case 'decline': {
        if (ctx.state === 'aborting') return { reason: 'aborted', detail: `decline from ${input.event.server} after checkpoint ${ctx.checkpointId} aborted` };
        const e = input.event;
        const who = e.app !== undefined ? processId(e.server, e.app) : e.server;
        ctx.emit({ type: 'log', level: 'warn', message: `declined: ${e.detail}`, fields: { server: e.server, app: e.app, reason: e.reason } });
        ctx.emit({ type: 'patch-part', server: e.server, app: e.app, patch: { failureReason: declineToFailure(e.reason), failureDetail: e.detail } });
        ctx.emit({ type: 'progress', kind: 'app-declined', server: e.server, ...(e.app !== undefined ? { app: e.app } : {}), detail: `${e.reason}: ${e.detail}` });
        ctx.fail(declineToFailure(e.reason), `${who} declined (${e.reason}): ${e.detail}`);
        return undefined;
      }
      case 'progress': {
        const e = input.event;
        this.phases.set(processId(e.server, e.app), e.phase);
        ctx.emit({ type: 'progress', kind: 'app-progress', server: e.server, app: e.app, detail: e.phase });
        return undefined;
      }
      default:
        return { reason: 'unexpected', detail: `${input.type} from ${input.event.server} in an app-level checkpoint` };
    }
  }

  private ack(e: AckEvent, ctx: LevelContext): RoundRejection | undefined {
    const process = processId(e.server, e.app);
    if (ctx.state === 'aborting') return { reason: 'aborted', detail: `ack from ${process} after checkpoint ${ctx.checkpointId} aborted` };
    if (e.state.kind === 'inline' && e.state.bytes.byteLength > this.config.inlineStateBytesMax) {
      // The agent broke the trigger's limit: the record would outgrow its budget, so the part is refused.
      const detail = `${process} acked ${e.state.bytes.byteLength} bytes of state inline, above the trigger's limit of ${this.config.inlineStateBytesMax}`;
      ctx.emit({ type: 'log', level: 'warn', message: detail, fields: { server: e.server, app: e.app } });
      ctx.fail('declined', detail);
      return undefined;
    }
    const result = this.tracker.step({ type: 'ack', checkpointId: ctx.checkpointId, process, ack: e });
    if (result.rejected) return { reason: result.rejected.reason === 'duplicate-ack' ? 'duplicate' : result.rejected.reason === 'unknown-participant' ? 'unknown-participant' : 'refused', detail: result.rejected.detail };
    this.acked.add(process);
    this.lastAckAt = Math.max(this.lastAckAt, ctx.nowMs);
    ctx.emit({ type: 'part-acked', ack: e, atMs: ctx.nowMs });
    ctx.emit({ type: 'progress', kind: 'app-acked', server: e.server, app: e.app });
    for (const x of result.effects) {
      if (x.type !== 'completed') continue;
      this.acks = x.acks;
      ctx.ready();
    }
    return undefined;
  }

  /** Whether the acked counts make a consistent cut; fails the round when they do not. */
  private cutHolds(ctx: LevelContext): boolean {
    if (this.config.policy.kind === 'none') return true;
    const snapshots: Record<ProcessId, SnapshotCounts> = {};
    for (const [p, a] of this.acks ?? new Map<ProcessId, AckEvent>()) snapshots[p] = a.counts;
    const report = checkCut({ channels: this.config.graph.graph.channels, snapshots, channelStates: {} });
    const orphans = report.violations.filter((v) => v.kind === 'orphan' || v.kind === 'missing-snapshot');
    if (orphans.length === 0) return true;
    ctx.fail('internal', `the cut is not consistent: ${orphans.map((v) => v.message).join('; ')}`);
    return false;
  }

  commit(ctx: LevelContext): void {
    if (!this.cutHolds(ctx)) return;
    if (this.config.policy.kind === 'none' && this.config.volumes.length > 0) {
      if (!this.config.volumeBackend) {
        ctx.fail('volume-snapshot-failed', `plan ${this.config.planId} has volumes but the coordinator has no volume backend`);
        return;
      }
      ctx.snapshotVolumes(true);
      return;
    }
    ctx.commit(this.objects());
  }

  volumesTaken(ok: boolean, taken: readonly TakenVolume[], detail: string | undefined, ctx: LevelContext): void {
    if (!ok) {
      ctx.fail('volume-snapshot-failed', detail ?? 'the volume backend failed');
      return;
    }
    ctx.emit({ type: 'set-volumes', volumes: this.volumeRecords(taken) });
    ctx.commit(this.objects());
  }

  checkGiven(given: readonly TakenVolume[]): string | undefined {
    return checkGivenVolumes(this.config.volumes, given);
  }

  volumesGiven(given: readonly TakenVolume[], ctx: LevelContext): void {
    if (!this.cutHolds(ctx)) return;
    const outside = givenOutsideWindow(given, this.lastAckAt, ctx.nowMs, 'every app acked');
    if (outside !== undefined) {
      ctx.fail('volume-snapshot-failed', outside);
      return;
    }
    ctx.emit({
      type: 'set-volumes',
      volumes: given.map((t) => ({ volumeId: t.volumeId, server: t.server, snapshotRef: t.snapshotRef, frozenAtUnixMs: this.lastAckAt, snapshotAtUnixMs: t.startedAtUnixMs, thawedAtUnixMs: ctx.nowMs })),
    });
    ctx.emit({ type: 'progress', kind: 'volumes-snapshotted', detail: `${given.length} volume(s), by the caller` });
    ctx.commit(this.objects());
  }

  /** Every stored object the acks name, to be checked against its acked digest. */
  private objects(): CommitObject[] {
    const objects: CommitObject[] = [];
    for (const [p, a] of this.acks ?? []) {
      if (a.state.kind === 'object') objects.push({ who: p, ref: a.state.ref });
      if (a.channelState) objects.push({ who: p, ref: a.channelState });
    }
    return objects;
  }

  thawAnswered(): void {}

  timerFired(): void {}

  /**
   * A timeout names the apps that did not ack, those that never answered the trigger first: the
   * one that is silent is the one to look at, the others usually wait for it (alignment).
   */
  timedOut(ctx: LevelContext): string {
    const silent: string[] = [];
    const answered: string[] = [];
    for (const p of this.config.graph.participants) {
      if (this.acked.has(p)) continue;
      const phase = this.phases.get(p);
      if (phase === undefined) silent.push(p);
      else answered.push(`${p} (${phase})`);
    }
    for (const who of silent) {
      const s = splitProcessId(who);
      if (s) ctx.emit({ type: 'patch-part', server: s.server, app: s.app, patch: { failureReason: 'timeout', failureDetail: 'no answer to the trigger before the timeout' } });
    }
    const words: string[] = [];
    if (silent.length > 0) words.push(`no answer from ${silent.join(', ')}`);
    if (answered.length > 0) words.push(`no ack yet from ${answered.join(', ')}`);
    return words.join('; ');
  }

  abort(ctx: LevelContext): void {
    this.tracker.step({ type: 'cancel', checkpointId: ctx.checkpointId, reason: 'aborted' });
    const detail = (ctx.failure?.detail ?? 'aborted').slice(0, 500);
    // Notices are best effort: an agent that misses one times its part out by itself.
    for (const server of this.config.graph.servers) ctx.emit({ type: 'publish', server, command: { type: 'abort', checkpointId: ctx.checkpointId, reason: detail }, bestEffort: true });
  }

  completed(ctx: LevelContext): void {
    // The complete notice rides on the plan's next trigger (Trigger.completed_checkpoint_id); only a
    // sync participant, paused until it hears, gets one of its own.
    if (this.config.policy.kind !== 'sync') return;
    for (const server of this.config.graph.servers) ctx.emit({ type: 'publish', server, command: { type: 'complete', checkpointId: ctx.checkpointId }, bestEffort: true });
  }

  awaiting(): boolean {
    return false;
  }

  volumeRecords(taken: readonly TakenVolume[]): RoundVolumeRecord[] {
    // No freeze at level none: the copy's start is its moment.
    return taken.map((t) => ({ volumeId: t.volumeId, server: t.server, snapshotRef: t.snapshotRef, frozenAtUnixMs: 0, snapshotAtUnixMs: t.startedAtUnixMs, thawedAtUnixMs: 0 }));
  }
}
