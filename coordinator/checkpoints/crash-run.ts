/**
 * One crash-level checkpoint: every server of the plan frozen at one moment (freeze hooks, sync,
 * fsfreeze), the volumes snapshotted as one group by the volume backend, then thawed: as if the
 * whole plan lost power at once. It runs on the same xstate lifecycle as an app-level checkpoint,
 * with its own actions: triggering sends `freeze`, collecting waits for every `frozen`, committing
 * snapshots the volumes, thaws, checks that the snapshot lies inside the common frozen window and
 * writes the record; aborting thaws everyone and deletes any volume snapshot taken.
 *
 * The window check uses the coordinator's own clock (guest clocks are not trusted to agree), and it
 * is made per member: the backend reports when it took each volume (a directory backend copies them
 * one after another, so the last member is taken well after the first), every `frozen` must have
 * arrived before each member's snapshot started, and no server may have thawed (by its watchdog)
 * before any member's snapshot ended. So each snapshot lies inside the common frozen window. The
 * record keeps each member's own start as its `snapshotAtUnixMs`; the agents' own timestamps are
 * recorded beside the coordinator's.
 *
 * An abort thaws every server and waits (each for at most `thawTimeoutMs`) for their answers before
 * the record says `aborted`, so that an aborted record shows each server's thaw as well.
 */
import type { Logger } from 'pino';
import { createActor, type Actor } from 'xstate';
import type { AgentEvent, HookResult } from '../../src/wire/index.js';
import type { ControlBus } from '../bus.js';
import type { CheckpointRecord, FailureReason, Plan, ProgressEvent, ServerFreeze, VolumeSnapshot } from '../model.js';
import type { CheckpointStore } from '../store/index.js';
import type { TakenVolumeSnapshot, VolumeBackend } from '../volumes/backend.js';
import { checkpointLifecycle } from './lifecycle.js';
import { CommitError, progressEvent, RecordWriter, stateFields } from './record-writer.js';
import { declineToFailure } from './run.js';

export interface CrashRunDeps {
  readonly bus: ControlBus;
  readonly store: CheckpointStore;
  readonly volumes: VolumeBackend | undefined;
  readonly logger: Logger;
  readonly nowUnixMs: () => number;
  readonly progress: (e: ProgressEvent) => void;
  readonly ended: (record: CheckpointRecord) => void;
  readonly commitTimeoutMs: number;
  /** How long each thaw may take to be confirmed before the checkpoint is given up. */
  readonly thawTimeoutMs: number;
}

export class CrashRun {
  private readonly actor: Actor<typeof checkpointLifecycle>;
  private readonly log: Logger;
  private record: CheckpointRecord;
  private readonly writer: RecordWriter;
  private finished = false;
  /** The fields the commit stored with the completed record. */
  private committed: Partial<CheckpointRecord> | undefined;
  private readonly servers: string[];
  private readonly frozen = new Map<string, ServerFreeze>();
  private snapshotStartedAt: number | undefined;
  private snapshotEndedAt: number | undefined;
  private taken: TakenVolumeSnapshot[] = [];
  /** The thaw an abort sent; the abort is recorded once it settled. */
  private abortThaw: Promise<string[]> | undefined;

  constructor(
    initial: CheckpointRecord,
    private readonly plan: Plan,
    private readonly deps: CrashRunDeps,
  ) {
    this.record = initial;
    this.servers = [...plan.servers];
    this.log = deps.logger.child({ checkpointId: initial.id, plan: plan.id, tenant: plan.tenant, level: 'crash' });
    this.writer = new RecordWriter(deps.store, initial.id, this.log);
    const machine = checkpointLifecycle.provide({
      actions: {
        recordState: (_, params) => this.recordState(params.state as CheckpointRecord['state'], params.failure),
        sendTriggers: () => this.sendFreezes(),
        commit: () => this.commit(),
        sendCompletes: () => undefined,
        sendAborts: () => {
          this.abortThaw = this.thawAll(false);
        },
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
    if (this.finished || !this.servers.includes(e.server)) return;
    const now = this.deps.nowUnixMs();
    if (e.type === 'frozen') {
      this.setServer(e.server, { frozenAtUnixMs: now, agentFrozenAtUnixMs: e.frozenAtUnixMs, hooks: e.hooks });
      this.emit('server-frozen', e.server, `hooks ${e.hooksMs} ms`);
      this.log.info({ server: e.server, hooksMs: e.hooksMs }, 'server frozen');
      if (this.servers.every((s) => this.frozen.get(s)?.frozenAtUnixMs !== undefined)) this.actor.send({ type: 'ALL_ACKED' });
      return;
    }
    if (e.type === 'thawed') {
      const prior = this.frozen.get(e.server);
      this.setServer(e.server, { thawedAtUnixMs: now, agentThawedAtUnixMs: e.thawedAtUnixMs, byWatchdog: e.byWatchdog, hooks: [...(prior?.hooks ?? []), ...e.hooks] });
      this.emit('server-thawed', e.server, e.byWatchdog ? 'thawed by its watchdog' : undefined);
      // A server that thawed before the volumes were snapshotted is no longer part of the crash cut.
      if (e.byWatchdog && this.snapshotEndedAt === undefined) {
        this.actor.send({ type: 'FAIL', reason: 'freeze-failed', detail: `${e.server} thawed by its watchdog before the volume snapshot` });
      }
      return;
    }
    if (e.type === 'decline') {
      this.setServer(e.server, { hooks: [...(this.frozen.get(e.server)?.hooks ?? []), ...(e.hooks ?? [])] });
      this.log.warn({ server: e.server, reason: e.reason }, `freeze declined: ${e.detail}`);
      this.actor.send({ type: 'FAIL', reason: declineToFailure(e.reason), detail: `${e.server} could not freeze (${e.reason}): ${e.detail}` });
    }
  }

  private setServer(server: string, patch: Partial<ServerFreeze>): void {
    const prior: ServerFreeze = this.frozen.get(server) ?? { server, hooks: [] };
    const next = { ...prior, ...patch, hooks: patch.hooks ?? prior.hooks };
    this.frozen.set(server, next);
    this.record = { ...this.record, servers: this.servers.map((s) => this.frozen.get(s) ?? { server: s, hooks: [] as HookResult[] }) };
    const servers = this.record.servers;
    this.persist((r) => ({ ...r, ...(servers ? { servers } : {}) }));
  }

  private recordState(state: CheckpointRecord['state'], failure: { reason: FailureReason; detail: string } | null): void {
    const now = this.deps.nowUnixMs();
    const extra = state === 'completed' && this.committed ? this.committed : stateFields(state, failure, now, 'crash');
    this.record = { ...this.record, state, ...extra };
    this.log.info({ state, ...(extra.failureReason ? { failure: extra.failureReason, detail: extra.failureDetail } : {}) }, `checkpoint ${state}`);
    const snapshot = this.record;
    // The completed record was stored by the commit.
    if (state !== 'completed') this.persist((r) => ({ ...r, ...extra, state, volumes: snapshot.volumes, ...(snapshot.servers ? { servers: snapshot.servers } : {}) }));
    this.emit('state-changed', undefined, extra.failureDetail);
    if (state === 'completed' || state === 'aborted') {
      this.finished = true;
      void this.writer.flushed().then(() => this.deps.ended(this.record));
    }
  }

  private persist(fn: (r: CheckpointRecord) => CheckpointRecord): void {
    this.writer.persist(fn);
  }

  private emit(kind: ProgressEvent['kind'], server: string | undefined, detail: string | undefined): void {
    this.deps.progress(progressEvent(kind, this.deps.nowUnixMs(), this.record, { server, detail }));
  }

  private sendFreezes(): void {
    const deadlineMs = this.record.options.freezeDeadlineMs;
    try {
      for (const server of this.servers) {
        this.deps.bus.send({ type: 'freeze', tenant: this.plan.tenant, server, plan: this.plan.id, epoch: this.record.epoch, checkpointId: this.record.id, deadlineMs });
      }
    } catch (error) {
      queueMicrotask(() => this.actor.send({ type: 'FAIL', reason: 'internal', detail: String(error) }));
      return;
    }
    queueMicrotask(() => this.actor.send({ type: 'TRIGGERS_SENT' }));
  }

  /** Snapshot the group, thaw everyone, check the window, write the record. */
  private commit(): void {
    void (async () => {
      const volumes = this.plan.volumes;
      this.snapshotStartedAt = this.deps.nowUnixMs();
      if (volumes.length > 0) {
        if (!this.deps.volumes) throw new CommitError('volume-snapshot-failed', `plan ${this.plan.id} has volumes but the coordinator has no volume backend (start it with --volume-backend)`);
        const taken = await this.deps.volumes.snapshot(volumes, this.record.id);
        if (!taken.ok) throw new CommitError('volume-snapshot-failed', taken.error.message);
        this.taken = taken.value;
      }
      this.snapshotEndedAt = this.deps.nowUnixMs();
      this.checkTaken(this.snapshotStartedAt, this.snapshotEndedAt);
      this.emit('volumes-snapshotted', undefined, `${this.taken.length} volume(s)`);
      const thawed = await this.thawAll(true);
      this.checkWindow();
      if (thawed.length > 0) this.log.warn({ servers: thawed }, 'thaw not confirmed by every server (their watchdogs thaw them at the deadline)');
      const volumesRecord: VolumeSnapshot[] = this.taken.map((t) => ({
        volumeId: t.volumeId,
        server: t.server,
        snapshotRef: t.snapshotRef,
        frozenAtUnixMs: this.frozen.get(t.server)?.frozenAtUnixMs ?? 0,
        snapshotAtUnixMs: t.startedAtUnixMs,
        thawedAtUnixMs: this.frozen.get(t.server)?.thawedAtUnixMs ?? 0,
      }));
      this.record = { ...this.record, volumes: volumesRecord };
      // The commit point: completed only once the completed record is stored.
      this.committed = await this.writer.commitCompleted(() => this.record, 'crash', this.deps.nowUnixMs());
      this.actor.send({ type: 'COMMITTED' });
    })().catch((error: unknown) => {
      const reason = error instanceof CommitError ? error.reason : 'internal';
      this.actor.send({ type: 'FAIL', reason, detail: error instanceof Error ? error.message : String(error) });
    });
  }

  /**
   * What the backend answered must describe the call it answered: one snapshot per volume of the
   * plan, each taken within the call (backend and run share the coordinator's clock). Anything else
   * is a bug in the backend, and a window check built on it would prove nothing.
   */
  private checkTaken(calledAt: number, returnedAt: number): void {
    for (const v of this.plan.volumes) {
      const n = this.taken.filter((t) => t.volumeId === v.id && t.server === v.server).length;
      if (n !== 1) throw new Error(`the volume backend returned ${n} snapshots of volume ${v.id} of ${v.server}, not 1`);
    }
    if (this.taken.length !== this.plan.volumes.length) throw new Error(`the volume backend returned ${this.taken.length} snapshots for ${this.plan.volumes.length} volumes`);
    for (const t of this.taken) {
      if (!(calledAt <= t.startedAtUnixMs && t.startedAtUnixMs <= t.endedAtUnixMs && t.endedAtUnixMs <= returnedAt)) {
        throw new Error(`the volume backend says volume ${t.volumeId} of ${t.server} was taken from ${t.startedAtUnixMs} to ${t.endedAtUnixMs}, outside its call (${calledAt} to ${returnedAt})`);
      }
    }
  }

  /**
   * Every member's snapshot inside the common frozen window: each server frozen before the member's
   * snapshot started, none thawed by its watchdog before it ended. A command thaw comes only after
   * the whole group was taken, so only a watchdog thaw can cut into a member's interval.
   */
  private checkWindow(): void {
    const start = this.snapshotStartedAt as number;
    const end = this.snapshotEndedAt as number;
    // Plans without volumes still need every server frozen over the (empty) group snapshot.
    const members = this.taken.length > 0 ? this.taken : [{ volumeId: undefined, server: undefined, startedAtUnixMs: start, endedAtUnixMs: end }];
    for (const m of members) {
      const what = m.volumeId === undefined ? 'the volume snapshot' : `the snapshot of volume ${m.volumeId} of ${m.server}`;
      const late = this.servers.filter((s) => !((this.frozen.get(s)?.frozenAtUnixMs ?? Infinity) <= m.startedAtUnixMs));
      if (late.length > 0) throw new CommitError('freeze-failed', `${what} started at ${m.startedAtUnixMs}, before ${late.join(', ')} ${late.length === 1 ? 'was' : 'were'} frozen`);
      const early = this.servers.filter((s) => {
        const f = this.frozen.get(s);
        return f?.byWatchdog === true && f.thawedAtUnixMs !== undefined && f.thawedAtUnixMs < m.endedAtUnixMs;
      });
      if (early.length > 0) throw new CommitError('freeze-failed', `${early.join(', ')} thawed (by ${early.length === 1 ? 'its watchdog' : 'their watchdogs'}) before ${what} ended at ${m.endedAtUnixMs}: outside the common frozen window`);
    }
  }

  /** Thaws every server; resolves with the servers that did not confirm in time. */
  private async thawAll(afterSnapshot: boolean): Promise<string[]> {
    const answers = await Promise.all(
      this.servers.map(async (server) => {
        try {
          const reply = await this.deps.bus.request(
            { type: 'thaw', tenant: this.plan.tenant, server, plan: this.plan.id, epoch: this.record.epoch, checkpointId: this.record.id, afterRestore: false },
            this.deps.thawTimeoutMs,
          );
          return reply?.type === 'thawed' ? undefined : server;
        } catch (error) {
          this.log.error({ server, err: error }, 'thaw not sent');
          return server;
        }
      }),
    );
    const unconfirmed = answers.filter((s): s is string => s !== undefined);
    if (!afterSnapshot) {
      if (unconfirmed.length > 0) this.log.warn({ servers: unconfirmed }, 'aborted: thaw not confirmed by every server (their watchdogs thaw them at the deadline)');
      else this.log.info('aborted: every server confirmed its thaw');
    }
    return unconfirmed;
  }

  private cleanUp(): void {
    const taken = this.taken;
    const deleted = (async () => {
      if (taken.length > 0 && this.deps.volumes) {
        const r = await this.deps.volumes.delete(taken);
        if (!r.ok) this.log.warn({ error: r.error.message }, 'volume snapshots of an aborted checkpoint not deleted');
      }
    })();
    // The thaw answers land in the record (servers[].thawedAtUnixMs) only while the run is not
    // finished, so `aborted` waits for them; each is bounded by thawTimeoutMs.
    void Promise.allSettled([deleted, this.abortThaw]).finally(() => this.actor.send({ type: 'CLEANED' }));
  }
}
