/**
 * The server backend as command templates (libvirt-style): freeze, one snapshot per server for all
 * its disks ({refs} spread), thaw, delete once per shared snapshot; a failing freeze runs the thaw
 * template after it; a bad template file is refused at start-up. And the server-aware volume
 * backend routing: a plan's agentless disks to the server backend, the rest to the volume backend.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../coordinator/errors.js';
import type { Plan } from '../../coordinator/model.js';
import { createServerBackend } from '../../coordinator/servers/backend.js';
import { ServerAwareVolumes } from '../../coordinator/servers/volumes.js';
import { createVolumeBackend } from '../../coordinator/volumes/backend.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'server-command-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake virsh that logs its arguments and fails when its first one is `fail`. */
function fakeVirsh(root: string): { script: string; calls: () => string } {
  const calls = join(root, 'calls');
  const script = join(root, 'virsh');
  writeFileSync(script, `#!/bin/sh\necho "$@" >> ${calls}\nif [ "$2" = dead ]; then echo "error: domain is not running" >&2; exit 1; fi\n`, { mode: 0o755 });
  return { script, calls: () => readFileSync(calls, 'utf8') };
}

function templates(root: string, script: string): string {
  const file = join(root, 'servers.json');
  writeFileSync(
    file,
    JSON.stringify({
      freeze: [script, 'suspend', '{ref}'],
      thaw: [script, 'resume', '{ref}'],
      freezeMethod: 'hypervisor-pause',
      snapshot: [script, 'snapshot-create-as', '{ref}', '{snapshot}', '{refs}'],
      delete: [script, 'snapshot-delete', '{ref}', '{snapshot}'],
    }),
  );
  return file;
}

const vm = { server: 'vm7', backendRef: 'dom7' };
const disks = [
  { id: 'vm7-system', server: 'vm7', backendRef: 'vda' },
  { id: 'vm7-data', server: 'vm7', backendRef: 'vdb' },
];

describe('command server backend', () => {
  it('freezes, snapshots all the disks of the server in one command, thaws, and deletes the shared snapshot once', async () => {
    const root = temp();
    const virsh = fakeVirsh(root);
    const backend = await createServerBackend(`command:${templates(root, virsh.script)}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const held = await backend.value.freeze(vm, 5);
    expect(held).toEqual(ok({ method: 'hypervisor-pause', wasPaused: false }));
    const taken = await backend.value.snapshotDisks(vm, disks, 5);
    if (!taken.ok) throw new Error(taken.error.message);
    expect(taken.value.map((t) => [t.volumeId, t.snapshotRef])).toEqual([
      ['vm7-system', 'server:dom7#cp-5'],
      ['vm7-data', 'server:dom7#cp-5'],
    ]);
    expect((await backend.value.thaw(vm, { method: 'hypervisor-pause', wasPaused: false }, 5)).ok).toBe(true);
    expect((await backend.value.delete(taken.value)).ok).toBe(true);
    expect(virsh.calls()).toBe('suspend dom7\nsnapshot-create-as dom7 cp-5 vda vdb\nresume dom7\nsnapshot-delete dom7 cp-5\n');
  });

  it('a failing freeze runs the thaw template after it and says so', async () => {
    const root = temp();
    const virsh = fakeVirsh(root);
    const backend = await createServerBackend(`command:${templates(root, virsh.script)}`, log);
    if (!backend.ok) throw new Error(backend.error.message);
    const r = await backend.value.freeze({ server: 'vm8', backendRef: 'dead' }, 6);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/domain is not running.*the thaw command failed too/s);
    expect(virsh.calls()).toBe('suspend dead\nresume dead\n');
  });

  it('bad specifications and template files are refused at start-up', async () => {
    const root = temp();
    expect(await createServerBackend('xen', log)).toMatchObject({ ok: false, error: { message: expect.stringContaining('unknown server backend "xen"') } });
    expect(await createServerBackend('qemu:/x', log)).toMatchObject({ ok: false, error: { message: expect.stringContaining('takes no argument') } });
    const file = join(root, 't.json');
    writeFileSync(file, JSON.stringify({ freeze: ['x'], thaw: ['x'], snapshot: ['x'], delete: ['x'] }));
    expect(await createServerBackend(`command:${file}`, log)).toMatchObject({ ok: false, error: { message: expect.stringContaining('"freezeMethod" must be') } });
    writeFileSync(file, JSON.stringify({ freeze: ['x'], thaw: [], snapshot: ['x'], delete: ['x'], freezeMethod: 'hypervisor-pause' }));
    expect(await createServerBackend(`command:${file}`, log)).toMatchObject({ ok: false, error: { message: expect.stringContaining('"thaw" must be a non-empty list') } });
  });
});

describe('server-aware volume backend', () => {
  it("routes the agentless server's disks to the server backend and the others to the volume backend, and deletes each where it lives", async () => {
    const root = temp();
    const virsh = fakeVirsh(root);
    const servers = await createServerBackend(`command:${templates(root, virsh.script)}`, log);
    if (!servers.ok) throw new Error(servers.error.message);
    const rbdCalls = join(root, 'rbd-calls');
    const rbd = join(root, 'rbd');
    writeFileSync(rbd, `#!/bin/sh\necho "$@" >> ${rbdCalls}\n`, { mode: 0o755 });
    const volumeTemplates = join(root, 'volumes.json');
    writeFileSync(volumeTemplates, JSON.stringify({ snapshot: [rbd, 'snap', 'create', '{snapshot}'], revert: [rbd, 'rollback', '{snapshot}'], delete: [rbd, 'snap', 'rm', '{snapshot}'] }));
    const volumes = await createVolumeBackend(`command:${volumeTemplates}`, log);
    if (!volumes.ok) throw new Error(volumes.error.message);
    const plan = { agentlessServers: [vm] } as unknown as Plan;
    const routed = new ServerAwareVolumes(volumes.value, servers.value, async () => ok(plan));
    const all = [{ id: 'db1-data', server: 'db1', backendRef: 'rbd/db1' }, ...disks];
    const taken = await routed.snapshot(all, 8);
    if (!taken.ok) throw new Error(taken.error.message);
    expect(taken.value.map((t) => [t.volumeId, t.snapshotRef]).sort()).toEqual([
      ['db1-data', 'rbd/db1@cp-8'],
      ['vm7-data', 'server:dom7#cp-8'],
      ['vm7-system', 'server:dom7#cp-8'],
    ]);
    const revert = await routed.revert(taken.value, all);
    expect(!revert.ok && revert.error.kind).toBe('failed-precondition');
    expect((await routed.delete(taken.value)).ok).toBe(true);
    expect(readFileSync(rbdCalls, 'utf8')).toBe('snap create rbd/db1@cp-8\nsnap rm rbd/db1@cp-8\n');
    expect(virsh.calls()).toBe('snapshot-create-as dom7 cp-8 vda vdb\nsnapshot-delete dom7 cp-8\n');

    // Without a volume backend, a volume of a server with an agent is refused, naming it.
    const alone = new ServerAwareVolumes(undefined, servers.value, async () => ok(plan));
    const refused = await alone.snapshot(all, 9);
    expect(!refused.ok && refused.error.message).toContain('volume db1-data of db1 belongs to a server with an agent');
  });
});
