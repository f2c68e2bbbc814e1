/**
 * The simulated coordinator: the real round machine (src/control/round.ts with its app and crash
 * levels) and the real admission step (src/control/admission.ts) in a shell that does what
 * coordinator/checkpoints/runner.ts and the checkpoint service do with their effects, against the
 * simulated KV, Object Store, volume backend and bus. It keeps nothing that a restart must not lose:
 * what survives is in the KV.
 */
import { EMPTY_SLOTS, stepAdmission, type AdmissionStep, type PlanSlots } from '../../src/control/admission.js';
import type { NegativeControls } from '../../src/control/negative-controls.js';
import { AppLevel } from '../../src/control/round-app.js';
import { CrashLevel } from '../../src/control/round-crash.js';
import { OpaqueLevel } from '../../src/control/round-opaque.js';
import { Round, type RoundEffect, type RoundInput, type RoundLevel, type TakenVolume } from '../../src/control/round.js';
import type { AgentEvent, Control } from '../../src/wire/index.js';
import type { Prng } from '../prng.js';
import type { Agenda } from './agenda.js';
import type { FaultProfile } from './faults.js';
import type { Io } from './io.js';
import type { Ledger } from './invariants.js';
import type { Network } from './network.js';
import { SimProcess } from './process.js';
import { recoverLeftRounds } from './recovery-host.js';
import { applyRetention, deleteCheckpoint, pinCheckpoint } from './service-calls.js';
import { CHECKPOINT_COUNTER, checkpointKey, epochKey, liveVolumeRefs, objectPrefix, slotsKey, type CheckpointRecord } from './records.js';
import { StoreCalls } from './store-calls.js';
import type { SimKv, SimObjects, SimVolumes } from './stores.js';
import { TENANT, type SimPlan, type Topology } from './topology.js';

export const ROUND_COMMIT_TIMEOUT_MS = 3_000;
export const ROUND_REFRESH_MS = 500;
export const ROUND_SETTLE_MS = 1_500;
/** How long the shell waits for a thaw's answer (resending it) before it tells the round "not confirmed". */
export const THAW_WAIT_MS = 1_000;
export const RESEND_MS = 200;
export const MAX_CONCURRENT_MAX = 8;

export interface CoordinatorWorld {
  readonly agenda: Agenda;
  readonly prng: Prng;
  readonly io: Io;
  readonly kv: SimKv;
  readonly objects: SimObjects;
  readonly volumes: SimVolumes;
  readonly ledger: Ledger;
  readonly controls: Network<Control>;
  readonly topology: Topology;
  readonly faults: () => FaultProfile;
  readonly negativeControls: NegativeControls;
  readonly trace: (what: string) => void;
  /** When each checkpoint's clean-up was asked for (the world's record, not the coordinator's). */
  readonly cleanUps: Map<number, number>;
  /** Rounds a preemption could not cancel (the world's record, for the known findings). */
  readonly preemptsRefused: Set<number>;
  /** A delete decided to go: from now on the checkpoint's parts may go. */
  readonly deleting: (id: number) => void;
  /** Targets and safety checkpoints of rollbacks and restores (what the operations store tells retention). */
  readonly protectedIds: ReadonlySet<number>;
  /** The protection service's choices about staged checkpoints (world.ts callerPrng). */
  readonly callerPrng: Prng;
  /** When each volume snapshot was taken, by the backend or by a staged checkpoint's caller (the world's record, for crash-cut-in-frozen-window). */
  readonly snapshotTimes: Map<string, { readonly fromMs: number; readonly toMs: number }>;
  readonly count: (what: string) => void;
}

/** Of a staged checkpoint's finishes, the share that comes after the hold deadline, and so on. */
const FINISH_LATE_P = 0.1;
const FINISH_INVALID_P = 0.1;
const FINISH_OUTSIDE_WINDOW_P = 0.1;
const FINISH_TWICE_P = 0.1;


export type TakeAnswer = { readonly ok: true; readonly id: number } | { readonly ok: false; readonly code: 'busy' | 'unavailable' | 'failed'; readonly message: string };

/** One round run by this coordinator: the machine, the record it keeps, its writes in order. */
class RoundRun {
  readonly thawWaits = new Map<string, { readonly requestId: string; answered: boolean }>();
  /** Record writes go one at a time, the newest waiting (the real RecordWriter coalesces the same way). */
  writing = false;
  queued: (() => void) | undefined;
  /** Run once no record write is in flight or queued. */
  drained: (() => void)[] = [];
  readonly onEnd: ((r: CheckpointRecord) => void)[] = [];
  publishSerial = 0;

  constructor(
    readonly plan: SimPlan,
    readonly round: Round,
    readonly record: CheckpointRecord,
    readonly incarnation: number,
  ) {}
}

export class CoordinatorHost {
  readonly process: SimProcess;
  private calls: StoreCalls;
  private readonly rounds = new Map<number, RoundRun>();
  private readonly lastCompleted = new Map<string, number>();
  /** When each agent was last heard from. */
  readonly agentsSeen = new Map<string, number>();
  /** Checkpoints whose volume call has not returned, and those whose deletion of volume snapshots has not finished (the world's view, for the known findings). */
  readonly volumeCallsPending = new Set<number>();
  readonly volumeDeletesPending = new Set<number>();
  /** False from a restart until recovery has run: the gRPC server starts only after it (coordinator/main.ts). */
  serving = true;
  /** Operation answers (`op:` request ids) go to the operations shell. */
  operationAnswer: (e: AgentEvent) => void = () => undefined;
  /** At start-up, after the rounds: the operations a stopped coordinator left under way (the operations shell). */
  recoverOperations: (done: () => void) => void = (done) => done();

  constructor(private readonly w: CoordinatorWorld) {
    this.process = new SimProcess('coordinator', w.agenda, (what) => (what.endsWith(' refresh') ? undefined : w.trace(what)));
    this.calls = this.newCalls();
  }

  private newCalls(): StoreCalls {
    return new StoreCalls(this.w.io, this.w.kv, this.process, (ms, fn) => this.process.later(ms, '', fn));
  }

  get store(): StoreCalls {
    return this.calls;
  }

  get owner(): string {
    return `c${this.process.incarnation}`;
  }

  plan(id: string): SimPlan {
    const p = this.w.topology.plans.find((x) => x.id === id);
    if (p === undefined) throw new Error(`no plan ${id}`);
    return p;
  }

  /** The rounds running now, by id (the world notes them when the process dies). */
  runningIds(): number[] {
    return [...this.rounds.keys()];
  }

  crash(): void {
    this.process.crash();
    this.volumeCallsPending.clear();
    this.volumeDeletesPending.clear();
    for (const run of this.rounds.values()) this.w.ledger.roundEnded(run.plan.id, run.record.id);
    this.rounds.clear();
    this.lastCompleted.clear();
    this.agentsSeen.clear();
  }

  boot(): void {
    const restarted = this.process.incarnation > 0;
    this.process.restart();
    this.calls = this.newCalls();
    this.serving = !restarted;
    // As coordinator/main.ts: the rounds left in flight, then the rollbacks and restores left under way, then serve.
    if (restarted) recoverLeftRounds(this, this.w, () => this.recoverOperations(() => (this.serving = true)));
    // Agents re-register when a coordinator starts (defect 9): the hello.
    for (const server of [...this.w.topology.servers, ...this.w.topology.spareServers]) {
      this.w.controls.send('coordinator', server, { type: 'hello', requestId: `hello:${this.owner}`, tenant: TENANT, server, plan: '', epoch: 0 });
    }
  }

  runningOf(plan: string): number[] {
    return [...this.rounds.values()].filter((r) => r.plan.id === plan).map((r) => r.record.id);
  }

  /** Calls `done` with the round's final record when it ends (at once if it is not running here). */
  whenEnded(id: number, done: (r: CheckpointRecord | undefined) => void): void {
    const run = this.rounds.get(id);
    if (run === undefined) done(undefined);
    else run.onEnd.push(done);
  }

  // ---- TakeSnapshot ----------------------------------------------------------------------------

  /**
   * Admission as the checkpoint service does it: the slots read first, then the id allocated and the
   * epoch read (the awaits a check-then-act admission decided across), then the step written by
   * compare-and-set at the revision it read.
   */
  /** `staged`: BeginCheckpoint (level crash or app): the round holds, and the simulated caller finishes it (see `held`). */
  take(planId: string, periodic: boolean, answer: (a: TakeAnswer) => void, staged = false): void {
    if (!this.serving) {
      answer({ ok: false, code: 'unavailable', message: 'the coordinator is starting (recovery under way)' });
      return;
    }
    const plan = this.plan(planId);
    this.calls.read(slotsKey(planId), (entry) => {
      const checked = (entry?.value as PlanSlots | undefined) ?? EMPTY_SLOTS;
      this.calls.increment(CHECKPOINT_COUNTER, (id) => {
        this.calls.read(epochKey(planId), (e) => {
          const epoch = (e?.value as number | undefined) ?? 0;
          let last: AdmissionStep | undefined;
          let slotsNow: PlanSlots = EMPTY_SLOTS;
          // A write whose reply was lost may have landed with its preemptions; the retry then finds its
          // own slot ('duplicate') and no preemption. Those of every attempt are kept, and the ones
          // whose slot is gone now are carried out.
          const preempts = new Map<number, number>();
          this.calls.update<PlanSlots>(
            slotsKey(planId),
            (current) => {
              slotsNow = current ?? EMPTY_SLOTS;
              last = stepAdmission(slotsNow, { type: 'request', checkpointId: id, periodic, maxConcurrent: plan.maxConcurrent, owner: this.owner, nowMs: this.w.agenda.now, checked }, { maxConcurrentMax: MAX_CONCURRENT_MAX, negativeControls: this.w.negativeControls });
              for (const e of last.effects) if (e.type === 'preempt') preempts.set(e.checkpointId, e.by);
              if (last.changed) slotsNow = last.slots;
              return last.changed ? last.slots : undefined;
            },
            () => {
              const step = last as AdmissionStep;
              const held = new Set(slotsNow.slots.map((s) => s.checkpointId));
              const extra = [...preempts].filter(([p]) => !held.has(p) && !step.effects.some((e) => e.type === 'preempt' && e.checkpointId === p));
              const effects = [...extra.map(([p, by]) => ({ type: 'preempt' as const, checkpointId: p, by })), ...step.effects];
              this.admitted(plan, id, epoch, periodic, Object.assign({}, step, { effects }), answer, staged);
            },
          );
        });
      });
    });
  }

  private admitted(plan: SimPlan, id: number, epoch: number, periodic: boolean, step: AdmissionStep, answer: (a: TakeAnswer) => void, staged: boolean): void {
    for (const e of step.effects) {
      if (e.type === 'busy') {
        this.w.trace(`take ${plan.id}: busy (${e.inFlight.join(', ')} in flight)`);
        answer({ ok: false, code: 'busy', message: `plan ${plan.id} has ${e.inFlight.length} checkpoint(s) in flight` });
        return;
      }
      if (e.type === 'preempt' && !this.cancel(e.checkpointId, `a manual request (checkpoint ${e.by}) took its slot`)) this.w.preemptsRefused.add(e.checkpointId);
    }
    // At crash level the hold deadline is the agents' freeze deadline, as the service sets it.
    const holdMs = staged ? plan.freezeDeadlineMs : undefined;
    const record: CheckpointRecord = {
      id,
      plan: plan.id,
      level: plan.level,
      epoch,
      state: 'pending',
      failure: null,
      parts: [],
      volumes: [],
      ...(holdMs !== undefined ? { holdMs } : {}),
      pinned: false,
      owner: this.owner,
      periodic,
      createdAtMs: this.w.agenda.now,
    };
    const level = this.levelFor(plan, id, holdMs);
    const created = Round.create(
      {
        checkpointId: id,
        timeoutMs: plan.timeoutMs,
        commitTimeoutMs: ROUND_COMMIT_TIMEOUT_MS,
        refreshMs: ROUND_REFRESH_MS,
        settleMs: ROUND_SETTLE_MS,
        negativeControls: this.w.negativeControls,
        ...(holdMs !== undefined ? { staged: { holdMs } } : {}),
      },
      level,
    );
    if (!created.ok) throw new Error(created.error.message);
    const run = new RoundRun(plan, created.round, record, this.process.incarnation);
    this.rounds.set(id, run);
    this.w.trace(`take ${plan.id}: checkpoint ${id} admitted at epoch ${epoch}${periodic ? ' (periodic)' : ''}${staged ? ' (staged)' : ''}`);
    // As the service: the record is written before the round starts, and a take whose record could
    // not be written fails (so recovery always finds the rounds a dead coordinator ran).
    this.writeRecord(run, (ok, error) => {
      if (!ok) {
        this.rounds.delete(id);
        this.releaseSlot(plan.id, id);
        answer({ ok: false, code: 'unavailable', message: `the record of checkpoint ${id} was not written: ${error ?? ''}` });
        return;
      }
      answer({ ok: true, id });
      this.feed(run, { type: 'start', nowMs: this.w.agenda.now });
    });
  }

  /** `holdMs`: a staged round (at level app: policy sync, the agents' timeout of the checkpoint the hold deadline, as the service sets them). */
  private levelFor(plan: SimPlan, id: number, holdMs: number | undefined): RoundLevel {
    if (plan.level === 'opaque') return new OpaqueLevel({ graph: { processes: plan.apps.map((a) => `${a.server}/${a.app}`), channels: plan.channels } });
    if (plan.level === 'crash') {
      const r = CrashLevel.create({
        planId: plan.id,
        servers: plan.servers,
        volumes: plan.volumes.map((v) => ({ id: v.volume, server: v.server })),
        volumeBackend: true,
        freezeDeadlineMs: plan.freezeDeadlineMs,
        negativeControls: this.w.negativeControls,
      });
      if (!r.ok) throw new Error(r.message);
      return r.level;
    }
    const participants = plan.apps.map((a) => `${a.server}/${a.app}`);
    const r = AppLevel.create({
      checkpointId: id,
      graph: { graph: { processes: participants, channels: [] }, participants, servers: plan.servers, backEdges: new Set(), unsupportedChannels: [] },
      policy: holdMs !== undefined ? { kind: 'sync' } : { kind: 'aligned' },
      timeoutMs: holdMs ?? plan.timeoutMs,
      inlineStateBytesMax: 0,
      completedBefore: this.lastCompleted.get(plan.id),
      // As the service: the plan's volumes (used at policy none, and by a staged round's finish).
      volumes: plan.volumes.map((v) => ({ id: v.volume, server: v.server })),
      volumeBackend: true,
      planId: plan.id,
    });
    if (!r.ok) throw new Error(r.message);
    return r.level;
  }

  /** False when the round is not running here or refused the cancel (it is committing). */
  cancel(id: number, detail: string): boolean {
    const run = this.rounds.get(id);
    if (run === undefined) return false;
    return this.feed(run, { type: 'cancel', detail, nowMs: this.w.agenda.now });
  }

  // ---- agent events -----------------------------------------------------------------------------

  onEvent(e: AgentEvent): void {
    if (!this.process.up) return;
    this.agentsSeen.set(e.server, this.w.agenda.now);
    const reply = e.inReplyTo ?? '';
    if (reply.startsWith('op:')) {
      this.operationAnswer(e);
      return;
    }
    if (reply.startsWith('thaw:')) {
      for (const run of this.rounds.values()) {
        const wait = run.thawWaits.get(e.server);
        if (wait !== undefined && wait.requestId === reply && !wait.answered) {
          wait.answered = true;
          this.feed(run, { type: 'thaw-answered', server: e.server, confirmed: e.type === 'thawed', nowMs: this.w.agenda.now });
        }
      }
    }
    if (e.type !== 'ack' && e.type !== 'decline' && e.type !== 'progress' && e.type !== 'frozen' && e.type !== 'thawed' && e.type !== 'quiesced' && e.type !== 'captured') return;
    const run = this.rounds.get(e.checkpointId);
    if (run === undefined) return;
    this.feed(run, { type: e.type, event: e, nowMs: this.w.agenda.now } as RoundInput);
  }

  // ---- the runner -------------------------------------------------------------------------------

  /**
   * Feeds the round of this incarnation. A round that ended still takes the answer of its volume
   * call (and the outcome of the clean-up that answer asks for): snapshots finished after the end
   * must be deleted too.
   */
  /** Whether the round took the input (false: not fed, or rejected). */
  private feed(run: RoundRun, input: RoundInput): boolean {
    if (!this.process.up || run.incarnation !== this.process.incarnation) return false;
    // The sweep an aborted round arms as it ends fires after the end (runner.ts keeps that one timer).
    const late = input.type === 'volume-snapshot-finished' || input.type === 'cleaned' || input.type === 'stored' || (input.type === 'timer-fired' && input.name === 'late-sweep');
    if (this.rounds.get(run.record.id) !== run && !late) return false;
    const r = run.round.step(input);
    if (r.rejected && r.rejected.reason !== 'finished' && r.rejected.reason !== 'stale-timer') {
      this.w.trace(`ckpt ${run.record.id} rejected ${input.type}: ${r.rejected.reason}`);
    }
    for (const e of r.effects) this.apply(run, e);
    return r.rejected === undefined;
  }

  private apply(run: RoundRun, e: RoundEffect): void {
    const id = run.record.id;
    switch (e.type) {
      case 'set-state':
        run.record.state = e.state;
        run.record.failure = e.failure;
        this.w.trace(`ckpt ${id} ${e.state}${e.failure ? ` (${e.failure.reason}: ${e.failure.detail})` : ''}`);
        if (e.state === 'triggering') this.w.ledger.roundStarted(run.plan.id, id, this.w.agenda.now);
        if (e.state === 'held') this.held(run, e.nowMs);
        if (run.record.holdMs !== undefined && (e.state === 'held' || e.state === 'completed' || e.state === 'aborted')) this.w.count(`staged ${e.state}`);
        if (e.state === 'aborting' || e.state === 'aborted' || e.state === 'completed') this.w.ledger.roundEnded(run.plan.id, id);
        return;
      case 'set-failure':
        run.record.failure = e.failure;
        return;
      case 'persist':
        this.writeRecord(run, (ok) => this.feed(run, { type: 'stored', ok, nowMs: this.w.agenda.now }));
        return;
      case 'part-acked':
        if (e.ack.state.kind === 'object') run.record.parts.push({ server: e.ack.server, app: e.ack.app, ref: e.ack.state.ref });
        return;
      case 'set-volumes':
        // As runner.ts: a staged round's volumes are the caller's, kept apart.
        if (run.record.holdMs !== undefined) run.record.callerVolumes = e.volumes;
        else run.record.volumes = e.volumes;
        return;
      case 'patch-part':
        // The opaque level records a captured state this way.
        if (e.patch.state !== undefined && e.app !== undefined) {
          const app = e.app;
          run.record.parts = [...run.record.parts.filter((p) => !(p.server === e.server && p.app === app)), { server: e.server, app, ref: e.patch.state }];
        }
        return;
      case 'patch-server':
      case 'progress':
        return;
      case 'log':
        if (e.level === 'warn') this.w.trace(`ckpt ${id}: ${e.message}`);
        return;
      case 'trigger':
        for (const t of e.triggers) {
          const apps = run.plan.apps.filter((a) => a.server === t.server).map((a) => a.app);
          this.w.controls.send('coordinator', t.server, {
            requestId: `trg:${id}:${t.server}`,
            tenant: TENANT,
            server: t.server,
            plan: run.plan.id,
            epoch: run.record.epoch,
            type: 'trigger',
            checkpointId: id,
            policy: e.policy,
            timeoutMs: e.timeoutMs,
            initiatorApps: t.initiatorApps,
            backEdgeChannels: t.backEdgeChannels,
            inlineStateBytesMax: e.inlineStateBytesMax,
            ...(e.completedCheckpointId !== undefined ? { completedCheckpointId: e.completedCheckpointId } : {}),
            apps,
          } as Control);
        }
        return;
      case 'publish':
        this.w.controls.send('coordinator', e.server, Object.assign({ requestId: `${e.command.type}:${id}:${e.server}:${++run.publishSerial}`, tenant: TENANT, server: e.server, plan: run.plan.id, epoch: run.record.epoch }, e.command) as Control);
        return;
      case 'request-thaw':
        for (const server of e.servers) this.requestThaw(run, server);
        return;
      case 'start-timer':
        this.process.startTimer(`round ${id} ${e.name}`, e.ms, () => this.feed(run, { type: 'timer-fired', name: e.name, nowMs: this.w.agenda.now }));
        return;
      case 'cancel-timer':
        this.process.cancelTimer(`round ${id} ${e.name}`);
        return;
      case 'snapshot-volumes':
        this.snapshotVolumes(run);
        return;
      case 'commit':
        this.commit(run, e.objects.map((o) => o.ref));
        return;
      case 'read-record':
        this.readRecord(run);
        return;
      case 'clean-up':
        this.cleanUp(run, e.objects, e.volumes, e.lateObjects ?? []);
        return;
      case 'ended':
        this.ended(run, e.state);
        return;
    }
  }

  /**
   * The protection service's side of a staged round, once it is held (every server frozen at
   * `heldAt`): it snapshots the plan's volumes with its own tools, then calls FinishCheckpoint. Most
   * finishes are right; some come after the hold deadline, name a volume too few (refused, then
   * sent right), carry snapshots that started before the begin (before any freeze), or are sent
   * twice. The caller's
   * snapshots are its own: they are not the coordinator's to delete, so they are not in the
   * world's volume store.
   */
  private held(run: RoundRun, heldAt: number): void {
    const p = this.w.callerPrng;
    const holdMs = run.record.holdMs ?? 0;
    const r = p.next();
    const late = r < FINISH_LATE_P;
    const invalid = !late && r < FINISH_LATE_P + FINISH_INVALID_P;
    const outside = !late && !invalid && r < FINISH_LATE_P + FINISH_INVALID_P + FINISH_OUTSIDE_WINDOW_P;
    const twice = p.next() < FINISH_TWICE_P;
    // Time since the begin already spent: the hold deadline counts from the start of the round.
    const left = Math.max(1, run.record.createdAtMs + holdMs - heldAt);
    const delay = late ? left + 1 + p.int(500) : 1 + p.int(Math.max(1, Math.floor(left * 0.6)));
    const incarnation = this.process.incarnation;
    const finish = (what: string, volumes: readonly SimPlan['volumes'][number][], startedAt: number): void => {
      if (this.process.incarnation !== incarnation || !this.process.up) return;
      const taken: TakenVolume[] = volumes.map((v) => ({ volumeId: v.volume, server: v.server, snapshotRef: `caller-${run.record.id}-${v.volume}`, startedAtUnixMs: startedAt, endedAtUnixMs: this.w.agenda.now }));
      for (const t of taken) this.w.snapshotTimes.set(t.snapshotRef, { fromMs: t.startedAtUnixMs, toMs: t.endedAtUnixMs });
      const accepted = this.feed(run, { type: 'finish', volumes: taken, nowMs: this.w.agenda.now });
      this.w.count(`staged finishes (${what}) ${accepted ? 'accepted' : 'refused'}`);
    };
    this.w.agenda.after(delay, `caller finishes ckpt ${run.record.id}${late ? ' (late)' : invalid ? ' (a volume short)' : outside ? ' (outside the window)' : ''}`, () => {
      const volumes = run.plan.volumes;
      if (invalid && volumes.length > 0) {
        finish('a volume short', volumes.slice(1), heldAt);
        this.w.agenda.after(1 + p.int(50), '', () => finish('right', volumes, heldAt));
        return;
      }
      // Outside the window: snapshots started before the begin, so before any server froze.
      finish(late ? 'late' : outside ? 'outside the window' : 'right', volumes, outside ? run.record.createdAtMs - 1 : heldAt);
      if (twice) finish('twice', volumes, heldAt);
    });
  }

  /** Writes the live record; writes of one round go one at a time, in order. */
  private writeRecord(run: RoundRun, done: (ok: boolean, error?: string) => void, value: () => CheckpointRecord = () => run.record): void {
    const write = (): void => {
      run.writing = true;
      this.calls.put(checkpointKey(run.record.id), value(), (ok, error) => {
        run.writing = false;
        const next = run.queued;
        run.queued = undefined;
        if (next !== undefined) next();
        done(ok, error);
        if (!run.writing) for (const fn of run.drained.splice(0)) fn();
      });
    };
    if (run.writing) run.queued = write;
    else write();
  }

  /** A thaw, resent until answered or `THAW_WAIT_MS` ran out (bus.request with its resend). */
  private requestThaw(run: RoundRun, server: string): void {
    const requestId = `thaw:${run.record.id}:${server}:${++run.publishSerial}`;
    const wait = { requestId, answered: false };
    run.thawWaits.set(server, wait);
    const control = { requestId, tenant: TENANT, server, plan: run.plan.id, epoch: run.record.epoch, type: 'thaw', checkpointId: run.record.id, afterRestore: false } as Control;
    const started = this.w.agenda.now;
    const send = (): void => {
      if (wait.answered || run.thawWaits.get(server) !== wait) return;
      if (this.w.agenda.now - started >= THAW_WAIT_MS) {
        wait.answered = true;
        this.feed(run, { type: 'thaw-answered', server, confirmed: false, nowMs: this.w.agenda.now });
        return;
      }
      this.w.controls.send('coordinator', server, control);
      this.process.later(RESEND_MS, '', send);
    };
    send();
  }

  /** The backend takes the group (or fails part way); its answer may come after the round aborted, or never. */
  private snapshotVolumes(run: RoundRun): void {
    const f = this.w.faults();
    const delay = 1 + this.w.prng.int(f.volumeDelayMsMax);
    const fails = this.w.prng.next() < f.volumeFailureProbability;
    const volumes = run.plan.volumes;
    const keep = fails ? this.w.prng.int(volumes.length + 1) : volumes.length;
    const started = this.w.agenda.now;
    const incarnation = this.process.incarnation;
    this.volumeCallsPending.add(run.record.id);
    this.w.agenda.after(delay, `volume backend ${fails ? 'fails' : 'takes'} snapshot of ckpt ${run.record.id}`, () => {
      const taken = this.w.volumes.snapshot(volumes.slice(0, keep).map((v) => v.volume), `ckpt-${run.record.id}`, started);
      this.volumeCallsPending.delete(run.record.id);
      if (this.process.incarnation !== incarnation) return;
      const refs: TakenVolume[] = taken.map((t, i) => ({ volumeId: t.volume, server: (volumes[i] as { server: string }).server, snapshotRef: t.id, startedAtUnixMs: started, endedAtUnixMs: this.w.agenda.now }));
      for (const r of refs) this.w.snapshotTimes.set(r.snapshotRef, { fromMs: r.startedAtUnixMs, toMs: r.endedAtUnixMs });
      this.feed(run, { type: 'volume-snapshot-finished', ok: !fails, taken: refs, ...(fails ? { detail: 'the volume backend failed' } : {}), nowMs: this.w.agenda.now });
    });
  }

  /** Every object read back against its digest, then the record written completed: the commit point. */
  private commit(run: RoundRun, refs: readonly { name: string; digest: string }[]): void {
    const check = (i: number): void => {
      if (i === refs.length) {
        const record = Object.assign({}, run.record, { state: 'completed' as const });
        this.writeRecord(
          run,
          (ok, error) => {
            if (ok) {
              this.lastCompleted.set(run.plan.id, run.record.id);
              this.feed(run, { type: 'committed', ok: true, nowMs: this.w.agenda.now });
              // A failed write may have landed (a lost reply): the round reads the record back.
            } else this.feed(run, { type: 'commit-unknown', detail: `the completed record may not have been stored: ${error ?? 'store error'}`, nowMs: this.w.agenda.now });
          },
          () => record,
        );
        return;
      }
      const ref = refs[i] as { name: string; digest: string };
      this.w.io.call(
        this.process,
        `info ${ref.name}`,
        () => this.w.objects.get(ref.name),
        (r) => {
          if (!r.ok) this.feed(run, { type: 'committed', ok: false, reason: 'store-failed', detail: r.error, nowMs: this.w.agenda.now });
          else if (r.value?.digest !== ref.digest) this.feed(run, { type: 'committed', ok: false, reason: 'store-failed', detail: `${ref.name} missing or changed`, nowMs: this.w.agenda.now });
          else check(i + 1);
        },
      );
    };
    check(0);
  }

  /**
   * RecordWriter.readBack: once every write asked for before has settled, the record is read, and
   * written back unchanged by compare-and-set when it is not completed (fencing a commit write still
   * in flight); the round is told the state it found.
   */
  private readRecord(run: RoundRun): void {
    const read = (): void => {
      let seen: CheckpointRecord | undefined;
      this.calls.update<CheckpointRecord>(
        checkpointKey(run.record.id),
        (current) => {
          seen = current;
          return current === undefined || current.state === 'completed' ? undefined : current;
        },
        () => {
          if (seen?.state === 'completed') this.lastCompleted.set(run.plan.id, run.record.id);
          this.feed(run, seen === undefined ? { type: 'record-read', ok: false, detail: 'the record is gone', nowMs: this.w.agenda.now } : { type: 'record-read', ok: true, state: seen.state, nowMs: this.w.agenda.now });
        },
      );
    };
    if (run.writing) run.drained.push(read);
    else read();
  }

  /** Deletes are idempotent: retried until they land, as the client retries a timed-out delete. */
  private cleanUp(run: RoundRun, objects: boolean, volumes: readonly TakenVolume[], lateObjects: readonly string[]): void {
    if (!this.w.cleanUps.has(run.record.id)) this.w.cleanUps.set(run.record.id, this.w.agenda.now);
    if (volumes.length > 0) this.volumeDeletesPending.add(run.record.id);
    // Those the prefix finds, and those named by answers that came after the abort (part-state.ts deleteCheckpointObjects).
    const listed = objects ? this.w.objects.list().filter((o) => o.name.startsWith(objectPrefix(run.record.id))).map((o) => o.name) : [];
    const names = [...new Set([...listed, ...lateObjects])];
    this.deleteAll(names, volumes.map((v) => v.snapshotRef), () => {
      this.volumeDeletesPending.delete(run.record.id);
      this.feed(run, { type: 'cleaned', volumes, nowMs: this.w.agenda.now });
    });
  }

  deleteAll(objects: readonly string[], snapshots: readonly string[], done: () => void): void {
    const items = [...objects.map((o) => ({ kind: 'object' as const, name: o })), ...snapshots.map((s) => ({ kind: 'volume' as const, name: s }))];
    const next = (i: number): void => {
      if (i === items.length) {
        done();
        return;
      }
      const item = items[i] as { kind: 'object' | 'volume'; name: string };
      this.calls.retried(`delete ${item.name}`, () => (item.kind === 'object' ? this.w.objects.delete(item.name) : this.w.volumes.delete(item.name)), () => next(i + 1));
    };
    next(0);
  }

  private ended(run: RoundRun, state: 'completed' | 'aborted'): void {
    const id = run.record.id;
    this.w.trace(`ckpt ${id} ended ${state}`);
    this.w.ledger.roundEnded(run.plan.id, id);
    const finish = (): void => {
      this.rounds.delete(id);
      if (state === 'completed') applyRetention(this, this.w, run.plan.id);
      for (const cb of run.onEnd) cb(run.record);
      this.releaseSlot(run.plan.id, id);
    };
    // The final record lands before the slot is freed.
    if (run.writing) run.drained.push(finish);
    else finish();
  }

  deleteCheckpoint(id: number, answer: (ok: boolean, message: string) => void): void {
    deleteCheckpoint(this, this.w, id, answer);
  }

  pin(id: number, pinned: boolean, answer: (ok: boolean) => void): void {
    pinCheckpoint(this, id, pinned, answer);
  }

  releaseSlot(planId: string, id: number): void {
    this.calls.update<PlanSlots>(
      slotsKey(planId),
      (current) => {
        const step = stepAdmission(current ?? EMPTY_SLOTS, { type: 'release', checkpointId: id }, { maxConcurrentMax: MAX_CONCURRENT_MAX, negativeControls: this.w.negativeControls });
        return step.changed ? step.slots : undefined;
      },
      () => undefined,
    );
  }
}
