/**
 * Rollback and restore as a sans-I/O machine (DESIGN §7): check first, then act. One operation
 * validates everything (the shell reads and digest-checks every part, checks every agent and the
 * mapping) before anything changes; only then does it take the safety checkpoint, set the epoch and
 * talk to the agents. Every failure after the epoch moved ends in `needs-repair`, a state the
 * operator sees on the operation's record and repairs with one call (roll back again, to this or
 * another checkpoint), never in a plan whose later checkpoints abort for ever.
 *
 * Two levels share the machine:
 * - app: bump the epoch, `restore` every target server (its apps' states and recorded channel
 *   state, under the new epoch; they stay paused), then `resume` them all once all restored, so no
 *   app sends in the new epoch to one still in the old;
 * - crash: read the epoch (a crash-level rollback does not fence channels, so the epoch stays), and
 *   freeze every server at it: the plan's current epoch, never the checkpoint's (an agent at another
 *   epoch refuses the freeze; that was defect 3). Then the volumes are put back as a group and every
 *   server is thawed with `afterRestore`. A failure before the volumes changed thaws everyone back.
 *
 * Control messages go over core NATS, at most once: each command is resent with the same request id
 * every `resendIntervalMs` until its server answers or the phase's `phaseTimeoutMs` runs out; an
 * agent answers a duplicate with its first answer and does the work once (defect 3b).
 *
 * An operation whose coordinator stopped is taken over by the next one (`recover` instead of
 * `start`, decided by operation-recovery.ts): it goes on from the phase it was in, under the same
 * request ids, or its record is ended in a final state naming the call that repairs it.
 */
import { stronglyConnectedComponents, type AppGraph } from '../graph/index.js';
import { splitProcessId } from '../wire/index.js';
import type { NegativeControls } from './negative-controls.js';

export type OperationKind = 'rollback' | 'restore';
export type OperationLevel = 'app' | 'crash';

export type OperationState =
  | 'validating'
  | 'safety-checkpoint'
  | 'setting-epoch'
  /** Opaque apps: their hooks stop them (action `freeze`) before any is restored. */
  | 'quiescing'
  | 'restoring'
  | 'resuming'
  /** Opaque apps: a failure before every app was restored; every app quiesced is resumed, then the operation ends. */
  | 'resuming-back'
  | 'freezing'
  | 'reverting'
  | 'thawing'
  /** Crash level: a failure before the volumes changed; the servers are thawed without restore hooks. */
  | 'thawing-back'
  | 'completed'
  /** Validation said no: nothing changed. */
  | 'refused'
  /** Failed before the plan changed (safety checkpoint, epoch store, freeze): nothing to repair. */
  | 'failed'
  /** Failed after the plan changed: roll back again (to this or another checkpoint) to repair. */
  | 'needs-repair';

export const OPERATION_FINAL_STATES: readonly OperationState[] = ['completed', 'refused', 'failed', 'needs-repair'];

/** The coordinator's error kinds an operation can end with (a subset of coordinator/errors.ts). */
export type OperationErrorKind = 'invalid-argument' | 'not-found' | 'failed-precondition' | 'unavailable' | 'internal';

export type OperationOutcome =
  | { readonly ok: true; readonly epoch: number; readonly safetyCheckpointId: number }
  | { readonly ok: false; readonly kind: OperationErrorKind; readonly message: string };

export type AgentCommand = 'restore' | 'resume' | 'freeze' | 'thaw';

/** A phase an operation taken over from a stopped coordinator goes on from (operation-recovery.ts). */
export type RedoPhase = 'restoring' | 'resuming' | 'thawing' | 'thawing-back';

/**
 * The seq of each such phase's request ids: the first fan-out of an operation is 1 (`restoring`,
 * `freezing`), the second 2 (`resuming`; `thawing` or `thawing-back`, after `freezing`).
 */
const REDO_SEQ: Readonly<Record<RedoPhase, number>> = { restoring: 1, resuming: 2, thawing: 2, 'thawing-back': 2 };
export type TimerName = 'resend' | 'deadline';

/** Some opaque apps of one server: the apps one command names, in the order the agent takes them. */
export interface ServerApps {
  readonly server: string;
  readonly apps: readonly string[];
}

/**
 * An operation on opaque apps (an all-opaque plan, level app): every app is quiesced, then restored
 * wave by wave downstream first, then resumed wave by wave upstream first (`planOpaqueSteps`).
 */
export interface OpaqueSteps {
  /** Every server's opaque apps: what is quiesced, and what is resumed when the operation fails. */
  readonly quiesce: readonly ServerApps[];
  /** Restore waves, downstream first; each server is in exactly one (one restore per server and epoch). */
  readonly restore: readonly (readonly ServerApps[])[];
  /** Resume waves, upstream first: one per strongly connected component. */
  readonly resume: readonly (readonly ServerApps[])[];
}

/**
 * The waves of an opaque operation over the plan's opaque graph (process ids `server/app`), from its
 * strongly connected components in topological order (src/graph): restores go downstream first, a
 * component as one wave (all its members restored before the next wave, and none resumed before every
 * app is restored); resumes go upstream first, a component at a time. The agent takes one restore per
 * server and epoch (a second is a stale resend to it), so a server's apps all ride in the restore of
 * the wave where its first app (the most downstream one) is due, in downstream-first order: an
 * upstream app of that server is then restored before the downstream apps of other servers. Every
 * app is quiesced by then, so nothing sends meanwhile either way.
 */
export function planOpaqueSteps(graph: AppGraph): OpaqueSteps {
  const components = stronglyConnectedComponents(graph);
  const byServer = (apps: readonly string[]): ServerApps[] => {
    const m = new Map<string, string[]>();
    for (const p of apps) {
      const at = splitProcessId(p);
      if (!at) throw new Error(`opaque graph: ${p} is not a server/app process id`);
      m.set(at.server, [...(m.get(at.server) ?? []), at.app]);
    }
    return [...m].map(([server, list]) => ({ server, apps: list }));
  };
  const restore: ServerApps[][] = [];
  const placed = new Map<string, { wave: number; apps: string[] }>();
  for (const component of [...components].reverse()) {
    const wave: ServerApps[] = [];
    for (const part of byServer(component)) {
      const earlier = placed.get(part.server);
      if (earlier) earlier.apps.push(...part.apps);
      else {
        placed.set(part.server, { wave: restore.length, apps: [...part.apps] });
        wave.push(part);
      }
    }
    if (wave.length > 0) restore.push(wave);
  }
  return {
    quiesce: byServer(components.flat()),
    restore: restore.map((wave) => wave.map((w) => ({ server: w.server, apps: placed.get(w.server)?.apps ?? w.apps }))),
    resume: components.map(byServer),
  };
}

export interface OperationConfig {
  readonly kind: OperationKind;
  readonly level: OperationLevel;
  /** The operation's id: part of every request id, so resends of one command share theirs. */
  readonly id: string;
  /** What the messages call it, e.g. `rollback to checkpoint 7`. */
  readonly title: string;
  /** The servers that get the commands. */
  readonly servers: readonly string[];
  readonly takeSafetyCheckpoint: boolean;
  /** Crash level: volumes to put back (else the servers are only frozen and thawed). */
  readonly hasVolumes: boolean;
  /** How long each phase waits for every server's answer. */
  readonly phaseTimeoutMs: number;
  /** How often an unanswered command is resent (same request id). */
  readonly resendIntervalMs: number;
  readonly negativeControls: NegativeControls;
  /** App level, opaque apps: quiesce, restore and resume them in these steps instead of one fan-out each. */
  readonly opaque?: OpaqueSteps;
}

export type OperationInput =
  | { readonly type: 'start'; readonly nowMs: number }
  /**
   * Instead of `start`: finish an operation a stopped coordinator left in `phase`
   * (src/control/operation-recovery.ts decides which): the phase's commands go out again under the
   * request ids they had, so an agent that already answered answers from memory. `thawing-back`
   * then ends in `thenState` with `thenDetail`.
   */
  | {
      readonly type: 'recover';
      readonly nowMs: number;
      readonly phase: RedoPhase;
      readonly epoch: number;
      readonly safetyCheckpointId: number;
      readonly thenState?: 'failed' | 'needs-repair';
      readonly thenDetail?: string;
    }
  /** Every check passed: the checkpoint, its parts (read and digest-checked), the agents, the mapping. */
  | { readonly type: 'validated'; readonly nowMs: number }
  | { readonly type: 'invalid'; readonly nowMs: number; readonly kind: OperationErrorKind; readonly message: string }
  | { readonly type: 'safety-completed'; readonly nowMs: number; readonly checkpointId: number }
  | { readonly type: 'safety-failed'; readonly nowMs: number; readonly detail: string }
  | { readonly type: 'epoch-set'; readonly nowMs: number; readonly epoch: number }
  | { readonly type: 'epoch-failed'; readonly nowMs: number; readonly detail: string }
  /** A server answered a command; `requestId` names which one. */
  | {
      readonly type: 'answer';
      readonly nowMs: number;
      readonly server: string;
      readonly requestId: string;
      /** `quiesced`: every app the server's quiesce named reported quiesced (the shell gathers them). */
      readonly event: 'restored' | 'resumed' | 'frozen' | 'thawed' | 'quiesced' | 'declined';
      readonly detail?: string;
    }
  | { readonly type: 'volumes-done'; readonly nowMs: number }
  | { readonly type: 'volumes-failed'; readonly nowMs: number; readonly detail: string }
  | { readonly type: 'timer-fired'; readonly nowMs: number; readonly name: TimerName; readonly seq: number };

/**
 * What the shell must do, in this order within one step: `persist` first (the record says what is
 * about to happen before it happens, so a crash leaves a record that tells the truth), then the
 * actions, then timers, `finished` last.
 */
export type OperationEffect =
  | {
      readonly type: 'persist';
      readonly state: OperationState;
      readonly detail: string;
      readonly epoch?: number;
      readonly safetyCheckpointId: number;
      readonly atMs: number;
    }
  /** Check everything; answer `validated` or `invalid`. */
  | { readonly type: 'validate' }
  /** Take the safety checkpoint of the present and wait for its end; answer `safety-completed` or `safety-failed`. */
  | { readonly type: 'take-safety-checkpoint' }
  /** Cancel the plan's checkpoints in flight: they would be fenced by what follows. */
  | { readonly type: 'cancel-checkpoints'; readonly detail: string }
  /** Bump (app) or read (crash) the epoch; answer `epoch-set` or `epoch-failed`. */
  | { readonly type: 'set-epoch'; readonly bump: boolean }
  | {
      readonly type: 'send';
      readonly server: string;
      readonly requestId: string;
      readonly command: AgentCommand;
      readonly epoch: number;
      /** thaw only: run the restore hooks first. */
      readonly afterRestore?: boolean;
      /** True for a resend of the same request. */
      readonly resend: boolean;
    }
  /**
   * Opaque apps: the command for just these apps of the server, in this order (quiesce: their hooks
   * with action `freeze` and no drain positions). Answered as `send` is.
   */
  | {
      readonly type: 'send-apps';
      readonly server: string;
      readonly requestId: string;
      readonly command: 'quiesce' | 'restore' | 'resume';
      readonly apps: readonly string[];
      readonly epoch: number;
      readonly resend: boolean;
    }
  /** Crash level: put the volumes back (rollback) or onto the targets (restore); answer `volumes-done` or `volumes-failed`. */
  | { readonly type: 'volumes' }
  | { readonly type: 'start-timer'; readonly name: TimerName; readonly seq: number; readonly ms: number }
  | { readonly type: 'cancel-timer'; readonly name: TimerName }
  | { readonly type: 'finished'; readonly state: OperationState; readonly outcome: OperationOutcome };

export type OperationRejectReason = 'not-started' | 'already-started' | 'finished' | 'unexpected' | 'stale-timer' | 'unknown-request' | 'duplicate';

export interface OperationResult {
  readonly effects: readonly OperationEffect[];
  readonly rejected?: { readonly reason: OperationRejectReason; readonly detail: string };
}

/** Limits a shell may configure; validated once, by `validateOperationConfig`. */
export const OPERATION_PHASE_TIMEOUT_MS_MAX = 3_600_000;

export function validateOperationConfig(c: OperationConfig): string | undefined {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(c.id)) return `operation id ${JSON.stringify(c.id)} must match [A-Za-z0-9_-]{1,64}`;
  if (c.servers.length === 0) return 'an operation needs at least one server';
  if (new Set(c.servers).size !== c.servers.length) return `servers repeat: ${c.servers.join(', ')}`;
  if (!Number.isSafeInteger(c.phaseTimeoutMs) || c.phaseTimeoutMs < 1 || c.phaseTimeoutMs > OPERATION_PHASE_TIMEOUT_MS_MAX) {
    return `phaseTimeoutMs must be an integer from 1 to ${OPERATION_PHASE_TIMEOUT_MS_MAX}, got ${c.phaseTimeoutMs}`;
  }
  if (!Number.isSafeInteger(c.resendIntervalMs) || c.resendIntervalMs < 1) return `resendIntervalMs must be a positive integer, got ${c.resendIntervalMs}`;
  if (c.level === 'app' && c.hasVolumes) return 'an app-level operation has no volumes to put back';
  if (c.opaque !== undefined) {
    if (c.level !== 'app') return 'opaque apps are rolled back at level app';
    const quiesced = c.opaque.quiesce.map((q) => q.server).sort();
    const restored = c.opaque.restore.flat().map((q) => q.server).sort();
    if (quiesced.join() !== [...c.servers].sort().join() || restored.join() !== quiesced.join()) {
      return `the opaque steps must quiesce and restore every server once (servers ${c.servers.join(', ')})`;
    }
  }
  return undefined;
}

/** The request id of a command: the same for every resend of it, distinct across phases and operations. */
export function operationRequestId(operationId: string, seq: number, server: string): string {
  return `op:${operationId}:${seq}:${server}`;
}

type FanOut = 'quiescing' | 'restoring' | 'resuming' | 'resuming-back' | 'freezing' | 'thawing' | 'thawing-back';

const COMMAND_OF: Readonly<Record<FanOut, { readonly command: AgentCommand | 'quiesce'; readonly answer: 'restored' | 'resumed' | 'frozen' | 'thawed' | 'quiesced' }>> = {
  quiescing: { command: 'quiesce', answer: 'quiesced' },
  restoring: { command: 'restore', answer: 'restored' },
  resuming: { command: 'resume', answer: 'resumed' },
  'resuming-back': { command: 'resume', answer: 'resumed' },
  freezing: { command: 'freeze', answer: 'frozen' },
  thawing: { command: 'thaw', answer: 'thawed' },
  'thawing-back': { command: 'thaw', answer: 'thawed' },
};

function isFanOut(s: OperationState | 'new'): s is FanOut {
  return s === 'quiescing' || s === 'restoring' || s === 'resuming' || s === 'resuming-back' || s === 'freezing' || s === 'thawing' || s === 'thawing-back';
}

export class OperationMachine {
  private stateNow: OperationState | 'new' = 'new';
  private epoch: number | undefined;
  private safetyCheckpointId = 0;
  /** Bumped at every fan-out phase: names its request ids and timers, so late answers and timers of an earlier phase are told apart. */
  private seq = 0;
  /** Server -> request id, for the servers of the current phase that have not answered. */
  private readonly pending = new Map<string, string>();
  private readonly answered = new Set<string>();
  /** Crash level: how the operation ends once the servers are thawed back. */
  private afterThawBack: { readonly state: OperationState; readonly outcome: OperationOutcome; readonly detail: string } | undefined;
  private validated = false;
  /** Whether the current thaw phase runs the restore hooks (kept for its resends). */
  private afterRestoreNow = false;
  /** Taken over from a coordinator that stopped (`recover`): its end says so. */
  private recovered = false;
  /** Opaque: the wave of `restoring` or `resuming` under way. */
  private wave = 0;
  /** Opaque: the apps each server of the current phase is sent, kept for its resends. */
  private readonly targets = new Map<string, readonly string[]>();
  /** Opaque: the servers that answered `restored` (they adopted the new epoch). */
  private readonly restoredServers = new Set<string>();

  constructor(private readonly config: OperationConfig) {
    const invalid = validateOperationConfig(config);
    if (invalid !== undefined) throw new Error(`invalid operation config: ${invalid}`);
  }

  get state(): OperationState | 'new' {
    return this.stateNow;
  }

  step(input: OperationInput): OperationResult {
    const out: OperationEffect[] = [];
    const s = this.stateNow;
    if (s !== 'new' && OPERATION_FINAL_STATES.includes(s)) return reject(out, 'finished', `the operation has ended (${s})`);
    if (input.type === 'start') {
      if (s !== 'new') return reject(out, 'already-started', 'the operation already started');
      // The defect kept as a negative control: the epoch moved before the parts were checked.
      if (this.config.negativeControls.has('bump-before-validate')) return this.afterValidation(input.nowMs, out);
      this.persist('validating', 'checking the checkpoint, its parts, the agents and the mapping', input.nowMs, out);
      out.push({ type: 'validate' });
      return { effects: out };
    }
    if (input.type === 'recover') {
      if (s !== 'new') return reject(out, 'already-started', 'the operation already started');
      return this.recover(input, out);
    }
    if (s === 'new') return reject(out, 'not-started', 'start the operation first');
    switch (input.type) {
      case 'validated':
        if (s !== 'validating') return unexpected(out, input.type, s);
        this.validated = true;
        if (this.epoch !== undefined) return this.startFirstPhase(input.nowMs, out);
        return this.afterValidation(input.nowMs, out);
      case 'invalid':
        if (s !== 'validating') return unexpected(out, input.type, s);
        // With the epoch already moved (only the negative control gets here) this hides a wedged plan.
        return this.finish('refused', input.message, { ok: false, kind: input.kind, message: input.message }, input.nowMs, out);
      case 'safety-completed':
        if (s !== 'safety-checkpoint') return unexpected(out, input.type, s);
        this.safetyCheckpointId = input.checkpointId;
        return this.setEpoch(input.nowMs, out);
      case 'safety-failed': {
        if (s !== 'safety-checkpoint') return unexpected(out, input.type, s);
        const message = `${this.config.title} not started: the safety checkpoint failed (${input.detail}); nothing was changed. Retry, or pass skip_safety_checkpoint to roll back without one`;
        return this.finish('failed', message, { ok: false, kind: 'failed-precondition', message }, input.nowMs, out);
      }
      case 'epoch-set':
        if (s !== 'setting-epoch') return unexpected(out, input.type, s);
        this.epoch = input.epoch;
        if (!this.validated) {
          this.persist('validating', 'checking the checkpoint, its parts, the agents and the mapping', input.nowMs, out);
          out.push({ type: 'validate' });
          return { effects: out };
        }
        return this.startFirstPhase(input.nowMs, out);
      case 'epoch-failed': {
        if (s !== 'setting-epoch') return unexpected(out, input.type, s);
        const message = `${this.config.title} not started: the epoch could not be ${this.config.level === 'app' ? 'bumped' : 'read'} (${input.detail}); nothing was changed on the agents: retry`;
        return this.finish('failed', message, { ok: false, kind: 'unavailable', message }, input.nowMs, out);
      }
      case 'answer':
        return this.onAnswer(input, out);
      case 'volumes-done':
        if (s !== 'reverting') return unexpected(out, input.type, s);
        return this.fanOut('thawing', true, input.nowMs, out);
      case 'volumes-failed': {
        if (s !== 'reverting') return unexpected(out, input.type, s);
        // Some volumes may be back and others not: only another rollback makes the group whole.
        const message = `${this.config.title}: putting the volumes back failed (${input.detail}); the volumes may be partly reverted. The servers are thawed; roll back again (to this or another checkpoint) to repair`;
        this.afterThawBack = { state: 'needs-repair', outcome: { ok: false, kind: 'internal', message }, detail: message };
        return this.fanOut('thawing-back', false, input.nowMs, out);
      }
      case 'timer-fired':
        return this.onTimer(input, out);
    }
  }

  /** Validation passed (or, under the negative control, was skipped): the safety checkpoint, then the epoch. */
  private afterValidation(nowMs: number, out: OperationEffect[]): OperationResult {
    if (this.config.takeSafetyCheckpoint) {
      this.persist('safety-checkpoint', 'taking the safety checkpoint of the present', nowMs, out);
      out.push({ type: 'take-safety-checkpoint' });
      return { effects: out };
    }
    return this.setEpoch(nowMs, out);
  }

  private recover(input: Extract<OperationInput, { type: 'recover' }>, out: OperationEffect[]): OperationResult {
    const appPhase = input.phase === 'restoring' || input.phase === 'resuming';
    if (appPhase !== (this.config.level === 'app')) throw new Error(`a ${this.config.level}-level operation cannot be recovered in ${input.phase}`);
    if ((input.phase === 'thawing-back') !== (input.thenState !== undefined && input.thenDetail !== undefined)) {
      throw new Error('thawing-back, and only thawing-back, is recovered with the state and detail it ends in');
    }
    this.validated = true;
    this.recovered = true;
    this.epoch = input.epoch;
    this.safetyCheckpointId = input.safetyCheckpointId;
    // The phase's request ids are the ones the stopped coordinator used: fanOut bumps seq first.
    this.seq = REDO_SEQ[input.phase] - 1;
    if (input.thenState !== undefined && input.thenDetail !== undefined) {
      const kind: OperationErrorKind = input.thenState === 'failed' ? 'unavailable' : 'internal';
      this.afterThawBack = { state: input.thenState, outcome: { ok: false, kind, message: input.thenDetail }, detail: input.thenDetail };
    }
    return this.fanOut(input.phase, input.phase === 'thawing', input.nowMs, out, 'taken over from a coordinator that stopped: ');
  }

  private setEpoch(nowMs: number, out: OperationEffect[]): OperationResult {
    const bump = this.config.level === 'app';
    this.persist('setting-epoch', bump ? 'bumping the epoch' : 'reading the epoch', nowMs, out);
    out.push({ type: 'cancel-checkpoints', detail: `${this.config.title} is under way` });
    out.push({ type: 'set-epoch', bump });
    return { effects: out };
  }

  private startFirstPhase(nowMs: number, out: OperationEffect[]): OperationResult {
    const opaque = this.config.opaque;
    // No drain positions: whatever the apps consume past the cut is replaced by the restore, so they
    // only need to stop. At the new epoch: an agent carries out a quiesce of an epoch it has not
    // reached yet (it fences the capture), and adopts the epoch with the restore.
    if (opaque !== undefined) return this.fanOutApps('quiescing', opaque.quiesce, nowMs, out);
    return this.fanOut(this.config.level === 'app' ? 'restoring' : 'freezing', false, nowMs, out);
  }

  /** Opaque: one command per server naming these apps. */
  private fanOutApps(phase: FanOut, targets: readonly ServerApps[], nowMs: number, out: OperationEffect[]): OperationResult {
    this.seq += 1;
    this.pending.clear();
    this.answered.clear();
    this.targets.clear();
    const wave = phase === 'restoring' || phase === 'resuming' ? ` (wave ${this.wave + 1})` : '';
    this.persist(phase, `${COMMAND_OF[phase].command}${wave} sent for ${targets.map((t) => t.apps.map((a) => `${t.server}/${a}`).join(', ')).join(', ')}`, nowMs, out);
    for (const t of targets) {
      const requestId = operationRequestId(this.config.id, this.seq, t.server);
      this.pending.set(t.server, requestId);
      this.targets.set(t.server, t.apps);
      out.push(this.send(phase, t.server, requestId, false, false));
    }
    if (!this.config.negativeControls.has('send-once')) out.push({ type: 'start-timer', name: 'resend', seq: this.seq, ms: this.config.resendIntervalMs });
    out.push({ type: 'start-timer', name: 'deadline', seq: this.seq, ms: this.config.phaseTimeoutMs });
    return { effects: out };
  }

  /** Opaque: every app quiesced by the operation resumed (the restored ones hold the checkpoint's state); then `end`. */
  private resumeBack(end: NonNullable<OperationMachine['afterThawBack']>, nowMs: number, out: OperationEffect[]): OperationResult {
    this.afterThawBack = end;
    return this.fanOutApps('resuming-back', (this.config.opaque as OpaqueSteps).quiesce, nowMs, out);
  }

  private fanOut(phase: FanOut, afterRestore: boolean, nowMs: number, out: OperationEffect[], note = ''): OperationResult {
    this.seq += 1;
    this.afterRestoreNow = afterRestore;
    this.pending.clear();
    this.answered.clear();
    this.targets.clear();
    this.persist(phase, `${note}${COMMAND_OF[phase].command} sent to ${this.config.servers.join(', ')}`, nowMs, out);
    for (const server of this.config.servers) {
      const requestId = operationRequestId(this.config.id, this.seq, server);
      this.pending.set(server, requestId);
      out.push(this.send(phase, server, requestId, afterRestore, false));
    }
    if (!this.config.negativeControls.has('send-once')) out.push({ type: 'start-timer', name: 'resend', seq: this.seq, ms: this.config.resendIntervalMs });
    out.push({ type: 'start-timer', name: 'deadline', seq: this.seq, ms: this.config.phaseTimeoutMs });
    return { effects: out };
  }

  private send(phase: FanOut, server: string, requestId: string, afterRestore: boolean, resend: boolean): OperationEffect {
    const command = COMMAND_OF[phase].command;
    const target = this.targets.get(server);
    if (target !== undefined && command !== 'freeze' && command !== 'thaw') {
      return { type: 'send-apps', server, requestId, command, apps: target, epoch: this.epoch as number, resend };
    }
    if (command === 'quiesce') throw new Error('a quiesce names its apps');
    const epoch = this.epoch as number;
    return command === 'thaw'
      ? { type: 'send', server, requestId, command, epoch, afterRestore, resend }
      : { type: 'send', server, requestId, command, epoch, resend };
  }

  private onAnswer(input: Extract<OperationInput, { type: 'answer' }>, out: OperationEffect[]): OperationResult {
    const phase = this.stateNow;
    if (!isFanOut(phase)) return unexpected(out, `answer from ${input.server}`, phase);
    const expected = this.pending.get(input.server);
    if (expected === undefined) {
      if (this.answered.has(input.server) && input.requestId === operationRequestId(this.config.id, this.seq, input.server)) {
        return reject(out, 'duplicate', `${input.server} already answered ${input.requestId}`);
      }
      return reject(out, 'unknown-request', `${input.requestId} from ${input.server} is not a request of this phase`);
    }
    if (expected !== input.requestId) return reject(out, 'unknown-request', `${input.requestId} from ${input.server} is not a request of this phase (${expected} is)`);
    const want = COMMAND_OF[phase].answer;
    // Thawing back, any answer is an end: the server is not frozen by this operation any more.
    if (input.event !== want && phase !== 'thawing-back' && phase !== 'resuming-back') {
      if (input.event !== 'declined') return reject(out, 'unexpected', `${input.server} answered ${input.event} to ${COMMAND_OF[phase].command}`);
      return this.phaseFailed([`${input.server}: ${input.detail ?? 'declined'}`], 'failed-precondition', input.nowMs, out);
    }
    this.pending.delete(input.server);
    this.answered.add(input.server);
    if (phase === 'restoring') this.restoredServers.add(input.server);
    if (this.pending.size > 0) return { effects: out };
    this.endPhaseTimers(out);
    return this.phaseDone(phase, input.nowMs, out);
  }

  private onTimer(input: Extract<OperationInput, { type: 'timer-fired' }>, out: OperationEffect[]): OperationResult {
    const phase = this.stateNow;
    if (input.seq !== this.seq || !isFanOut(phase)) return reject(out, 'stale-timer', `timer ${input.name} of phase ${input.seq} fired in phase ${this.seq} (${phase})`);
    if (input.name === 'resend') {
      for (const [server, requestId] of this.pending) out.push(this.send(phase, server, requestId, this.afterRestoreNow, true));
      out.push({ type: 'start-timer', name: 'resend', seq: this.seq, ms: this.config.resendIntervalMs });
      return { effects: out };
    }
    const silent = [...this.pending.keys()].map((server) => `${server}: no answer within ${this.config.phaseTimeoutMs} ms`);
    return this.phaseFailed(silent, 'unavailable', input.nowMs, out);
  }

  private endPhaseTimers(out: OperationEffect[]): void {
    if (!this.config.negativeControls.has('send-once')) out.push({ type: 'cancel-timer', name: 'resend' });
    out.push({ type: 'cancel-timer', name: 'deadline' });
  }

  private phaseDone(phase: FanOut, nowMs: number, out: OperationEffect[]): OperationResult {
    const epoch = this.epoch as number;
    const opaque = this.config.opaque;
    switch (phase) {
      case 'quiescing':
        this.wave = 0;
        return this.fanOutApps('restoring', (opaque as OpaqueSteps).restore[0] ?? [], nowMs, out);
      case 'restoring':
        if (opaque !== undefined) {
          this.wave += 1;
          const next = opaque.restore[this.wave];
          if (next !== undefined) return this.fanOutApps('restoring', next, nowMs, out);
          this.wave = 0;
          return this.fanOutApps('resuming', opaque.resume[0] ?? [], nowMs, out);
        }
        return this.fanOut('resuming', false, nowMs, out);
      case 'freezing':
        if (this.config.hasVolumes) {
          this.persist('reverting', `every server frozen; ${this.config.kind === 'rollback' ? 'putting the volumes back' : 'restoring the volumes onto the targets'}`, nowMs, out);
          out.push({ type: 'volumes' });
          return { effects: out };
        }
        return this.fanOut('thawing', true, nowMs, out);
      case 'resuming':
        if (opaque !== undefined) {
          const next = opaque.resume[this.wave + 1];
          if (next !== undefined) {
            this.wave += 1;
            return this.fanOutApps('resuming', next, nowMs, out);
          }
        }
        return this.finish('completed', `${this.config.title} complete at epoch ${epoch}${this.recovered ? ', finished by the coordinator that started after the one running it stopped' : ''}`, { ok: true, epoch, safetyCheckpointId: this.safetyCheckpointId }, nowMs, out);
      case 'thawing':
        return this.finish('completed', `${this.config.title} complete at epoch ${epoch}${this.recovered ? ', finished by the coordinator that started after the one running it stopped' : ''}`, { ok: true, epoch, safetyCheckpointId: this.safetyCheckpointId }, nowMs, out);
      case 'thawing-back':
      case 'resuming-back': {
        const end = this.afterThawBack as NonNullable<OperationMachine['afterThawBack']>;
        return this.finish(end.state, end.detail, end.outcome, nowMs, out);
      }
    }
  }

  /** A server declined or stayed silent: what that means depends on how far the operation got. */
  private phaseFailed(problems: readonly string[], kind: OperationErrorKind, nowMs: number, out: OperationEffect[]): OperationResult {
    const phase = this.stateNow as FanOut;
    const epoch = this.epoch as number;
    const restoredServers = [...this.answered].sort();
    this.endPhaseTimers(out);
    const why = problems.join('; ');
    const repair = `roll back again (to this or another checkpoint) to repair`;
    const again = this.config.kind === 'rollback' ? repair : 'restore again to repair';
    switch (phase) {
      case 'quiescing': {
        const message = `${this.config.title} incomplete after the epoch moved to ${epoch}: not every app quiesced (${why}); nothing was restored and every app quiesced was resumed: ${again}`;
        return this.resumeBack({ state: 'needs-repair', outcome: { ok: false, kind, message }, detail: message }, nowMs, out);
      }
      case 'resuming-back': {
        const end = this.afterThawBack as NonNullable<OperationMachine['afterThawBack']>;
        const detail = `${end.detail} (not every server confirmed the resume: ${why}; their agents resume the apps at the quiesce deadline)`;
        const outcome: OperationOutcome = end.outcome.ok ? end.outcome : { ok: false, kind: end.outcome.kind, message: detail };
        return this.finish(end.state, detail, outcome, nowMs, out);
      }
      case 'restoring': {
        if (this.config.opaque !== undefined) {
          const restored = [...this.restoredServers].sort();
          const message = `${this.config.title} incomplete after the epoch moved to ${epoch}: a restore failed (${why}); ${restored.length > 0 ? `${restored.join(', ')} restored, ` : 'nothing restored, '}every app quiesced was resumed: ${again}`;
          return this.resumeBack({ state: 'needs-repair', outcome: { ok: false, kind, message }, detail: message }, nowMs, out);
        }
        const paused = restoredServers.length > 0 ? `; ${restoredServers.join(', ')} restored and stay paused at epoch ${epoch}` : '';
        const message = `${this.config.title} incomplete after the epoch moved to ${epoch} (${why})${paused}: ${this.config.kind === 'rollback' ? repair : 'restore again to repair'}`;
        return this.finish('needs-repair', message, { ok: false, kind, message }, nowMs, out);
      }
      case 'resuming': {
        const message = `${this.config.title}: every app was restored at epoch ${epoch} but not every server confirmed resuming (${why}); ${this.config.kind === 'rollback' ? repair : 'restore again to repair'}`;
        return this.finish('needs-repair', message, { ok: false, kind, message }, nowMs, out);
      }
      case 'freezing': {
        // Nothing changed yet: thaw every server (a frozen guest is the worst failure), then report.
        const message = `${this.config.title} not started: not every server froze (${why}); every server was thawed again and nothing changed: retry`;
        this.afterThawBack = { state: 'failed', outcome: { ok: false, kind, message }, detail: message };
        return this.fanOut('thawing-back', false, nowMs, out);
      }
      case 'thawing': {
        const message = `${this.config.title}: the volumes were put back but not every server confirmed the thaw (${why}); their watchdogs thaw them at the freeze deadline without the restore hooks: ${this.config.kind === 'rollback' ? repair : 'restore again to repair'}`;
        return this.finish('needs-repair', message, { ok: false, kind, message }, nowMs, out);
      }
      case 'thawing-back': {
        const end = this.afterThawBack as NonNullable<OperationMachine['afterThawBack']>;
        const detail = `${end.detail} (not every server confirmed the thaw: ${why}; their watchdogs thaw them at the freeze deadline)`;
        const outcome: OperationOutcome = end.outcome.ok ? end.outcome : { ok: false, kind: end.outcome.kind, message: detail };
        return this.finish(end.state, detail, outcome, nowMs, out);
      }
    }
  }

  private persist(state: OperationState, detail: string, nowMs: number, out: OperationEffect[]): void {
    this.stateNow = state;
    out.push({ type: 'persist', state, detail, ...(this.epoch !== undefined ? { epoch: this.epoch } : {}), safetyCheckpointId: this.safetyCheckpointId, atMs: nowMs });
  }

  private finish(state: OperationState, detail: string, outcome: OperationOutcome, nowMs: number, out: OperationEffect[]): OperationResult {
    this.pending.clear();
    this.persist(state, detail, nowMs, out);
    out.push({ type: 'finished', state, outcome });
    return { effects: out };
  }
}

function reject(out: OperationEffect[], reason: OperationRejectReason, detail: string): OperationResult {
  return { effects: out, rejected: { reason, detail } };
}

function unexpected(out: OperationEffect[], what: string, state: OperationState | 'new'): OperationResult {
  return reject(out, 'unexpected', `${what} while ${state}`);
}
