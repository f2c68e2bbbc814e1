import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createVolumeBackend } from '../../coordinator/volumes/backend.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'volumes-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('directory volume backend', () => {
  it('snapshots a group of directories, reverts them, and deletes the snapshots', async () => {
    const root = temp();
    const v1 = join(root, 'vol1');
    const v2 = join(root, 'vol2');
    mkdirSync(v1);
    mkdirSync(v2);
    writeFileSync(join(v1, 'data'), 'one');
    writeFileSync(join(v2, 'data'), 'two');
    const backend = await createVolumeBackend(`directory:${join(root, 'snaps')}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const volumes = [
      { id: 'vol1', server: 's1', backendRef: v1 },
      { id: 'vol2', server: 's2', backendRef: v2 },
    ];
    const snaps = await backend.value.snapshot(volumes, 7);
    expect(snaps.ok).toBe(true);
    if (!snaps.ok) return;
    writeFileSync(join(v1, 'data'), 'changed');
    writeFileSync(join(v2, 'extra'), 'new file');
    expect((await backend.value.revert(snaps.value, volumes)).ok).toBe(true);
    expect(readFileSync(join(v1, 'data'), 'utf8')).toBe('one');
    expect(existsSync(join(v2, 'extra'))).toBe(false);
    expect((await backend.value.delete(snaps.value)).ok).toBe(true);
    for (const s of snaps.value) expect(existsSync(s.snapshotRef)).toBe(false);
  });

  it('a missing volume fails the snapshot and leaves no partial snapshot behind', async () => {
    const root = temp();
    const v1 = join(root, 'vol1');
    mkdirSync(v1);
    const backend = await createVolumeBackend(`directory:${join(root, 'snaps')}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const r = await backend.value.snapshot(
      [
        { id: 'vol1', server: 's1', backendRef: v1 },
        { id: 'gone', server: 's2', backendRef: join(root, 'nope') },
      ],
      3,
    );
    expect(r.ok).toBe(false);
    expect(existsSync(join(root, 'snaps', '3', 's1', 'vol1'))).toBe(false);
  });

  it("deletes every snapshot of a checkpoint by its id, recorded or not, and only that checkpoint's; none is not an error", async () => {
    const root = temp();
    const v1 = join(root, 'vol1');
    mkdirSync(v1);
    writeFileSync(join(v1, 'data'), 'one');
    const backend = await createVolumeBackend(`directory:${join(root, 'snaps')}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const volumes = [{ id: 'vol1', server: 's1', backendRef: v1 }];
    const lost = await backend.value.snapshot(volumes, 21);
    const kept = await backend.value.snapshot(volumes, 22);
    if (!lost.ok || !kept.ok) throw new Error('snapshot failed');
    expect((await backend.value.deleteForCheckpoint(21, volumes)).ok).toBe(true);
    expect(existsSync(join(root, 'snaps', '21'))).toBe(false);
    for (const s of kept.value) expect(existsSync(s.snapshotRef)).toBe(true);
    expect((await backend.value.deleteForCheckpoint(21, volumes)).ok).toBe(true);
  });
});

describe('command volume backend', () => {
  it('runs the templates once per volume with the placeholders filled, and reports a failing command with its stderr', async () => {
    const root = temp();
    const logFile = join(root, 'calls');
    const script = join(root, 'vol.sh');
    writeFileSync(script, `#!/bin/sh\necho "$@" >> ${logFile}\nif [ "$1" = fail ]; then echo "no such image" >&2; exit 3; fi\n`, { mode: 0o755 });
    const templates = join(root, 't.json');
    writeFileSync(templates, JSON.stringify({ snapshot: [script, 'snap', '{ref}', '{snapshot}'], revert: [script, 'rollback', '{snapshot}'], delete: [script, 'rm', '{snapshot}'] }));
    const backend = await createVolumeBackend(`command:${templates}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const volumes = [{ id: 'v1', server: 's1', backendRef: 'pool/img1' }];
    const snaps = await backend.value.snapshot(volumes, 12);
    expect(snaps.ok && snaps.value).toEqual([{ volumeId: 'v1', server: 's1', snapshotRef: 'pool/img1@cp-12', startedAtUnixMs: expect.any(Number), endedAtUnixMs: expect.any(Number) }]);
    if (!snaps.ok) return;
    expect((await backend.value.revert(snaps.value, volumes)).ok).toBe(true);
    expect(readFileSync(logFile, 'utf8')).toBe('snap pool/img1 pool/img1@cp-12\nrollback pool/img1@cp-12\n');
    writeFileSync(templates, JSON.stringify({ snapshot: [script, 'fail'], revert: [script, 'x'], delete: [script, 'y'] }));
    const failing = await createVolumeBackend(`command:${templates}`, log);
    if (!failing.ok) throw new Error(failing.error.message);
    const r = await failing.value.snapshot(volumes, 13);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('no such image');
  });

  it('the deleteCheckpoint template runs once per volume with the snapshot name of that checkpoint; without it, the sweep is refused', async () => {
    const root = temp();
    const logFile = join(root, 'calls');
    const script = join(root, 'vol.sh');
    writeFileSync(script, `#!/bin/sh\necho "$@" >> ${logFile}\n`, { mode: 0o755 });
    const templates = join(root, 't.json');
    const base = { snapshot: [script, 'snap', '{snapshot}'], revert: [script, 'rollback', '{snapshot}'], delete: [script, 'rm', '{snapshot}'] };
    writeFileSync(templates, JSON.stringify({ ...base, deleteCheckpoint: [script, 'rm-if-any', '{snapshot}', '{checkpoint}'] }));
    const backend = await createVolumeBackend(`command:${templates}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const volumes = [
      { id: 'v1', server: 's1', backendRef: 'pool/img1' },
      { id: 'v2', server: 's2', backendRef: 'pool/img2' },
    ];
    expect((await backend.value.deleteForCheckpoint(31, volumes)).ok).toBe(true);
    expect(readFileSync(logFile, 'utf8')).toBe('rm-if-any pool/img1@cp-31 31\nrm-if-any pool/img2@cp-31 31\n');
    writeFileSync(templates, JSON.stringify(base));
    const without = await createVolumeBackend(`command:${templates}`, log);
    if (!without.ok) throw new Error(without.error.message);
    const r = await without.value.deleteForCheckpoint(31, volumes);
    expect(!r.ok && r.error.kind).toBe('failed-precondition');
    expect(!r.ok && r.error.message).toContain('"deleteCheckpoint"');
  });

  it('an unknown backend or a bad template file is a clear error at start-up', async () => {
    const bad = await createVolumeBackend('ceph:x', log);
    expect(!bad.ok && bad.error.message).toContain('unknown volume backend');
    const root = temp();
    writeFileSync(join(root, 't.json'), JSON.stringify({ snapshot: [] }));
    const r = await createVolumeBackend(`command:${join(root, 't.json')}`, log);
    expect(!r.ok && r.error.message).toContain('"snapshot" must be a non-empty list');
    writeFileSync(join(root, 't.json'), JSON.stringify({ snapshot: ['x'], revert: ['x'], delete: ['x'], deleteCheckpoint: 'rm' }));
    const optional = await createVolumeBackend(`command:${join(root, 't.json')}`, log);
    expect(!optional.ok && optional.error.message).toContain('"deleteCheckpoint" must be a non-empty list');
    writeFileSync(join(root, 't.json'), JSON.stringify({ snapshot: ['x'], revert: ['x'], delete: ['x'], deleteCheckpoint: ['x', '{snapshot}'], snapshotName: '{ref}@latest' }));
    const unnamed = await createVolumeBackend(`command:${join(root, 't.json')}`, log);
    expect(!unnamed.ok && unnamed.error.message).toContain('"snapshotName" must contain {checkpoint}');
  });
});
