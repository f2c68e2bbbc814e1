/**
 * The crash level of a round (`RoundLevel`): every server of the plan frozen at one moment (freeze
 * hooks, sync, fsfreeze), the volumes snapshotted as one group by the volume backend, then thawed:
 * as if the whole plan lost power at once. Collecting waits for every `frozen`; the commit takes the
 * group snapshot, thaws, checks that each member's snapshot lies inside the common frozen window,
 * and only then commits; an abort thaws every server and waits (bounded) for their answers.
 *
 * The window check uses the coordinator's clock (guest clocks are not trusted to agree), per member:
 * the backend reports when it took each volume (a directory backend copies them one after another),
 * every `frozen` must have arrived before each member's snapshot started, and no server may have
 * thawed by its watchdog before any member's snapshot ended. A command thaw comes only after the
 * whole group was taken, so only a watchdog thaw can cut into a member's interval.
 *
 * Staged (BeginCheckpoint): the caller snapshots the volumes while the round is held and brings
 * them with its finish. They are checked as the backend's are, with the caller's times (which must
 * share the coordinator's clock closely): each one started after every server froze and ended by
 * the finish, which itself came before the hold deadline, before any watchdog thawed.
 */
import type { AgentEvent, HookResult } from '../wire/index.js';
import type { NegativeControls } from './negative-controls.js';
import {
  declineToFailure,
  type LevelContext,
  type RoundEventInput,
  type RoundLevel,
  type RoundRejection,
  type RoundVolumeRecord,
  type TakenVolume,
} from './round.js';

export interface CrashLevelConfig {
  readonly planId: string;
  readonly servers: readonly string[];
  readonly volumes: readonly { readonly id: string; readonly server: string }[];
  readonly volumeBackend: boolean;
  /** The freeze deadline each agent's watchdog thaws at. */
  readonly freezeDeadlineMs: number;
  /** The fault simulator's: `skip-staged-window-check` takes a finish's snapshots unchecked. */
  readonly negativeControls?: NegativeControls;
}

interface ServerWindow {
  frozenAtMs?: number;
  thawedAtMs?: number;
  byWatchdog: boolean;
  hooks: HookResult[];
}

type Step = 'freezing' | 'snapshotting' | 'thawing' | 'done';

/** Why `given` is not one snapshot of each of `volumes`, none other; undefined when it is. */
export function checkGivenVolumes(volumes: readonly { readonly id: string; readonly server: string }[], given: readonly TakenVolume[]): string | undefined {
  const key = (server: string, id: string): string => `${server}/${id}`;
  const planned = new Set(volumes.map((v) => key(v.server, v.id)));
  const seen = new Set<string>();
  for (const g of given) {
    const k = key(g.server, g.volumeId);
    if (!planned.has(k)) return `volume ${g.volumeId} of ${g.server} is not a volume of the plan`;
    if (seen.has(k)) return `volume ${g.volumeId} of ${g.server} is given twice`;
    seen.add(k);
  }
  const missing = volumes.filter((v) => !seen.has(key(v.server, v.id)));
  if (missing.length > 0) return `no snapshot given for ${missing.map((v) => `volume ${v.id} of ${v.server}`).join(', ')}`;
  return undefined;
}

/**
 * Why a caller's snapshot does not lie between `heldAt` (every participant held) and `now` (the
 * finish), or undefined when each does.
 */
export function givenOutsideWindow(given: readonly TakenVolume[], heldAt: number, now: number, held: string): string | undefined {
  for (const g of given) {
    const what = `the snapshot of volume ${g.volumeId} of ${g.server} (${g.snapshotRef}), taken from ${g.startedAtUnixMs} to ${g.endedAtUnixMs}`;
    if (g.startedAtUnixMs > g.endedAtUnixMs) return `${what}, ends before it starts`;
    if (g.startedAtUnixMs < heldAt) return `${what}, started before ${held} at ${heldAt}: outside the frozen window`;
    if (g.endedAtUnixMs > now) return `${what}, ends after the finish arrived at ${now}: outside the frozen window (is the caller's clock ahead?)`;
  }
  return undefined;
}

export class CrashLevel implements RoundLevel {
  readonly kind = 'crash';
  readonly storesObjects = false;
  private readonly windows = new Map<string, ServerWindow>();
  private step: Step = 'freezing';
  private snapshotStartedAt = 0;
  private snapshotEndedAt: number | undefined;
  private taken: readonly TakenVolume[] = [];
  /** Servers told to thaw that have not answered yet. */
  private readonly thawing = new Set<string>();
  private readonly unconfirmed: string[] = [];
  /** The negative control skip-staged-window-check is on and the caller's snapshots were taken unchecked. */
  private windowUnchecked = false;

  static create(config: CrashLevelConfig): { ok: true; level: CrashLevel } | { ok: false; message: string } {
    if (config.servers.length === 0) return { ok: false, message: `plan ${config.planId} has no server` };
    if (new Set(config.servers).size !== config.servers.length) return { ok: false, message: `plan ${config.planId} names a server twice` };
    if (!Number.isSafeInteger(config.freezeDeadlineMs) || config.freezeDeadlineMs <= 0) return { ok: false, message: `freezeDeadlineMs must be a positive integer, got ${config.freezeDeadlineMs}` };
    return { ok: true, level: new CrashLevel(config) };
  }

  private constructor(private readonly config: CrashLevelConfig) {
    for (const s of config.servers) this.windows.set(s, { byWatchdog: false, hooks: [] });
  }

  start(ctx: LevelContext): void {
    for (const server of this.config.servers) {
      ctx.emit({ type: 'publish', server, command: { type: 'freeze', checkpointId: ctx.checkpointId, deadlineMs: this.config.freezeDeadlineMs }, bestEffort: false });
    }
    // Each agent's watchdog thaws at its own receipt of the freeze plus the deadline, so no earlier
    // than now plus the deadline: a group snapshot that has ended by then lies inside every frozen
    // window, whatever became of the watchdogs' `thawed` events.
    ctx.startTimer('freeze-deadline', this.config.freezeDeadlineMs);
  }

  /**
   * The freeze deadline passed before the group snapshot ended: the watchdogs may have thawed their
   * servers, and a `thawed` event that was lost would hide it from the window check. Not a crash cut.
   */
  timerFired(_name: 'freeze-deadline', ctx: LevelContext): void {
    if (this.snapshotEndedAt !== undefined) return;
    const what = this.step === 'freezing' ? 'not every server froze' : 'the volume snapshot did not end';
    ctx.fail('freeze-failed', `${what} within the freeze deadline of ${this.config.freezeDeadlineMs} ms (the agents' watchdogs thaw them then)`);
  }

  event(input: RoundEventInput, ctx: LevelContext): RoundRejection | undefined {
    const w = this.windows.get(input.event.server);
    if (!w) return { reason: 'unknown-participant', detail: `${input.type} from ${input.event.server}, not a server of plan ${this.config.planId}` };
    switch (input.type) {
      case 'frozen':
        return this.frozen(input.event, w, ctx);
      case 'thawed':
        return this.thawed(input.event, w, ctx);
      case 'decline': {
        const e = input.event;
        w.hooks = w.hooks.concat(e.hooks ?? []);
        ctx.emit({ type: 'patch-server', server: e.server, patch: { hooks: w.hooks } });
        ctx.emit({ type: 'log', level: 'warn', message: `freeze declined: ${e.detail}`, fields: { server: e.server, reason: e.reason } });
        ctx.fail(declineToFailure(e.reason), `${e.server} could not freeze (${e.reason}): ${e.detail}`);
        return undefined;
      }
      default:
        return { reason: 'unexpected', detail: `${input.type} from ${input.event.server} in a crash-level checkpoint` };
    }
  }

  private frozen(e: Extract<AgentEvent, { type: 'frozen' }>, w: ServerWindow, ctx: LevelContext): RoundRejection | undefined {
    if (w.frozenAtMs !== undefined) return { reason: 'duplicate', detail: `${e.server} reported frozen twice` };
    if (ctx.state === 'aborting') return { reason: 'aborted', detail: `${e.server} froze after checkpoint ${ctx.checkpointId} aborted (its thaw is on the way)` };
    w.frozenAtMs = ctx.nowMs;
    w.hooks = [...e.hooks];
    ctx.emit({ type: 'patch-server', server: e.server, patch: { frozenAtUnixMs: ctx.nowMs, agentFrozenAtUnixMs: e.frozenAtUnixMs, hooks: w.hooks } });
    ctx.emit({ type: 'progress', kind: 'server-frozen', server: e.server, detail: `hooks ${e.hooksMs} ms` });
    ctx.emit({ type: 'log', level: 'info', message: 'server frozen', fields: { server: e.server, hooksMs: e.hooksMs } });
    if (this.config.servers.every((s) => this.windows.get(s)?.frozenAtMs !== undefined)) ctx.ready();
    return undefined;
  }

  private thawed(e: Extract<AgentEvent, { type: 'thawed' }>, w: ServerWindow, ctx: LevelContext): RoundRejection | undefined {
    w.thawedAtMs = ctx.nowMs;
    w.byWatchdog = e.byWatchdog;
    w.hooks = w.hooks.concat(e.hooks);
    ctx.emit({ type: 'patch-server', server: e.server, patch: { thawedAtUnixMs: ctx.nowMs, agentThawedAtUnixMs: e.thawedAtUnixMs, byWatchdog: e.byWatchdog, hooks: w.hooks } });
    ctx.emit({ type: 'progress', kind: 'server-thawed', server: e.server, ...(e.byWatchdog ? { detail: 'thawed by its watchdog' } : {}) });
    // A server that thawed before the volumes were snapshotted is no longer part of the crash cut.
    if (e.byWatchdog && this.snapshotEndedAt === undefined) ctx.fail('freeze-failed', `${e.server} thawed by its watchdog before the volume snapshot`);
    return undefined;
  }

  commit(ctx: LevelContext): void {
    this.step = 'snapshotting';
    this.snapshotStartedAt = ctx.nowMs;
    if (this.config.volumes.length === 0) {
      this.volumesTaken(true, [], undefined, ctx);
      return;
    }
    if (!this.config.volumeBackend) {
      ctx.fail('volume-snapshot-failed', `plan ${this.config.planId} has volumes but the coordinator has no volume backend (start it with --volume-backend)`);
      return;
    }
    ctx.snapshotVolumes(false);
  }

  volumesTaken(ok: boolean, taken: readonly TakenVolume[], detail: string | undefined, ctx: LevelContext): void {
    this.snapshotEndedAt = ctx.nowMs;
    ctx.cancelTimer('freeze-deadline');
    this.taken = taken;
    if (!ok) {
      ctx.fail('volume-snapshot-failed', detail ?? 'the volume backend failed');
      return;
    }
    const wrong = this.checkTaken(this.snapshotStartedAt, ctx.nowMs);
    if (wrong !== undefined) {
      ctx.fail('internal', wrong);
      return;
    }
    ctx.emit({ type: 'progress', kind: 'volumes-snapshotted', detail: `${taken.length} volume(s)` });
    this.step = 'thawing';
    this.thawAll(ctx);
  }

  checkGiven(given: readonly TakenVolume[]): string | undefined {
    return checkGivenVolumes(this.config.volumes, given);
  }

  volumesGiven(given: readonly TakenVolume[], ctx: LevelContext): void {
    const frozenAt = Math.max(...this.config.servers.map((s) => this.windows.get(s)?.frozenAtMs ?? Infinity));
    this.snapshotStartedAt = given.length > 0 ? Math.min(...given.map((g) => g.startedAtUnixMs)) : ctx.nowMs;
    this.snapshotEndedAt = ctx.nowMs;
    ctx.cancelTimer('freeze-deadline');
    this.taken = given;
    this.windowUnchecked = this.config.negativeControls?.has('skip-staged-window-check') === true;
    const outside = this.windowUnchecked ? undefined : givenOutsideWindow(given, frozenAt, ctx.nowMs, 'every server was frozen');
    if (outside !== undefined) {
      ctx.fail('volume-snapshot-failed', outside);
      return;
    }
    ctx.emit({ type: 'progress', kind: 'volumes-snapshotted', detail: `${given.length} volume(s), by the caller` });
    this.step = 'thawing';
    this.thawAll(ctx);
  }

  thawAnswered(server: string, confirmed: boolean, ctx: LevelContext): void {
    if (!this.thawing.delete(server)) return;
    if (!confirmed) this.unconfirmed.push(server);
    if (this.thawing.size > 0) return;
    const unconfirmed = this.unconfirmed.splice(0);
    if (ctx.state === 'aborting') {
      if (unconfirmed.length > 0) ctx.emit({ type: 'log', level: 'warn', message: 'aborted: thaw not confirmed by every server (their watchdogs thaw them at the deadline)', fields: { servers: unconfirmed } });
      else ctx.emit({ type: 'log', level: 'info', message: 'aborted: every server confirmed its thaw' });
      return;
    }
    if (this.step !== 'thawing' || ctx.state !== 'committing') return;
    this.step = 'done';
    if (unconfirmed.length > 0) ctx.emit({ type: 'log', level: 'warn', message: 'thaw not confirmed by every server (their watchdogs thaw them at the deadline)', fields: { servers: unconfirmed } });
    const outside = this.checkWindow();
    if (outside !== undefined) {
      ctx.fail('freeze-failed', outside);
      return;
    }
    ctx.emit({ type: 'set-volumes', volumes: this.volumeRecords(this.taken) });
    ctx.commit([]);
  }

  timedOut(): string {
    const silent = this.config.servers.filter((s) => this.windows.get(s)?.frozenAtMs === undefined);
    return silent.length > 0 ? `not frozen: ${silent.join(', ')}` : '';
  }

  abort(ctx: LevelContext): void {
    this.unconfirmed.length = 0;
    this.thawAll(ctx);
  }

  completed(): void {}

  awaiting(): boolean {
    return this.thawing.size > 0;
  }

  volumeRecords(taken: readonly TakenVolume[]): RoundVolumeRecord[] {
    return taken.map((t) => ({
      volumeId: t.volumeId,
      server: t.server,
      snapshotRef: t.snapshotRef,
      frozenAtUnixMs: this.windows.get(t.server)?.frozenAtMs ?? 0,
      snapshotAtUnixMs: t.startedAtUnixMs,
      thawedAtUnixMs: this.windows.get(t.server)?.thawedAtMs ?? 0,
    }));
  }

  private thawAll(ctx: LevelContext): void {
    for (const s of this.config.servers) this.thawing.add(s);
    ctx.emit({ type: 'request-thaw', servers: this.config.servers });
  }

  /**
   * What the backend answered must describe the call it answered: one snapshot per volume of the
   * plan, each taken within the call (backend and round share the coordinator's clock). Anything
   * else is a bug in the backend, and a window check built on it would prove nothing.
   */
  private checkTaken(calledAt: number, returnedAt: number): string | undefined {
    for (const v of this.config.volumes) {
      const n = this.taken.filter((t) => t.volumeId === v.id && t.server === v.server).length;
      if (n !== 1) return `the volume backend returned ${n} snapshots of volume ${v.id} of ${v.server}, not 1`;
    }
    if (this.taken.length !== this.config.volumes.length) return `the volume backend returned ${this.taken.length} snapshots for ${this.config.volumes.length} volumes`;
    for (const t of this.taken) {
      if (!(calledAt <= t.startedAtUnixMs && t.startedAtUnixMs <= t.endedAtUnixMs && t.endedAtUnixMs <= returnedAt)) {
        return `the volume backend says volume ${t.volumeId} of ${t.server} was taken from ${t.startedAtUnixMs} to ${t.endedAtUnixMs}, outside its call (${calledAt} to ${returnedAt})`;
      }
    }
    return undefined;
  }

  /** Every member's snapshot inside the common frozen window, or why not. */
  private checkWindow(): string | undefined {
    if (this.windowUnchecked) return undefined;
    const start = this.snapshotStartedAt;
    const end = this.snapshotEndedAt ?? start;
    // Plans without volumes still need every server frozen over the (empty) group snapshot.
    const members = this.taken.length > 0 ? this.taken : [{ volumeId: undefined, server: undefined, startedAtUnixMs: start, endedAtUnixMs: end }];
    for (const m of members) {
      const what = m.volumeId === undefined ? 'the volume snapshot' : `the snapshot of volume ${m.volumeId} of ${m.server}`;
      const late = this.config.servers.filter((s) => !((this.windows.get(s)?.frozenAtMs ?? Infinity) <= m.startedAtUnixMs));
      if (late.length > 0) return `${what} started at ${m.startedAtUnixMs}, before ${late.join(', ')} ${late.length === 1 ? 'was' : 'were'} frozen`;
      const early = this.config.servers.filter((s) => {
        const w = this.windows.get(s);
        return w?.byWatchdog === true && w.thawedAtMs !== undefined && w.thawedAtMs < m.endedAtUnixMs;
      });
      if (early.length > 0) return `${early.join(', ')} thawed (by ${early.length === 1 ? 'its watchdog' : 'their watchdogs'}) before ${what} ended at ${m.endedAtUnixMs}: outside the common frozen window`;
    }
    return undefined;
  }
}
