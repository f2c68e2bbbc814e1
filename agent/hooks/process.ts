/**
 * One hook process, bounded: spawned in a process group of its own (so a timeout kills the shell
 * script and everything it started, and a Ctrl-C meant for the agent does not kill a thaw hook
 * half-way), its stderr kept as a bounded tail, and stopped with SIGTERM, then SIGKILL after a
 * grace period.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { HOOK_STDERR_CHARS_MAX } from '../../src/wire/event.js';

/** The last `charsMax` characters of a stream. */
export class Tail {
  private text = '';
  constructor(private readonly charsMax: number = HOOK_STDERR_CHARS_MAX) {}

  push(chunk: string): void {
    this.text = (this.text + chunk).slice(-this.charsMax);
  }

  value(): string {
    return this.text;
  }
}

/** How a process ended. `spawnError`: it never ran (ENOENT, EACCES, ENOEXEC for a script without `#!`). */
export interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly spawnError?: NodeJS.ErrnoException;
}

/** How long stdout and stderr may stay open after the hook itself exited (a child it left behind holds them). */
export const STDIO_DRAIN_MS = 200;

export interface Spawned {
  readonly child: ChildProcess;
  readonly stderr: Tail;
  readonly stdout: Tail;
  /** Resolves once the process exited and its stdout and stderr were read to the end (or STDIO_DRAIN_MS passed). */
  readonly ended: Promise<Ended>;
  hasEnded(): boolean;
  /** Sends a signal to the whole process group; a group that is gone already is not an error. */
  signalGroup(signal: NodeJS.Signals): void;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once it ended. */
  terminate(graceMs: number): Promise<Ended>;
}

export interface SpawnOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** `pipe`: the caller writes to stdin (sessions); `ignore`: hooks read nothing. */
  readonly stdin: 'pipe' | 'ignore';
  readonly onStdoutLine?: (line: string) => void;
}

export function spawnBounded(file: string, args: readonly string[], options: SpawnOptions): Spawned {
  const child = spawn(file, [...args], {
    env: options.env,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    stdio: [options.stdin, 'pipe', 'pipe'],
    detached: true,
  });
  const stderr = new Tail();
  const stdout = new Tail();
  child.stderr?.setEncoding('utf8');
  child.stdout?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => stderr.push(d));
  let partial = '';
  child.stdout?.on('data', (d: string) => {
    stdout.push(d);
    if (!options.onStdoutLine) return;
    partial += d;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      options.onStdoutLine(partial.slice(0, nl).replace(/\r$/, ''));
      partial = partial.slice(nl + 1);
      nl = partial.indexOf('\n');
    }
    // A line longer than a tail is not a protocol line: keep memory bounded.
    if (partial.length > HOOK_STDERR_CHARS_MAX) partial = '';
  });
  child.stdin?.on('error', () => undefined);

  let done = false;
  // Both streams, not only stderr: an opaque app's quiesce hook prints its positions on stdout as
  // its last act, and the end of stderr can be handled (and the hook taken as over) in the same turn
  // of the event loop before the last chunk of stdout is read; the positions were then missing.
  const closed = (stream: NodeJS.ReadableStream | null): Promise<void> => new Promise<void>((resolve) => (stream ? stream.once('close', () => resolve()) : resolve()));
  const stdioClosed = Promise.all([closed(child.stdout), closed(child.stderr)]);
  const ended = new Promise<Ended>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      // 'error' without 'exit' means it never started; after a start, 'exit' follows on its own.
      if (child.pid === undefined) {
        done = true;
        resolve({ code: null, signal: null, spawnError: error });
      }
    });
    child.once('exit', (code, signal) => {
      // After the bound, one more turn of the event loop: a loaded machine may fire the timer before
      // polling the pipes whose data and end were ready long before.
      void Promise.race([stdioClosed, sleep(STDIO_DRAIN_MS).then(nextTurn)]).then(() => {
        done = true;
        resolve({ code, signal });
      });
    });
  });
  const signalGroup = (signal: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // ESRCH: the group is gone.
    }
  };
  let terminating: Promise<Ended> | undefined;
  return {
    child,
    stderr,
    stdout,
    ended,
    hasEnded: () => done,
    signalGroup,
    terminate: (graceMs) =>
      (terminating ??= (async () => {
        if (done) return ended;
        signalGroup('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const graceful = await Promise.race([
          ended.then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (!graceful) signalGroup('SIGKILL');
        return ended;
      })()),
  };
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Shell conventions for a program that could not be run: 127 not found, 126 not executable. */
export function spawnErrorExitCode(error: NodeJS.ErrnoException): number {
  return error.code === 'ENOENT' ? 127 : 126;
}
