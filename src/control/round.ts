/**
 * The coordinator's per-checkpoint round as a sans-I/O state machine: inputs in (agent events,
 * timer firings, the outcomes of the I/O it asked for), effects out, in the order the shell must
 * carry them out. One machine for every level; what differs between levels (who is triggered and
 * how, what "every participant answered" means, what the commit needs first, what an abort must
 * undo) sits behind `RoundLevel`, with one module per level (round-app, round-crash, round-opaque).
 *
 *   pending -> triggering -> collecting -> [held ->] committing -> completed
 *                  \______________\____________\_______________\______-> aborting -> aborted
 *
 * A staged round (`RoundConfig.staged`, BeginCheckpoint / FinishCheckpoint of the API) takes its
 * volumes from the caller: once every participant answered it waits in `held` for the caller's
 * `finish` (its volume snapshots, taken with its own tools) instead of asking the backend, bounded by
 * the hold deadline (timer `hold`, armed at the start: the agents free their servers by themselves
 * then). The finish is checked by the level as a backend's answer is (one snapshot per volume of the
 * plan, each inside the window every participant held), and the round goes on to commit as any
 * other. A finish that names other volumes is refused and the round stays held; one outside the
 * window fails the round, which thaws.
 *
 * The machine owns what every level shares: the phases and the record's state, the checkpoint and
 * commit timeouts, the refresh of the stored record, the failure (the first one wins), the bounded
 * wait of an abort for answers still under way, and the clean-up of every part. A volume group
 * snapshot is the one call whose result may land after the round aborted, even after it ended: the
 * machine then asks for the deletion of the snapshots it brings (defect 6 of issue 9), and records
 * which were deleted, or which could not be and why. An agent's answer may come late the same way
 * (its trigger came late, or the abort notice was lost): one that names stored objects (an ack, a
 * capture) has them deleted, one that declines has the checkpoint's prefix swept again, whenever
 * it arrives. For an answer that never comes, an aborted round that stores objects sweeps its
 * prefix once more after the agents' own timeout (`late-sweep`, a timer that fires after the end).
 *
 * Once the commit is asked for, its outcome decides: the round deletes no part until it knows
 * whether the completed record landed. A failure meanwhile (a decline, a level's timer) waits for
 * that outcome, a cancel is refused as too late, and an outcome that is not known (the commit's
 * write failed in a way that may have landed, or it never answered) is resolved by reading the
 * record back (`read-record`, answered by `record-read`).
 *
 * Timers are effects (`start-timer`, `cancel-timer`) and come back as `timer-fired`; time comes in
 * as `nowMs` on every input. Stale, duplicate and unknown inputs are `rejected` outcomes, never
 * exceptions.
 */
import type { AgentEvent, ControlCommand, ObjectRef } from '../wire/index.js';
import type { PolicyConfig } from '../core/types.js';
import type { ServerTrigger } from './round-graph.js';
import type { NegativeControls } from './negative-controls.js';

export type RoundState = 'pending' | 'triggering' | 'collecting' | 'held' | 'committing' | 'completed' | 'aborting' | 'aborted';

export type RoundFailureReason =
  | 'timeout'
  | 'declined'
  | 'agent-unavailable'
  | 'channel-failed'
  | 'subsumed'
  | 'store-failed'
  | 'freeze-failed'
  | 'volume-snapshot-failed'
  | 'hook-failed'
  | 'epoch-changed'
  | 'cancelled'
  | 'internal';

export interface RoundFailure {
  readonly reason: RoundFailureReason;
  readonly detail: string;
}

/** Timers a level arms for itself (the crash level: its agents' freeze deadline). */
export type LevelTimer = 'freeze-deadline';
/** `late-sweep`: armed when an aborted round of a level that stores objects ended (see `cleaned`). */
/** `hold`: a staged round's hold deadline, from the start to the caller's finish. */
export type RoundTimer = 'checkpoint' | 'commit' | 'refresh' | 'settle' | 'late-sweep' | 'hold' | LevelTimer;

/** The agent events a round takes. */
export type RoundEventType = 'ack' | 'decline' | 'progress' | 'frozen' | 'thawed' | 'quiesced' | 'captured';
export type RoundEvent = Extract<AgentEvent, { type: RoundEventType }>;
export type RoundEventInput = { [K in RoundEventType]: { readonly type: K; readonly event: Extract<AgentEvent, { type: K }>; readonly nowMs: number } }[RoundEventType];

/** One member of a volume group snapshot, with the interval in which the backend took it. */
export interface TakenVolume {
  readonly volumeId: string;
  readonly server: string;
  readonly snapshotRef: string;
  readonly startedAtUnixMs: number;
  readonly endedAtUnixMs: number;
}

/** A volume snapshot as the checkpoint record keeps it (coordinator/model.ts VolumeSnapshot). */
export interface RoundVolumeRecord {
  readonly volumeId: string;
  readonly server: string;
  readonly snapshotRef: string;
  readonly frozenAtUnixMs: number;
  readonly snapshotAtUnixMs: number;
  readonly thawedAtUnixMs: number;
  /** An aborted checkpoint's snapshot, deleted through the backend. */
  readonly deletedAtUnixMs?: number;
  /** Why an aborted checkpoint's snapshot could not be deleted. */
  readonly deleteError?: string;
}

export type RoundInput =
  | { readonly type: 'start'; readonly nowMs: number }
  | RoundEventInput
  | { readonly type: 'timer-fired'; readonly name: RoundTimer; readonly nowMs: number }
  | { readonly type: 'cancel'; readonly detail: string; readonly nowMs: number }
  /** A staged round's finish: the volume snapshots the caller took while the round was held. */
  | { readonly type: 'finish'; readonly volumes: readonly TakenVolume[]; readonly nowMs: number }
  /** A command the round asked to publish could not be sent (not for best-effort ones). */
  | { readonly type: 'publish-failed'; readonly server: string; readonly command: string; readonly detail: string; readonly nowMs: number }
  /** A write of the live record finished. */
  | { readonly type: 'stored'; readonly ok: boolean; readonly detail?: string; readonly nowMs: number }
  /** The volume call returned; `taken` holds what exists even when it failed half way. */
  | { readonly type: 'volume-snapshot-finished'; readonly ok: boolean; readonly taken: readonly TakenVolume[]; readonly detail?: string; readonly nowMs: number }
  | { readonly type: 'thaw-answered'; readonly server: string; readonly confirmed: boolean; readonly nowMs: number }
  | { readonly type: 'committed'; readonly ok: true; readonly nowMs: number }
  /** The commit is known not to have stored the completed record (a check failed before the write). */
  | { readonly type: 'committed'; readonly ok: false; readonly reason: RoundFailureReason; readonly detail: string; readonly nowMs: number }
  /** The commit's write failed in a way that may have landed (a timeout, a lost reply): the record is read back. */
  | { readonly type: 'commit-unknown'; readonly detail: string; readonly nowMs: number }
  /** The record as read back (`state` as stored), or why it could not be read. */
  | { readonly type: 'record-read'; readonly ok: true; readonly state: string; readonly nowMs: number }
  | { readonly type: 'record-read'; readonly ok: false; readonly detail: string; readonly nowMs: number }
  /** A clean-up finished: `objectsError` when stored objects were left; the volumes it was given, and why they were not deleted. */
  | { readonly type: 'cleaned'; readonly objectsError?: string; readonly volumes: readonly TakenVolume[]; readonly volumesError?: string; readonly nowMs: number };

/** Fields of an app's part in the record (coordinator/model.ts AppPart) that a level sets. */
export interface PartPatch {
  readonly acked?: boolean;
  readonly ackedAtUnixMs?: number;
  readonly state?: ObjectRef;
  readonly counts?: { readonly sent: Readonly<Record<string, number>>; readonly received: Readonly<Record<string, number>> };
  readonly alignmentMs?: number;
  readonly failureReason?: RoundFailureReason;
  readonly failureDetail?: string;
}

/** Fields of a server's frozen window in the record (coordinator/model.ts ServerFreeze). */
export interface ServerPatch {
  readonly frozenAtUnixMs?: number;
  readonly thawedAtUnixMs?: number;
  readonly agentFrozenAtUnixMs?: number;
  readonly agentThawedAtUnixMs?: number;
  readonly byWatchdog?: boolean;
  readonly hooks?: Extract<AgentEvent, { type: 'frozen' }>['hooks'];
}

export type ProgressKind = 'app-progress' | 'app-acked' | 'app-declined' | 'server-frozen' | 'server-thawed' | 'volumes-snapshotted';

/** A command for one server, without the header (tenant, plan, epoch) the shell adds. */
export type RoundCommand = Exclude<ControlCommand, { type: 'ping' } | { type: 'trigger' }>;

/**
 * What the shell carries out, in the order given. Within one step: a `set-state` comes before the
 * `persist` that stores it; record changes (`patch-part`, `part-acked`, `patch-server`,
 * `set-volumes`, `set-failure`) come before the `commit` or `persist` that must include them;
 * `ended` comes last, after the final state was set and persisted.
 */
export type RoundEffect =
  | { readonly type: 'set-state'; readonly state: RoundState; readonly failure: RoundFailure | null; readonly nowMs: number }
  | { readonly type: 'set-failure'; readonly failure: RoundFailure }
  /** Write the live record now (the shell coalesces writes queued behind one in flight). */
  | { readonly type: 'persist' }
  | { readonly type: 'patch-part'; readonly server: string; readonly app: string | undefined; readonly patch: PartPatch }
  /** An app's ack accepted: the shell builds its part (inline state digest, statistics) from the ack. */
  | { readonly type: 'part-acked'; readonly ack: Extract<AgentEvent, { type: 'ack' }>; readonly atMs: number }
  | { readonly type: 'patch-server'; readonly server: string; readonly patch: ServerPatch }
  | { readonly type: 'set-volumes'; readonly volumes: readonly RoundVolumeRecord[] }
  | { readonly type: 'progress'; readonly kind: ProgressKind; readonly server?: string; readonly app?: string; readonly detail?: string }
  | { readonly type: 'log'; readonly level: 'info' | 'warn'; readonly message: string; readonly fields?: Readonly<Record<string, unknown>> }
  /**
   * The app level's triggers, one per server. One effect, so that sending them once per plan
   * (DESIGN.md section 5) changes only the shell's handling of it.
   */
  | {
      readonly type: 'trigger';
      readonly triggers: readonly ServerTrigger[];
      readonly policy: PolicyConfig;
      readonly timeoutMs: number;
      readonly inlineStateBytesMax: number;
      readonly completedCheckpointId: number | undefined;
    }
  /** A command to one server; a best-effort one that cannot be sent is only logged. */
  | { readonly type: 'publish'; readonly server: string; readonly command: RoundCommand; readonly bestEffort: boolean }
  /** Thaw these servers and answer each with `thaw-answered` (the shell bounds the wait). */
  | { readonly type: 'request-thaw'; readonly servers: readonly string[] }
  | { readonly type: 'start-timer'; readonly name: RoundTimer; readonly ms: number }
  | { readonly type: 'cancel-timer'; readonly name: RoundTimer }
  /** Snapshot the plan's volumes: as one group, or (level none) each on its own, one after another. */
  | { readonly type: 'snapshot-volumes'; readonly oneByOne: boolean }
  /** The atomic commit: check each object against its acked digest, then store the record as completed. */
  | { readonly type: 'commit'; readonly objects: readonly CommitObject[] }
  /**
   * Read the stored record back once every write asked for before it has settled, so that a write
   * still in flight cannot land after the answer (a compare-and-set re-write fences it); answer
   * `record-read`.
   */
  | { readonly type: 'read-record' }
  /**
   * Delete the round's stored objects (when `objects`: those the record names and those under the
   * checkpoint's prefix), the objects named by answers that came after the abort (`lateObjects`,
   * which the record does not list), and these volume snapshots; answer `cleaned`.
   */
  | { readonly type: 'clean-up'; readonly objects: boolean; readonly volumes: readonly TakenVolume[]; readonly lateObjects?: readonly string[] }
  | { readonly type: 'ended'; readonly state: 'completed' | 'aborted' };

export interface CommitObject {
  readonly who: string;
  readonly ref: ObjectRef;
}

export type RoundRejectReason =
  | 'not-started'
  | 'already-started'
  | 'aborted'
  | 'finished'
  | 'unexpected'
  | 'unknown-participant'
  | 'duplicate'
  | 'stale-timer'
  /** A cancel after the commit was asked for: too late, the commit's outcome decides. */
  | 'committing'
  | 'refused'
  /** A finish of a staged round that is not held yet (still freezing or triggering). */
  | 'not-held'
  /** A finish after the hold deadline passed (the round aborted then). */
  | 'hold-expired'
  /** A finish whose volumes are not one snapshot of each volume of the plan (the round stays held). */
  | 'invalid-volumes'
  /** A finish of a round that was not begun as staged. */
  | 'not-staged';

export interface RoundRejection {
  readonly reason: RoundRejectReason;
  readonly detail: string;
}

export interface RoundResult {
  readonly effects: readonly RoundEffect[];
  readonly rejected?: RoundRejection;
}

/** What a level sees of the round while it handles an input. */
export interface LevelContext {
  readonly checkpointId: number;
  readonly nowMs: number;
  readonly state: RoundState;
  /** The round's failure once it aborts. */
  readonly failure: RoundFailure | null;
  emit(effect: RoundEffect): void;
  /** Every participant answered: the round goes on to commit (ignored unless collecting). */
  ready(): void;
  /** The round fails with this reason (the first failure wins; later ones are ignored). */
  fail(reason: RoundFailureReason, detail: string): void;
  /** Ask for the volume snapshot; its result comes to `volumesTaken`. */
  snapshotVolumes(oneByOne: boolean): void;
  /** Everything is checked: commit, checking these objects' digests first. */
  commit(objects: readonly CommitObject[]): void;
  /** Arms one of the level's own timers; it comes back to `RoundLevel.timerFired`. */
  startTimer(name: LevelTimer, ms: number): void;
  cancelTimer(name: LevelTimer): void;
}

/** One consistency level's part of a round. */
export interface RoundLevel {
  readonly kind: 'app' | 'crash' | 'opaque';
  /** Whether participants store objects (states, channel states) that an abort must delete. */
  readonly storesObjects: boolean;
  /** The round starts: trigger, freeze or quiesce. */
  start(ctx: LevelContext): void;
  /** An agent event while the round runs or aborts. */
  event(input: RoundEventInput, ctx: LevelContext): RoundRejection | undefined;
  /** Every participant answered: check the cut, take the volumes, then `ctx.commit`. */
  commit(ctx: LevelContext): void;
  /** The volume call returned while committing. */
  volumesTaken(ok: boolean, taken: readonly TakenVolume[], detail: string | undefined, ctx: LevelContext): void;
  /**
   * A staged round: why the caller's volume snapshots do not describe the plan's volumes (one of
   * each, none other), or undefined when they do. A level without it cannot be staged.
   */
  checkGiven?(given: readonly TakenVolume[]): string | undefined;
  /** A staged round's finish, checked by `checkGiven`, while committing: check the cut and the window, then `ctx.commit`. */
  volumesGiven?(given: readonly TakenVolume[], ctx: LevelContext): void;
  /** A thaw was answered (or its wait ran out). */
  thawAnswered(server: string, confirmed: boolean, ctx: LevelContext): void;
  /** One of the level's own timers fired while the round runs. */
  timerFired(name: LevelTimer, ctx: LevelContext): void;
  /** What a timeout waited for, in words (the level may mark the silent parts too). */
  timedOut(ctx: LevelContext): string;
  /** The round aborts: undo what the level started (abort notices, thaws, resumes). */
  abort(ctx: LevelContext): void;
  /** The round completed. */
  completed(ctx: LevelContext): void;
  /** While aborting: answers the level still waits for (thaws, captures) before the clean-up. */
  awaiting(): boolean;
  /** The record's entries for volume snapshots taken by this round. */
  volumeRecords(taken: readonly TakenVolume[]): RoundVolumeRecord[];
}

export interface RoundConfig {
  readonly checkpointId: number;
  /** Covers triggering and collecting. */
  readonly timeoutMs: number;
  /** Covers committing (the volume snapshot of a crash-level round included). */
  readonly commitTimeoutMs: number;
  /** How far the stored record of a running round may lag behind the live one. */
  readonly refreshMs: number;
  /** How long an abort waits for answers under way (thaws, captures, a volume call) before it cleans up. */
  readonly settleMs: number;
  readonly negativeControls: NegativeControls;
  /** A staged round: the caller brings the volume snapshots (`finish`) within `holdMs` of the start. */
  readonly staged?: { readonly holdMs: number };
}

/** How the failure detail of a staged round that reached its hold deadline starts. */
export const HOLD_DEADLINE_PASSED = 'the hold deadline';

export type RoundConfigError = { readonly kind: 'invalid-config'; readonly message: string };

type VolumeCall = 'idle' | 'running' | 'returned';

/** The commit from the round's side: asked for, its outcome awaited, or being read back. */
type CommitCall = 'idle' | 'running' | 'reading' | 'settled';

export class Round implements LevelContext {
  private phase: RoundState = 'pending';
  private failed: RoundFailure | null = null;
  private out: RoundEffect[] = [];
  private now = 0;
  private readonly armed = new Set<RoundTimer>();
  /** Set once the commit was asked for: no refresh may store the live record over the completed one. */
  private sealed = false;
  /** The clean-up of the abort was asked for. */
  private cleaning = false;
  private volumeCall: VolumeCall = 'idle';
  /** Volume snapshots this round took (known to exist), with their records once cleaned. */
  private taken: TakenVolume[] = [];
  private volumeRecords: RoundVolumeRecord[] = [];
  private commitCall: CommitCall = 'idle';
  /** Why the commit's outcome was not known, for the failure if the read-back says it did not land. */
  private commitUnknown = '';
  /** A failure that came while the commit's outcome was awaited: it stands if the commit did not land. */
  private deferred: RoundFailure | null = null;
  /** Objects named by answers that came while the clean-up ran, not yet handed to a clean-up. */
  private lateObjects: string[] = [];
  /** An answer came while the clean-up ran: it is done again (by prefix, and `lateObjects`) once that one answered. */
  private sweepAgain = false;
  /** A staged round failed at its hold deadline (a finish after it is told so). */
  private holdExpired = false;

  static create(config: RoundConfig, level: RoundLevel): { ok: true; round: Round } | { ok: false; error: RoundConfigError } {
    const problems: string[] = [];
    for (const [name, v] of [
      ['timeoutMs', config.timeoutMs],
      ['commitTimeoutMs', config.commitTimeoutMs],
      ['refreshMs', config.refreshMs],
      ['settleMs', config.settleMs],
      ...(config.staged ? ([['staged.holdMs', config.staged.holdMs]] as const) : []),
    ] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) problems.push(`${name} must be a positive integer, got ${v}`);
    }
    if (problems.length > 0) return { ok: false, error: { kind: 'invalid-config', message: problems.join('; ') } };
    return { ok: true, round: new Round(config, level) };
  }

  private constructor(
    private readonly config: RoundConfig,
    private readonly level: RoundLevel,
  ) {}

  get checkpointId(): number {
    return this.config.checkpointId;
  }

  get nowMs(): number {
    return this.now;
  }

  get state(): RoundState {
    return this.phase;
  }

  get failure(): RoundFailure | null {
    return this.failed;
  }

  step(input: RoundInput): RoundResult {
    const out: RoundEffect[] = [];
    this.out = out;
    this.now = input.nowMs;
    const rejected = this.dispatch(input);
    return rejected ? { effects: out, rejected } : { effects: out };
  }

  // ---- LevelContext -----------------------------------------------------------------------------

  emit(effect: RoundEffect): void {
    this.out.push(effect);
    if (effect.type === 'patch-part' || effect.type === 'part-acked' || effect.type === 'patch-server') this.refreshSoon();
  }

  ready(): void {
    if (this.phase !== 'collecting' && this.phase !== 'triggering') return;
    this.cancelTimer('checkpoint');
    if (this.config.staged) {
      // The caller snapshots its volumes now; the hold timer, armed at the start, bounds the wait.
      this.setState('held');
      this.out.push({ type: 'log', level: 'info', message: 'held: waiting for the caller to finish', fields: { holdMs: this.config.staged.holdMs } });
      return;
    }
    this.setState('committing');
    this.startTimer('commit', this.config.commitTimeoutMs);
    this.level.commit(this);
  }

  fail(reason: RoundFailureReason, detail: string): void {
    if (this.phase === 'aborting' || this.phase === 'aborted' || this.phase === 'completed') return;
    if (this.commitOutstanding()) {
      // The completed record may land: aborting now would delete the parts it names.
      if (this.deferred === null) {
        this.deferred = { reason, detail };
        this.out.push({ type: 'log', level: 'warn', message: `failure while the commit is under way; its outcome decides: ${detail}`, fields: { reason } });
      }
      return;
    }
    this.failed = { reason, detail };
    // Every timer of the running round, the level's own included: the abort undoes the level's work.
    for (const name of [...this.armed]) if (name !== 'settle') this.cancelTimer(name);
    this.setState('aborting');
    this.emit({ type: 'persist' });
    this.level.abort(this);
    this.settleOrWait();
  }

  snapshotVolumes(oneByOne: boolean): void {
    if (this.phase !== 'committing' || this.volumeCall !== 'idle') return;
    this.volumeCall = 'running';
    this.out.push({ type: 'snapshot-volumes', oneByOne });
  }

  commit(objects: readonly CommitObject[]): void {
    if (this.phase !== 'committing' || this.sealed) return;
    this.sealed = true;
    this.commitCall = 'running';
    this.cancelTimer('refresh');
    this.out.push({ type: 'commit', objects });
  }

  // ---- inputs -----------------------------------------------------------------------------------

  private dispatch(input: RoundInput): RoundRejection | undefined {
    switch (input.type) {
      case 'start':
        if (this.phase !== 'pending') return { reason: 'already-started', detail: `checkpoint ${this.checkpointId} already started (${this.phase})` };
        this.setState('triggering');
        this.startTimer('checkpoint', this.config.timeoutMs);
        // Before the level's own timers: at one deadline, the hold's failure names the cause.
        if (this.config.staged) this.startTimer('hold', this.config.staged.holdMs);
        this.level.start(this);
        // The level may have failed already (a command not sent, a tracker refusal).
        if ((this.phase as RoundState) === 'triggering') this.setState('collecting');
        return undefined;
      case 'cancel':
        if (this.finished()) return { reason: 'finished', detail: `checkpoint ${this.checkpointId} already ${this.phase}` };
        if (this.phase === 'aborting') return { reason: 'aborted', detail: `checkpoint ${this.checkpointId} is already aborting` };
        if (this.commitOutstanding()) return { reason: 'committing', detail: `checkpoint ${this.checkpointId} is committing: the cancel came too late, the commit's outcome decides` };
        this.fail('cancelled', input.detail);
        return undefined;
      case 'finish':
        return this.finish(input.volumes);
      case 'timer-fired':
        return this.timerFired(input.name);
      case 'publish-failed':
        if (this.finished()) return { reason: 'finished', detail: `checkpoint ${this.checkpointId} already ${this.phase}` };
        this.fail('internal', `${input.command} for ${input.server} not sent: ${input.detail}`);
        return undefined;
      case 'stored':
        // A failed write of the live record is written again at the next refresh: every write stores
        // the whole live record, so one that lands repairs the ones that did not.
        if (!input.ok && !this.sealed && !this.finished()) this.refreshSoon();
        return undefined;
      case 'volume-snapshot-finished':
        return this.volumesReturned(input.ok, input.taken, input.detail);
      case 'thaw-answered':
        if (this.finished()) return { reason: 'finished', detail: `thaw answer of ${input.server} after checkpoint ${this.checkpointId} ended` };
        this.level.thawAnswered(input.server, input.confirmed, this);
        if (this.phase === 'aborting') this.settleOrWait();
        return undefined;
      case 'committed':
        if (!this.commitOutstanding()) return this.noCommit(input.type);
        if (input.ok) this.completed();
        else this.commitFailed(input.reason, input.detail);
        return undefined;
      case 'commit-unknown':
        if (!this.commitOutstanding()) return this.noCommit(input.type);
        // A read-back already asked for answers this too.
        if (this.commitCall === 'running') this.readBack(input.detail);
        return undefined;
      case 'record-read':
        if (this.commitCall !== 'reading' || this.phase !== 'committing') return this.noCommit(input.type);
        if (!input.ok) {
          // Read again when the commit timer fires: without the record nothing can be decided.
          this.out.push({ type: 'log', level: 'warn', message: `the record could not be read back; reading it again: ${input.detail}` });
          return undefined;
        }
        if (input.state === 'completed') {
          this.out.push({ type: 'log', level: 'warn', message: `the commit's outcome was unknown (${this.commitUnknown}); the record read back says completed` });
          this.completed();
        } else this.commitFailed('store-failed', `${this.commitUnknown}; the record read back says ${input.state}: the commit did not land`);
        return undefined;
      case 'cleaned':
        return this.cleaned(input.objectsError, input.volumes, input.volumesError);
      default:
        return this.agentEvent(input);
    }
  }

  private agentEvent(input: RoundEventInput): RoundRejection | undefined {
    if (this.phase === 'pending') return { reason: 'not-started', detail: `${input.type} from ${input.event.server} before checkpoint ${this.checkpointId} started` };
    // What an answer stored after the abort's clean-up was asked for belongs to nothing (the level
    // refuses the answer): the round deletes its objects. Before that, the clean-up to come finds
    // them (by the record or the checkpoint's prefix).
    const afterCleanUp = (this.phase === 'aborting' && this.cleaning) || this.phase === 'aborted';
    const late = afterCleanUp ? storedBy(input) : [];
    // A decline names nothing, but its agent worked on the checkpoint after the clean-up: a store
    // that failed as it saw it may have landed (a lost reply). Its prefix is swept again.
    if (late.length > 0 || (afterCleanUp && input.type === 'decline' && input.event.app !== undefined)) this.deleteLate(input, late);
    if (this.finished()) return { reason: 'finished', detail: `${input.type} from ${input.event.server} after checkpoint ${this.checkpointId} ${this.phase}` };
    const rejected = this.level.event(input, this);
    if (this.phase === 'aborting') this.settleOrWait();
    return rejected;
  }

  /**
   * Objects stored for this checkpoint after its clean-up was asked for: while that clean-up runs
   * (it may have listed the prefix before they were stored), right after it; once the round ended,
   * at once.
   */
  private deleteLate(input: RoundEventInput, names: readonly string[]): void {
    this.out.push({ type: 'log', level: 'warn', message: `${input.type} from ${input.event.server} after the abort's clean-up: deleting what it stored`, fields: { objects: names } });
    if (this.phase === 'aborting') {
      this.lateObjects.push(...names);
      this.sweepAgain = true;
      return;
    }
    this.out.push(this.lateCleanUp(names));
  }

  private commitOutstanding(): boolean {
    return this.phase === 'committing' && (this.commitCall === 'running' || this.commitCall === 'reading');
  }

  private noCommit(input: string): RoundRejection {
    const reason = this.finished() ? 'finished' : this.phase === 'aborting' ? 'aborted' : 'unexpected';
    return { reason, detail: `${input} of checkpoint ${this.checkpointId} while ${this.phase} with no commit outcome awaited` };
  }

  private readBack(why: string): void {
    this.commitCall = 'reading';
    this.commitUnknown = why;
    this.out.push({ type: 'log', level: 'warn', message: `the commit's outcome is unknown (${why}): reading the record back` });
    this.out.push({ type: 'read-record' });
    // Bounds the read too: when it fires, the record is read again.
    this.cancelTimer('commit');
    this.startTimer('commit', this.config.commitTimeoutMs);
  }

  /**
   * A staged round's finish. Refused, changing nothing, unless the round is held and the volumes
   * are one snapshot of each volume of the plan; then the round commits through the level.
   */
  private finish(volumes: readonly TakenVolume[]): RoundRejection | undefined {
    const id = this.checkpointId;
    if (!this.config.staged || !this.level.checkGiven || !this.level.volumesGiven) return { reason: 'not-staged', detail: `checkpoint ${id} was not begun as a staged checkpoint (BeginCheckpoint): it takes no finish` };
    switch (this.phase) {
      case 'pending':
      case 'triggering':
      case 'collecting':
        return { reason: 'not-held', detail: `checkpoint ${id} is not held yet (${this.phase}): finish once BeginCheckpoint answered` };
      case 'committing':
      case 'completed':
        return { reason: 'duplicate', detail: `checkpoint ${id} was finished already (${this.phase})` };
      case 'aborting':
      case 'aborted':
        if (this.holdExpired) return { reason: 'hold-expired', detail: `checkpoint ${id} aborted at its hold deadline of ${this.config.staged.holdMs} ms, before this finish: ${this.failed?.detail ?? ''}` };
        return { reason: this.phase === 'aborted' ? 'finished' : 'aborted', detail: `checkpoint ${id} is ${this.phase}: ${this.failed?.detail ?? ''}` };
      case 'held':
        break;
    }
    const wrong = this.level.checkGiven(volumes);
    if (wrong !== undefined) return { reason: 'invalid-volumes', detail: wrong };
    this.cancelTimer('hold');
    this.setState('committing');
    this.startTimer('commit', this.config.commitTimeoutMs);
    // The caller's snapshots are the caller's: an abort from here on never deletes them.
    this.volumeCall = 'returned';
    this.level.volumesGiven(volumes, this);
    return undefined;
  }

  private completed(): void {
    this.commitCall = 'settled';
    this.cancelTimer('commit');
    if (this.deferred !== null) this.out.push({ type: 'log', level: 'warn', message: `the commit landed: a failure while it was under way came too late: ${this.deferred.detail}`, fields: { reason: this.deferred.reason } });
    this.setState('completed');
    this.level.completed(this);
    this.out.push({ type: 'ended', state: 'completed' });
  }

  /** The completed record did not land: the round aborts, with the failure that came first. */
  private commitFailed(reason: RoundFailureReason, detail: string): void {
    this.commitCall = 'settled';
    const first = this.deferred ?? { reason, detail };
    this.fail(first.reason, first.detail);
  }

  private timerFired(name: RoundTimer): RoundRejection | undefined {
    if (!this.armed.delete(name)) return { reason: 'stale-timer', detail: `timer ${name} of checkpoint ${this.checkpointId} fired while not armed` };
    switch (name) {
      case 'checkpoint': {
        const waited = this.level.timedOut(this);
        const base = `not every app acked within ${this.config.timeoutMs} ms`;
        this.fail('timeout', waited === '' ? base : `${base}: ${waited}`);
        return undefined;
      }
      case 'commit':
        // Once asked for, the commit may have landed: its outcome is read back, not guessed.
        if (this.commitOutstanding()) this.readBack(`the commit did not answer within ${this.config.commitTimeoutMs} ms`);
        else this.fail('store-failed', `the commit did not finish within ${this.config.commitTimeoutMs} ms`);
        return undefined;
      case 'refresh':
        if (!this.sealed && !this.finished()) this.out.push({ type: 'persist' });
        return undefined;
      case 'settle':
        this.out.push({ type: 'log', level: 'warn', message: `aborted: answers still outstanding after ${this.config.settleMs} ms; cleaning up without them` });
        this.cleanUp();
        return undefined;
      case 'late-sweep':
        this.out.push({ type: 'clean-up', objects: true, volumes: [] });
        return undefined;
      case 'hold': {
        const waited = this.phase === 'held' ? 'no FinishCheckpoint came' : 'the round was not held yet';
        this.holdExpired = true;
        this.fail('timeout', `${HOLD_DEADLINE_PASSED} of ${this.config.staged?.holdMs ?? 0} ms passed: ${waited} (the agents release their servers by themselves then)`);
        return undefined;
      }
      default:
        this.level.timerFired(name, this);
        return undefined;
    }
  }

  /**
   * The volume call returned. While committing, the level goes on with it. Otherwise the round
   * aborted meanwhile: the snapshots exist now and belong to nothing, so they are deleted (unless
   * the negative control keeps them, re-creating defect 6).
   */
  private volumesReturned(ok: boolean, taken: readonly TakenVolume[], detail: string | undefined): RoundRejection | undefined {
    if (this.volumeCall !== 'running') return { reason: 'unexpected', detail: `volume snapshot result of checkpoint ${this.checkpointId} without a call running` };
    this.volumeCall = 'returned';
    if (this.phase === 'committing') {
      this.taken = [...taken];
      this.level.volumesTaken(ok, taken, detail, this);
      return undefined;
    }
    if (taken.length === 0) {
      if (this.phase === 'aborting') this.settleOrWait();
      return undefined;
    }
    if (this.config.negativeControls.has('leak-late-volume-snapshots')) {
      this.out.push({ type: 'log', level: 'warn', message: 'volume snapshots finished after the abort are kept (negative control leak-late-volume-snapshots)', fields: { volumes: taken.map((t) => t.snapshotRef) } });
      return undefined;
    }
    this.out.push({ type: 'log', level: 'warn', message: 'volume snapshots finished after the abort: deleting them', fields: { volumes: taken.map((t) => t.snapshotRef) } });
    if (this.phase === 'aborting' && !this.cleaning) {
      // Not cleaned up yet: they go with the rest.
      this.taken = [...taken];
      this.settleOrWait();
      return undefined;
    }
    this.out.push({ type: 'clean-up', objects: false, volumes: taken });
    return undefined;
  }

  private cleaned(objectsError: string | undefined, volumes: readonly TakenVolume[], volumesError: string | undefined): RoundRejection | undefined {
    if (!this.cleaning) return { reason: 'unexpected', detail: `clean-up outcome of checkpoint ${this.checkpointId} that was not asked for` };
    if (objectsError !== undefined) this.out.push({ type: 'log', level: 'warn', message: 'stored parts of an aborted checkpoint not deleted', fields: { error: objectsError } });
    const records = this.level.volumeRecords(volumes).map((r) =>
      volumesError === undefined ? Object.assign({}, r, { deletedAtUnixMs: this.now }) : Object.assign({}, r, { deleteError: volumesError }),
    );
    this.volumeRecords = this.volumeRecords.concat(records);
    if (records.length > 0) this.out.push({ type: 'set-volumes', volumes: this.volumeRecords });
    const note = volumeNote(volumes, volumesError);
    if (this.phase === 'aborting') {
      const failure = this.failed ?? { reason: 'internal', detail: 'aborted' };
      this.failed = note === '' ? failure : { reason: failure.reason, detail: `${failure.detail}; ${note}` };
      this.setState('aborted');
      this.out.push({ type: 'persist' });
      // Stored after the clean-up listed what there was: deleted now.
      if (this.sweepAgain) this.out.push(this.lateCleanUp(this.takeLate()));
      // An agent whose trigger came late, and whose answer is lost or held back by the abort notice,
      // may still store its part until its own timeout: the prefix is swept once more after that
      // (a coordinator that dies before is covered by the sweep of aborted checkpoints).
      if (this.level.storesObjects) this.startTimer('late-sweep', this.config.timeoutMs + this.config.settleMs);
      this.out.push({ type: 'ended', state: 'aborted' });
      return undefined;
    }
    // Snapshots deleted after the record said aborted: the record says so too.
    if (note !== '' && this.failed) {
      this.failed = { reason: this.failed.reason, detail: `${this.failed.detail}; ${note}` };
      this.out.push({ type: 'set-failure', failure: this.failed });
    }
    if (records.length > 0 || note !== '') this.out.push({ type: 'persist' });
    return undefined;
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private finished(): boolean {
    return this.phase === 'completed' || this.phase === 'aborted';
  }

  private setState(state: RoundState): void {
    this.phase = state;
    this.out.push({ type: 'set-state', state, failure: state === 'aborting' || state === 'aborted' ? this.failed : null, nowMs: this.now });
    if (state === 'triggering' || state === 'collecting' || state === 'held' || state === 'committing') this.refreshSoon();
  }

  private refreshSoon(): void {
    if (this.sealed || this.armed.has('refresh') || this.finished()) return;
    this.startTimer('refresh', this.config.refreshMs);
  }

  startTimer(name: RoundTimer, ms: number): void {
    this.armed.add(name);
    this.out.push({ type: 'start-timer', name, ms });
  }

  cancelTimer(name: RoundTimer): void {
    if (this.armed.delete(name)) this.out.push({ type: 'cancel-timer', name });
  }

  /** Whether the abort still waits for a volume call (the negative control does not wait). */
  private awaitingVolumes(): boolean {
    return this.volumeCall === 'running' && !this.config.negativeControls.has('leak-late-volume-snapshots');
  }

  /** While aborting: clean up once nothing is awaited any more, else wait (bounded by the settle timer). */
  private settleOrWait(): void {
    if (this.cleaning) return;
    if (this.level.awaiting() || this.awaitingVolumes()) {
      if (!this.armed.has('settle')) this.startTimer('settle', this.config.settleMs);
      return;
    }
    this.cleanUp();
  }

  private cleanUp(): void {
    if (this.cleaning) return;
    this.cleaning = true;
    this.cancelTimer('settle');
    this.cancelTimer('refresh');
    const volumes = this.taken;
    this.taken = [];
    this.out.push({ type: 'clean-up', objects: this.level.storesObjects, volumes });
  }

  private lateCleanUp(names: readonly string[]): RoundEffect {
    return names.length > 0 ? { type: 'clean-up', objects: this.level.storesObjects, volumes: [], lateObjects: names } : { type: 'clean-up', objects: this.level.storesObjects, volumes: [] };
  }

  private takeLate(): string[] {
    const late = [...new Set(this.lateObjects)];
    this.lateObjects = [];
    this.sweepAgain = false;
    return late;
  }
}

/** The stored objects an agent's answer names: an ack's state and channel state, a capture's state. */
function storedBy(input: RoundEventInput): string[] {
  switch (input.type) {
    case 'ack': {
      const e = input.event;
      return [...(e.state.kind === 'object' ? [e.state.ref.name] : []), ...(e.channelState ? [e.channelState.name] : [])];
    }
    case 'captured':
      return [input.event.state.name];
    default:
      return [];
  }
}

function volumeNote(volumes: readonly TakenVolume[], error: string | undefined): string {
  if (volumes.length === 0) return '';
  const names = volumes.map((v) => `${v.volumeId} of ${v.server} (${v.snapshotRef})`).join(', ');
  return error === undefined ? `volume snapshots deleted: ${names}` : `volume snapshots not deleted: ${names}: ${error}`;
}

/** The failure reason of an agent's decline. */
export function declineToFailure(reason: Extract<AgentEvent, { type: 'decline' }>['reason']): RoundFailureReason {
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
