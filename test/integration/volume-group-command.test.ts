/**
 * The command volume backend's group template: one command for all the volumes of a snapshot call
 * (a storage group snapshot), `{refs}` spread into one argument per volume, every member sharing
 * the group's snapshot and interval; delete and revert run once per distinct snapshot.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createVolumeBackend } from '../../coordinator/volumes/backend.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'volume-group-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const volumes = [
  { id: 'v1', server: 's1', backendRef: 'pool/img1' },
  { id: 'v2', server: 's2', backendRef: 'pool/img2' },
  { id: 'v3', server: 's2', backendRef: 'pool/img3' },
];

describe('command volume backend: group snapshot', () => {
  it('one command for the whole group, {refs} spread; one delete and one revert for the shared snapshot', async () => {
    const root = temp();
    const calls = join(root, 'calls');
    const script = join(root, 'grp.sh');
    writeFileSync(script, `#!/bin/sh\necho "$@" >> ${calls}\n`, { mode: 0o755 });
    const templates = join(root, 't.json');
    writeFileSync(
      templates,
      JSON.stringify({
        snapshot: [script, 'single', '{ref}'],
        snapshotGroup: [script, 'group-snap', 'pool/grp@{snapshot}', '--members', '{refs}'],
        groupSnapshotName: 'grp-{checkpoint}',
        revert: [script, 'rollback', '{snapshot}'],
        delete: [script, 'rm', '{snapshot}'],
        deleteCheckpoint: [script, 'rm-if-any', '{snapshot}'],
      }),
    );
    const backend = await createVolumeBackend(`command:${templates}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const before = Date.now();
    const snaps = await backend.value.snapshot(volumes, 9);
    if (!snaps.ok) throw new Error(snaps.error.message);
    expect(snaps.value.map((s) => [s.volumeId, s.snapshotRef])).toEqual([
      ['v1', 'grp-9'],
      ['v2', 'grp-9'],
      ['v3', 'grp-9'],
    ]);
    expect(new Set(snaps.value.map((s) => `${s.startedAtUnixMs}-${s.endedAtUnixMs}`)).size).toBe(1);
    expect(snaps.value[0]!.startedAtUnixMs).toBeGreaterThanOrEqual(before);
    expect((await backend.value.revert(snaps.value, volumes)).ok).toBe(true);
    expect((await backend.value.delete(snaps.value)).ok).toBe(true);
    expect((await backend.value.deleteForCheckpoint(9, volumes)).ok).toBe(true);
    expect(readFileSync(calls, 'utf8')).toBe('group-snap pool/grp@grp-9 --members pool/img1 pool/img2 pool/img3\nrollback grp-9\nrm grp-9\nrm-if-any grp-9\n');
  });

  it('a failing group command fails the whole snapshot with its stderr', async () => {
    const root = temp();
    const script = join(root, 'grp.sh');
    writeFileSync(script, `#!/bin/sh\necho "group is busy" >&2\nexit 2\n`, { mode: 0o755 });
    const templates = join(root, 't.json');
    writeFileSync(templates, JSON.stringify({ snapshot: [script], snapshotGroup: [script, '{refs}'], revert: [script], delete: [script] }));
    const backend = await createVolumeBackend(`command:${templates}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const r = await backend.value.snapshot(volumes, 10);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('group is busy');
  });

  it('a group snapshot name without {checkpoint} is refused at start-up', async () => {
    const root = temp();
    writeFileSync(join(root, 't.json'), JSON.stringify({ snapshot: ['x'], revert: ['x'], delete: ['x'], snapshotGroup: ['x', '{refs}'], groupSnapshotName: 'latest' }));
    const r = await createVolumeBackend(`command:${join(root, 't.json')}`, log);
    expect(!r.ok && r.error.message).toContain('"groupSnapshotName" must contain {checkpoint}');
    writeFileSync(join(root, 't.json'), JSON.stringify({ snapshot: ['x'], revert: ['x'], delete: ['x'], snapshotGroup: [] }));
    const empty = await createVolumeBackend(`command:${join(root, 't.json')}`, log);
    expect(!empty.ok && empty.error.message).toContain('"snapshotGroup" must be a non-empty list');
  });
});
