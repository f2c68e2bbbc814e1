/**
 * The FreezeController (agent/freeze.ts) with real hook processes and real files. `sync` and
 * `fsfreeze` are fakes that trace their arguments (freezing the test machine's filesystems is not
 * an option); everything else is what runs in production.
 *
 * Pins down: the order of every step at freeze and its exact reverse at thaw (restore hooks after
 * fsfreeze -u); the hook environment; a session's lock held for the whole frozen window; the
 * watchdog thawing on its own at the deadline (the measured overshoot is printed); a failure at any
 * step thawing what was frozen before the answer; hooks killed at their timeout or at the deadline;
 * thaw idempotent; busy for another checkpoint; the deadline cap; the status file; recovery after a
 * crashed agent; and the synchronous last-resort thaw when the process exits while frozen.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { checkFreezeSetup, type FreezeController, type ThawOutcome } from '../../agent/freeze.js';
import { FREEZE_STATUS_FILE, readFreezeStatus } from '../../agent/freeze-status.js';
import { hookFailed } from '../../agent/hooks/index.js';
import { controller, freezeConfig, HookWorld } from '../support/hooks.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let world: HookWorld;
let ctl: FreezeController | undefined;
afterEach(async () => {
  // Never leave a watchdog timer behind: thaw whatever a test left frozen.
  await ctl?.close();
  ctl = undefined;
  world?.remove();
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A session that traces its start, takes a lock file, holds it until released, and traces that. */
function lockSession(rel: string, lock: string): void {
  world.hook(rel, `echo locked > '${lock}'\necho ready\nread line\nrm -f '${lock}'\necho "$line - $(basename $0)" >> '${world.trace}'`);
}

describe('freeze and thaw: order', () => {
  it('freeze: prepare then freeze hooks (app directories first, lexical), sessions, sync, fsfreeze -f per mount; thaw: the exact reverse, restore hooks right after fsfreeze -u', async () => {
    world = new HookWorld();
    world.hook('APP1/10-a');
    world.hook('APP2/10-b');
    world.hook('10-s');
    world.hook('20-t');
    lockSession('session.d/10-lock', join(world.root, 'lock'));
    ctl = controller(world, { mounts: ['/m1', '/m2'] });

    const frozen = await ctl.freeze(7, 10_000, 'crash');
    expect(frozen.ok, JSON.stringify(frozen)).toBe(true);
    const freezeTrace = world.lines();
    expect(freezeTrace).toEqual([
      'prepare APP1 10-a',
      'prepare APP2 10-b',
      'prepare - 10-s',
      'prepare - 20-t',
      'freeze APP1 10-a',
      'freeze APP2 10-b',
      'freeze - 10-s',
      'freeze - 20-t',
      'freeze - 10-lock',
      'sync',
      'fsfreeze -f /m1',
      'fsfreeze -f /m2',
    ]);
    if (!frozen.ok) return;
    expect(frozen.hooks.map((h) => `${h.action} ${h.app ?? '-'} ${h.hook}`)).toEqual([
      'prepare APP1 10-a',
      'prepare APP2 10-b',
      'prepare - 10-s',
      'prepare - 20-t',
      'freeze APP1 10-a',
      'freeze APP2 10-b',
      'freeze - 10-s',
      'freeze - 20-t',
      'freeze - session.d/10-lock',
      'freeze - sync',
      'freeze - fsfreeze /m1',
      'freeze - fsfreeze /m2',
    ]);
    expect(frozen.hooks.every((h) => !hookFailed(h) && h.attempts === 1)).toBe(true);
    expect(ctl.status()).toMatchObject({ frozen: true, state: 'frozen', checkpointId: 7, frozenMounts: ['/m1', '/m2'] });

    const thawed = await ctl.thaw(7, { afterRestore: true });
    expect(thawed).toMatchObject({ checkpointId: 7, cause: 'command', byWatchdog: false, noop: false, frozenAtUnixMs: frozen.frozenAtUnixMs });
    expect(world.lines().slice(freezeTrace.length)).toEqual([
      'fsfreeze -u /m2',
      'fsfreeze -u /m1',
      'restore APP1 10-a',
      'restore APP2 10-b',
      'restore - 10-s',
      'restore - 20-t',
      'release - 10-lock',
      'thaw - 20-t',
      'thaw - 10-s',
      'thaw APP2 10-b',
      'thaw APP1 10-a',
      'resume - 20-t',
      'resume - 10-s',
      'resume APP2 10-b',
      'resume APP1 10-a',
    ]);
    expect(thawed.hooks.map((h) => `${h.action} ${h.hook}`)).toContain('thaw session.d/10-lock');
    expect(thawed.hooks.every((h) => !hookFailed(h))).toBe(true);
    expect(ctl.status()).toMatchObject({ frozen: false, state: 'thawed', frozenMounts: [], lastThaw: { checkpointId: 7, cause: 'command' } });
  });

  it('every hook gets its environment: checkpoint, level, action, app, mounts, its own state directory, tenant, server, deadline', async () => {
    world = new HookWorld();
    const dump = `echo "$1 app=\${SNAP_APP-unset} cp=$SNAP_CHECKPOINT_ID level=$SNAP_LEVEL action=$SNAP_ACTION mounts=$SNAP_MOUNTS state=$SNAP_STATE_DIR tenant=$SNAP_TENANT server=$SNAP_SERVER deadline=$SNAP_DEADLINE_UNIX_MS pwd=$PWD" >> '${join(world.root, 'env.log')}'\n[ -d "$SNAP_STATE_DIR" ] || exit 9`;
    world.file('APP1/10-env', dump);
    world.file('10-env', dump);
    process.env['SNAP_APP'] = 'leaked-from-the-agent';
    try {
      ctl = controller(world, { mounts: ['/data', '/var/lib/db'] });
      const frozen = await ctl.freeze(12, 10_000, 'crash');
      expect(frozen.ok, JSON.stringify(frozen)).toBe(true);
      if (!frozen.ok) return;
      const lines = readFileSync(join(world.root, 'env.log'), 'utf8').trim().split('\n');
      const appState = join(world.stateDir, 'hooks', 'apps', 'APP1');
      const serverState = join(world.stateDir, 'hooks', 'server');
      const common = `level=crash action=freeze mounts=/data:/var/lib/db`;
      expect(lines).toContain(`freeze app=APP1 cp=12 ${common} state=${appState} tenant=t1 server=s1 deadline=${frozen.deadlineAtUnixMs} pwd=${appState}`);
      expect(lines).toContain(`freeze app=unset cp=12 ${common} state=${serverState} tenant=t1 server=s1 deadline=${frozen.deadlineAtUnixMs} pwd=${serverState}`);
      expect(lines.filter((l) => l.startsWith('prepare app=APP1 cp=12 level=crash action=prepare'))).toHaveLength(1);
    } finally {
      delete process.env['SNAP_APP'];
    }
  });
});

describe('hook sessions across the frozen window', () => {
  it('a lock taken by a session at freeze is held until thaw, and let go by it', async () => {
    world = new HookWorld();
    const lock = join(world.root, 'app.lock');
    lockSession('APP1/session.d/10-dblock', lock);
    ctl = controller(world, { sync: false });
    const frozen = await ctl.freeze(3, 10_000, 'crash');
    expect(frozen.ok).toBe(true);
    expect(existsSync(lock)).toBe(true);
    await sleep(300);
    expect(existsSync(lock), 'still held while frozen').toBe(true);
    const thawed = await ctl.thaw(3, { afterRestore: false });
    expect(existsSync(lock)).toBe(false);
    expect(thawed.hooks).toEqual([expect.objectContaining({ hook: 'session.d/10-dblock', app: 'APP1', action: 'thaw', exitCode: 0, timedOut: false })]);
    expect(world.lines()).toEqual(['freeze APP1 10-dblock', 'release - 10-dblock']);
  });
});

describe('the watchdog', () => {
  it('a freeze with a 300 ms deadline and no thaw is thawed by the watchdog at the deadline', async () => {
    world = new HookWorld();
    // Only the one step the deadline needs to see undone: on a loaded machine every process
    // start costs tens of milliseconds, and the freeze itself must finish inside the 300 ms.
    let selfThaw: ThawOutcome | undefined;
    let selfThawAtMs = 0;
    ctl = controller(world, { hooksDir: undefined, sync: false, mounts: ['/m1'] }, {
      onSelfThaw: (o) => {
        selfThaw = o;
        selfThawAtMs = performance.now();
      },
    });
    const t0 = performance.now();
    const frozen = await ctl.freeze(5, 300, 'crash');
    expect(frozen.ok, JSON.stringify(frozen)).toBe(true);
    if (!frozen.ok) return;
    expect(frozen.deadlineMs).toBe(300);
    expect(world.lines()).toEqual(['fsfreeze -f /m1']);
    for (let i = 0; i < 150 && !selfThaw; i++) await sleep(20);
    expect(selfThaw).toMatchObject({ checkpointId: 5, cause: 'watchdog', byWatchdog: true, noop: false, frozenAtUnixMs: frozen.frozenAtUnixMs });
    const done = selfThaw as ThawOutcome;
    const overshootMs = selfThawAtMs - (t0 + 300);
    console.log(
      `watchdog (in-process, deadline 300 ms): thaw started ${done.startedAtUnixMs - frozen.deadlineAtUnixMs} ms after the deadline, ` +
        `guest thawed (fsfreeze -u done) ${overshootMs.toFixed(1)} ms after it`,
    );
    expect(overshootMs).toBeGreaterThanOrEqual(0);
    expect(overshootMs).toBeLessThan(2_000);
    expect(world.lines()).toEqual(['fsfreeze -f /m1', 'fsfreeze -u /m1']);
    expect(ctl.status()).toMatchObject({ frozen: false, frozenMounts: [], lastThaw: { checkpointId: 5, cause: 'watchdog' } });
    // The coordinator's thaw comes late: a no-op that tells it the watchdog did it, and when.
    const late = await ctl.thaw(5, { afterRestore: false });
    expect(late).toMatchObject({ noop: true, byWatchdog: true, frozenAtUnixMs: frozen.frozenAtUnixMs, thawedAtUnixMs: done.thawedAtUnixMs, hooks: [] });
  });

  it('the watchdog undoes everything a freeze did: mounts, sessions (their locks let go), thaw and resume hooks', async () => {
    world = new HookWorld();
    world.hook('10-app');
    const lock = join(world.root, 'lock');
    lockSession('session.d/10-lock', lock);
    let selfThaw: ThawOutcome | undefined;
    ctl = controller(world, { sync: false, mounts: ['/m1'] }, { onSelfThaw: (o) => (selfThaw = o) });
    const frozen = await ctl.freeze(6, 3_000, 'crash');
    expect(frozen.ok, JSON.stringify(frozen)).toBe(true);
    const frozenTrace = world.lines().length;
    expect(existsSync(lock)).toBe(true);
    for (let i = 0; i < 300 && !selfThaw; i++) await sleep(20);
    expect(selfThaw).toMatchObject({ cause: 'watchdog', noop: false });
    expect(world.lines().slice(frozenTrace)).toEqual(['fsfreeze -u /m1', 'release - 10-lock', 'thaw - 10-app', 'resume - 10-app']);
    expect(existsSync(lock)).toBe(false);
  });

  it('a requested deadline longer than freezeDeadlineMsMax is cut to it', async () => {
    world = new HookWorld();
    let selfThaw: ThawOutcome | undefined;
    ctl = controller(world, { freezeDeadlineMsMax: 200 }, { onSelfThaw: (o) => (selfThaw = o) });
    const t0 = performance.now();
    const frozen = await ctl.freeze(8, 3_600_000, 'crash');
    expect(frozen).toMatchObject({ ok: true, deadlineMs: 200 });
    for (let i = 0; i < 100 && !selfThaw; i++) await sleep(20);
    expect(selfThaw?.cause).toBe('watchdog');
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});

describe('a freeze that fails thaws what it froze before it answers', () => {
  it('a hook failing at freeze: the thaw hooks of the steps already frozen (and of the failing one) run, later hooks never freeze; its stderr is in the detail', async () => {
    world = new HookWorld();
    world.hook('10-a');
    world.hook('20-b', `[ "$1" = freeze ] && { echo "20-b: the database refused the lock" >&2; exit 1; }\nexit 0`);
    world.hook('30-c');
    ctl = controller(world, { mounts: ['/m1'] });
    const out = await ctl.freeze(9, 10_000, 'crash');
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expect(out.reason).toBe('hook-failed');
    expect(out.detail).toMatch(/^20-b freeze: exit 1: .*the database refused the lock/);
    expect(world.lines()).toEqual([
      'prepare - 10-a',
      'prepare - 20-b',
      'prepare - 30-c',
      'freeze - 10-a',
      'freeze - 20-b',
      'thaw - 20-b',
      'thaw - 10-a',
      'resume - 30-c',
      'resume - 20-b',
      'resume - 10-a',
    ]);
    const failed = out.hooks.filter(hookFailed);
    expect(failed).toEqual([expect.objectContaining({ hook: '20-b', action: 'freeze', exitCode: 1, stderr: expect.stringContaining('the database refused the lock') })]);
    expect(out.hooks.filter((h) => h.action === 'thaw' || h.action === 'resume')).toHaveLength(5);
    expect(ctl.status()).toMatchObject({ frozen: false, lastThaw: { checkpointId: 9, cause: 'failed-freeze', frozenAtUnixMs: 0 } });
  });

  it('fsfreeze failing on the second mount: the first mount is thawed, sessions released and thaw hooks run; reason freeze-failed', async () => {
    world = new HookWorld();
    world.hook('10-a');
    const lock = join(world.root, 'lock');
    lockSession('session.d/10-lock', lock);
    ctl = controller(world, { mounts: ['/m1', '/m2'] }, { commands: world.fakeCommands(['/m2']) });
    const out = await ctl.freeze(10, 10_000, 'crash');
    expect(out).toMatchObject({ ok: false, reason: 'freeze-failed' });
    if (out.ok) return;
    expect(out.detail).toMatch(/fsfreeze \/m2 freeze: exit 1: fsfreeze: \/m2: freeze failed: Operation not supported/);
    expect(world.lines()).toEqual([
      'prepare - 10-a',
      'freeze - 10-a',
      'freeze - 10-lock',
      'sync',
      'fsfreeze -f /m1',
      'fsfreeze -f /m2',
      'fsfreeze -u /m1',
      'release - 10-lock',
      'thaw - 10-a',
      'resume - 10-a',
    ]);
    expect(existsSync(lock)).toBe(false);
    expect(ctl.status()).toMatchObject({ frozen: false, frozenMounts: [] });
  });

  it('a hook that hangs is killed at its timeout, the freeze declined as hook-failed, and everything thawed', async () => {
    world = new HookWorld();
    world.hook('10-a');
    world.hook('20-hang', `[ "$1" = freeze ] && { echo "20-hang: waiting forever" >&2; sleep 30; }\nexit 0`);
    ctl = controller(world, { hookTimeoutMs: 300 });
    const started = performance.now();
    const out = await ctl.freeze(11, 10_000, 'crash');
    expect(performance.now() - started).toBeLessThan(300 + 500 + 2_000);
    expect(out).toMatchObject({ ok: false, reason: 'hook-failed' });
    if (out.ok) return;
    expect(out.detail).toMatch(/20-hang freeze: timed out after \d+ ms \(SIGTERM\)/);
    expect(out.hooks.find((h) => h.hook === '20-hang' && h.action === 'freeze')).toMatchObject({ timedOut: true, signal: 'SIGTERM', exitCode: -1 });
    expect(world.lines().slice(-4)).toEqual(['thaw - 20-hang', 'thaw - 10-a', 'resume - 20-hang', 'resume - 10-a']);
  });

  it('the deadline bounds the whole freeze: a slow hook is cut at the deadline, not at its own longer timeout', async () => {
    world = new HookWorld();
    world.hook('10-slow', `[ "$1" = freeze ] && sleep 5\nexit 0`);
    ctl = controller(world, { hookTimeoutMs: 10_000 });
    const started = performance.now();
    const out = await ctl.freeze(13, 400, 'crash');
    const tookMs = performance.now() - started;
    expect(out).toMatchObject({ ok: false, reason: 'hook-failed' });
    expect(tookMs).toBeLessThan(400 + 500 + 2_000);
    expect(world.lines()).toEqual(['prepare - 10-slow', 'freeze - 10-slow', 'thaw - 10-slow', 'resume - 10-slow']);
  });

  it('a configured hook directory that is missing fails the freeze (no silent freeze without hooks)', async () => {
    world = new HookWorld();
    ctl = controller(world, { hooksDir: join(world.root, 'missing') });
    const out = await ctl.freeze(14, 5_000, 'crash');
    expect(out).toMatchObject({ ok: false, reason: 'hook-failed' });
    if (!out.ok) expect(out.detail).toMatch(/does not exist/);
    expect(ctl.status().frozen).toBe(false);
  });
});

describe('thaw is idempotent; one freeze at a time', () => {
  it('thawing twice, or a guest never frozen, is a no-op success', async () => {
    world = new HookWorld();
    world.hook('10-a');
    ctl = controller(world, {});
    expect(await ctl.thaw(1, { afterRestore: false })).toMatchObject({ noop: true, frozenAtUnixMs: 0, hooks: [], byWatchdog: false });
    const frozen = await ctl.freeze(2, 10_000, 'crash');
    const first = await ctl.thaw(2, { afterRestore: false });
    const second = await ctl.thaw(2, { afterRestore: false });
    expect(first.noop).toBe(false);
    expect(second).toMatchObject({ noop: true, byWatchdog: false, frozenAtUnixMs: frozen.ok ? frozen.frozenAtUnixMs : -1, thawedAtUnixMs: first.thawedAtUnixMs, hooks: [] });
    expect(world.lines().filter((l) => l.startsWith('thaw'))).toEqual(['thaw - 10-a']);
  });

  it('a freeze for another checkpoint while frozen is busy; the same checkpoint again gets the same answer without running the hooks again', async () => {
    world = new HookWorld();
    world.hook('10-a');
    ctl = controller(world, { sync: false });
    const first = await ctl.freeze(20, 10_000, 'crash');
    const again = await ctl.freeze(20, 10_000, 'crash');
    expect(again).toBe(first);
    const other = await ctl.freeze(21, 10_000, 'crash');
    expect(other).toMatchObject({ ok: false, reason: 'busy', hooks: [] });
    if (!other.ok) expect(other.detail).toMatch(/frozen for checkpoint 20/);
    expect(world.lines()).toEqual(['prepare - 10-a', 'freeze - 10-a']);
    // A thaw for another checkpoint leaves the freeze alone.
    expect(await ctl.thaw(21, { afterRestore: false })).toMatchObject({ noop: true });
    expect(ctl.status()).toMatchObject({ frozen: true, checkpointId: 20 });
  });

  it('a thaw that arrives while the freeze is still running waits for it, then undoes it', async () => {
    world = new HookWorld();
    world.hook('10-slow', `[ "$1" = freeze ] && sleep 0.3\nexit 0`);
    ctl = controller(world, { sync: false });
    const freezing = ctl.freeze(30, 10_000, 'crash');
    await sleep(50);
    expect(ctl.status()).toMatchObject({ frozen: true, state: 'freezing', checkpointId: 30 });
    const thawing = ctl.thaw(30, { afterRestore: false });
    const [frozen, thawed] = await Promise.all([freezing, thawing]);
    expect(frozen.ok).toBe(true);
    expect(thawed).toMatchObject({ noop: false, cause: 'command' });
    expect(world.lines()).toEqual(['prepare - 10-slow', 'freeze - 10-slow', 'thaw - 10-slow', 'resume - 10-slow']);
  });
});

describe('freeze status, shutdown and recovery', () => {
  it('the status file follows every change (atomically replaced)', async () => {
    world = new HookWorld();
    ctl = controller(world, { mounts: ['/m1'] });
    await ctl.start();
    expect((await readFreezeStatus(world.stateDir))).toMatchObject({ ok: true, status: { frozen: false, state: 'thawed', pid: process.pid } });
    const frozen = await ctl.freeze(40, 10_000, 'crash');
    await ctl.flushStatus();
    const during = await readFreezeStatus(world.stateDir);
    expect(during).toMatchObject({ ok: true, status: { frozen: true, state: 'frozen', checkpointId: 40, frozenMounts: ['/m1'] } });
    if (during.ok && frozen.ok) {
      expect(during.status.frozenAtUnixMs).toBe(frozen.frozenAtUnixMs);
      expect(during.status.deadlineAtUnixMs).toBe(frozen.deadlineAtUnixMs);
    }
    await ctl.thaw(40, { afterRestore: false });
    await ctl.flushStatus();
    expect(await readFreezeStatus(world.stateDir)).toMatchObject({ ok: true, status: { frozen: false, lastThaw: { checkpointId: 40, cause: 'command' } } });
    expect(readFileSync(join(world.stateDir, FREEZE_STATUS_FILE), 'utf8')).toMatch(/^\{/);
  });

  it('close() thaws a frozen guest (cause shutdown) and turns later freezes away', async () => {
    world = new HookWorld();
    world.hook('10-a');
    ctl = controller(world, { sync: false });
    await ctl.freeze(50, 10_000, 'crash');
    const thawed = await ctl.close();
    expect(thawed).toMatchObject({ cause: 'shutdown', byWatchdog: true, noop: false });
    expect(world.lines()).toEqual(['prepare - 10-a', 'freeze - 10-a', 'thaw - 10-a', 'resume - 10-a']);
    expect(await ctl.freeze(51, 10_000, 'crash')).toMatchObject({ ok: false, reason: 'freeze-failed' });
  });

  it('at start-up, a status left frozen by a dead agent process is thawed: every thaw and resume hook, fsfreeze -u on the mounts', async () => {
    world = new HookWorld();
    world.hook('10-a');
    world.hook('APP1/10-b');
    const dead = spawnSync('sh', ['-c', 'echo $$']);
    const deadPid = Number(dead.stdout.toString().trim());
    mkdirSync(world.stateDir, { recursive: true });
    writeFileSync(
      join(world.stateDir, FREEZE_STATUS_FILE),
      JSON.stringify({ frozen: true, state: 'frozen', checkpointId: 60, frozenAtUnixMs: 1_000, deadlineAtUnixMs: 2_000, frozenMounts: ['/m1'], pid: deadPid, updatedAtUnixMs: 1_000 }),
    );
    ctl = controller(world, { mounts: ['/m1', '/m2'] });
    const recovered = await ctl.recover();
    expect(recovered).toMatchObject({ checkpointId: 60, cause: 'recovery', byWatchdog: true, frozenAtUnixMs: 1_000, noop: false });
    expect(world.lines()).toEqual(['fsfreeze -u /m2', 'fsfreeze -u /m1', 'thaw - 10-a', 'thaw APP1 10-b', 'resume - 10-a', 'resume APP1 10-b']);
    await ctl.flushStatus();
    expect(await readFreezeStatus(world.stateDir)).toMatchObject({ ok: true, status: { frozen: false, pid: process.pid, lastThaw: { checkpointId: 60, cause: 'recovery' } } });
  });

  it('a status written by a live process is left alone', async () => {
    world = new HookWorld();
    world.hook('10-a');
    mkdirSync(world.stateDir, { recursive: true });
    writeFileSync(join(world.stateDir, FREEZE_STATUS_FILE), JSON.stringify({ frozen: true, state: 'frozen', checkpointId: 61, frozenMounts: [], pid: process.ppid, updatedAtUnixMs: 1 }));
    ctl = controller(world, {});
    expect(await ctl.recover()).toBeUndefined();
    expect(world.lines()).toEqual([]);
  });

  it('a process that exits on an error while frozen still runs fsfreeze -u on its frozen mounts (synchronous exit handler)', async () => {
    world = new HookWorld();
    const commands = world.fakeCommands();
    const script = join(world.root, 'crash.mts');
    writeFileSync(
      script,
      [
        `import { FreezeController } from '${join(ROOT, 'agent/freeze.ts')}';`,
        `import { freezeConfig, quiet } from '${join(ROOT, 'test/support/hooks.ts')}';`,
        `const ctl = new FreezeController({ tenant: 't', server: 's', apps: [], config: freezeConfig({ mounts: ['/m1', '/m2'] }), stateDir: ${JSON.stringify(world.stateDir)}, logger: quiet, commands: ${JSON.stringify(commands)} });`,
        `const out = await ctl.freeze(1, 60_000, 'crash');`,
        `if (!out.ok) { console.error(out.detail); process.exit(3); }`,
        `throw new Error('boom while frozen');`,
      ].join('\n'),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code, stderr).toBe(1);
    expect(stderr).toContain('boom while frozen');
    expect(stderr).toContain('exiting while frozen: fsfreeze -u /m2: exit 0');
    expect(world.lines()).toEqual(['sync', 'fsfreeze -f /m1', 'fsfreeze -f /m2', 'fsfreeze -u /m2', 'fsfreeze -u /m1']);
  });
});

describe('start-up checks of the freeze setup', () => {
  it('a missing hook directory, a missing mount, and a state directory on a mount the agent freezes are problems', async () => {
    world = new HookWorld();
    const mount = join(world.root, 'data');
    mkdirSync(mount);
    const problems = await checkFreezeSetup({
      stateDir: join(mount, 'state'),
      freeze: freezeConfig({ hooksDir: join(world.root, 'no-hooks'), mounts: [mount, join(world.root, 'no-mount')] }),
    });
    expect(problems).toEqual([
      `freeze.hooksDir ${join(world.root, 'no-hooks')} does not exist or is not a directory`,
      expect.stringMatching(/^stateDir .* is on the filesystem of freeze.mounts .*data: a write there would block while it is frozen/),
      `freeze.mounts: ${join(world.root, 'no-mount')} does not exist or is not a directory`,
    ]);
  });

  it('a usable setup has no problems', async () => {
    world = new HookWorld();
    expect(await checkFreezeSetup({ stateDir: world.stateDir, freeze: freezeConfig({ hooksDir: world.hooksDir }) })).toEqual([]);
  });
});
