/**
 * The hook runtime (agent/hooks/) with real processes and real files: shell-script hooks written
 * into temporary directories.
 *
 * Pins down: the directory layout and lexical order, skipped dotfiles and non-executables (with
 * the reason), a hook's environment and argument, a non-zero exit kept with its stderr tail, a hook
 * killed at its timeout (SIGTERM, then SIGKILL for one that ignores it, its children included),
 * bounded retries, programs that cannot run, and long-lived sessions that hold a lock from freeze
 * until release.
 */
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { discoverHooks, hookFailed, HookSession, runHook, type RunOptions } from '../../agent/hooks/index.js';
import { HOOK_STDERR_CHARS_MAX } from '../../src/wire/event.js';
import { HookWorld, quiet } from '../support/hooks.js';

let world: HookWorld;
afterEach(() => world?.remove());

/** A process that exists and is not a zombie (an orphan's zombie may wait for a reaper). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (running(pid)) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function opts(overrides: Partial<RunOptions> = {}): RunOptions {
  return { action: 'freeze', env: { ...process.env }, log: quiet, hookTimeoutMs: 5_000, hookRetriesMax: 0, hookKillGraceMs: 500, ...overrides };
}

describe('hook discovery', () => {
  it('server-wide hooks in lexical order, each app directory first in app order, sessions apart; dotfiles, non-executables and strays skipped with a reason', async () => {
    world = new HookWorld();
    world.hook('20-b');
    world.hook('10-a');
    world.hook('9-c'); // lexical, not numeric: '9' sorts after '2'
    world.hook('.hidden');
    world.hook('30-not-executable', '', 0o644);
    world.hook('APP2/10-x');
    world.hook('APP1/50-y');
    world.hook('APP1/05-z');
    world.hook('OTHER/10-w');
    world.hook('session.d/10-lock');
    world.hook('APP1/session.d/10-applock');
    symlinkSync(join(world.root, 'nowhere'), join(world.hooksDir, '40-dangling'));

    const set = await discoverHooks(world.hooksDir, ['APP1', 'APP2']);

    expect(set.hooks.map((h) => `${h.app ?? '-'}:${h.name}`)).toEqual(['APP1:05-z', 'APP1:50-y', 'APP2:10-x', '-:10-a', '-:20-b', '-:9-c']);
    expect(set.sessions.map((h) => `${h.app ?? '-'}:${h.name}`)).toEqual(['APP1:session.d/10-applock', '-:session.d/10-lock']);
    const skipped = Object.fromEntries(set.skipped.map((s) => [s.path.slice(world.hooksDir.length + 1), s.why]));
    expect(Object.keys(skipped).sort()).toEqual(['.hidden', '30-not-executable', '40-dangling', 'OTHER']);
    expect(skipped['30-not-executable']).toMatch(/not executable/);
    expect(skipped['.hidden']).toMatch(/dotfile/);
    expect(skipped['OTHER']).toMatch(/no configured app/);
  });

  it('a configured hook directory that does not exist is an error, not an empty set', async () => {
    world = new HookWorld();
    await expect(discoverHooks(join(world.root, 'missing'), [])).rejects.toThrow(/does not exist/);
  });
});

describe('running one hook', () => {
  it('the action is the argument and the environment is passed through', async () => {
    world = new HookWorld();
    const out = join(world.root, 'env.txt');
    const path = world.file('10-env', `echo "$1|$SNAP_CHECKPOINT_ID|$SNAP_ATTEMPT|$PWD" > '${out}'`);
    const r = await runHook({ name: '10-env', file: path, args: ['thaw'] }, opts({ action: 'thaw', env: { ...process.env, SNAP_CHECKPOINT_ID: '42' }, cwd: world.root }));
    expect(hookFailed(r)).toBe(false);
    expect(r).toMatchObject({ hook: '10-env', action: 'thaw', exitCode: 0, timedOut: false, attempts: 1 });
    expect(readFileSync(out, 'utf8').trim()).toBe(`thaw|42|1|${world.root}`);
  });

  it('a non-zero exit is a failure with its exit code and stderr, never a success', async () => {
    world = new HookWorld();
    const path = world.file('10-fail', `echo "db: cannot lock tables" >&2\nexit 3`);
    const r = await runHook({ name: '10-fail', file: path, args: ['freeze'], app: 'APP1' }, opts());
    expect(hookFailed(r)).toBe(true);
    expect(r).toMatchObject({ hook: '10-fail', app: 'APP1', exitCode: 3, timedOut: false, attempts: 1 });
    expect(r.signal).toBeUndefined();
    expect(r.stderr).toContain('db: cannot lock tables');
  });

  it('stderr is kept as its last HOOK_STDERR_CHARS_MAX characters', async () => {
    world = new HookWorld();
    const path = world.file('10-noisy', `i=0; while [ $i -lt 400 ]; do echo "line $i of noise ............................" >&2; i=$((i+1)); done\necho "THE END" >&2\nexit 1`);
    const r = await runHook({ name: '10-noisy', file: path, args: ['freeze'] }, opts());
    expect(r.stderr.length).toBe(HOOK_STDERR_CHARS_MAX);
    expect(r.stderr.trimEnd().endsWith('THE END')).toBe(true);
    expect(r.stderr).not.toContain('line 0 of noise');
  });

  it('a hook that hangs is sent SIGTERM at its timeout, with the child it started', async () => {
    world = new HookWorld();
    const pidFile = join(world.root, 'child.pid');
    const path = world.file('10-hang', `echo "about to hang" >&2\nsleep 30 &\necho $! > '${pidFile}'\nwait`);
    const started = performance.now();
    const r = await runHook({ name: '10-hang', file: path, args: ['freeze'] }, opts({ hookTimeoutMs: 300 }));
    const tookMs = performance.now() - started;
    expect(r).toMatchObject({ exitCode: -1, signal: 'SIGTERM', timedOut: true, attempts: 1 });
    expect(r.stderr).toContain('about to hang');
    expect(r.stderr).toContain('[agent] timed out after 300 ms');
    expect(tookMs).toBeLessThan(300 + 2_000);
    // The whole process group went: the backgrounded sleep is gone too. The signal reaches it at
    // the same time as the shell, but on a busy machine it may die a moment after the shell did.
    const childPid = Number(readFileSync(pidFile, 'utf8'));
    expect(await goneWithin(childPid, 2_000)).toBe(true);
  });

  it('a hook that ignores SIGTERM is killed with SIGKILL after the grace period', async () => {
    world = new HookWorld();
    const path = world.file('10-stubborn', `trap '' TERM\necho "ignoring TERM" >&2\nwhile :; do sleep 0.05; done`);
    const started = performance.now();
    const r = await runHook({ name: '10-stubborn', file: path, args: ['freeze'] }, opts({ hookTimeoutMs: 200, hookKillGraceMs: 300 }));
    const tookMs = performance.now() - started;
    expect(r).toMatchObject({ exitCode: -1, signal: 'SIGKILL', timedOut: true });
    expect(tookMs).toBeGreaterThanOrEqual(200 + 300 - 20);
    expect(tookMs).toBeLessThan(200 + 300 + 2_000);
  });

  it('a failed attempt is retried up to hookRetriesMax times; a later success counts, with every attempt on record', async () => {
    world = new HookWorld();
    const counter = join(world.root, 'attempts');
    writeFileSync(counter, '');
    const path = world.file('10-flaky', `echo x >> '${counter}'\nn=$(wc -l < '${counter}')\necho "attempt $n (SNAP_ATTEMPT=$SNAP_ATTEMPT)" >&2\n[ "$n" -ge 2 ]`);
    const r = await runHook({ name: '10-flaky', file: path, args: ['freeze'] }, opts({ hookRetriesMax: 3 }));
    expect(r).toMatchObject({ exitCode: 0, attempts: 2, timedOut: false });
    expect(r.stderr).toContain('attempt 1 (SNAP_ATTEMPT=1)');
    expect(r.stderr).toContain('attempt 2 (SNAP_ATTEMPT=2)');
  });

  it('retries are bounded: a hook that always fails runs 1 + hookRetriesMax times and stays a failure', async () => {
    world = new HookWorld();
    const counter = join(world.root, 'attempts');
    writeFileSync(counter, '');
    const path = world.file('10-broken', `echo x >> '${counter}'\necho "still broken" >&2\nexit 2`);
    const r = await runHook({ name: '10-broken', file: path, args: ['freeze'] }, opts({ hookRetriesMax: 2 }));
    expect(r).toMatchObject({ exitCode: 2, attempts: 3 });
    expect(readFileSync(counter, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
  });

  it("a retried hook's stderr is its own, first line first: no note of the agent's between attempts", async () => {
    world = new HookWorld();
    const path = world.file('10-broken', `echo "db: cannot lock tables (SNAP_ATTEMPT=$SNAP_ATTEMPT)" >&2\nexit 3`);
    const r = await runHook({ name: '10-broken', file: path, args: ['freeze'] }, opts({ hookRetriesMax: 1 }));
    expect(r).toMatchObject({ exitCode: 3, attempts: 2 });
    expect(r.stderr.split('\n')[0]).toBe('db: cannot lock tables (SNAP_ATTEMPT=1)');
    expect(r.stderr).toContain('db: cannot lock tables (SNAP_ATTEMPT=2)');
    expect(r.stderr).not.toContain('[agent]');
  });

  it('retries stop at the deadline: no attempt starts after endByMs', async () => {
    world = new HookWorld();
    const path = world.file('10-slow-fail', `sleep 0.2\nexit 1`);
    const r = await runHook({ name: '10-slow-fail', file: path, args: ['freeze'] }, opts({ hookRetriesMax: 10, endByMs: performance.now() + 500 }));
    expect(hookFailed(r)).toBe(true);
    expect(r.attempts).toBeGreaterThanOrEqual(1);
    expect(r.attempts).toBeLessThan(4);
  });

  it('a program that does not exist fails with exit code 127, saying why', async () => {
    world = new HookWorld();
    const missing = await runHook({ name: 'missing', file: join(world.root, 'nope'), args: [] }, opts());
    expect(missing).toMatchObject({ exitCode: 127, timedOut: false, attempts: 1 });
    expect(missing.stderr).toMatch(/could not run .*nope/);
  });
});

describe('hook sessions', () => {
  const limits = { sessionReadyTimeoutMs: 3_000, sessionReleaseTimeoutMs: 3_000, hookKillGraceMs: 300 };

  /** Takes a "lock" (a file), says ready, holds it until `release` (or stdin EOF), then lets go. */
  function lockSession(lock: string, rel = 'session.d/10-lock'): string {
    return world.file(rel, `echo "$$" > '${lock}'\necho "taking the lock" >&2\necho ready\nread line\necho "got: $line" >&2\nrm -f '${lock}'\n[ "$line" = release ]`);
  }

  it('holds its lock from ready until release, then exits 0', async () => {
    world = new HookWorld();
    const lock = join(world.root, 'app.lock');
    const path = lockSession(lock);
    const started = await HookSession.start({ name: 'session.d/10-lock', file: path, args: ['freeze'] }, { ...process.env }, limits, quiet);
    expect(started.result).toMatchObject({ hook: 'session.d/10-lock', action: 'freeze', exitCode: 0, timedOut: false });
    expect(started.session).toBeDefined();
    // Held while "frozen", and the session process is still running.
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(lock)).toBe(true);
    const released = await started.session!.release();
    expect(released).toMatchObject({ action: 'thaw', exitCode: 0, timedOut: false });
    expect(released.stderr).toContain('got: release');
    expect(existsSync(lock)).toBe(false);
  });

  it('no "ready" in time: killed, a timed-out failure, nothing held', async () => {
    world = new HookWorld();
    const path = world.file('session.d/10-mute', `echo "waiting for the database" >&2\nsleep 30`);
    const started = await HookSession.start({ name: 'session.d/10-mute', file: path, args: ['freeze'] }, { ...process.env }, { ...limits, sessionReadyTimeoutMs: 300 }, quiet);
    expect(started.session).toBeUndefined();
    expect(started.result).toMatchObject({ timedOut: true, exitCode: -1, signal: 'SIGTERM' });
    expect(started.result.stderr).toContain('waiting for the database');
  });

  it('an exit before "ready" is a failure, even with exit code 0', async () => {
    world = new HookWorld();
    const path = world.file('session.d/10-quitter', `echo "no lock for you" >&2\nexit 0`);
    const started = await HookSession.start({ name: 'session.d/10-quitter', file: path, args: ['freeze'] }, { ...process.env }, limits, quiet);
    expect(started.session).toBeUndefined();
    expect(hookFailed(started.result)).toBe(true);
    expect(started.result.stderr).toMatch(/ended \(exit 0\) before printing "ready"/);
  });

  it('a session that does not exit after release is killed and the release is a timed-out failure', async () => {
    world = new HookWorld();
    const path = world.file('session.d/10-clingy', `echo ready\nread line\ntrap '' TERM\nwhile :; do sleep 0.05; done`);
    const started = await HookSession.start({ name: 'session.d/10-clingy', file: path, args: ['freeze'] }, { ...process.env }, { ...limits, sessionReleaseTimeoutMs: 200 }, quiet);
    const released = await started.session!.release();
    expect(released).toMatchObject({ timedOut: true, exitCode: -1, signal: 'SIGKILL' });
  });

  it('a session that ends while it should hold is reported at release as a failure', async () => {
    world = new HookWorld();
    const path = world.file('session.d/10-crashy', `echo ready\necho "crashed" >&2\nexit 0`);
    const started = await HookSession.start({ name: 'session.d/10-crashy', file: path, args: ['freeze'] }, { ...process.env }, limits, quiet);
    expect(started.session).toBeDefined();
    await new Promise((r) => setTimeout(r, 300));
    const released = await started.session!.release();
    expect(hookFailed(released)).toBe(true);
    expect(released.stderr).toMatch(/ended before its release \(exit 0\)/);
  });
});
