/**
 * One app-level checkpoint of a plan whose channels are all `opaque` (the apps' own TCP, invisible
 * to the agents): the cut is made by quiescing the apps through their hooks in topological order,
 * as the pure `QuiescePlan` (src/core/quiesce.ts) decides. It runs on the same xstate lifecycle as
 * the other levels:
 *
 *   triggering  the plan starts: `quiesce` to the servers of the source components
 *   collecting  events become plan inputs (quiesced, captured, a decline = failed); the plan's
 *               effects become commands (quiesce / capture / resume, one per server); `done` ->
 *               ALL_ACKED
 *   committing  every state object checked against its digest, the cut checked on the counts
 *               (sent = the app's reported output positions, received = the drain positions of its
 *               inputs), the record written completed
 *   aborting    every app quiesced and not resumed yet is resumed; stored states deleted
 *
 * This is the synchronous baseline of the ABS paper: an app stays stopped from its quiesce until
 * everything downstream of it is captured. That stall is recorded per app in the part's
 * `alignmentMs` (from the quiesce command sent to the resume command sent, coordinator clock).
 */
import type { Logger } from 'pino';
import { createActor, type Actor } from 'xstate';
import { checkCut } from '../../src/checker/index.js';
import { QuiescePlan, type QuiesceEffect, type QuiesceInput } from '../../src/core/quiesce.js';
import type { SnapshotCounts } from '../../src/core/types.js';
import type { AppGraph } from '../../src/graph/index.js';
import type { ChannelId, ProcessId } from '../../src/ids.js';
import { processId, splitProcessId, type AgentEvent, type HookResult } from '../../src/wire/index.js';
import type { StateObjects } from '../../adapters/state-store.js';
import type { ControlBus } from '../bus.js';
import type { AppPart, CheckpointRecord, FailureReason, Plan, ProgressEvent } from '../model.js';
import type { CheckpointStore } from '../store/index.js';
import { checkpointLifecycle } from './lifecycle.js';
import { deleteCheckpointObjects } from './part-state.js';
import { CommitError, progressEvent, RecordWriter, stateFields } from './record-writer.js';
import { declineToFailure } from './run.js';

export interface OpaqueRunDeps {
  readonly bus: ControlBus;
  readonly store: CheckpointStore;
  readonly objects: StateObjects;
  readonly logger: Logger;
  readonly nowUnixMs: () => number;
  readonly progress: (e: ProgressEvent) => void;
  readonly ended: (record: CheckpointRecord) => void;
  readonly commitTimeoutMs: number;
}

interface AppProgress {
  quiesceSentAt?: number;
  resumeSentAt?: number;
  drainTo: Record<ChannelId, number>;
  outputPositions?: Record<ChannelId, number>;
  hooks: HookResult[];
}

/** How long the clean-up of an aborted checkpoint waits for captures under way to answer. */
const CAPTURE_ANSWER_WAIT_MS = 10_000;

export class OpaqueRun {
  private readonly actor: Actor<typeof checkpointLifecycle>;
  private readonly log: Logger;
  private readonly quiescePlan: QuiescePlan;
  private record: CheckpointRecord;
  private readonly writer: RecordWriter;
  private finished = false;
  /** The fields the commit stored with the completed record. */
  private committed: Partial<CheckpointRecord> | undefined;
  private readonly apps = new Map<ProcessId, AppProgress>();
  /** Every position reported so far, by channel (what `received` of an intra-component input uses). */
  private readonly positions: Record<ChannelId, number> = {};
  /** Apps told to capture that have not answered (captured or declined) yet. */
  private readonly capturing = new Set<ProcessId>();
  /** Called when `capturing` empties. */
  private capturesSettled: (() => void) | undefined;

  constructor(
    initial: CheckpointRecord,
    private readonly plan: Plan,
    private readonly graph: AppGraph,
    private readonly deps: OpaqueRunDeps,
  ) {
    this.record = initial;
    this.log = deps.logger.child({ checkpointId: initial.id, plan: plan.id, tenant: plan.tenant, level: 'app', channels: 'opaque' });
    this.writer = new RecordWriter(deps.store, initial.id, this.log);
    this.quiescePlan = new QuiescePlan(graph);
    for (const p of graph.processes) this.apps.set(p, { drainTo: {}, hooks: [] });
    const machine = checkpointLifecycle.provide({
      actions: {
        recordState: (_, params) => this.recordState(params.state as CheckpointRecord['state'], params.failure),
        sendTriggers: () => this.start_(),
        commit: () => this.commit(),
        sendCompletes: () => undefined,
        sendAborts: () => this.resumeTouched(),
        cleanUp: () => this.cleanUp(),
      },
    });
    this.actor = createActor(machine, {
      input: { checkpointId: initial.id, timeoutMs: initial.options.timeoutMs, commitTimeoutMs: deps.commitTimeoutMs },
    });
  }

  get id(): number {
    return this.record.id;
  }

  get tenant(): string {
    return this.record.tenant;
  }

  get epoch(): number {
    return this.record.epoch;
  }

  get current(): CheckpointRecord {
    return this.record;
  }

  start(): void {
    this.actor.start();
    this.actor.send({ type: 'START' });
  }

  cancel(detail: string): void {
    if (this.finished) return;
    this.actor.send({ type: 'FAIL', reason: 'cancelled', detail });
  }

  onEvent(e: AgentEvent): void {
    if (this.finished) return;
    if (e.type === 'quiesced') {
      const who = processId(e.server, e.app);
      const a = this.apps.get(who);
      if (!a) return;
      a.outputPositions = { ...e.outputPositions };
      a.hooks.push(...e.hooks);
      Object.assign(this.positions, e.outputPositions);
      this.log.info({ app: who, positions: e.outputPositions }, 'app quiesced');
      this.emit('app-progress', e.server, e.app, 'quiesced');
      this.step({ type: 'quiesced', app: who, outputPositions: e.outputPositions });
      return;
    }
    if (e.type === 'captured') {
      const who = processId(e.server, e.app);
      const a = this.apps.get(who);
      if (!a) return;
      this.answered(who);
      a.hooks.push(...e.hooks);
      this.patchPart(e.server, e.app, { acked: true, ackedAtUnixMs: this.deps.nowUnixMs(), state: e.state, counts: this.countsOf(who) });
      this.emit('app-acked', e.server, e.app, undefined);
      this.step({ type: 'captured', app: who });
      return;
    }
    if (e.type === 'decline') {
      const who = e.app !== undefined ? processId(e.server, e.app) : e.server;
      this.answered(who);
      this.apps.get(who)?.hooks.push(...(e.hooks ?? []));
      this.log.warn({ server: e.server, app: e.app, reason: e.reason }, `declined: ${e.detail}`);
      const hooks = (e.hooks ?? []).filter((h) => h.exitCode !== 0 || h.timedOut || h.signal !== undefined);
      const hookText = hooks.map((h) => `${h.hook} ${h.action} exit ${h.exitCode}${h.timedOut ? ' (timed out)' : ''}: ${h.stderr.trim().slice(-300)}`).join('; ');
      const detail = `${who} declined (${e.reason}): ${e.detail}${hookText && !e.detail.includes(hookText) ? ` [${hookText}]` : ''}`;
      this.patchPart(e.server, e.app, { failureReason: declineToFailure(e.reason), failureDetail: e.detail });
      this.emit('app-declined', e.server, e.app, `${e.reason}: ${e.detail}`);
      // The plan resumes every app it quiesced; the lifecycle then aborts with the decline's reason.
      if (e.app !== undefined && this.apps.has(who)) this.step({ type: 'failed', app: who, reason: `${e.reason}: ${e.detail}` }, false);
      this.actor.send({ type: 'FAIL', reason: declineToFailure(e.reason), detail });
    }
  }

  /** Received on each input at the cut: the drain position, or (inside a component) the sender's position. */
  private countsOf(who: ProcessId): SnapshotCounts {
    const a = this.apps.get(who);
    const received: Record<ChannelId, number> = {};
    for (const c of this.graph.channels) {
      if (c.to !== who) continue;
      const n = a?.drainTo[c.id] ?? this.positions[c.id];
      if (n !== undefined) received[c.id] = n;
    }
    return { sent: { ...(a?.outputPositions ?? {}) }, received };
  }

  private step(input: QuiesceInput, failOnReject = true): void {
    const r = this.quiescePlan.step(input);
    if (r.rejected) {
      this.log.warn({ input: input.type, reason: r.rejected.reason }, r.rejected.detail);
      if (failOnReject && r.rejected.reason !== 'finished') this.actor.send({ type: 'FAIL', reason: 'internal', detail: `quiesce plan refused ${input.type}: ${r.rejected.detail}` });
    }
    for (const e of r.effects) this.apply(e);
  }

  private apply(e: QuiesceEffect): void {
    const now = this.deps.nowUnixMs();
    switch (e.type) {
      case 'quiesce':
        for (const app of e.apps) {
          const a = this.apps.get(app);
          if (!a) continue;
          a.quiesceSentAt = now;
          for (const c of this.graph.channels) if (c.to === app && e.drainTo[c.id] !== undefined) a.drainTo[c.id] = e.drainTo[c.id] as number;
        }
        this.sendPerServer(e.apps, (server, apps) => ({ type: 'quiesce', apps, drainTo: Object.fromEntries(Object.entries(e.drainTo).filter(([c]) => apps.some((app) => c.endsWith(`->${server}/${app}`)))) }));
        return;
      case 'capture':
        for (const app of e.apps) this.capturing.add(app);
        this.sendPerServer(e.apps, (_, apps) => ({ type: 'capture', apps }));
        return;
      case 'resume':
        this.resume(e.apps);
        return;
      case 'done':
        this.log.info({ positions: e.positions }, 'every app captured and resumed');
        this.actor.send({ type: 'ALL_ACKED' });
        return;
      case 'aborted':
        this.log.warn({ reason: e.reason, resumed: e.resumed }, 'quiesce plan aborted');
        return;
    }
  }

  /** Resume commands for these apps; the stall (quiesce sent -> resume sent) goes to the part. */
  private resume(apps: readonly ProcessId[]): void {
    const now = this.deps.nowUnixMs();
    const todo = apps.filter((app) => {
      const a = this.apps.get(app);
      return a !== undefined && a.quiesceSentAt !== undefined && a.resumeSentAt === undefined;
    });
    for (const app of todo) {
      const a = this.apps.get(app) as AppProgress;
      a.resumeSentAt = now;
      const s = splitProcessId(app);
      if (s) this.patchPart(s.server, s.app, { alignmentMs: now - (a.quiesceSentAt as number) });
    }
    this.sendPerServer(todo, (_, names) => ({ type: 'resume', apps: names }));
  }

  private sendPerServer(
    apps: readonly ProcessId[],
    command: (server: string, apps: string[]) => { type: 'quiesce'; apps: string[]; drainTo: Record<ChannelId, number> } | { type: 'capture'; apps: string[] } | { type: 'resume'; apps: string[] },
  ): void {
    const byServer = new Map<string, string[]>();
    for (const p of apps) {
      const s = splitProcessId(p);
      if (!s) continue;
      byServer.set(s.server, [...(byServer.get(s.server) ?? []), s.app]);
    }
    for (const [server, names] of byServer) {
      const c = command(server, names);
      try {
        const base = { tenant: this.plan.tenant, server, plan: this.plan.id, epoch: this.record.epoch, checkpointId: this.record.id };
        this.deps.bus.send({ ...base, ...c });
      } catch (error) {
        this.log.error({ server, command: c.type, err: error }, 'command not sent');
        if (c.type !== 'resume') queueMicrotask(() => this.actor.send({ type: 'FAIL', reason: 'internal', detail: `${c.type} for ${server} not sent: ${String(error)}` }));
      }
    }
  }

  private start_(): void {
    this.step({ type: 'start' });
    queueMicrotask(() => this.actor.send({ type: 'TRIGGERS_SENT' }));
  }

  /** Abort: every app told to quiesce and not resumed yet is resumed (whatever the plan's state). */
  private resumeTouched(): void {
    this.resume([...this.apps.keys()]);
  }

  private commit(): void {
    void (async () => {
      for (const p of this.record.parts) {
        if (!p.state) throw new CommitError('internal', `${p.server}/${p.app} has no captured state`);
        const info = await this.deps.objects.info(this.plan.tenant, p.state.name);
        if (!info.ok) throw new CommitError('store-failed', `${p.server}/${p.app}: ${p.state.name}: ${info.error.message}`);
        if (info.value.digest !== p.state.digest) throw new CommitError('store-failed', `${p.server}/${p.app}: ${p.state.name} has digest ${info.value.digest}, the agent reported ${p.state.digest}`);
      }
      const snapshots: Record<ProcessId, SnapshotCounts> = {};
      for (const p of this.record.parts) if (p.counts) snapshots[processId(p.server, p.app)] = p.counts;
      const report = checkCut({ channels: this.graph.channels, snapshots, channelStates: {} });
      if (report.violations.length > 0) throw new CommitError('internal', `the cut is not consistent: ${report.violations.map((v) => v.message).join('; ')}`);
      // The commit point: completed only once the completed record is stored.
      this.committed = await this.writer.commitCompleted(() => this.record, 'app', this.deps.nowUnixMs());
      this.actor.send({ type: 'COMMITTED' });
    })().catch((error: unknown) => {
      const reason = error instanceof CommitError ? error.reason : 'store-failed';
      this.actor.send({ type: 'FAIL', reason, detail: error instanceof Error ? error.message : String(error) });
    });
  }

  private patchPart(server: string, app: string | undefined, patch: Partial<AppPart>): void {
    this.record = {
      ...this.record,
      parts: this.record.parts.map((p) => (p.server === server && (app === undefined || p.app === app) ? { ...p, ...patch } : p)),
    };
    this.persist((r) => ({ ...r, parts: this.record.parts }));
  }

  private recordState(state: CheckpointRecord['state'], failure: { reason: FailureReason; detail: string } | null): void {
    const now = this.deps.nowUnixMs();
    const extra = state === 'completed' && this.committed ? this.committed : stateFields(state, failure, now, 'app');
    this.record = { ...this.record, state, ...extra };
    this.log.info({ state, ...(extra.failureReason ? { failure: extra.failureReason, detail: extra.failureDetail } : {}) }, `checkpoint ${state}`);
    const snapshot = this.record;
    // The completed record was stored by the commit.
    if (state !== 'completed') this.persist((r) => ({ ...r, ...extra, state, parts: snapshot.parts }));
    this.emit('state-changed', undefined, undefined, extra.failureDetail);
    if (state === 'completed' || state === 'aborted') {
      this.finished = true;
      void this.writer.flushed().then(() => this.deps.ended(this.record));
    }
  }

  private persist(fn: (r: CheckpointRecord) => CheckpointRecord): void {
    this.writer.persist(fn);
  }

  private emit(kind: ProgressEvent['kind'], server: string | undefined, app: string | undefined, detail: string | undefined): void {
    this.deps.progress(progressEvent(kind, this.deps.nowUnixMs(), this.record, { server, app, detail }));
  }

  private answered(who: ProcessId): void {
    if (!this.capturing.delete(who) || this.capturing.size > 0) return;
    this.capturesSettled?.();
  }

  /**
   * An aborted checkpoint leaves nothing behind: every state stored under its prefix is deleted.
   * A capture still under way stores its state after the abort; its answer (or a grace period) is
   * waited for first, so that state is deleted too rather than left behind.
   */
  private cleanUp(): void {
    void (async () => {
      if (this.capturing.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.capturesSettled = resolve;
          timer = setTimeout(resolve, CAPTURE_ANSWER_WAIT_MS);
        });
        clearTimeout(timer);
        if (this.capturing.size > 0) this.log.warn({ apps: [...this.capturing] }, 'captures still unanswered: states they store later stay until deleted by hand');
      }
      const r = await deleteCheckpointObjects(this.deps.objects, this.record);
      if (!r.ok) this.log.warn({ error: r.message }, 'states of an aborted checkpoint not deleted');
    })()
      .catch((error: unknown) => this.log.warn({ err: error }, 'states of an aborted checkpoint not deleted'))
      .finally(() => this.actor.send({ type: 'CLEANED' }));
  }
}
