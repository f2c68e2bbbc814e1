/**
 * Runs one hook (or one built-in step such as `sync` or `fsfreeze`) to completion: a per-attempt
 * timeout (SIGTERM, then SIGKILL after a grace period), bounded retries, and everything that explains
 * a failure kept in the `HookResult`: the exit code or the signal, whether it timed out, the tail of
 * its standard error. A failure is returned, never thrown and never turned into a success.
 */
import type { Logger } from 'pino';
import type { HookAction, HookResult } from '../../src/wire/index.js';
import { HOOK_STDERR_CHARS_MAX } from '../../src/wire/event.js';
import { sleep, spawnBounded, spawnErrorExitCode, Tail } from './process.js';

/** Pause between a failed attempt and the next: a hook that failed at once rarely succeeds at once. */
export const HOOK_RETRY_PAUSE_MS = 100;
/** The wire's limit for `HookResult.hook`. */
export const HOOK_NAME_CHARS_MAX = 255;

export interface HookCommand {
  /** Reported as `HookResult.hook`: the file name in the hook directory, or the built-in step. */
  readonly name: string;
  /** The program to run and its arguments (the action comes last for hook files). */
  readonly file: string;
  readonly args: readonly string[];
  /** The app of a per-app hook; absent for a server-wide hook or a built-in step. */
  readonly app?: string;
}

export interface RunLimits {
  /** Longest one attempt may run before it is sent SIGTERM. */
  readonly hookTimeoutMs: number;
  /** Further attempts after a failed one (0: one attempt only). */
  readonly hookRetriesMax: number;
  /** Between SIGTERM and SIGKILL. */
  readonly hookKillGraceMs: number;
}

export interface RunOptions extends RunLimits {
  readonly action: HookAction;
  readonly env: NodeJS.ProcessEnv;
  /** The hook's working directory; absent: the agent's. */
  readonly cwd?: string;
  readonly log: Logger;
  /**
   * `performance.now()` by which the hook must be over (the freeze deadline): each attempt's timeout
   * is cut to what is left, and no attempt starts once it is reached. Absent: no such bound.
   */
  readonly endByMs?: number;
}

export function hookFailed(r: HookResult): boolean {
  return r.timedOut || r.exitCode !== 0 || r.signal !== undefined;
}

/** One line for logs and decline details: `20-db (app APP1) freeze: exit 1 after 2 attempts`. */
export function describeHookResult(r: HookResult): string {
  const what = r.timedOut ? `timed out after ${r.durationMs} ms${r.signal ? ` (${r.signal})` : ''}` : r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
  const attempts = r.attempts === 1 ? '' : ` after ${r.attempts} attempts`;
  return `${r.hook}${r.app !== undefined ? ` (app ${r.app})` : ''} ${r.action}: ${what}${attempts}`;
}

export async function runHook(cmd: HookCommand, options: RunOptions): Promise<HookResult> {
  return (await runHookWithOutput(cmd, options)).result;
}

/**
 * `runHook`, also returning the standard output of the last attempt (the tail, as kept by the
 * process runner): opaque apps' quiesce hooks report their output positions on it.
 */
export async function runHookWithOutput(cmd: HookCommand, options: RunOptions): Promise<{ result: HookResult; stdout: string }> {
  const startedMs = performance.now();
  // The result shows what the hook itself wrote on stderr, every attempt's in turn (the tail is
  // kept), with the agent's own words only where the hook could say nothing (it did not start, could
  // not run or timed out); the attempt count is a field of its own. A line of the agent's between
  // attempts was what a reader of the first line saw instead of the hook's error.
  const stderr = new Tail(HOOK_STDERR_CHARS_MAX);
  const log = options.log.child({ hook: cmd.name, action: options.action, ...(cmd.app !== undefined ? { app: cmd.app } : {}) });
  const attemptsMax = 1 + options.hookRetriesMax;
  let last: { exitCode: number; signal?: string; timedOut: boolean; stdout?: string } = { exitCode: -1, timedOut: true };
  let attempts = 0;
  while (attempts < attemptsMax) {
    const leftMs = options.endByMs === undefined ? Infinity : options.endByMs - performance.now();
    if (leftMs <= 0) {
      if (attempts === 0) stderr.push('[agent] not started: the freeze deadline had passed\n');
      break;
    }
    attempts += 1;
    const own = new Tail(HOOK_STDERR_CHARS_MAX);
    last = await attempt(cmd, options, Math.min(options.hookTimeoutMs, leftMs), own, attempts);
    stderr.push(own.value());
    const failed = last.timedOut || last.exitCode !== 0 || last.signal !== undefined;
    if (!failed) break;
    log.warn({ attempt: attempts, attemptsMax, exitCode: last.exitCode, signal: last.signal, timedOut: last.timedOut, stderr: own.value() }, 'hook attempt failed');
    if (attempts < attemptsMax) await sleep(HOOK_RETRY_PAUSE_MS);
  }
  const result: HookResult = {
    hook: cmd.name.slice(0, HOOK_NAME_CHARS_MAX),
    action: options.action,
    exitCode: last.exitCode,
    ...(last.signal !== undefined ? { signal: last.signal } : {}),
    timedOut: last.timedOut,
    durationMs: Math.round(performance.now() - startedMs),
    stderr: stderr.value(),
    attempts,
    ...(cmd.app !== undefined ? { app: cmd.app } : {}),
  };
  if (hookFailed(result)) log.error({ stderr: result.stderr }, `hook failed: ${describeHookResult(result)}`);
  else log.debug({ durationMs: result.durationMs, attempts }, 'hook done');
  return { result, stdout: last.stdout ?? '' };
}

async function attempt(
  cmd: HookCommand,
  options: RunOptions,
  timeoutMs: number,
  stderr: Tail,
  attemptNo: number,
): Promise<{ exitCode: number; signal?: string; timedOut: boolean; stdout: string }> {
  const p = spawnBounded(cmd.file, cmd.args, {
    env: { ...options.env, SNAP_ATTEMPT: String(attemptNo) },
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    stdin: 'ignore',
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    options.log.warn({ hook: cmd.name, action: options.action, timeoutMs }, 'hook timed out: terminating it');
    void p.terminate(options.hookKillGraceMs);
  }, timeoutMs);
  // Over once it exited, even if its stderr takes a moment longer to close.
  p.child.once('exit', () => clearTimeout(timer));
  const ended = await p.ended;
  clearTimeout(timer);
  stderr.push(p.stderr.value());
  const stdout = p.stdout.value();
  const out = stdout.trim();
  if (out !== '') options.log.debug({ hook: cmd.name, action: options.action, stdout: out }, 'hook output');
  if (ended.spawnError) {
    stderr.push(`[agent] could not run ${cmd.file}: ${ended.spawnError.message}\n`);
    return { exitCode: spawnErrorExitCode(ended.spawnError), timedOut: false, stdout };
  }
  if (timedOut) stderr.push(`\n[agent] timed out after ${Math.round(timeoutMs)} ms\n`);
  if (ended.signal !== null) return { exitCode: -1, signal: ended.signal, timedOut, stdout };
  return { exitCode: ended.code ?? -1, timedOut, stdout };
}
