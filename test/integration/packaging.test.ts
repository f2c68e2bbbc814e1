/**
 * The systemd units of packaging/systemd/ pass `systemd-analyze verify` (where systemd-analyze
 * exists; it checks every directive, and this test also fails on its warnings, such as an unknown
 * key), and keep what the daemons need: the agent may run fsfreeze and its hooks as root and keeps
 * its freeze status across a restart; neither is restarted after a configuration error (exit 2).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const UNITS = ['snapagent', 'snapcoord'] as const;
const dir = mkdtempSync(join(tmpdir(), 'snap-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function unit(name: string): string {
  return readFileSync(join(ROOT, 'packaging', 'systemd', `${name}.service`), 'utf8');
}

function verify(path: string): Promise<{ code: number; stderr: string } | undefined> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', ['verify', path], { timeout: 60_000 }, (error, _stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') resolve(undefined);
      else resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

describe('systemd units', () => {
  for (const name of UNITS) {
    it(`${name}.service passes systemd-analyze verify without a warning (skipped where systemd-analyze is missing)`, async (ctx) => {
      // verify checks that ExecStart's program exists: the copy runs this Node instead of the
      // installed executable, with the unit's own arguments.
      const text = unit(name).replace(`ExecStart=/usr/local/bin/${name} `, `ExecStart=${process.execPath} `);
      expect(text).toContain(`ExecStart=${process.execPath} --config /etc/${name}/`);
      const copy = join(dir, `${name}.service`);
      writeFileSync(copy, text);
      const r = await verify(copy);
      if (r === undefined) ctx.skip('systemd-analyze is not installed here');
      expect(r).toEqual({ code: 0, stderr: '' });
    });
  }

  it('a unit with an unknown directive fails the check above (the check can fail)', async (ctx) => {
    const copy = join(dir, 'broken.service');
    writeFileSync(copy, unit('snapagent').replace(`/usr/local/bin/snapagent`, process.execPath).replace('\nRestart=', '\nRestartt='));
    const r = await verify(copy);
    if (r === undefined) ctx.skip('systemd-analyze is not installed here');
    expect(r?.stderr).toMatch(/Unknown key 'Restartt'/);
  });

  it('both are restarted, the agent whatever its exit, but neither after a configuration error', () => {
    expect(unit('snapagent')).toMatch(/^Restart=always$/m);
    expect(unit('snapcoord')).toMatch(/^Restart=on-failure$/m);
    for (const name of UNITS) expect(unit(name)).toMatch(/^RestartPreventExitStatus=2$/m);
  });

  it('the agent keeps root and CAP_SYS_ADMIN for fsfreeze, a writable system and the devices for hooks, and its state across restarts', () => {
    const agent = unit('snapagent');
    // ProtectClock= implies a device allow-list: hooks may need block devices (dmsetup, blockdev).
    const forbidden = [/^User=/m, /^DynamicUser=/m, /^CapabilityBoundingSet=/m, /^ProtectSystem=/m, /^PrivateTmp=/m, /^PrivateDevices=/m, /^DevicePolicy=/m, /^DeviceAllow=/m, /^ProtectClock=/m];
    for (const directive of forbidden) expect(agent).not.toMatch(directive);
    expect(agent).toMatch(/^RuntimeDirectoryPreserve=yes$/m);
    expect(agent).toMatch(/^KillMode=mixed$/m);
  });
});
