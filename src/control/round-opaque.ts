/**
 * The opaque level of a round (`RoundLevel`): a plan whose channels are all the apps' own TCP is cut
 * by quiescing in topological order, driving the core's QuiescePlan (src/core/quiesce.ts). Its
 * `quiesce`, `capture` and `resume` effects become one command per server; `done` is "every
 * participant answered". The commit checks the cut on the counts: `sent` is what each app reported
 * it had sent when it quiesced, `received` the drain position of each input (or, inside one strongly
 * connected component, which is quiesced as one, the sender's position). An abort resumes every app
 * told to quiesce and not resumed yet, and waits (bounded) for captures under way, so that the
 * states they store are deleted by the clean-up rather than left behind.
 */
import { checkCut } from '../checker/index.js';
import { QuiescePlan, type QuiesceEffect, type QuiesceInput } from '../core/quiesce.js';
import type { SnapshotCounts } from '../core/types.js';
import type { AppGraph } from '../graph/index.js';
import type { ChannelId, ProcessId } from '../ids.js';
import { processId, splitProcessId, type AgentEvent, type ObjectRef } from '../wire/index.js';
import {
  declineToFailure,
  type CommitObject,
  type LevelContext,
  type RoundCommand,
  type RoundEventInput,
  type RoundLevel,
  type RoundRejection,
  type RoundVolumeRecord,
} from './round.js';

export interface OpaqueLevelConfig {
  /** The plan's graph of opaque channels. */
  readonly graph: AppGraph;
}

interface AppProgress {
  quiesceSentAt?: number;
  resumeSentAt?: number;
  readonly drainTo: Record<ChannelId, number>;
  outputPositions?: Readonly<Record<ChannelId, number>>;
  state?: ObjectRef;
  counts?: SnapshotCounts;
}

export class OpaqueLevel implements RoundLevel {
  readonly kind = 'opaque';
  readonly storesObjects = true;
  private readonly plan: QuiescePlan;
  private readonly apps = new Map<ProcessId, AppProgress>();
  /** Every position reported so far, by channel (what `received` of an intra-component input uses). */
  private readonly positions: Record<ChannelId, number> = {};
  /** Apps told to capture that have not answered (captured or declined) yet. */
  private readonly capturing = new Set<ProcessId>();

  constructor(private readonly config: OpaqueLevelConfig) {
    this.plan = new QuiescePlan(config.graph);
    for (const p of config.graph.processes) this.apps.set(p, { drainTo: {} });
  }

  start(ctx: LevelContext): void {
    this.step({ type: 'start' }, ctx);
  }

  event(input: RoundEventInput, ctx: LevelContext): RoundRejection | undefined {
    switch (input.type) {
      case 'quiesced':
        return this.quiesced(input.event, ctx);
      case 'captured':
        return this.captured(input.event, ctx);
      case 'decline':
        return this.declined(input.event, ctx);
      default:
        return { reason: 'unexpected', detail: `${input.type} from ${input.event.server} in an opaque checkpoint` };
    }
  }

  private quiesced(e: Extract<AgentEvent, { type: 'quiesced' }>, ctx: LevelContext): RoundRejection | undefined {
    const who = processId(e.server, e.app);
    const a = this.apps.get(who);
    if (!a) return { reason: 'unknown-participant', detail: `${who} is not an app of the plan` };
    if (ctx.state === 'aborting') return { reason: 'aborted', detail: `${who} quiesced after checkpoint ${ctx.checkpointId} aborted (its resume is on the way)` };
    a.outputPositions = { ...e.outputPositions };
    Object.assign(this.positions, e.outputPositions);
    ctx.emit({ type: 'log', level: 'info', message: 'app quiesced', fields: { app: who, positions: e.outputPositions } });
    ctx.emit({ type: 'progress', kind: 'app-progress', server: e.server, app: e.app, detail: 'quiesced' });
    return this.step({ type: 'quiesced', app: who, outputPositions: e.outputPositions }, ctx);
  }

  private captured(e: Extract<AgentEvent, { type: 'captured' }>, ctx: LevelContext): RoundRejection | undefined {
    const who = processId(e.server, e.app);
    const a = this.apps.get(who);
    if (!a) return { reason: 'unknown-participant', detail: `${who} is not an app of the plan` };
    this.capturing.delete(who);
    a.state = e.state;
    a.counts = this.countsOf(who, a);
    // Recorded even while aborting: the clean-up deletes what the part names.
    ctx.emit({ type: 'patch-part', server: e.server, app: e.app, patch: { acked: true, ackedAtUnixMs: ctx.nowMs, state: e.state, counts: a.counts } });
    if (ctx.state === 'aborting') return undefined;
    ctx.emit({ type: 'progress', kind: 'app-acked', server: e.server, app: e.app });
    return this.step({ type: 'captured', app: who }, ctx);
  }

  private declined(e: Extract<AgentEvent, { type: 'decline' }>, ctx: LevelContext): RoundRejection | undefined {
    const who = e.app !== undefined ? processId(e.server, e.app) : e.server;
    this.capturing.delete(who);
    ctx.emit({ type: 'log', level: 'warn', message: `declined: ${e.detail}`, fields: { server: e.server, app: e.app, reason: e.reason } });
    const failed = (e.hooks ?? []).filter((h) => h.exitCode !== 0 || h.timedOut || h.signal !== undefined);
    const hookText = failed.map((h) => `${h.hook} ${h.action} exit ${h.exitCode}${h.timedOut ? ' (timed out)' : ''}: ${h.stderr.trim().slice(-300)}`).join('; ');
    const detail = `${who} declined (${e.reason}): ${e.detail}${hookText && !e.detail.includes(hookText) ? ` [${hookText}]` : ''}`;
    ctx.emit({ type: 'patch-part', server: e.server, app: e.app, patch: { failureReason: declineToFailure(e.reason), failureDetail: e.detail } });
    ctx.emit({ type: 'progress', kind: 'app-declined', server: e.server, ...(e.app !== undefined ? { app: e.app } : {}), detail: `${e.reason}: ${e.detail}` });
    // The plan resumes every app it quiesced; the round then aborts with the decline's reason.
    if (e.app !== undefined && this.apps.has(who) && ctx.state !== 'aborting') this.step({ type: 'failed', app: who, reason: `${e.reason}: ${e.detail}` }, ctx);
    ctx.fail(declineToFailure(e.reason), detail);
    return undefined;
  }

  /** Received on each input at the cut: the drain position, or (inside a component) the sender's position. */
  private countsOf(who: ProcessId, a: AppProgress): SnapshotCounts {
    const received: Record<ChannelId, number> = {};
    for (const c of this.config.graph.channels) {
      if (c.to !== who) continue;
      const n = a.drainTo[c.id] ?? this.positions[c.id];
      if (n !== undefined) received[c.id] = n;
    }
    return { sent: { ...(a.outputPositions ?? {}) }, received };
  }

  private step(input: QuiesceInput, ctx: LevelContext): RoundRejection | undefined {
    const r = this.plan.step(input);
    for (const e of r.effects) this.apply(e, ctx);
    if (!r.rejected) return undefined;
    if (r.rejected.reason !== 'finished' && input.type !== 'failed') ctx.fail('internal', `quiesce plan refused ${input.type}: ${r.rejected.detail}`);
    return { reason: r.rejected.reason === 'unknown-app' ? 'unknown-participant' : 'unexpected', detail: r.rejected.detail };
  }

  private apply(e: QuiesceEffect, ctx: LevelContext): void {
    switch (e.type) {
      case 'quiesce':
        for (const app of e.apps) {
          const a = this.apps.get(app);
          if (!a) continue;
          a.quiesceSentAt = ctx.nowMs;
          for (const c of this.config.graph.channels) if (c.to === app && e.drainTo[c.id] !== undefined) a.drainTo[c.id] = e.drainTo[c.id] as number;
        }
        this.perServer(e.apps, ctx, false, (apps) => {
          const drainTo: Record<ChannelId, number> = {};
          for (const c of this.config.graph.channels) if (apps.includes(c.to) && e.drainTo[c.id] !== undefined) drainTo[c.id] = e.drainTo[c.id] as number;
          return { type: 'quiesce', checkpointId: ctx.checkpointId, apps: names(apps), drainTo };
        });
        return;
      case 'capture':
        for (const app of e.apps) this.capturing.add(app);
        this.perServer(e.apps, ctx, false, (apps) => ({ type: 'capture', checkpointId: ctx.checkpointId, apps: names(apps) }));
        return;
      case 'resume':
        this.resume(e.apps, ctx);
        return;
      case 'done':
        ctx.emit({ type: 'log', level: 'info', message: 'every app captured and resumed', fields: { positions: e.positions } });
        ctx.ready();
        return;
      case 'aborted':
        ctx.emit({ type: 'log', level: 'warn', message: 'quiesce plan aborted', fields: { reason: e.reason, resumed: e.resumed } });
        return;
    }
  }

  /** Resume commands for these apps; the stall (quiesce sent -> resume sent) goes to the part. */
  private resume(apps: readonly ProcessId[], ctx: LevelContext): void {
    const toResume = apps.filter((app) => {
      const a = this.apps.get(app);
      return a !== undefined && a.quiesceSentAt !== undefined && a.resumeSentAt === undefined;
    });
    for (const app of toResume) {
      const a = this.apps.get(app) as AppProgress;
      a.resumeSentAt = ctx.nowMs;
      const s = splitProcessId(app);
      if (s) ctx.emit({ type: 'patch-part', server: s.server, app: s.app, patch: { alignmentMs: ctx.nowMs - (a.quiesceSentAt as number) } });
    }
    // A resume that cannot be sent is logged: the agent's own deadline resumes the app.
    this.perServer(toResume, ctx, true, (list) => ({ type: 'resume', checkpointId: ctx.checkpointId, apps: names(list) }));
  }

  private perServer(apps: readonly ProcessId[], ctx: LevelContext, bestEffort: boolean, command: (apps: ProcessId[]) => RoundCommand): void {
    const byServer = new Map<string, ProcessId[]>();
    for (const p of apps) {
      const s = splitProcessId(p);
      if (!s) continue;
      const list = byServer.get(s.server);
      if (list) list.push(p);
      else byServer.set(s.server, [p]);
    }
    for (const [server, list] of byServer) ctx.emit({ type: 'publish', server, command: command(list), bestEffort });
  }

  commit(ctx: LevelContext): void {
    const objects: CommitObject[] = [];
    const snapshots: Record<ProcessId, SnapshotCounts> = {};
    for (const [who, a] of this.apps) {
      if (!a.state || !a.counts) {
        ctx.fail('internal', `${who} has no captured state`);
        return;
      }
      objects.push({ who, ref: a.state });
      snapshots[who] = a.counts;
    }
    const report = checkCut({ channels: this.config.graph.channels, snapshots, channelStates: {} });
    if (report.violations.length > 0) {
      ctx.fail('internal', `the cut is not consistent: ${report.violations.map((v) => v.message).join('; ')}`);
      return;
    }
    ctx.commit(objects);
  }

  volumesTaken(): void {}

  thawAnswered(): void {}

  timerFired(): void {}

  timedOut(): string {
    const missing = [...this.apps].filter(([, a]) => a.state === undefined).map(([who, a]) => `${who} (${a.quiesceSentAt === undefined ? 'waiting for upstream' : a.outputPositions === undefined ? 'quiescing' : 'capturing'})`);
    return missing.length > 0 ? `not captured: ${missing.join(', ')}` : '';
  }

  abort(ctx: LevelContext): void {
    // Downstream first, as the plan resumes at a normal end.
    this.resume(this.plan.order().reverse().flat(), ctx);
  }

  completed(): void {}

  awaiting(): boolean {
    return this.capturing.size > 0;
  }

  volumeRecords(): RoundVolumeRecord[] {
    return [];
  }
}

function names(apps: readonly ProcessId[]): string[] {
  return apps.map((p) => splitProcessId(p)?.app ?? p);
}
