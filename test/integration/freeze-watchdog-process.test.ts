/**
 * The freeze watchdog process (agent/freeze-watchdog.ts): the guarantee that does not depend on the
 * agent's event loop. Each FreezeController under test runs in a child process of its own (a
 * script run with tsx), so that the test can block its event loop, SIGKILL it or watch it exit,
 * with real hook processes and real files. `fsfreeze` is a fake that records its arguments and the
 * wall-clock time it ran, except in the one test that freezes a real ext4 filesystem on a loop
 * device (it needs root and a mountable loop device, and says so when it skips).
 *
 * Pins down: a controller whose event loop is blocked past the deadline is thawed on time by the
 * watchdog process (mounts and hooks), and once it runs again it reports the watchdog's steps as its
 * own thaw without running any of them twice; the field's case itself, a synchronous write to the
 * frozen mount from the agent's process, is thawed at the deadline; a controller SIGKILLed while
 * frozen is thawed at the deadline, and the next one's recovery runs nothing twice; a recovery
 * before the deadline stops the dead controller's watchdog, which then never thaws; a normal thaw
 * leaves no watchdog process and no file behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FreezeController, FreezeOutcome, ThawOutcome } from '../../agent/freeze.js';
import { readFreezeStatus, type FreezeStatus } from '../../agent/freeze-status.js';
import { WATCHDOG_DIR, watchdogRunning } from '../../agent/freeze-watchdog.js';
import { controller, HookWorld } from '../support/hooks.js';
import { ROOT, sleep, waitUntil } from '../support/live-processes.js';

let world: HookWorld;
let ctl: FreezeController | undefined;
afterEach(async () => {
  await ctl?.close();
  ctl = undefined;
  world?.remove();
});

/** A fake fsfreeze that appends `fsfreeze <-f|-u> <mount> <unix ms>` to the trace. */
function timedFsfreeze(w: HookWorld): string {
  const path = join(w.bin, 'fsfreeze-timed');
  writeFileSync(path, `#!/bin/sh\necho "fsfreeze $1 $2 $(date +%s%3N)" >> '${w.trace}'\nexit 0\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A hook that traces like `HookWorld.hook` and also writes the time its thaw ran to `<root>/thawed-at`. */
function markerHook(w: HookWorld): string {
  const marker = join(w.root, 'thawed-at');
  w.hook('10-marker', `[ "$1" = thaw ] && date +%s%3N > '${marker}'\nexit 0`);
  return marker;
}

/** Trace lines without the fake fsfreeze's times. */
function steps(w: HookWorld): string[] {
  return w.lines().map((l) => l.replace(/^(fsfreeze -[fu] \S+) \d+$/, '$1'));
}

function timeOf(w: HookWorld, line: string): number {
  const hit = w.lines().find((l) => l.startsWith(`${line} `));
  if (hit === undefined) throw new Error(`no "${line}" in the trace: ${w.lines().join(' | ')}`);
  return Number(hit.slice(line.length + 1));
}

/** Live (not zombie) watchdog processes whose command line names `id`, or any watchdog when absent. */
function watchdogPids(id = ''): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(`snapagent-freeze-watchdog-${id}`)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat[stat.lastIndexOf(')') + 2] !== 'Z') pids.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return pids;
}

interface ChildLine {
  readonly type: 'frozen' | 'unblocked' | 'self-thaw';
  readonly out?: FreezeOutcome;
  readonly status?: FreezeStatus;
  readonly atMs?: number;
  readonly outcome?: ThawOutcome;
}

/**
 * Runs a FreezeController in a child process: it freezes checkpoint 1 with `deadlineMs` and prints
 * `frozen` with its status. Then it SIGKILLs itself once its status file says frozen, or it thaws
 * and exits at once, or it runs `block` (a statement that
 * blocks its event loop, with the node:fs functions in scope), prints `unblocked`, and exits once
 * its own timer's thaw is done, printed as `self-thaw`.
 */
function runController(w: HookWorld, options: { mounts: readonly string[]; fsfreeze: string; deadlineMs: number; then: { block: string } | 'sigkill' | 'thaw-and-exit' }): { lines: ChildLine[]; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const script = join(w.root, 'controller.mts');
  writeFileSync(
    script,
    [
      `import { closeSync, fsyncSync, openSync, writeFileSync } from 'node:fs';`,
      `import { FreezeController } from '${join(ROOT, 'agent/freeze.ts')}';`,
      `import { freezeConfig, quiet } from '${join(ROOT, 'test/support/hooks.ts')}';`,
      `const ctl = new FreezeController({ tenant: 't', server: 's', apps: [], logger: quiet, stateDir: ${JSON.stringify(w.stateDir)},`,
      `  config: freezeConfig({ hooksDir: ${JSON.stringify(w.hooksDir)}, mounts: ${JSON.stringify(options.mounts)}, sync: false }),`,
      `  commands: { fsfreeze: ${JSON.stringify(options.fsfreeze)} },`,
      `  onSelfThaw: (outcome) => { console.log(JSON.stringify({ type: 'self-thaw', outcome })); void ctl.close().then(() => process.exit(0)); } });`,
      `const out = await ctl.freeze(1, ${options.deadlineMs}, 'crash');`,
      `console.log(JSON.stringify({ type: 'frozen', out, status: ctl.status() }));`,
      `if (!out.ok) process.exit(3);`,
      ...(options.then === 'sigkill'
        ? [`await ctl.flushStatus();`, `process.kill(process.pid, 'SIGKILL');`]
        : options.then === 'thaw-and-exit'
          ? [`await ctl.thaw(1, { afterRestore: false });`, `await ctl.flushStatus();`, `process.exit(0);`]
          : [options.then.block, `console.log(JSON.stringify({ type: 'unblocked', atMs: Date.now() }));`]),
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: ChildLine[] = [];
  let partial = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    partial += d;
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.startsWith('{')) lines.push(JSON.parse(line) as ChildLine);
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })));
  return { lines, exited };
}

/** Once the child exited (0): when its event loop ran again, and its own thaw. */
async function afterUnblock(run: ReturnType<typeof runController>): Promise<{ unblockedAtMs: number; self: ThawOutcome }> {
  const exit = await run.exited;
  expect(exit.code, exit.stderr).toBe(0);
  return { unblockedAtMs: run.lines.find((l) => l.type === 'unblocked')?.atMs as number, self: run.lines.find((l) => l.type === 'self-thaw')?.outcome as ThawOutcome };
}

async function frozenLine(run: { lines: ChildLine[]; exited: Promise<{ stderr: string }> }): Promise<{ out: Extract<FreezeOutcome, { ok: true }>; status: FreezeStatus }> {
  const line = await waitUntil('the controller to answer frozen', () => run.lines.find((l) => l.type === 'frozen'), { timeoutMs: 30_000, intervalMs: 10 });
  if (!line.out?.ok || !line.status) throw new Error(`freeze failed: ${JSON.stringify(line)}`);
  return { out: line.out, status: line.status };
}

describe('the watchdog process: the controller\'s event loop blocked past the deadline', () => {
  it('the watchdog process thaws the mount and runs the thaw hooks on time; unblocked, the controller reports those steps as its thaw and runs none of them again', async () => {
    world = new HookWorld('snap-wdp-');
    const marker = markerHook(world);
    const DEADLINE_MS = 800;
    const BLOCK_MS = DEADLINE_MS + 2_500;
    // Atomics.wait blocks the event loop without spinning: the controller's own timer cannot fire.
    const run = runController(world, {
      mounts: ['/m1'],
      fsfreeze: timedFsfreeze(world),
      deadlineMs: DEADLINE_MS,
      then: { block: `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${BLOCK_MS});` },
    });
    const { out, status } = await frozenLine(run);
    expect(status.watchdog?.pid).toBeGreaterThan(0);
    const { unblockedAtMs, self } = await afterUnblock(run);
    const thawedMountAtMs = timeOf(world, 'fsfreeze -u /m1');
    const hookAtMs = Number(readFileSync(marker, 'utf8'));
    console.log(
      `watchdog process (controller's event loop blocked ${BLOCK_MS} ms, deadline ${DEADLINE_MS} ms): fsfreeze -u ran ${thawedMountAtMs - out.deadlineAtUnixMs} ms after the deadline, the thaw hook ${hookAtMs - out.deadlineAtUnixMs} ms after it; the event loop ran again ${unblockedAtMs - out.deadlineAtUnixMs} ms after it`,
    );
    // On time, and while the loop was still blocked: nothing in the controller's process did it.
    expect(thawedMountAtMs).toBeGreaterThanOrEqual(out.deadlineAtUnixMs);
    expect(thawedMountAtMs - out.deadlineAtUnixMs).toBeLessThan(1_500);
    expect(hookAtMs).toBeGreaterThanOrEqual(thawedMountAtMs);
    expect(hookAtMs).toBeLessThan(unblockedAtMs);
    // Every step once: the controller took the watchdog's steps as done.
    expect(steps(world)).toEqual(['prepare - 10-marker', 'freeze - 10-marker', 'fsfreeze -f /m1', 'fsfreeze -u /m1', 'thaw - 10-marker', 'resume - 10-marker']);
    expect(self).toMatchObject({ checkpointId: 1, cause: 'watchdog', byWatchdog: true, noop: false });
    expect(self.hooks.map((h) => `${h.action} ${h.hook} ${h.exitCode}`)).toEqual(['thaw fsfreeze /m1 0', 'thaw 10-marker 0', 'resume 10-marker 0']);
    expect(self.hooks.every((h) => h.stderr.includes('run by the freeze watchdog process'))).toBe(true);
    // The thaw began when the watchdog claimed it, not when the loop ran again.
    expect(self.startedAtUnixMs).toBeLessThanOrEqual(thawedMountAtMs);
    expect(readFileSync(join(world.stateDir, 'freeze-watchdog.log'), 'utf8')).toContain('the freeze deadline passed without a thaw from the agent');
    expect(watchdogPids(status.watchdog?.id)).toEqual([]);
    expect(readdirSync(join(world.stateDir, WATCHDOG_DIR))).toEqual([]);
  }, 60_000);

  it('with a session held, the watchdog process thaws the mount but leaves the hooks to the controller (they must follow the session\'s release)', async () => {
    world = new HookWorld('snap-wdp-');
    markerHook(world);
    world.hook('session.d/10-lock', `echo ready\nread line\necho "$line - 10-lock" >> '${world.trace}'`);
    const DEADLINE_MS = 800;
    const run = runController(world, {
      mounts: ['/m1'],
      fsfreeze: timedFsfreeze(world),
      deadlineMs: DEADLINE_MS,
      then: { block: `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${DEADLINE_MS + 2_000});` },
    });
    const { out } = await frozenLine(run);
    const { unblockedAtMs, self } = await afterUnblock(run);
    expect(timeOf(world, 'fsfreeze -u /m1') - out.deadlineAtUnixMs).toBeLessThan(1_500);
    expect(timeOf(world, 'fsfreeze -u /m1')).toBeLessThan(unblockedAtMs);
    expect(steps(world).slice(-4)).toEqual(['fsfreeze -u /m1', 'release - 10-lock', 'thaw - 10-marker', 'resume - 10-marker']);
    expect(self.hooks.map((h) => `${h.action} ${h.hook}`)).toEqual(['thaw fsfreeze /m1', 'thaw session.d/10-lock', 'thaw 10-marker', 'resume 10-marker']);
    expect(self.hooks[0]?.stderr).toContain('run by the freeze watchdog process');
    expect(self.hooks[2]?.stderr).not.toContain('run by the freeze watchdog process');
  }, 60_000);
});

/** A loop device with ext4 mounted under `root`, or why it cannot be had here. */
function ext4Mount(root: string): { ok: true; mount: string; remove: () => void } | { ok: false; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'not root' };
  const image = join(root, 'fs.img');
  const mount = join(root, 'mnt');
  mkdirSync(mount, { recursive: true });
  const run = (cmd: string, args: string[]): string | undefined => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return r.status === 0 ? undefined : `${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`;
  };
  const failed = run('truncate', ['-s', '16M', image]) ?? run('mkfs.ext4', ['-q', '-F', image]) ?? run('mount', ['-o', 'loop', image, mount]);
  if (failed !== undefined) return { ok: false, why: failed };
  return {
    ok: true,
    mount,
    remove: () => {
      // A test that failed half-way may have left it frozen.
      spawnSync('fsfreeze', ['-u', mount]);
      spawnSync('umount', [mount]);
    },
  };
}

describe('the watchdog process with a real fsfreeze of an ext4 filesystem', () => {
  const probeRoot = mkdtempSync(join(tmpdir(), 'snap-wdp-probe-'));
  const probe = ext4Mount(probeRoot);
  if (probe.ok) probe.remove();
  rmSync(probeRoot, { recursive: true, force: true });
  if (!probe.ok) console.log(`real fsfreeze test skipped: ${probe.why}`);

  it.skipIf(!probe.ok)('a synchronous write to the frozen mount from the controller\'s process blocks its event loop; the watchdog process thaws at the deadline and the write completes', async () => {
    world = new HookWorld('snap-wdp-ext4-');
    const fs = ext4Mount(world.root);
    if (!fs.ok) throw new Error(fs.why);
    try {
      const DEADLINE_MS = 1_000;
      const run = runController(world, {
        mounts: [fs.mount],
        fsfreeze: 'fsfreeze',
        deadlineMs: DEADLINE_MS,
        // What the writer demo app did in the hand test: a synchronous write, here to the frozen mount.
        then: { block: `const fd = openSync(${JSON.stringify(join(fs.mount, 'data'))}, 'w'); writeFileSync(fd, 'written while frozen\\n'); fsyncSync(fd); closeSync(fd);` },
      });
      const { out } = await frozenLine(run);
      const { unblockedAtMs, self } = await afterUnblock(run);
      console.log(`watchdog process (real fsfreeze on ext4, a synchronous write blocked the event loop, deadline ${DEADLINE_MS} ms): the write returned ${unblockedAtMs - out.deadlineAtUnixMs} ms after the deadline`);
      expect(unblockedAtMs).toBeGreaterThanOrEqual(out.deadlineAtUnixMs);
      expect(unblockedAtMs - out.deadlineAtUnixMs).toBeLessThan(2_000);
      expect(readFileSync(join(fs.mount, 'data'), 'utf8')).toBe('written while frozen\n');
      expect(self).toMatchObject({ cause: 'watchdog', byWatchdog: true });
      expect(self.hooks.map((h) => `${h.action} ${h.hook} ${h.exitCode}`)).toEqual([`thaw fsfreeze ${fs.mount} 0`]);
      // Thawed for real: a write now does not block.
      writeFileSync(join(fs.mount, 'after'), 'x');
    } finally {
      fs.remove();
    }
  }, 60_000);
});

describe('the watchdog process: the controller process SIGKILLed while frozen', () => {
  it('the guest is thawed at the deadline, hooks included; the next controller\'s recovery runs nothing again', async () => {
    world = new HookWorld('snap-wdp-');
    const marker = markerHook(world);
    const DEADLINE_MS = 800;
    const run = runController(world, { mounts: ['/m1'], fsfreeze: timedFsfreeze(world), deadlineMs: DEADLINE_MS, then: 'sigkill' });
    const { out, status } = await frozenLine(run);
    expect((await run.exited).signal).toBe('SIGKILL');
    const hookAtMs = await waitUntil('the thaw hook to run', () => (existsSync(marker) && readFileSync(marker, 'utf8').trim() !== '' ? Number(readFileSync(marker, 'utf8')) : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    const thawedMountAtMs = timeOf(world, 'fsfreeze -u /m1');
    console.log(`watchdog process (controller process SIGKILLed, deadline ${DEADLINE_MS} ms): fsfreeze -u ran ${thawedMountAtMs - out.deadlineAtUnixMs} ms after the deadline, the thaw hook ${hookAtMs - out.deadlineAtUnixMs} ms after it`);
    expect(thawedMountAtMs).toBeGreaterThanOrEqual(out.deadlineAtUnixMs);
    expect(thawedMountAtMs - out.deadlineAtUnixMs).toBeLessThan(1_500);
    await waitUntil('the watchdog process to end', () => watchdogPids(status.watchdog?.id).length === 0, { timeoutMs: 10_000 });
    expect(steps(world).slice(-3)).toEqual(['fsfreeze -u /m1', 'thaw - 10-marker', 'resume - 10-marker']);
    // With the controller gone and every step done, the watchdog says so in the status file, and
    // the next controller finds nothing left to do.
    const after = await readFreezeStatus(world.stateDir);
    expect(after).toMatchObject({ ok: true, status: { frozen: false, state: 'thawed', frozenMounts: [], lastThaw: { checkpointId: 1, cause: 'watchdog', frozenAtUnixMs: out.frozenAtUnixMs } } });
    if (after.ok) expect(after.status.lastThaw?.thawedAtUnixMs).toBeGreaterThanOrEqual(hookAtMs);
    ctl = controller(world, { mounts: ['/m1'], sync: false }, { commands: { fsfreeze: timedFsfreeze(world) } });
    expect(await ctl.recover()).toBeUndefined();
    expect(steps(world).slice(-3)).toEqual(['fsfreeze -u /m1', 'thaw - 10-marker', 'resume - 10-marker']);
    expect(readdirSync(join(world.stateDir, WATCHDOG_DIR))).toEqual([]);
  }, 60_000);

  it('a thaw step of the watchdog process failed: the status file still says frozen, and the next controller\'s recovery runs that step and only that one', async () => {
    world = new HookWorld('snap-wdp-');
    const flag = join(world.root, 'fail-thaw');
    writeFileSync(flag, '');
    world.hook('10-flaky', `[ "$1" = thaw ] && [ -e '${flag}' ] && { echo "10-flaky: cannot thaw yet" >&2; exit 1; }\nexit 0`);
    const DEADLINE_MS = 800;
    const run = runController(world, { mounts: ['/m1'], fsfreeze: timedFsfreeze(world), deadlineMs: DEADLINE_MS, then: 'sigkill' });
    const { out, status } = await frozenLine(run);
    await run.exited;
    await waitUntil('the watchdog process to end', () => Date.now() > out.deadlineAtUnixMs && watchdogPids(status.watchdog?.id).length === 0, { timeoutMs: 10_000 });
    expect(steps(world).slice(-3)).toEqual(['fsfreeze -u /m1', 'thaw - 10-flaky', 'resume - 10-flaky']);
    expect(readFileSync(join(world.stateDir, 'freeze-watchdog.log'), 'utf8')).toContain('10-flaky: cannot thaw yet');
    expect(await readFreezeStatus(world.stateDir)).toMatchObject({ ok: true, status: { frozen: true, checkpointId: 1 } });
    rmSync(flag);
    ctl = controller(world, { mounts: ['/m1'], sync: false }, { commands: { fsfreeze: timedFsfreeze(world) } });
    const recovered = await ctl.recover();
    expect(recovered).toMatchObject({ checkpointId: 1, cause: 'recovery', byWatchdog: true, noop: false });
    expect(recovered?.hooks.map((h) => `${h.action} ${h.hook} ${h.exitCode} ${h.stderr.includes('run by the freeze watchdog process')}`)).toEqual(['thaw fsfreeze /m1 0 true', 'thaw 10-flaky 0 false', 'resume 10-flaky 0 true']);
    expect(recovered?.startedAtUnixMs).toBeLessThanOrEqual(timeOf(world, 'fsfreeze -u /m1'));
    expect(steps(world).slice(-4)).toEqual(['fsfreeze -u /m1', 'thaw - 10-flaky', 'resume - 10-flaky', 'thaw - 10-flaky']);
  }, 60_000);

  it('a recovery before the deadline stops the dead controller\'s watchdog process: it never thaws (it could hit a later freeze)', async () => {
    world = new HookWorld('snap-wdp-');
    markerHook(world);
    const DEADLINE_MS = 4_000;
    const run = runController(world, { mounts: ['/m1'], fsfreeze: timedFsfreeze(world), deadlineMs: DEADLINE_MS, then: 'sigkill' });
    const { out, status } = await frozenLine(run);
    await run.exited;
    const id = status.watchdog?.id as string;
    expect(watchdogRunning(status.watchdog?.pid as number, id)).toBe(true);
    ctl = controller(world, { mounts: ['/m1'], sync: false }, { commands: { fsfreeze: timedFsfreeze(world) } });
    const recovered = await ctl.recover();
    expect(Date.now()).toBeLessThan(out.deadlineAtUnixMs);
    expect(recovered).toMatchObject({ cause: 'recovery', noop: false });
    expect(recovered?.hooks.every((h) => !h.stderr.includes('watchdog process'))).toBe(true);
    expect(watchdogPids(id)).toEqual([]);
    const thawSteps = steps(world).length;
    await sleep(out.deadlineAtUnixMs - Date.now() + 1_000);
    expect(steps(world).length).toBe(thawSteps);
  }, 60_000);
});

describe('the watchdog process: a normal thaw', () => {
  it('stops it: no watchdog process and no file of it is left, and nothing thaws at the deadline', async () => {
    world = new HookWorld('snap-wdp-');
    markerHook(world);
    ctl = controller(world, { mounts: ['/m1'], sync: false }, { commands: { fsfreeze: timedFsfreeze(world) } });
    const frozen = await ctl.freeze(3, 1_000, 'crash');
    expect(frozen.ok, JSON.stringify(frozen)).toBe(true);
    if (!frozen.ok) return;
    const wd = ctl.status().watchdog;
    expect(wd).toBeDefined();
    if (!wd) return;
    expect(watchdogRunning(wd.pid, wd.id)).toBe(true);
    const thawed = await ctl.thaw(3, { afterRestore: false });
    expect(thawed).toMatchObject({ cause: 'command', byWatchdog: false, noop: false });
    expect(ctl.status().watchdog).toBeUndefined();
    // Its ticket is gone when the thaw is answered, before the process is reaped: an agent that
    // exits now leaves nothing for the next one to take for a freeze never thawed.
    expect(readdirSync(join(world.stateDir, WATCHDOG_DIR)).filter((n) => n.endsWith('.armed'))).toEqual([]);
    await waitUntil('the watchdog process to be gone and its files removed', () => watchdogPids(wd.id).length === 0 && readdirSync(join(world.stateDir, WATCHDOG_DIR)).length === 0, { timeoutMs: 2_000, intervalMs: 10 });
    const after = steps(world);
    await sleep(frozen.deadlineAtUnixMs - Date.now() + 800);
    expect(steps(world)).toEqual(after);
    expect(existsSync(join(world.stateDir, 'freeze-watchdog.log'))).toBe(false);
  }, 30_000);

  it('a process that exits right after a normal thaw leaves no ticket: the next controller has nothing to recover', async () => {
    world = new HookWorld('snap-wdp-');
    markerHook(world);
    const run = runController(world, { mounts: ['/m1'], fsfreeze: timedFsfreeze(world), deadlineMs: 1_000, then: 'thaw-and-exit' });
    const { status } = await frozenLine(run);
    expect((await run.exited).code).toBe(0);
    expect(readdirSync(join(world.stateDir, WATCHDOG_DIR)).filter((n) => n.endsWith('.armed'))).toEqual([]);
    const thawSteps = steps(world);
    expect(thawSteps.slice(-3)).toEqual(['fsfreeze -u /m1', 'thaw - 10-marker', 'resume - 10-marker']);
    ctl = controller(world, { mounts: ['/m1'], sync: false }, { commands: { fsfreeze: timedFsfreeze(world) } });
    expect(await ctl.recover()).toBeUndefined();
    // A claim the exiting process had no time to remove is removed now.
    expect(readdirSync(join(world.stateDir, WATCHDOG_DIR))).toEqual([]);
    await waitUntil('the watchdog process to be gone', () => watchdogPids(status.watchdog?.id).length === 0, { timeoutMs: 2_000, intervalMs: 10 });
    await sleep(1_500);
    expect(steps(world)).toEqual(thawSteps);
  }, 30_000);

  it('a freeze with no mount and no hook arms none', async () => {
    world = new HookWorld('snap-wdp-');
    ctl = controller(world, { mounts: [], sync: false });
    expect((await ctl.freeze(4, 1_000, 'crash')).ok).toBe(true);
    expect(ctl.status().watchdog).toBeUndefined();
  });
});
