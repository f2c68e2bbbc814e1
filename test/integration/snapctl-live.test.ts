/**
 * snapctl against the live system, as an operator uses it on the demo: the coordinator daemon and
 * three agent daemons as processes over a real nats-server, snapctl as a child process. Take with
 * --watch, verify, rollback (with its safety checkpoint), restore to servers without agents, delete
 * and agents, each with the exit code --help documents.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cyclicPlan, LiveSystem, value } from '../support/live-processes.js';

const root = join(import.meta.dirname, '..', '..');
const TENANT = 'ops';
const PLAN = cyclicPlan('demo', TENANT, ['s1', 's2', 's3']);

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let live: LiveSystem;

function snapctl(args: readonly string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'coordinator/snapctl.ts', '--address', live.address, ...args], { cwd: root, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') return reject(err);
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

beforeAll(async () => {
  live = await LiveSystem.start({ plan: PLAN, agents: { initialTokens: 1_000, transferIntervalMs: 5 } });
}, 60_000);

afterAll(async () => {
  await live?.stop();
});

describe('snapctl on the live system', () => {
  it('take --watch, verify, rollback, restore, delete and agents do what they say, with their exit codes', async () => {
    const take = await snapctl(['--json', 'take', '--plan', 'demo', '--level', 'app', '--watch']);
    expect(take.code, take.stderr).toBe(0);
    const events = take.stdout.trim().split('\n').map((l) => JSON.parse(l) as { checkpoint: { id: number; state: string } });
    const last = events[events.length - 1]?.checkpoint;
    expect(last?.state).toBe('completed');
    const id = last?.id as number;

    const verify = await snapctl(['verify', String(id)]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    const agents = await snapctl(['--json', 'agents', '--tenant', TENANT]);
    expect(agents.code, agents.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(agents.stdout))).toMatch(/s1.*s2.*s3|s3.*s2.*s1/);

    // A rollback takes a safety checkpoint first and moves the plan to a new epoch.
    const rollback = await snapctl(['--json', 'rollback', String(id)]);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(0);
    const rolled = JSON.parse(rollback.stdout) as { epoch: number; safetyCheckpointId: number };
    expect(rolled.epoch).toBeGreaterThan(0);
    expect(rolled.safetyCheckpointId).toBeGreaterThan(id);
    const safety = value(await live.client.getCheckpoint(rolled.safetyCheckpointId));
    expect(safety).toMatchObject({ state: 'completed', safety: true });
    // The apps hold the checkpoint's tokens again: a checkpoint right after has the same total.
    expect((await live.tokens((await live.take({ planId: 'demo' })).id)).total).toBe(3_000);

    // No agent on x1..x3: refused at once, exit 1, the servers named.
    const restore = await snapctl(['restore', String(id), '--map', 's1=x1,s2=x2,s3=x3']);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/FAILED_PRECONDITION.*x1/s);

    const del = await snapctl(['delete', String(id)]);
    expect(del.code, del.stderr).toBe(0);
    const gone = await snapctl(['show', String(id)]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/NOT_FOUND/);
    expect(live.deadChildren()).toEqual([]);
  }, 90_000);
});
