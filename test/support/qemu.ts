/**
 * A real qemu-system-x86_64 for the server backend's tests: no guest OS and no CPU (`-machine
 * none`, TCG, no KVM needed), qcow2 disks made with qemu-img as block backends QMP can pause around
 * and snapshot, a QMP unix socket, no display, no default devices.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface QemuDisk {
  readonly id: string;
  readonly format: 'qcow2' | 'raw';
}

export interface QemuHandle {
  readonly dir: string;
  readonly qmpSocket: string;
  readonly imageOf: (disk: string) => string;
  /** The snapshot tags `qemu-img snapshot -l` lists for a disk's image (read while QEMU holds it: -U). */
  readonly snapshotTags: (disk: string) => string[];
  stop(): Promise<void>;
}

export async function startQemu(disks: readonly QemuDisk[]): Promise<QemuHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'qemu-'));
  const imageOf = (disk: string): string => join(dir, `${disk}.${disks.find((d) => d.id === disk)?.format ?? 'qcow2'}`);
  for (const d of disks) execFileSync('qemu-img', ['create', '-q', '-f', d.format, imageOf(d.id), '16M']);
  const qmpSocket = join(dir, 'qmp.sock');
  const args = ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', `unix:${qmpSocket},server=on,wait=off`];
  for (const d of disks) args.push('-drive', `if=none,id=${d.id},file=${imageOf(d.id)},format=${d.format}`);
  const child: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  while (!existsSync(qmpSocket)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`qemu-system-x86_64 did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    qmpSocket,
    imageOf,
    snapshotTags(disk) {
      const out = execFileSync('qemu-img', ['snapshot', '-U', '-l', imageOf(disk)], { encoding: 'utf8' });
      // Header lines, then one line per snapshot: ID TAG VM-SIZE DATE TIME VM-CLOCK ...
      return out.split('\n').slice(2).map((l) => l.trim().split(/\s+/)[1] ?? '').filter((t) => t !== '');
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
