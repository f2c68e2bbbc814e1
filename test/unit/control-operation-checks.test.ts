/**
 * Idempotency keys of rollback/restore (src/control/operation-key.ts) and the restore mapping checks
 * (src/control/operation-check.ts): a retry with the same key gets the first result or joins the
 * operation in progress, another call under the same key is INVALID_ARGUMENT naming both, and a bad
 * mapping is INVALID_ARGUMENT at once.
 */
import { describe, expect, it } from 'vitest';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';
import { checkRestoreMapping, type CheckpointShape } from '../../src/control/operation-check.js';
import { decideKeyed } from '../../src/control/operation-key.js';

describe('operation idempotency keys', () => {
  const first = { id: 'k-1', request: 'rollback to checkpoint 7 with a safety checkpoint', state: 'completed' as const, outcome: { ok: true as const, epoch: 2, safetyCheckpointId: 8 } };

  it('no operation holds the key: run', () => {
    expect(decideKeyed('k', first.request, undefined, NO_NEGATIVE_CONTROLS)).toEqual({ type: 'run' });
  });

  it('the key\'s operation ended: its outcome again, whatever it was', () => {
    expect(decideKeyed('k', first.request, first, NO_NEGATIVE_CONTROLS)).toEqual({ type: 'replay', operationId: 'k-1', outcome: first.outcome });
    const failed = { ...first, state: 'needs-repair' as const, outcome: { ok: false as const, kind: 'unavailable' as const, message: 'x' } };
    expect(decideKeyed('k', first.request, failed, NO_NEGATIVE_CONTROLS)).toEqual({ type: 'replay', operationId: 'k-1', outcome: failed.outcome });
  });

  it('the key\'s operation is running: join it', () => {
    const { outcome: _, ...running } = { ...first, state: 'restoring' as const };
    expect(decideKeyed('k', first.request, running, NO_NEGATIVE_CONTROLS)).toEqual({ type: 'join', operationId: 'k-1' });
  });

  it('the same key for another call: a conflict naming both calls', () => {
    const d = decideKeyed('k', 'rollback to checkpoint 9 with a safety checkpoint', first, NO_NEGATIVE_CONTROLS);
    expect(d).toEqual({
      type: 'conflict',
      message: 'idempotency key "k" was used for rollback to checkpoint 7 with a safety checkpoint (operation k-1); this call asks for rollback to checkpoint 9 with a safety checkpoint: use another key for another call',
    });
  });

  it('negative control ignore-idempotency-key: a retry runs again', () => {
    expect(decideKeyed('k', first.request, first, new Set(['ignore-idempotency-key']))).toEqual({ type: 'run' });
  });
});

describe('restore mapping checks', () => {
  const cp: CheckpointShape = {
    id: 7,
    apps: [
      { server: 's1', app: 'A' },
      { server: 's2', app: 'B' },
    ],
    volumeServers: [],
  };

  it('a full server mapping onto other servers: every app gets its target', () => {
    const r = checkRestoreMapping(cp, { servers: { s1: 't1', s2: 't2' }, apps: [] });
    expect(r.ok && [...r.targets]).toEqual([
      ['s1/A', { server: 't1', app: 'A' }],
      ['s2/B', { server: 't2', app: 'B' }],
    ]);
  });

  it('onto the checkpoint\'s own servers (even swapped): INVALID_ARGUMENT pointing to rollback', () => {
    expect(checkRestoreMapping(cp, { servers: { s1: 's2', s2: 's1' }, apps: [] })).toEqual({
      ok: false,
      kind: 'invalid-argument',
      message: 'restore of checkpoint 7: s1, s2 are the checkpoint\'s own servers: restore into other servers, or use RollbackSnapshot to put the plan\'s own servers back',
    });
  });

  it('servers or apps the checkpoint does not hold: INVALID_ARGUMENT naming them', () => {
    expect(checkRestoreMapping(cp, { servers: { s1: 't1', s2: 't2', s9: 't9' }, apps: [] })).toMatchObject({ ok: false, message: expect.stringContaining('names s9, which the checkpoint does not hold') });
    expect(checkRestoreMapping(cp, { servers: { s1: 't1', s2: 't2' }, apps: [{ source: { server: 's1', app: 'Z' }, target: { server: 't1', app: 'Z' } }] })).toMatchObject({
      ok: false,
      message: expect.stringContaining('names s1/Z'),
    });
  });

  it('an app mapped twice, an app left out, two apps onto one target: INVALID_ARGUMENT', () => {
    const twice = checkRestoreMapping(cp, {
      servers: { s2: 't2' },
      apps: [
        { source: { server: 's1', app: 'A' }, target: { server: 't1', app: 'A' } },
        { source: { server: 's1', app: 'A' }, target: { server: 't3', app: 'A' } },
      ],
    });
    expect(twice).toMatchObject({ ok: false, message: expect.stringContaining('s1/A mapped twice') });
    expect(checkRestoreMapping(cp, { servers: { s1: 't1' }, apps: [] })).toMatchObject({ ok: false, message: expect.stringContaining('no target for s2/B') });
    const shared = checkRestoreMapping(cp, { servers: { s1: 't1' }, apps: [{ source: { server: 's2', app: 'B' }, target: { server: 't1', app: 'A' } }] });
    expect(shared).toMatchObject({ ok: false, message: expect.stringContaining('s1/A and s2/B -> t1/A') });
  });

  it('a crash-level checkpoint\'s volume servers must be mapped too', () => {
    expect(checkRestoreMapping({ ...cp, volumeServers: ['s3'] }, { servers: { s1: 't1', s2: 't2' }, apps: [] })).toMatchObject({
      ok: false,
      message: expect.stringContaining('the volumes of s3'),
    });
  });
});
