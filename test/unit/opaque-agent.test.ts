/** The agent's side of opaque apps: the `position` lines of a quiesce hook, the state packing, and the restore of a stored state. */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { OpaqueApps, packDir, parsePositions, unpackState } from '../../agent/opaque.js';
import { runHookWithOutput } from '../../agent/hooks/index.js';

describe('opaque apps in the agent', () => {
  it('parses position lines and ignores other output', () => {
    expect(parsePositions('stopping\nposition s1/A->s2/B 42\n  position s1/A->s3/C 0  \ndone\n')).toEqual({ ok: true, positions: { 's1/A->s2/B': 42, 's1/A->s3/C': 0 } });
    expect(parsePositions('')).toEqual({ ok: true, positions: {} });
  });

  it.each([
    ['a missing count', 'position s1/A->s2/B'],
    ['a negative count', 'position s1/A->s2/B -1'],
    ['a bad channel id', 'position nope 3'],
    ['two different positions for one channel', 'position s1/A->s2/B 1\nposition s1/A->s2/B 2'],
  ])('refuses %s', (_, text) => {
    expect(parsePositions(text).ok).toBe(false);
  });

  it('packs a state directory deterministically and unpacks it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opaque-pack-'));
    try {
      writeFileSync(join(dir, 'b.json'), '{"n":1}');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'a.bin'), Buffer.from([0, 255]));
      const packed = await packDir(dir);
      expect(new TextDecoder().decode(packed)).toBe(JSON.stringify({ 'b.json': Buffer.from('{"n":1}').toString('base64'), 'sub/a.bin': 'AP8=' }));
      expect(await packDir(dir)).toEqual(packed);
      const files = unpackState(packed);
      expect(files['sub/a.bin']).toEqual(Buffer.from([0, 255]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a quiesce hook whose stderr ended early still has its last position line read, on a busy agent', async () => {
    // The hook was taken as over once it exited and its stderr closed; the last chunk of stdout (the
    // position line, printed last) could still be unread in that turn of the event loop, and the
    // quiesce was declined for a missing position (about 1 in 40 here before the fix). Statistical:
    // without the fix this fails in most runs, with it never.
    const dir = mkdtempSync(join(tmpdir(), 'opaque-stdout-'));
    const hook = join(dir, '10-quiesce');
    writeFileSync(hook, "#!/bin/sh\nexec 2>&-\nsleep 0.02\nprintf 'position s1/A->s2/B 42\\n'\nexit 0\n");
    chmodSync(hook, 0o755);
    const log = { child: () => log, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;
    const limits = { action: 'freeze' as const, env: process.env, log, hookTimeoutMs: 10_000, hookRetriesMax: 0, hookKillGraceMs: 100 };
    let missing = 0;
    try {
      for (let round = 0; round < 5; round++) {
        // Keep the event loop busy, as an agent handling other work would be.
        const busy = setInterval(() => {
          const t = performance.now();
          while (performance.now() - t < 15);
        }, 1);
        const runs = await Promise.all(Array.from({ length: 40 }, () => runHookWithOutput({ name: '10-quiesce', file: hook, args: ['freeze'], app: 'A' }, limits)));
        clearInterval(busy);
        for (const r of runs) {
          expect(r.result.exitCode).toBe(0);
          const parsed = parsePositions(r.stdout);
          if (!parsed.ok || parsed.positions['s1/A->s2/B'] !== 42) missing += 1;
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(missing).toBe(0);
  }, 60_000);

  it('a capture after a quiesce whose hook failed is refused: its state directory is incomplete', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opaque-capture-'));
    try {
      mkdirSync(join(dir, 'hooks', 'A'), { recursive: true });
      const hook = join(dir, 'hooks', 'A', '10-quiesce');
      // Writes part of its state, then fails before the app is stopped.
      writeFileSync(hook, '#!/bin/sh\n[ "$1" = freeze ] || exit 0\necho partial > "$SNAP_STATE_DIR/half.json"\nexit 1\n');
      chmodSync(hook, 0o755);
      const stored: string[] = [];
      const apps = new OpaqueApps({
        tenant: 't',
        server: 's1',
        apps: [{ name: 'A', inputs: [], outputs: [] }],
        config: { hooksDir: join(dir, 'hooks'), mounts: [], sync: false, hookTimeoutMs: 5_000, hookRetriesMax: 0, hookKillGraceMs: 100, freezeDeadlineMsMax: 60_000, sessionReadyTimeoutMs: 1_000, sessionReleaseTimeoutMs: 1_000 },
        stateDir: join(dir, 'state'),
        logger: pino({ level: 'silent' }),
        store: async (name) => {
          stored.push(name);
          return { name, digest: 'SHA-256=x', sizeBytes: 1 };
        },
      });
      const quiesced = await apps.quiesce(3, 'A', {});
      expect(quiesced.ok).toBe(false);
      const captured = await apps.capture(3, 'A', 'cp/3/s1/A/state');
      expect(captured).toMatchObject({ ok: false, reason: 'freeze-failed' });
      expect(stored).toEqual([]);
      await apps.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('restore of a stored state', () => {
    /** An agent's opaque apps over one app A whose hook records what it was run with. */
    function setUp(hookBody: string): { dir: string; apps: OpaqueApps; runs: () => string[] } {
      const dir = mkdtempSync(join(tmpdir(), 'opaque-restore-'));
      mkdirSync(join(dir, 'hooks', 'A'), { recursive: true });
      const hook = join(dir, 'hooks', 'A', '10-app');
      const log = join(dir, 'runs.log');
      writeFileSync(
        hook,
        ['#!/bin/sh', `echo "$1 $SNAP_ACTION $SNAP_LEVEL $SNAP_CHECKPOINT_ID $SNAP_STATE_DIR" >> '${log}'`, hookBody, 'exit 0', ''].join('\n'),
      );
      chmodSync(hook, 0o755);
      const apps = new OpaqueApps({
        tenant: 't',
        server: 's1',
        apps: [{ name: 'A', inputs: [], outputs: [] }],
        config: { hooksDir: join(dir, 'hooks'), mounts: [], sync: false, hookTimeoutMs: 5_000, hookRetriesMax: 1, hookKillGraceMs: 100, freezeDeadlineMsMax: 60_000, sessionReadyTimeoutMs: 1_000, sessionReleaseTimeoutMs: 1_000 },
        stateDir: join(dir, 'state'),
        logger: pino({ level: 'silent' }),
        store: async (name) => ({ name, digest: 'SHA-256=x', sizeBytes: 1 }),
      });
      return { dir, apps, runs: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
    }

    const blob = (files: Record<string, string>): Uint8Array => new TextEncoder().encode(JSON.stringify(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v).toString('base64')]))));

    it('writes the stored files into SNAP_STATE_DIR (emptied first) and runs the hooks with action restore', async () => {
      // The hook reads the restored file: it runs after the files are written.
      const { dir, apps, runs } = setUp('[ "$1" = restore ] && cp "$SNAP_STATE_DIR/sub/state.json" "$SNAP_STATE_DIR/../seen.json"');
      try {
        expect((await apps.quiesce(7, 'A', {})).ok).toBe(true);
        writeFileSync(join(apps.stateDirOf('A'), 'stale.json'), 'from the quiesce');
        const out = await apps.restore(7, 'A', blob({ 'sub/state.json': '{"n":3}', 'b.txt': 'b' }));
        expect(out.ok).toBe(true);
        expect(readFileSync(join(apps.stateDirOf('A'), 'sub', 'state.json'), 'utf8')).toBe('{"n":3}');
        expect(readFileSync(join(apps.stateDirOf('A'), 'b.txt'), 'utf8')).toBe('b');
        expect(existsSync(join(apps.stateDirOf('A'), 'stale.json'))).toBe(false);
        expect(readFileSync(join(dir, 'state', 'opaque', 'seen.json'), 'utf8')).toBe('{"n":3}');
        expect(runs()).toEqual([`freeze freeze app 7 ${apps.stateDirOf('A')}`, `restore restore app 7 ${apps.stateDirOf('A')}`]);
        // Still stopped until the operation resumes it.
        expect(apps.isQuiesced('A')).toBe(true);
        await apps.resume(7, 'A');
        expect(apps.isQuiesced('A')).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a failing restore hook is retried like a freeze hook, then reported with its exit code and stderr', async () => {
      const { dir, apps, runs } = setUp('[ "$1" = restore ] && { echo "cannot load state" >&2; exit 3; }');
      try {
        await apps.quiesce(7, 'A', {});
        const out = await apps.restore(7, 'A', blob({ 'state.json': '{}' }));
        expect(out).toMatchObject({ ok: false, reason: 'hook-failed' });
        if (out.ok) return;
        expect(out.detail).toContain('10-app (app A) restore: exit 3 after 2 attempts');
        expect(out.detail).toContain('cannot load state');
        expect(out.hooks.map((h) => [h.hook, h.action, h.exitCode, h.attempts])).toEqual([['10-app', 'restore', 3, 2]]);
        expect(runs().filter((r) => r.startsWith('restore'))).toHaveLength(2);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('refuses an app that is not quiesced, and a state naming paths outside its directory', async () => {
      const { dir, apps, runs } = setUp(':');
      try {
        expect(await apps.restore(7, 'A', blob({ 'state.json': '{}' }))).toMatchObject({ ok: false, reason: 'freeze-failed' });
        await apps.quiesce(7, 'A', {});
        expect(await apps.restore(7, 'A', blob({ '../escape.json': '{}' }))).toMatchObject({ ok: false, reason: 'store-failed' });
        expect(existsSync(join(dir, 'state', 'opaque', 'escape.json'))).toBe(false);
        expect(await apps.restore(7, 'A', new TextEncoder().encode('not json'))).toMatchObject({ ok: false, reason: 'store-failed' });
        expect(runs().filter((r) => r.startsWith('restore'))).toEqual([]);
        await apps.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
