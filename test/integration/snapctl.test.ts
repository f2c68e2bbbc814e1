/**
 * snapctl as a user runs it: a child process talking gRPC to a coordinator (the real gRPC server
 * and plan registry on a real nats-server, FakeCheckpoints behind it). Pins the exit codes of
 * --help: 0 ok, 1 the coordinator said no or is unreachable, 2 usage, 3 aborted, 4 verify failed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/test-coordinator.js';

const root = join(import.meta.dirname, '..', '..');

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function snapctl(args: readonly string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'coordinator/snapctl.ts', ...args],
      { cwd: root, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') return reject(err);
        resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'snapctl-'));

describe('snapctl (child process, real gRPC server)', () => {
  let coordinator: TestCoordinator;
  let at: string[];

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    at = ['--address', coordinator.address];
  });

  afterAll(async () => {
    await coordinator?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('plans register reads a plan file (short app form), plans list --json shows it, plans show prints its channels', async () => {
    const file = join(tmp, 'demo.json');
    writeFileSync(
      file,
      JSON.stringify({
        id: 'cli-demo',
        tenant: 'acme',
        servers: ['srv1', 'srv2'],
        apps: ['srv1/APP1', 'srv2/APP2'],
        channels: [
          { from: 'srv1/APP1', to: 'srv2/APP2', kind: 'in-band' },
          { from: 'srv2/APP2', to: 'srv1/APP1', kind: 'log', logStream: 'BACK' },
        ],
        volumes: [{ id: 'vol1', server: 'srv1', backendRef: 'pool/vol1' }],
      }),
    );
    const registered = await snapctl([...at, 'plans', 'register', file]);
    expect(registered).toMatchObject({ code: 0, stderr: '' });
    expect(registered.stdout).toMatch(/^plan cli-demo registered \(revision \d+\)\n$/);

    const listed = await snapctl(['plans', 'list', '--json'], { SNAPCTL_ADDRESS: coordinator.address });
    expect(listed.code).toBe(0);
    const json = JSON.parse(listed.stdout) as { plans: { id: string; channels: unknown[] }[] };
    expect(json.plans.map((p) => p.id)).toContain('cli-demo');
    expect(json.plans.find((p) => p.id === 'cli-demo')?.channels).toHaveLength(2);

    const shown = await snapctl([...at, 'plans', 'show', 'cli-demo']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/srv2\/APP2\s+srv1\/APP1\s+log\s+BACK/);

    const replaced = await snapctl([...at, 'plans', 'register', file, '--replace']);
    expect(replaced.stdout).toMatch(/^plan cli-demo replaced/);
  });

  it('a plan the coordinator refuses exits 1 with its code and message', async () => {
    const file = join(tmp, 'bad.json');
    writeFileSync(file, JSON.stringify({ id: 'cli-bad', tenant: 'acme', servers: ['srv1'], apps: ['srv2/APP1'] }));
    const result = await snapctl([...at, 'plans', 'register', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^snapctl: INVALID_ARGUMENT: invalid plan: 1 problem: apps\[0\]\.server "srv2" is not one of the plan's servers\n$/);
  });

  it('usage errors exit 2 and say what is wrong, before anything is sent', async () => {
    const [unknownOption, missingLevel, badFile, noCommand] = await Promise.all([
      snapctl([...at, 'list', '--colour']),
      snapctl([...at, 'take', '--plan', 'p']),
      snapctl([...at, 'plans', 'register', join(tmp, 'missing.json')]),
      snapctl([]),
    ]);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toMatch(/Unknown option '--colour'/);
    expect(missingLevel.code).toBe(2);
    expect(missingLevel.stderr).toMatch(/--level none\|crash\|app is required/);
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toMatch(/cannot read .*missing\.json/);
    expect(noCommand.code).toBe(2);
  });

  it('--help works on the tool and on every command, and documents the exit codes', async () => {
    const [main, take, plansRegister] = await Promise.all([snapctl(['--help']), snapctl(['take', '--help']), snapctl(['plans', 'register', '--help'])]);
    for (const r of [main, take, plansRegister]) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Exit codes:\n {2}0 {2}ok\n {2}1 {2}the coordinator/);
      expect(r.stdout).toMatch(/3 {2}take --watch: the checkpoint was aborted/);
    }
    expect(take.stdout).toMatch(/--alignment-timeout MS/);
    expect(plansRegister.stdout).toMatch(/"logStream": "ORDERS"/);
  });

  it('take --watch prints one line per event off a terminal and exits 0 when the checkpoint completes', async () => {
    const result = await snapctl([...at, 'take', '--plan', 'cli-watch', '--level', 'app', '--unaligned', '--watch']);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^checkpoint (\d+) started \(plan cli-watch, level app\)$/);
    expect(result.stdout).toMatch(/srv1\/APP1 acked \(align 0ms, sync 3ms, async 4ms, 100B\)/);
    expect(lines[lines.length - 1]).toMatch(/^checkpoint \d+ completed at level app in \d+ms$/);
  });

  it('take --watch exits 3 when the checkpoint aborts, naming the reason', async () => {
    const result = await snapctl([...at, 'take', '--plan', 'aborts', '--level', 'app', '--watch']);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/srv2\/APP2 declined: hook-failed/);
    expect(result.stdout).toMatch(/checkpoint \d+ aborted: declined: srv2\/APP2 declined\n$/);
  });

  it('list, show and verify: exit 0 on a sound checkpoint and 4 on one with problems', async () => {
    const take = await snapctl([...at, '--json', 'take', '--plan', 'corrupt', '--level', 'crash', '--watch']);
    expect(take.code).toBe(0);
    const events = take.stdout.trim().split('\n').map((l) => JSON.parse(l) as { checkpoint: { id: number; state: string } });
    const id = events[0]?.checkpoint.id ?? 0;
    expect(events[events.length - 1]?.checkpoint.state).toBe('completed');

    const [list, show, verify] = await Promise.all([snapctl([...at, 'list', '--plan', 'corrupt']), snapctl([...at, 'show', String(id)]), snapctl([...at, 'verify', String(id)])]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^ID\\s+PLAN\\s+LEVEL\\s+STATE.*\\n${id}\\s+corrupt\\s+crash\\s+completed\\s+2/2`));
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/level\s+requested crash, achieved crash/);
    expect(show.stdout).toMatch(/srv1\/APP1\s+yes/);
    expect(verify.code).toBe(4);
    expect(verify.stdout).toMatch(/1 problem\n.*\nsrv1\/APP1 state\s+digest mismatch/);
  });

  it('a coordinator error exits 1 with the gRPC code, and a missing checkpoint may have been deleted by retention', async () => {
    const missing = await snapctl([...at, 'show', '424242']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^snapctl: NOT_FOUND: checkpoint 424242 does not exist \(it may have been deleted by retention: .*\)\n$/);
  });

  it('an unreachable coordinator exits 1 naming the address and what to do, in one place with --json', async () => {
    const [unreachable, json] = await Promise.all([snapctl(['--address', '127.0.0.1:1', 'agents']), snapctl(['--address', '127.0.0.1:1', '--json', 'agents'])]);
    expect(unreachable).toMatchObject({ code: 1, stdout: '' });
    expect(unreachable.stderr).toMatch(/^snapctl: cannot reach the coordinator at 127\.0\.0\.1:1 \(connection refused\)\. .*`npm start`.*--address HOST:PORT/);
    expect(unreachable.stderr).not.toMatch(/UNAVAILABLE|No connection established/);
    expect(json).toMatchObject({ code: 1, stderr: '' });
    expect((JSON.parse(json.stdout) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
  });
});
