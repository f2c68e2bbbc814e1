/**
 * Each member of a group snapshot carries the interval in which the backend took it, on the clock it
 * was given (the coordinator's). The directory backend copies and the command backend runs one
 * command per volume one after another, so the members' intervals follow each other in plan order
 * and do not overlap; `snapshot` still answers with the bare references. A counting clock stands in
 * for the wall clock, so the intervals are exact.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createVolumeBackend } from '../../coordinator/volumes/backend.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'volume-times-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** 1000, 1001, 1002, ...: one tick per reading. */
function countingClock(): () => number {
  let t = 999;
  return () => ++t;
}

describe('volume snapshot times', () => {
  it('the directory backend reports each volume\'s own copy interval, one after another in plan order', async () => {
    const root = temp();
    const volumes = ['a', 'b', 'c'].map((id, i) => {
      const path = join(root, id);
      mkdirSync(path);
      writeFileSync(join(path, 'data'), id);
      return { id, server: `s${i + 1}`, backendRef: path };
    });
    const backend = await createVolumeBackend(`directory:${join(root, 'snaps')}`, log, countingClock());
    if (!backend.ok) throw new Error(backend.error.message);
    const taken = await backend.value.snapshot(volumes, 5);
    if (!taken.ok) throw new Error(taken.error.message);
    expect(taken.value.map((t) => [t.volumeId, t.startedAtUnixMs, t.endedAtUnixMs])).toEqual([
      ['a', 1000, 1001],
      ['b', 1002, 1003],
      ['c', 1004, 1005],
    ]);
  });

  it('the command backend reports each volume\'s own command run, one after another in plan order', async () => {
    const root = temp();
    const script = join(root, 'vol.sh');
    writeFileSync(script, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const templates = join(root, 't.json');
    writeFileSync(templates, JSON.stringify({ snapshot: [script, 'snap', '{snapshot}'], revert: [script, 'rollback'], delete: [script, 'rm'] }));
    const backend = await createVolumeBackend(`command:${templates}`, log, countingClock());
    if (!backend.ok) throw new Error(backend.error.message);
    const taken = await backend.value.snapshot(
      [
        { id: 'v1', server: 's1', backendRef: 'pool/img1' },
        { id: 'v2', server: 's2', backendRef: 'pool/img2' },
      ],
      9,
    );
    expect(taken.ok && taken.value).toEqual([
      { volumeId: 'v1', server: 's1', snapshotRef: 'pool/img1@cp-9', startedAtUnixMs: 1000, endedAtUnixMs: 1001 },
      { volumeId: 'v2', server: 's2', snapshotRef: 'pool/img2@cp-9', startedAtUnixMs: 1002, endedAtUnixMs: 1003 },
    ]);
  });
});
