/**
 * A long-lived hook session: an executable in `session.d/` started at freeze and kept running while
 * the guest is frozen, so that an app lock it takes (a database's read lock, a flock on the app's
 * data) is held until thaw rather than only for the duration of one hook.
 *
 * Protocol, line-based:
 *   - the agent starts `<session> freeze` (environment as for hooks, SNAP_ACTION=freeze);
 *   - the session prints the line `ready` on stdout once it holds what it must hold; the agent
 *     waits for it at most `sessionReadyTimeoutMs` (then the freeze fails and the session is killed);
 *   - at thaw the agent writes `release\n` to its stdin and closes stdin; the session lets go and
 *     exits 0; the agent waits at most `sessionReleaseTimeoutMs`, then kills it;
 *   - a session must also let go and exit when its stdin reaches end-of-file: that is what it sees
 *     when the agent itself dies.
 *
 * A session that exits before it is released is logged at once (its lock is gone while the guest is
 * still frozen) and its release result says so.
 */
import type { Logger } from 'pino';
import type { HookResult } from '../../src/wire/index.js';
import { HOOK_STDERR_CHARS_MAX } from '../../src/wire/event.js';
import type { HookCommand } from './run.js';
import { HOOK_NAME_CHARS_MAX } from './run.js';
import { spawnBounded, spawnErrorExitCode, type Ended, type Spawned } from './process.js';

export const SESSION_READY_LINE = 'ready';
export const SESSION_RELEASE_LINE = 'release';

export interface SessionLimits {
  readonly sessionReadyTimeoutMs: number;
  readonly sessionReleaseTimeoutMs: number;
  readonly hookKillGraceMs: number;
}

export interface SessionStart {
  /** Present when the session is ready and holding; absent when it failed to start (and was killed). */
  readonly session?: HookSession;
  /** action `freeze`: how the start went, with the stderr printed until ready. */
  readonly result: HookResult;
}

export class HookSession {
  private earlyEnd: Ended | undefined;
  private released = false;

  private constructor(
    private readonly cmd: HookCommand,
    private readonly proc: Spawned,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
  ) {
    void proc.ended.then((ended) => {
      if (this.released) return;
      this.earlyEnd = ended;
      log.error({ exitCode: ended.code, signal: ended.signal, stderr: proc.stderr.value() }, 'hook session ended before its release: the lock it held is gone while the guest is frozen');
    });
  }

  get name(): string {
    return this.cmd.name;
  }

  /** Starts the session and waits (bounded) for its `ready` line. Never throws. */
  static async start(cmd: HookCommand, env: NodeJS.ProcessEnv, limits: SessionLimits, log: Logger, endByMs?: number, cwd?: string): Promise<SessionStart> {
    const slog = log.child({ session: cmd.name, ...(cmd.app !== undefined ? { app: cmd.app } : {}) });
    const startedMs = performance.now();
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => {
      onReady = resolve;
    });
    const proc = spawnBounded(cmd.file, cmd.args, {
      env,
      ...(cwd !== undefined ? { cwd } : {}),
      stdin: 'pipe',
      onStdoutLine: (line) => {
        if (line.trim() === SESSION_READY_LINE) onReady();
        else slog.debug({ line }, 'session output');
      },
    });
    const waitMs = Math.min(limits.sessionReadyTimeoutMs, endByMs === undefined ? Infinity : Math.max(0, endByMs - performance.now()));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      ready.then(() => 'ready' as const),
      proc.ended.then(() => 'ended' as const),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), waitMs);
      }),
    ]);
    clearTimeout(timer);
    const base = { hook: cmd.name.slice(0, HOOK_NAME_CHARS_MAX), action: 'freeze' as const, attempts: 1, ...(cmd.app !== undefined ? { app: cmd.app } : {}) };
    if (outcome === 'ready') {
      const session = new HookSession(cmd, proc, limits, slog);
      slog.info({ readyMs: Math.round(performance.now() - startedMs) }, 'hook session ready');
      return { session, result: { ...base, exitCode: 0, timedOut: false, durationMs: Math.round(performance.now() - startedMs), stderr: proc.stderr.value() } };
    }
    if (outcome === 'timeout') {
      slog.error({ waitMs }, 'hook session not ready in time: killing it');
      const ended = await proc.terminate(limits.hookKillGraceMs);
      const note = `\n[agent] no "${SESSION_READY_LINE}" line within ${Math.round(waitMs)} ms\n`;
      return { result: { ...base, ...exitOf(ended), timedOut: true, durationMs: Math.round(performance.now() - startedMs), stderr: tail(proc.stderr.value() + note) } };
    }
    const ended = await proc.ended;
    const note = ended.spawnError ? `[agent] could not run ${cmd.file}: ${ended.spawnError.message}\n` : `\n[agent] ended (${describeEnd(ended)}) before printing "${SESSION_READY_LINE}": nothing is held\n`;
    const exit = exitOf(ended);
    // An exit 0 before "ready" still means nothing is held: reported as exit code 1 (the note in
    // stderr gives the real status) so that no reader takes it for a success.
    const result: HookResult = { ...base, ...(exit.exitCode === 0 && exit.signal === undefined ? { exitCode: 1 } : exit), timedOut: false, durationMs: Math.round(performance.now() - startedMs), stderr: tail(proc.stderr.value() + note) };
    slog.error({ stderr: result.stderr }, 'hook session failed to start');
    return { result };
  }

  /** Tells the session to let go and waits (bounded) for it to exit; kills it after. Never throws. */
  async release(): Promise<HookResult> {
    const startedMs = performance.now();
    const base = { hook: this.cmd.name.slice(0, HOOK_NAME_CHARS_MAX), action: 'thaw' as const, attempts: 1, ...(this.cmd.app !== undefined ? { app: this.cmd.app } : {}) };
    if (this.earlyEnd) {
      this.released = true;
      const note = `\n[agent] the session had ended before its release (${describeEnd(this.earlyEnd)}): its lock was not held for the whole frozen window\n`;
      const exit = exitOf(this.earlyEnd);
      return { ...base, ...(exit.exitCode === 0 && exit.signal === undefined ? { exitCode: 1 } : exit), timedOut: false, durationMs: 0, stderr: tail(this.stderrTail() + note) };
    }
    this.released = true;
    this.proc.child.stdin?.end(`${SESSION_RELEASE_LINE}\n`);
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      this.proc.ended.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.limits.sessionReleaseTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    let ended: Ended;
    let note = '';
    if (inTime) ended = await this.proc.ended;
    else {
      this.log.error({ releaseTimeoutMs: this.limits.sessionReleaseTimeoutMs }, 'hook session did not exit after release: killing it');
      ended = await this.proc.terminate(this.limits.hookKillGraceMs);
      note = `\n[agent] did not exit within ${this.limits.sessionReleaseTimeoutMs} ms of "${SESSION_RELEASE_LINE}"\n`;
    }
    const result: HookResult = { ...base, ...exitOf(ended), timedOut: !inTime, durationMs: Math.round(performance.now() - startedMs), stderr: tail(this.stderrTail() + note) };
    if (result.exitCode !== 0 || result.timedOut || result.signal) this.log.error({ stderr: result.stderr }, 'hook session release failed');
    else this.log.info('hook session released');
    return result;
  }

  /** Last resort when the agent exits while frozen: synchronous, no waiting. */
  killNow(): void {
    this.released = true;
    this.proc.signalGroup('SIGTERM');
  }

  /** The tail of everything the session printed on stderr, since its start. */
  private stderrTail(): string {
    return this.proc.stderr.value();
  }
}

function exitOf(ended: Ended): { exitCode: number; signal?: string } {
  if (ended.spawnError) return { exitCode: spawnErrorExitCode(ended.spawnError) };
  if (ended.signal !== null) return { exitCode: -1, signal: ended.signal };
  return { exitCode: ended.code ?? -1 };
}

function describeEnd(ended: Ended): string {
  if (ended.spawnError) return ended.spawnError.message;
  return ended.signal !== null ? `killed by ${ended.signal}` : `exit ${ended.code ?? '?'}`;
}

function tail(text: string): string {
  return text.slice(-HOOK_STDERR_CHARS_MAX);
}
