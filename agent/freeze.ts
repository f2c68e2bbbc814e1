/**
 * Crash consistency on one server: freeze (prepare hooks, freeze hooks, hook sessions, `sync`,
 * `fsfreeze -f` on each mount), thaw (the same undone in exact reverse), and the watchdog that
 * thaws by itself at the freeze's deadline: a timer here, and the watchdog process of
 * agent/freeze-watchdog.ts, which thaws when this process cannot (its event loop blocked, the
 * process stopped or dead). docs/hooks.md is the operator's view of this file.
 *
 * The rules it keeps (DESIGN.md section 9, first row):
 *   - Everything a freeze did is pushed on an undo stack *before* it runs; a freeze that fails at
 *     any step unwinds that stack in a `finally`, so what was frozen is thawed before the decline is
 *     answered. A hook whose freeze failed still gets its thaw (hooks must be idempotent).
 *   - A successful freeze arms the watchdog: a *referenced* timer. An unreferenced one would let
 *     the process exit once nothing else keeps the event loop alive (NATS closed for good, every
 *     app detached), leaving the guest frozen with nobody to thaw it; this timer is the one thing
 *     that must keep the agent alive until the thaw.
 *   - Before the first mount is frozen, the watchdog process is armed. Every thaw begins by claiming
 *     the thaw from it; when it claimed first, the thaw waits for it and skips what it did.
 *   - While anything may be frozen, a synchronous `exit` handler runs `fsfreeze -u` on the frozen
 *     mounts and stops the sessions: the last resort when the process exits on an uncaught error.
 *   - Thaw is idempotent: thawing a thawed guest is a no-op success, and the answer repeats the
 *     last frozen window of that checkpoint so that a late thaw command learns of a watchdog thaw.
 *   - Every requested deadline is cut to `freezeDeadlineMsMax`; every step of a freeze is cut to
 *     what is left of the deadline, so a freeze never outlives its own deadline.
 *   - Operations run one at a time (a queue), so a thaw that arrives while the freeze is still
 *     running waits for it and then undoes it.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CheckpointId } from '../src/ids.js';
import type { HookAction, HookResult } from '../src/wire/index.js';
import type { AgentConfig, FreezeConfig } from './config.js';
import { FreezeStatusFile, processAlive, readFreezeStatus, type FreezeStatus, type LastThaw, type ThawCause } from './freeze-status.js';
import { FreezeWatchdog, stepKey, WATCHDOG_LOG, watchdogStepFailed, type WatchdogReport, type WatchdogStep } from './freeze-watchdog.js';
import { describeHookResult, discoverHooks, EMPTY_HOOK_SET, hookFailed, HookSession, runHook, type HookCommand, type HookFile, type HookSet } from './hooks/index.js';

/** The consistency level a freeze serves, given to hooks as SNAP_LEVEL. */
export type FreezeLevel = 'crash' | 'app';

export type FreezeFailureReason = 'busy' | 'hook-failed' | 'freeze-failed';

export type FreezeOutcome =
  | {
      readonly ok: true;
      readonly checkpointId: CheckpointId;
      /** Wall clock when the last freeze step finished. */
      readonly frozenAtUnixMs: number;
      /** When the watchdog thaws at the latest. */
      readonly deadlineAtUnixMs: number;
      /** The deadline in force: the requested one, cut to freezeDeadlineMsMax. */
      readonly deadlineMs: number;
      /** How long the freeze steps took. */
      readonly hooksMs: number;
      readonly hooks: readonly HookResult[];
    }
  | {
      readonly ok: false;
      readonly reason: FreezeFailureReason;
      /** Names the failing step and ends with the tail of its stderr. */
      readonly detail: string;
      /** Every step that ran: the freeze steps up to the failure, then the thaw of what they froze. */
      readonly hooks: readonly HookResult[];
    };

export interface ThawOutcome {
  readonly checkpointId: CheckpointId;
  readonly cause: ThawCause;
  /** True when the agent thawed by itself, without a thaw command (watchdog, shutdown, recovery); false for a command or a failed freeze. */
  readonly byWatchdog: boolean;
  /** 0 when this checkpoint never got frozen. */
  readonly frozenAtUnixMs: number;
  readonly thawedAtUnixMs: number;
  /** When the thaw began (its first step started); the steps took until thawedAtUnixMs. */
  readonly startedAtUnixMs: number;
  /** The deadline of the freeze thawed now; absent for a no-op. */
  readonly deadlineAtUnixMs?: number;
  readonly hooks: readonly HookResult[];
  /** Nothing to do: not frozen for this checkpoint (the values describe its last thaw, if any). */
  readonly noop: boolean;
}

export interface FreezeControllerOptions {
  readonly tenant: string;
  readonly server: string;
  /** The configured apps: `<hooksDir>/<app>/` is read for each. */
  readonly apps: readonly string[];
  readonly config: FreezeConfig;
  readonly stateDir: string;
  readonly logger: Logger;
  /** The built-in steps' programs; tests substitute scripts that record their arguments. */
  readonly commands?: { readonly sync?: string; readonly fsfreeze?: string };
  /** Told after the agent thawed by itself (watchdog): the agent reports it when it can. */
  readonly onSelfThaw?: (outcome: ThawOutcome) => void;
  /** Told after every change of the freeze state (the status file is written already). */
  readonly onChange?: (status: FreezeStatus) => void;
}

/** What a freeze did, to be undone in reverse. */
type Undo =
  | { readonly kind: 'hook'; readonly file: HookFile; readonly action: 'thaw' | 'resume' }
  | { readonly kind: 'session'; readonly session: HookSession }
  | { readonly kind: 'fsfreeze'; readonly mount: string };

interface Active {
  readonly checkpointId: CheckpointId;
  readonly level: FreezeLevel;
  /** `performance.now()` by which everything of the freeze must be done; the watchdog fires then. */
  readonly endByMs: number;
  readonly deadlineAtUnixMs: number;
  readonly deadlineMs: number;
  phase: 'freezing' | 'frozen' | 'thawing';
  set: HookSet;
  readonly undo: Undo[];
  readonly frozenMounts: string[];
  frozenAtUnixMs?: number;
  watchdog?: NodeJS.Timeout;
  /** The watchdog process (agent/freeze-watchdog.ts), armed before the first mount is frozen. */
  outside?: FreezeWatchdog;
  /** Recovery: what the dead agent's watchdog processes did already. */
  doneOutside?: WatchdogReport;
  outcome?: Promise<FreezeOutcome>;
}

class StepFailed extends Error {
  constructor(
    readonly reason: 'hook-failed' | 'freeze-failed',
    message: string,
  ) {
    super(message);
  }
}

/** Decline details stay well inside the wire's limit, with room for the hook name and the summary. */
const DETAIL_STDERR_CHARS_MAX = 1_500;

export class FreezeController {
  private active: Active | undefined;
  private lastThaws = new Map<CheckpointId, LastThaw>();
  private lastThaw: LastThaw | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly statusFile: FreezeStatusFile;
  private readonly log: Logger;
  private readonly syncCommand: string;
  private readonly fsfreezeCommand: string;
  private readonly onExit = (): void => this.emergencyThawSync();

  constructor(private readonly options: FreezeControllerOptions) {
    this.log = options.logger.child({ component: 'freeze' });
    this.syncCommand = options.commands?.sync ?? 'sync';
    this.fsfreezeCommand = options.commands?.fsfreeze ?? 'fsfreeze';
    this.statusFile = new FreezeStatusFile(options.stateDir, (error) => this.log.error({ err: error, dir: options.stateDir }, 'could not write the freeze status file'));
  }

  get config(): FreezeConfig {
    return this.options.config;
  }

  get statusPath(): string {
    return this.statusFile.path;
  }

  status(): FreezeStatus {
    const a = this.active;
    return {
      frozen: a !== undefined,
      state: a ? a.phase : 'thawed',
      ...(a ? { checkpointId: a.checkpointId, deadlineAtUnixMs: a.deadlineAtUnixMs } : {}),
      ...(a?.frozenAtUnixMs !== undefined ? { frozenAtUnixMs: a.frozenAtUnixMs } : {}),
      frozenMounts: a ? [...a.frozenMounts] : [],
      ...(a?.outside ? { watchdog: { pid: a.outside.pid, id: a.outside.id } } : {}),
      ...(this.lastThaw ? { lastThaw: this.lastThaw } : {}),
      pid: process.pid,
      updatedAtUnixMs: Date.now(),
    };
  }

  /** Writes the initial status; resolves once it is on disk. */
  async start(): Promise<void> {
    this.changed();
    await this.statusFile.flush();
  }

  /** Resolves once every queued status write is done. */
  flushStatus(): Promise<void> {
    return this.statusFile.flush();
  }

  /**
   * Freezes the server for `checkpointId`; the watchdog thaws `deadlineMs` (cut to
   * freezeDeadlineMsMax) after this call. The same checkpoint again while freezing or frozen gets
   * the same outcome; another checkpoint is turned away as busy.
   */
  freeze(checkpointId: CheckpointId, deadlineMs: number, level: FreezeLevel): Promise<FreezeOutcome> {
    const receivedMs = performance.now();
    const receivedAtUnixMs = Date.now();
    if (this.closed) return Promise.resolve({ ok: false, reason: 'freeze-failed', detail: `the agent on ${this.options.server} is stopping`, hooks: [] });
    const a = this.active;
    if (a) {
      if (a.checkpointId === checkpointId && a.phase !== 'thawing' && a.outcome) return a.outcome;
      const since = a.frozenAtUnixMs !== undefined ? ` since ${new Date(a.frozenAtUnixMs).toISOString()}` : '';
      return Promise.resolve({
        ok: false,
        reason: 'busy',
        detail: `${this.options.server} is ${a.phase} for checkpoint ${a.checkpointId}${since} (watchdog deadline ${new Date(a.deadlineAtUnixMs).toISOString()})`,
        hooks: [],
      });
    }
    if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) {
      return Promise.resolve({ ok: false, reason: 'freeze-failed', detail: `freeze deadline must be > 0 ms, got ${deadlineMs}`, hooks: [] });
    }
    const max = this.options.config.freezeDeadlineMsMax;
    const effectiveMs = Math.min(deadlineMs, max);
    if (effectiveMs < deadlineMs) this.log.warn({ checkpointId, deadlineMs, freezeDeadlineMsMax: max }, 'freeze deadline cut to freezeDeadlineMsMax');
    const active: Active = {
      checkpointId,
      level,
      endByMs: receivedMs + effectiveMs,
      deadlineAtUnixMs: receivedAtUnixMs + effectiveMs,
      deadlineMs: effectiveMs,
      phase: 'freezing',
      set: EMPTY_HOOK_SET,
      undo: [],
      frozenMounts: [],
    };
    this.active = active;
    active.outcome = this.enqueue(() => this.runFreeze(active));
    return active.outcome;
  }

  /**
   * Thaws the server if it is frozen for `checkpointId` (waiting for a freeze still running). A
   * thaw of a thawed guest, or for a checkpoint other than the frozen one, is a no-op success.
   */
  thaw(checkpointId: CheckpointId, options: { afterRestore: boolean }): Promise<ThawOutcome> {
    return this.enqueue(() => this.runThaw(checkpointId, options.afterRestore, 'command'));
  }

  /**
   * No more freezes; thaws whatever is frozen (after a freeze in progress ends). Resolves with the
   * thaw's outcome, or undefined when nothing was frozen.
   */
  async close(): Promise<ThawOutcome | undefined> {
    this.closed = true;
    const a = this.active;
    let outcome: ThawOutcome | undefined;
    if (a) {
      await a.outcome;
      outcome = await this.enqueue(() => this.runThaw(a.checkpointId, false, 'shutdown'));
      if (outcome.noop) outcome = undefined;
    }
    await this.queue;
    await this.statusFile.flush();
    return outcome;
  }

  /**
   * At start-up: if the status file says a previous agent process (now dead) left this server
   * frozen or half-frozen, or that process left a watchdog process armed, thaw now: every thaw and
   * resume hook and `fsfreeze -u` on every mount it may have frozen. Its watchdog processes are
   * taken over first: one still asleep is stopped (it must never thaw in the middle of a later
   * freeze), one that thawed already is waited for, and the steps it carried out are not run again.
   * Resolves with the thaw, or undefined when there was nothing to do.
   */
  async recover(): Promise<ThawOutcome | undefined> {
    const read = await readFreezeStatus(this.options.stateDir);
    if (!read.ok && !read.missing) this.log.warn({ problem: read.message }, 'freeze status file unreadable: only leftover watchdog processes are looked for');
    const prev = read.ok ? read.status : undefined;
    const byOther = prev !== undefined && prev.frozen && prev.pid !== process.pid;
    if (byOther && processAlive(prev.pid)) {
      this.log.error({ pid: prev.pid, stateDir: this.options.stateDir }, 'the freeze status says another live process froze this server: not touching it (two agents with one state directory?)');
      return undefined;
    }
    const deadAgent = (pid: number): boolean => pid !== process.pid && !processAlive(pid);
    if (!byOther && !(await FreezeWatchdog.leftoversExist(this.options.stateDir, deadAgent))) {
      await FreezeWatchdog.removeStale(this.options.stateDir, deadAgent);
      return undefined;
    }
    const set = await this.discover().catch((error: unknown) => {
      this.log.error({ err: error }, 'recovery: the hook directory is unreadable: only the mounts are thawed');
      return EMPTY_HOOK_SET;
    });
    const c = this.options.config;
    const mounts = [...new Set([...c.mounts, ...(byOther ? prev.frozenMounts : [])])];
    const leftovers = await FreezeWatchdog.takeOverLeftovers(this.options.stateDir, deadAgent, (mounts.length + 2 * set.hooks.length + 1) * (c.hookTimeoutMs + c.hookKillGraceMs));
    if (!byOther) {
      if (leftovers.found === 0) return undefined;
      // The watchdog of the dead process thawed everything and said so in the status file.
      const r = leftovers.report;
      if (r?.finished === true && ![...r.steps.values()].some(watchdogStepFailed)) {
        this.log.warn({ leftoverWatchdogs: leftovers.found, thawedAtUnixMs: r.claimedAtUnixMs }, 'the freeze watchdog process of a dead agent process thawed this server: nothing left to do');
        return undefined;
      }
    }
    const checkpointId = (byOther ? prev.checkpointId : undefined) ?? 0;
    this.log.error(
      { checkpointId, pid: prev?.pid, state: prev?.state, frozenMounts: prev?.frozenMounts, leftoverWatchdogs: leftovers.found, thawedByWatchdog: leftovers.report !== undefined },
      byOther ? 'the previous agent process died while frozen: thawing now' : 'a dead agent process left a freeze watchdog armed, so it may have died while frozen: thawing now',
    );
    return this.enqueue(async () => {
      const active: Active = {
        checkpointId,
        level: 'crash',
        endByMs: performance.now(),
        deadlineAtUnixMs: (byOther ? prev.deadlineAtUnixMs : undefined) ?? Date.now(),
        deadlineMs: 0,
        phase: 'frozen',
        set,
        undo: [],
        frozenMounts: [...mounts],
        ...(byOther && prev.frozenAtUnixMs !== undefined ? { frozenAtUnixMs: prev.frozenAtUnixMs } : {}),
        ...(leftovers.report ? { doneOutside: leftovers.report } : {}),
      };
      await this.makeStateDirs().catch((error: unknown) => this.log.error({ err: error }, 'recovery: cannot create the hook state directories'));
      // The same stack a full freeze builds, so the unwinding order is the usual one.
      for (const file of active.set.hooks) active.undo.push({ kind: 'hook', file, action: 'resume' });
      for (const file of active.set.hooks) active.undo.push({ kind: 'hook', file, action: 'thaw' });
      for (const mount of mounts) active.undo.push({ kind: 'fsfreeze', mount });
      this.active = active;
      return this.runThaw(checkpointId, false, 'recovery');
    });
  }

  // ---- freeze ----------------------------------------------------------------------------------

  private async runFreeze(a: Active): Promise<FreezeOutcome> {
    const startedMs = performance.now();
    const log = this.log.child({ checkpointId: a.checkpointId });
    log.info({ deadlineMs: a.deadlineMs, level: a.level }, 'freezing');
    process.on('exit', this.onExit);
    this.changed();
    const results: HookResult[] = [];
    let failure: { reason: 'hook-failed' | 'freeze-failed'; detail: string } | undefined;
    try {
      await this.makeStateDirs();
      try {
        a.set = await this.discover();
      } catch (error) {
        throw new StepFailed('hook-failed', `cannot read the hooks: ${(error as Error).message}`);
      }
      // Armed in the next turn of the event loop, which comes while the first hook (or `sync`) runs:
      // starting a process blocks the loop for milliseconds, and so that overlaps it. Awaited before
      // the first mount is frozen.
      const arming = new Promise<string | undefined>((resolve) =>
        setImmediate(() => {
          try {
            resolve(this.armOutside(a));
          } catch (error) {
            resolve(`cannot arm the freeze watchdog process: ${error instanceof Error ? error.message : String(error)}`);
          }
        }),
      );
      const step = (r: HookResult, reason: 'hook-failed' | 'freeze-failed'): void => {
        results.push(r);
        if (hookFailed(r)) throw new StepFailed(reason, failureDetail(r));
      };
      for (const file of a.set.hooks) {
        a.undo.push({ kind: 'hook', file, action: 'resume' });
        step(await this.runFile(a, file, 'prepare', a.endByMs), 'hook-failed');
      }
      for (const file of a.set.hooks) {
        a.undo.push({ kind: 'hook', file, action: 'thaw' });
        step(await this.runFile(a, file, 'freeze', a.endByMs), 'hook-failed');
      }
      for (const file of a.set.sessions) {
        const started = await HookSession.start(this.command(file, 'freeze'), this.env(a, 'freeze', file.app), this.options.config, log, a.endByMs, this.hookStateDir(file.app));
        if (started.session) a.undo.push({ kind: 'session', session: started.session });
        step(started.result, 'hook-failed');
      }
      if (this.options.config.sync) step(await this.runBuiltin('sync', this.syncCommand, [], 'freeze', a.endByMs), 'freeze-failed');
      const armFailure = await arming;
      if (armFailure !== undefined) throw new StepFailed('freeze-failed', armFailure);
      for (const mount of this.options.config.mounts) {
        const r = await this.runBuiltin(`fsfreeze ${mount}`, this.fsfreezeCommand, ['-f', mount], 'freeze', a.endByMs);
        // A clean failure froze nothing; after a timeout the freeze may have happened anyway.
        if (!hookFailed(r) || r.timedOut) {
          a.undo.push({ kind: 'fsfreeze', mount });
          a.frozenMounts.push(mount);
          this.changed();
        }
        step(r, 'freeze-failed');
      }
      const tookMs = performance.now() - startedMs;
      if (performance.now() >= a.endByMs) {
        throw new StepFailed('freeze-failed', `the freeze steps took ${Math.round(tookMs)} ms: past the deadline of ${a.deadlineMs} ms`);
      }
    } catch (error) {
      failure =
        error instanceof StepFailed
          ? { reason: error.reason, detail: error.message }
          : { reason: 'freeze-failed', detail: `internal error while freezing: ${error instanceof Error ? error.message : String(error)}` };
    } finally {
      if (failure) {
        // Thaw what was frozen before answering: the decline must never leave the guest frozen.
        log.error({ reason: failure.reason, detail: failure.detail }, 'freeze failed: thawing what was frozen');
        a.phase = 'thawing';
        this.changed();
        const undone = (await this.unwind(a, false, log)).results;
        results.push(...undone);
        const failedUndo = undone.filter(hookFailed);
        if (failedUndo.length > 0) failure.detail += `; ${failedUndo.length} of ${undone.length} thaw steps failed too (${failedUndo.map((r) => describeHookResult(r)).join('; ')})`;
        else if (undone.length > 0) failure.detail += `; the ${undone.length} thaw steps of what was frozen ran`;
        this.finish(a, { checkpointId: a.checkpointId, frozenAtUnixMs: 0, thawedAtUnixMs: Date.now(), cause: 'failed-freeze' });
      }
    }
    if (failure) return { ok: false, reason: failure.reason, detail: failure.detail, hooks: results };
    a.phase = 'frozen';
    a.frozenAtUnixMs = Date.now();
    const hooksMs = Math.round(performance.now() - startedMs);
    this.armWatchdog(a);
    this.changed();
    log.info({ hooksMs, deadlineAtUnixMs: a.deadlineAtUnixMs, frozenMounts: a.frozenMounts, steps: results.length }, 'frozen');
    return { ok: true, checkpointId: a.checkpointId, frozenAtUnixMs: a.frozenAtUnixMs, deadlineAtUnixMs: a.deadlineAtUnixMs, deadlineMs: a.deadlineMs, hooksMs, hooks: results };
  }

  /**
   * Arms the watchdog process, before anything is frozen: from here on the guest is thawed at the
   * deadline even if this process never runs another line. A freeze with nothing to thaw (no mount,
   * no hook) needs none, and one that failed already (it is thawing) must not get one. Returns
   * why it could not be armed.
   */
  private armOutside(a: Active): string | undefined {
    const c = this.options.config;
    if ((c.mounts.length === 0 && a.set.hooks.length === 0) || a.phase !== 'freezing') return undefined;
    const undoOrder = [...a.set.hooks].reverse();
    const steps: WatchdogStep[] = [
      ...[...c.mounts].reverse().map((mount) => ({ kind: 'fsfreeze' as const, mount })),
      ...(['thaw', 'resume'] as const).flatMap((action) =>
        undoOrder.map((f) => ({ kind: 'hook' as const, action, path: f.path, stateDir: this.hookStateDir(f.app), ...(f.app !== undefined ? { app: f.app } : {}) })),
      ),
    ];
    const armed = FreezeWatchdog.arm(
      {
        stateDir: this.options.stateDir,
        checkpointId: a.checkpointId,
        id: `${process.pid}-${a.checkpointId}-${randomBytes(4).toString('hex')}`,
        sleepMs: a.endByMs - performance.now(),
        fsfreeze: this.fsfreezeCommand,
        steps,
        hooksWhileAgentAlive: a.set.sessions.length === 0,
        hookTimeoutMs: c.hookTimeoutMs,
        hookKillGraceMs: c.hookKillGraceMs,
        env: this.env(a, 'thaw', undefined),
      },
      a.deadlineAtUnixMs,
    );
    if (!armed.ok) return `cannot start the freeze watchdog process: ${armed.message}`;
    // The status shows it from the next change on (the freeze's own); recovery finds it by its ticket.
    a.outside = armed.watchdog;
    return undefined;
  }

  private armWatchdog(a: Active): void {
    const inMs = Math.max(0, a.endByMs - performance.now());
    // Referenced on purpose (see the file comment): it keeps the process alive until it thaws.
    a.watchdog = setTimeout(() => {
      a.watchdog = undefined;
      this.log.warn({ checkpointId: a.checkpointId, deadlineAtUnixMs: a.deadlineAtUnixMs }, 'freeze deadline reached without a thaw: the watchdog thaws');
      void this.enqueue(() => this.runThaw(a.checkpointId, false, 'watchdog', a)).then((outcome) => {
        if (outcome.noop) return;
        try {
          this.options.onSelfThaw?.(outcome);
        } catch (error) {
          this.log.error({ err: error }, 'reporting the watchdog thaw failed');
        }
      });
    }, inMs);
  }

  // ---- thaw ------------------------------------------------------------------------------------

  private async runThaw(checkpointId: CheckpointId, afterRestore: boolean, cause: ThawCause, only?: Active): Promise<ThawOutcome> {
    const a = this.active;
    if (!a || a.checkpointId !== checkpointId || (only !== undefined && a !== only) || a.phase !== 'frozen') {
      if (a && a.checkpointId !== checkpointId) this.log.warn({ checkpointId, frozenFor: a.checkpointId }, 'thaw for a checkpoint other than the frozen one: nothing done');
      const last = this.lastThaws.get(checkpointId);
      return {
        checkpointId,
        cause: last?.cause ?? cause,
        byWatchdog: last !== undefined && selfThaw(last.cause),
        frozenAtUnixMs: last?.frozenAtUnixMs ?? 0,
        thawedAtUnixMs: last?.thawedAtUnixMs ?? Date.now(),
        startedAtUnixMs: last?.thawedAtUnixMs ?? Date.now(),
        hooks: [],
        noop: true,
      };
    }
    const log = this.log.child({ checkpointId });
    if (a.watchdog) clearTimeout(a.watchdog);
    a.watchdog = undefined;
    a.phase = 'thawing';
    let startedAtUnixMs = Date.now();
    this.changed();
    log.info({ cause, afterRestore }, 'thawing');
    const undone = await this.unwind(a, afterRestore, log);
    const hooks = undone.results;
    const thawedAtUnixMs = Date.now();
    if (undone.outside) {
      // The guest began thawing when the watchdog process claimed the thaw, at the deadline; a thaw
      // command that found it done is, like the agent's own timer, too late.
      startedAtUnixMs = Math.min(startedAtUnixMs, undone.outside.claimedAtUnixMs);
      if (cause === 'command') cause = 'watchdog';
    }
    this.finish(a, { checkpointId, frozenAtUnixMs: a.frozenAtUnixMs ?? 0, thawedAtUnixMs, cause });
    const failed = hooks.filter(hookFailed);
    const overshootMs = thawedAtUnixMs - a.deadlineAtUnixMs;
    if (failed.length > 0) log.error({ cause, failed: failed.map(describeHookResult) }, 'thawed, but some thaw steps failed');
    else log.info({ cause, frozenMs: thawedAtUnixMs - (a.frozenAtUnixMs ?? thawedAtUnixMs), ...(cause === 'watchdog' ? { overshootMs } : {}), ...(undone.outside ? { byProcessAtUnixMs: undone.outside.claimedAtUnixMs } : {}) }, 'thawed');
    return {
      checkpointId,
      cause,
      byWatchdog: selfThaw(cause),
      frozenAtUnixMs: a.frozenAtUnixMs ?? 0,
      thawedAtUnixMs,
      startedAtUnixMs,
      deadlineAtUnixMs: a.deadlineAtUnixMs,
      hooks,
      noop: false,
    };
  }

  /**
   * Undoes a freeze's steps in reverse. Never stops half-way: a failing step is kept in the
   * results and the next one runs. With `afterRestore`, the restore hooks run right after the
   * mounts are thawed (so that an app reloading its state can write) and before the sessions are
   * released and the thaw hooks run (so that nothing else writes while it reloads).
   */
  private async unwind(a: Active, afterRestore: boolean, log: Logger): Promise<{ results: HookResult[]; outside?: WatchdogReport }> {
    const results: HookResult[] = [];
    const outside = a.doneOutside ?? (await this.takeOverThaw(a, log));
    /** A step the watchdog process carried out: its result stands for the agent's. */
    const doneOutside = (key: string, hook: string, action: HookAction, app?: string): HookResult | undefined => {
      const r = outside?.steps.get(key);
      if (r === undefined || watchdogStepFailed(r)) return undefined;
      return { hook, action, exitCode: 0, timedOut: false, durationMs: r.durationMs, stderr: `[agent] run by the freeze watchdog process at the deadline; its output is in ${WATCHDOG_LOG}\n`, attempts: 1, ...(app !== undefined ? { app } : {}) };
    };
    let restoreDue = afterRestore;
    const restore = async (): Promise<void> => {
      restoreDue = false;
      for (const file of a.set.hooks) results.push(await this.runFile(a, file, 'restore'));
    };
    for (let u = a.undo.pop(); u !== undefined; u = a.undo.pop()) {
      if (restoreDue && u.kind !== 'fsfreeze') await restore();
      switch (u.kind) {
        case 'fsfreeze': {
          const r = doneOutside(stepKey({ kind: 'fsfreeze', mount: u.mount }), `fsfreeze ${u.mount}`, 'thaw') ?? (await this.runBuiltin(`fsfreeze ${u.mount}`, this.fsfreezeCommand, ['-u', u.mount], 'thaw'));
          results.push(r);
          const i = a.frozenMounts.indexOf(u.mount);
          if (i >= 0) a.frozenMounts.splice(i, 1);
          if (hookFailed(r)) log.error({ mount: u.mount }, 'fsfreeze -u failed: the mount may still be frozen');
          this.changed();
          break;
        }
        case 'session':
          results.push(await u.session.release());
          break;
        case 'hook':
          results.push(doneOutside(stepKey({ kind: 'hook', action: u.action, path: u.file.path }), u.file.name, u.action, u.file.app) ?? (await this.runFile(a, u.file, u.action)));
          break;
      }
    }
    if (restoreDue) await restore();
    if (a.outside) {
      // A watchdog that thawed has ended: its files go before the thaw is answered, so that a
      // process exiting right after it leaves none. One that was stopped left no ticket.
      if (outside?.finished === true) await a.outside.cleanUp();
      else void a.outside.cleanUp();
      a.outside = undefined;
    }
    return outside ? { results, outside } : { results };
  }

  /**
   * The first thing of every thaw: claim it from the watchdog process (which is then stopped). If
   * the watchdog claimed it first (the deadline passed while this process was not running), wait
   * for it to end and return what it did, so that nothing runs twice and nothing runs beside it.
   */
  private async takeOverThaw(a: Active, log: Logger): Promise<WatchdogReport | undefined> {
    const w = a.outside;
    if (!w || w.claim()) return undefined;
    const c = this.options.config;
    const waitMs = (a.undo.length + 1) * (c.hookTimeoutMs + c.hookKillGraceMs);
    log.warn({ watchdogPid: w.pid, waitMs }, 'the freeze watchdog process claimed the thaw at the deadline (this process was late: its event loop was blocked or the process stopped): waiting for it to end');
    const report = await w.report(waitMs);
    const failed = [...report.steps].filter(([, r]) => watchdogStepFailed(r)).map(([key, r]) => `${key}: ${r.timedOut ? 'timed out' : `exit ${r.exitCode}`}`);
    log.warn(
      { watchdogPid: w.pid, claimedAtUnixMs: report.claimedAtUnixMs, overshootMs: report.claimedAtUnixMs - a.deadlineAtUnixMs, done: report.steps.size, failed, finished: report.finished },
      'the freeze watchdog process thawed; the steps it did not carry out run now',
    );
    return report;
  }

  private finish(a: Active, last: LastThaw): void {
    if (this.active === a) this.active = undefined;
    this.lastThaw = last;
    this.lastThaws.set(last.checkpointId, last);
    // Bounded: only recent checkpoints get late thaw commands.
    if (this.lastThaws.size > LAST_THAWS_REMEMBERED_MAX) this.lastThaws.delete(this.lastThaws.keys().next().value as CheckpointId);
    process.removeListener('exit', this.onExit);
    this.changed();
  }

  /**
   * The last resort, from a synchronous `exit` handler: the process is going away while something
   * may be frozen. Thaws the mounts and stops the sessions (their locks go with them); the thaw and
   * resume hooks cannot run here and are left to the recovery at the next start.
   */
  private emergencyThawSync(): void {
    const a = this.active;
    if (!a) return;
    // Claimed, the watchdog is stopped: the agent thaws the mounts here and its successor runs the
    // hooks. Not claimed, the watchdog is thawing already, and a second `fsfreeze -u` is harmless.
    a.outside?.claim();
    for (const mount of [...a.frozenMounts].reverse()) {
      const r = spawnSync(this.fsfreezeCommand, ['-u', mount], { timeout: this.options.config.hookTimeoutMs, stdio: 'ignore' });
      process.stderr.write(`snapagent: exiting while frozen: fsfreeze -u ${mount}: ${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}\n`);
    }
    for (const u of a.undo) if (u.kind === 'session') u.session.killNow();
  }

  // ---- steps -----------------------------------------------------------------------------------

  private discover(): Promise<HookSet> {
    const dir = this.options.config.hooksDir;
    if (dir === undefined) return Promise.resolve(EMPTY_HOOK_SET);
    return discoverHooks(dir, this.options.apps).then((set) => {
      for (const s of set.skipped) this.log.warn({ path: s.path }, `hook skipped: ${s.why}`);
      return set;
    });
  }

  /** SNAP_STATE_DIR of a hook: one per app, and one for the server-wide hooks. */
  hookStateDir(app: string | undefined): string {
    return app === undefined ? join(this.options.stateDir, 'hooks', 'server') : join(this.options.stateDir, 'hooks', 'apps', app);
  }

  private async makeStateDirs(): Promise<void> {
    await mkdir(this.hookStateDir(undefined), { recursive: true });
    for (const app of this.options.apps) await mkdir(this.hookStateDir(app), { recursive: true });
  }

  private env(a: Active, action: HookAction, app: string | undefined): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    // Nothing of the agent's own environment may pass for a hook variable.
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SNAP_')) env[k] = v;
    env['SNAP_ACTION'] = action;
    env['SNAP_CHECKPOINT_ID'] = String(a.checkpointId);
    env['SNAP_LEVEL'] = a.level;
    env['SNAP_TENANT'] = this.options.tenant;
    env['SNAP_SERVER'] = this.options.server;
    env['SNAP_MOUNTS'] = this.options.config.mounts.join(':');
    env['SNAP_STATE_DIR'] = this.hookStateDir(app);
    env['SNAP_DEADLINE_UNIX_MS'] = String(a.deadlineAtUnixMs);
    if (app !== undefined) env['SNAP_APP'] = app;
    return env;
  }

  private command(file: HookFile, action: HookAction): HookCommand {
    return { name: file.name, file: file.path, args: [action], ...(file.app !== undefined ? { app: file.app } : {}) };
  }

  private runFile(a: Active, file: HookFile, action: HookAction, endByMs?: number): Promise<HookResult> {
    return runHook(this.command(file, action), {
      action,
      env: this.env(a, action, file.app),
      cwd: this.hookStateDir(file.app),
      log: this.log,
      ...this.limits(),
      ...(endByMs !== undefined ? { endByMs } : {}),
    });
  }

  private runBuiltin(name: string, program: string, args: readonly string[], action: HookAction, endByMs?: number): Promise<HookResult> {
    return runHook({ name, file: program, args }, { action, env: process.env, log: this.log, ...this.limits(), ...(endByMs !== undefined ? { endByMs } : {}) });
  }

  private limits(): { hookTimeoutMs: number; hookRetriesMax: number; hookKillGraceMs: number } {
    const c = this.options.config;
    return { hookTimeoutMs: c.hookTimeoutMs, hookRetriesMax: c.hookRetriesMax, hookKillGraceMs: c.hookKillGraceMs };
  }

  private changed(): void {
    const status = this.status();
    this.statusFile.write(status);
    try {
      this.options.onChange?.(status);
    } catch (error) {
      this.log.error({ err: error }, 'freeze status listener failed');
    }
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** Thaw outcomes kept to answer late thaw commands with the window they missed. */
export const LAST_THAWS_REMEMBERED_MAX = 64;

/** The agent thawed by itself, without being told: what the wire calls `byWatchdog`. */
function selfThaw(cause: ThawCause): boolean {
  return cause === 'watchdog' || cause === 'shutdown' || cause === 'recovery';
}

function failureDetail(r: HookResult): string {
  const stderr = r.stderr.trim();
  const tail = stderr.length > DETAIL_STDERR_CHARS_MAX ? `...${stderr.slice(-DETAIL_STDERR_CHARS_MAX)}` : stderr;
  return `${describeHookResult(r)}${tail !== '' ? `: ${tail}` : ' (no stderr)'}`;
}

/**
 * What must hold before the agent may freeze anything, checked once at start-up: the hook
 * directory exists, the state directory is writable and does not lie on a mount the agent freezes
 * (a status write there would block while frozen), and every mount exists.
 */
export async function checkFreezeSetup(config: Pick<AgentConfig, 'freeze' | 'stateDir'>): Promise<string[]> {
  const problems: string[] = [];
  const f = config.freeze;
  if (f.hooksDir !== undefined) {
    const st = await stat(f.hooksDir).catch(() => undefined);
    if (!st || !st.isDirectory()) problems.push(`freeze.hooksDir ${f.hooksDir} does not exist or is not a directory`);
  }
  let stateDev: number | undefined;
  try {
    await mkdir(config.stateDir, { recursive: true });
    await access(config.stateDir, constants.W_OK);
    stateDev = (await stat(config.stateDir)).dev;
  } catch (error) {
    problems.push(`stateDir ${config.stateDir} cannot be created or written: ${(error as Error).message}`);
  }
  for (const mount of f.mounts) {
    const st = await stat(mount).catch(() => undefined);
    if (!st || !st.isDirectory()) {
      problems.push(`freeze.mounts: ${mount} does not exist or is not a directory`);
      continue;
    }
    if (stateDev !== undefined && st.dev === stateDev) {
      problems.push(`stateDir ${config.stateDir} is on the filesystem of freeze.mounts ${mount}: a write there would block while it is frozen; put stateDir on another filesystem (e.g. under /run)`);
    }
  }
  return problems;
}
