/**
 * The QEMU server backend against a real qemu-system-x86_64 over QMP: a machine with two qcow2
 * disks (system and data) is paused, both disks are snapshotted in one transaction named after the
 * checkpoint, it is resumed, and `qemu-img snapshot -l` shows both snapshots. And the bad inputs: a
 * disk that refuses internal snapshots fails the whole transaction (none taken), a disk the plan
 * leaves out is named, a missing or wedged QMP socket is a clear error within the timeout. With a
 * guest agent socket, the guest's file systems are frozen instead, and a refusing guest agent falls
 * back to the pause.
 */
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentlessServer, Volume } from '../../coordinator/model.js';
import { QemuServerBackend } from '../../coordinator/servers/qemu.js';
import { openQmp } from '../../coordinator/servers/qmp.js';
import { startQemu, type QemuHandle } from '../support/qemu.js';

const silent = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
let qemu: QemuHandle;
let vm: AgentlessServer;
const backend = new QemuServerBackend(silent, Date.now, 2_000);

async function running(socket: string): Promise<boolean> {
  const qmp = await openQmp(socket, 2_000);
  if (!qmp.ok) throw new Error(qmp.error.message);
  const status = await qmp.value.execute('query-status', undefined, 2_000);
  qmp.value.close();
  if (!status.ok) throw new Error(status.error.message);
  return (status.value as { running: boolean }).running;
}

/** A machine of its own: the shared one has a raw disk, which refuses internal snapshots. */
const TWO_QCOW2_DISKS = [
  { id: 'sys', format: 'qcow2' },
  { id: 'data', format: 'qcow2' },
] as const;

const volume = (id: string, disk: string): Volume => ({ id, server: 'vm1', backendRef: disk });

beforeAll(async () => {
  qemu = await startQemu([
    { id: 'sys', format: 'qcow2' },
    { id: 'data', format: 'qcow2' },
    { id: 'scratch', format: 'raw' },
  ]);
  vm = { server: 'vm1', backendRef: qemu.qmpSocket };
}, 30_000);

afterAll(async () => {
  await qemu?.stop();
});

describe('qemu server backend over QMP', () => {
  it('pauses the machine, snapshots both qcow2 disks in one transaction named after the checkpoint, resumes it', async () => {
    const two = await startQemu(TWO_QCOW2_DISKS);
    try {
      const server = { server: 'vm1', backendRef: two.qmpSocket };
      expect(await running(two.qmpSocket)).toBe(true);
      const held = await backend.freeze(server, 41);
      expect(held).toEqual({ ok: true, value: { method: 'hypervisor-pause', wasPaused: false } });
      expect(await running(two.qmpSocket)).toBe(false);
      const before = Date.now();
      const taken = await backend.snapshotDisks(server, [volume('system', 'sys'), volume('data', 'data')], 41);
      if (!taken.ok) throw new Error(taken.error.message);
      expect(taken.value.map((t) => [t.volumeId, t.snapshotRef])).toEqual([
        ['system', `qemu:${two.qmpSocket}#sys@cp-41`],
        ['data', `qemu:${two.qmpSocket}#data@cp-41`],
      ]);
      // One transaction: every member has the same interval, inside the call.
      expect(new Set(taken.value.map((t) => `${t.startedAtUnixMs}-${t.endedAtUnixMs}`)).size).toBe(1);
      expect(taken.value[0]!.startedAtUnixMs).toBeGreaterThanOrEqual(before);
      expect((await backend.thaw(server, held.ok ? held.value : (undefined as never), 41)).ok).toBe(true);
      expect(await running(two.qmpSocket)).toBe(true);
      expect(two.snapshotTags('sys')).toEqual(['cp-41']);
      expect(two.snapshotTags('data')).toEqual(['cp-41']);

      // Deleting by the refs alone removes both; deleting again is not an error.
      expect((await backend.delete(taken.value)).ok).toBe(true);
      expect((await backend.delete(taken.value)).ok).toBe(true);
      expect(two.snapshotTags('sys')).toEqual([]);
      expect(two.snapshotTags('data')).toEqual([]);
    } finally {
      await two.stop();
    }
  }, 30_000);

  it('a disk that refuses internal snapshots fails the transaction: no disk gets a snapshot', async () => {
    const r = await backend.snapshotDisks(vm, [volume('system', 'sys'), volume('data', 'data'), volume('scratch', 'scratch')], 42);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toMatch(/none was taken/);
    expect(r.error.message).toMatch(/raw.*does not support internal snapshots/);
    expect(qemu.snapshotTags('sys')).toEqual([]);
    expect(qemu.snapshotTags('data')).toEqual([]);
  }, 20_000);

  it('a disk the plan leaves out (the system disk) is named, and nothing is taken', async () => {
    const r = await backend.snapshotDisks(vm, [volume('data', 'data'), volume('scratch', 'scratch')], 43);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe('failed-precondition');
    expect(r.error.message).toContain('sys (');
    expect(r.error.message).toContain('the system disk too');
    expect(qemu.snapshotTags('data')).toEqual([]);
  }, 20_000);

  it('a volume naming no disk of the machine is named', async () => {
    const r = await backend.snapshotDisks(vm, [volume('system', 'sys'), volume('data', 'data'), volume('scratch', 'scratch'), volume('ghost', 'nope')], 44);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('no writable disk "nope"');
  }, 20_000);

  it('two volumes naming one disk (by device id and by node name) are refused, naming both', async () => {
    const qmp = await openQmp(qemu.qmpSocket, 2_000);
    if (!qmp.ok) throw new Error(qmp.error.message);
    const blocks = await qmp.value.execute('query-block', undefined, 2_000);
    qmp.value.close();
    const node = (blocks.ok ? (blocks.value as { device: string; inserted: { 'node-name': string } }[]) : []).find((b) => b.device === 'data')?.inserted['node-name'];
    expect(node).toBeDefined();
    const r = await backend.snapshotDisks(vm, [volume('system', 'sys'), volume('data', 'data'), volume('data-again', node as string), volume('scratch', 'scratch')], 49);
    expect(!r.ok && r.error.message).toBe('volumes data and data-again of vm1 name the same disk data');
  }, 20_000);

  it("deletes a checkpoint's snapshots by its id alone (a round a crash cut short); none left is not an error", async () => {
    const two = await startQemu(TWO_QCOW2_DISKS);
    try {
      const server = { server: 'vm1', backendRef: two.qmpSocket };
      const disks = [volume('system', 'sys'), volume('data', 'data')];
      expect((await backend.snapshotDisks(server, disks, 50)).ok).toBe(true);
      expect((await backend.snapshotDisks(server, disks, 51)).ok).toBe(true);
      expect((await backend.deleteForCheckpoint(server, disks, 50)).ok).toBe(true);
      expect(two.snapshotTags('sys')).toEqual(['cp-51']);
      expect(two.snapshotTags('data')).toEqual(['cp-51']);
      expect((await backend.deleteForCheckpoint(server, disks, 50)).ok).toBe(true);
    } finally {
      await two.stop();
    }
  }, 30_000);

  it('a missing QMP socket: a clear error, at once', async () => {
    const r = await backend.freeze({ server: 'vm9', backendRef: join(qemu.dir, 'absent.sock') }, 45);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.message).toContain('absent.sock');
      expect(r.error.message).toMatch(/pausing vm9 over QMP failed/);
    }
  });

  describe('a wedged QMP socket (it accepts and never answers)', () => {
    let dir: string;
    let server: Server;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'wedged-'));
      server = createServer(() => undefined);
      await new Promise<void>((resolve) => server.listen(join(dir, 'qmp.sock'), resolve));
    });
    afterAll(() => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('fails within the timeout, saying the monitor may be wedged', async () => {
      const started = Date.now();
      const r = await backend.freeze({ server: 'vm2', backendRef: join(dir, 'qmp.sock') }, 46);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.message).toMatch(/wedged/);
      // The freeze and the resume it tries after, each bounded by the 2 s timeout.
      expect(Date.now() - started).toBeLessThan(10_000);
    }, 15_000);
  });

  describe('with a qemu-guest-agent socket (a stand-in speaking its protocol: no guest OS here)', () => {
    let dir: string;
    let server: Server;
    const received: string[] = [];
    /** What the stand-in answers guest-fsfreeze-freeze with. */
    let freezeAnswer: Record<string, unknown> = { return: 2 };
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'qga-'));
      server = createServer((socket) => {
        let buffer = '';
        socket.on('data', (chunk) => {
          buffer += chunk.toString();
          let at: number;
          while ((at = buffer.indexOf('\n')) >= 0) {
            const m = JSON.parse(buffer.slice(0, at)) as { execute: string; arguments?: { id?: number } };
            buffer = buffer.slice(at + 1);
            received.push(m.execute);
            const answer = m.execute === 'guest-sync' ? { return: m.arguments?.id } : m.execute === 'guest-fsfreeze-freeze' ? freezeAnswer : { return: 2 };
            socket.write(`${JSON.stringify(answer)}\n`);
          }
        });
      });
      await new Promise<void>((resolve) => server.listen(join(dir, 'qga.sock'), resolve));
    });
    afterAll(() => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('freezes the guest file systems instead of pausing: the machine keeps running; the thaw thaws them', async () => {
      received.length = 0;
      freezeAnswer = { return: 2 };
      const withAgent = { ...vm, guestAgentRef: join(dir, 'qga.sock') };
      const held = await backend.freeze(withAgent, 47);
      expect(held).toEqual({ ok: true, value: { method: 'guest-fsfreeze', wasPaused: false } });
      expect(await running(qemu.qmpSocket)).toBe(true);
      expect((await backend.thaw(withAgent, { method: 'guest-fsfreeze', wasPaused: false }, 47)).ok).toBe(true);
      expect(received).toEqual(['guest-sync', 'guest-fsfreeze-freeze', 'guest-sync', 'guest-fsfreeze-thaw']);
    }, 20_000);

    it('a guest agent that refuses the freeze: its file systems thawed, the machine paused instead', async () => {
      received.length = 0;
      freezeAnswer = { error: { class: 'GenericError', desc: 'failed to freeze /: Device or resource busy' } };
      const withAgent = { ...vm, guestAgentRef: join(dir, 'qga.sock') };
      const held = await backend.freeze(withAgent, 48);
      expect(held).toEqual({ ok: true, value: { method: 'hypervisor-pause', wasPaused: false } });
      expect(received).toEqual(['guest-sync', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw']);
      expect(await running(qemu.qmpSocket)).toBe(false);
      expect((await backend.thaw(withAgent, { method: 'hypervisor-pause', wasPaused: false }, 48)).ok).toBe(true);
      expect(await running(qemu.qmpSocket)).toBe(true);
    }, 20_000);
  });
});
