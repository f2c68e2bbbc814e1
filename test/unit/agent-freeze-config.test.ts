/**
 * The agent configuration's `freeze` section and `stateDir` (agent/config.ts, one zod schema): every limit named,
 * validated once at start-up, defaults when absent, and a misspelt setting rejected rather than
 * silently left at its default (how configured timeouts get ignored elsewhere).
 */
import { describe, expect, it } from 'vitest';
import { FREEZE_DEFAULTS, HOOK_RETRIES_MAX_LIMIT, parseAgentConfig } from '../../agent/config.js';

const base = { tenant: 't1', server: 's1', nats: { servers: ['nats://127.0.0.1:4222'] }, apps: [{ name: 'APP1' }] };

function problems(extra: Record<string, unknown>): string[] {
  const r = parseAgentConfig({ ...base, ...extra });
  return r.ok ? [] : r.problems;
}

describe('agent config: freeze', () => {
  it('absent: the defaults, no hook directory, no mounts, sync on', () => {
    const r = parseAgentConfig(base);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.freeze).toEqual({ mounts: [], ...FREEZE_DEFAULTS });
    expect(r.config.freeze.hooksDir).toBeUndefined();
    expect(r.config.stateDir).toMatch(/snapagent.*t1-s1$/);
  });

  it('every setting given is taken, paths normalized', () => {
    const r = parseAgentConfig({
      ...base,
      stateDir: '/run/snap//x/',
      freeze: {
        hooksDir: '/etc/snapagent/hooks.d/',
        mounts: ['/data', '/var/lib/db/'],
        sync: false,
        hookTimeoutMs: 1_000,
        hookRetriesMax: 0,
        hookKillGraceMs: 100,
        freezeDeadlineMsMax: 9_000,
        sessionReadyTimeoutMs: 2_000,
        sessionReleaseTimeoutMs: 3_000,
      },
    });
    expect(r.ok, r.ok ? '' : r.problems.join('; ')).toBe(true);
    if (!r.ok) return;
    expect(r.config.stateDir).toBe('/run/snap/x/');
    expect(r.config.freeze).toEqual({
      hooksDir: '/etc/snapagent/hooks.d/',
      mounts: ['/data', '/var/lib/db/'],
      sync: false,
      hookTimeoutMs: 1_000,
      hookRetriesMax: 0,
      hookKillGraceMs: 100,
      freezeDeadlineMsMax: 9_000,
      sessionReadyTimeoutMs: 2_000,
      sessionReleaseTimeoutMs: 3_000,
    });
  });

  it('a misspelt setting is a problem, naming the real one', () => {
    expect(problems({ freeze: { hookTimeoutMS: 5_000 } })).toEqual(['freeze.hookTimeoutMS is not a setting; did you mean freeze.hookTimeoutMs?']);
  });

  it('a setting nothing resembles is a problem, listing the real ones', () => {
    const p = problems({ freeze: { quiesceEverything: true } });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^freeze.quiesceEverything is not a setting; the settings of freeze are hooksDir, mounts, sync, hookTimeoutMs/);
  });

  it('bad values are problems, one per field', () => {
    const p = problems({
      stateDir: 'relative/state',
      freeze: {
        hooksDir: 'hooks.d',
        mounts: ['/data', 'data2', '/data', '/a:b'],
        sync: 'yes',
        hookTimeoutMs: 0,
        hookRetriesMax: HOOK_RETRIES_MAX_LIMIT + 1,
        hookKillGraceMs: 1.5,
        freezeDeadlineMsMax: -1,
        sessionReadyTimeoutMs: '10s',
      },
    });
    expect(p).toEqual([
      'freeze.hooksDir must be an absolute path, got "hooks.d"',
      'freeze.mounts[1] must be an absolute path, got "data2"',
      `freeze.mounts[3] contains ':', the separator of SNAP_MOUNTS, got "/a:b"`,
      'freeze.mounts[2] /data is listed twice',
      'freeze.sync must be true or false, got "yes"',
      'freeze.hookTimeoutMs must be an integer >= 1, got 0',
      `freeze.hookRetriesMax must be an integer from 0 to ${HOOK_RETRIES_MAX_LIMIT}, got ${HOOK_RETRIES_MAX_LIMIT + 1}`,
      'freeze.hookKillGraceMs must be an integer >= 1, got 1.5',
      'freeze.freezeDeadlineMsMax must be an integer >= 1, got -1',
      'freeze.sessionReadyTimeoutMs must be an integer >= 1, got "10s"',
      'stateDir must be an absolute path, got "relative/state"',
    ]);
  });

  it('freeze must be an object', () => {
    expect(problems({ freeze: [] })).toEqual(['freeze must be an object: {"hooksDir": ..., "mounts": [...], ...}, got []']);
  });
});
