/**
 * snapctl for operators (issue 12 item 7), in process over the real gRPC server and plan and policy
 * stores on a real nats-server (FakeCheckpoints behind it): `policy` and `stats`, `-o json|yaml|wide`,
 * the AGE column, `watch` of a plan, `completion`, and a crash checkpoint that captured nothing
 * said as such.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { runSnapctl } from '../../coordinator/snapctl/main.js';
import { planInput } from '../support/coordinator-fixtures.js';
import { startTestCoordinator, type TestCoordinator } from '../support/test-coordinator.js';

const NOW = 1_700_000_600_000;

let coordinator: TestCoordinator;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** snapctl in process; `interruptAfter` presses Ctrl-C once stdout holds that text. */
async function snapctl(args: readonly string[], options: { interruptAfter?: RegExp } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let interrupt: (() => void) | undefined;
  const code = await runSnapctl(
    ['--address', coordinator.address, ...args],
    {},
    {
      stdout: (t) => {
        stdout += t;
        if (options.interruptAfter?.test(stdout)) interrupt?.();
      },
      stderr: (t) => void (stderr += t),
      stdoutIsTTY: false,
      readFile: () => '',
      now: () => NOW,
      onInterrupt: (handler) => {
        interrupt = handler;
        return () => (interrupt = undefined);
      },
    },
    (address) => new CoordinatorClient(address),
  );
  return { code, stdout, stderr };
}

function record(overrides: Partial<CheckpointRecord>): CheckpointRecord {
  return {
    id: 1,
    planId: 'ops',
    tenant: 'acme',
    levelRequested: 'app',
    state: 'completed',
    epoch: 0,
    options: { timeoutMs: 60_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 30_000 },
    createdAtUnixMs: NOW - 125_000,
    triggeredAtUnixMs: NOW - 125_000,
    finishedAtUnixMs: NOW - 124_000,
    levelAchieved: 'app',
    parts: [{ server: 'srv1', app: 'APP1', acked: true, inlineState: { base64: '', digest: 'd', sizeBytes: 2048 } }],
    volumes: [],
    safety: false,
    ...overrides,
  };
}

beforeAll(async () => {
  coordinator = await startTestCoordinator();
  const client = new CoordinatorClient(coordinator.address);
  const registered = await client.registerPlan(planInput({ id: 'ops', volumes: [], channels: [] }), 0);
  client.close();
  if (!registered.ok) throw new Error(registered.error.message);
}, 30_000);

afterAll(async () => {
  await coordinator?.stop();
});

describe('snapctl policy', () => {
  it('create, show -o yaml, list, update by revision, delete', async () => {
    const created = await snapctl(['policy', 'create', 'ops', '--cron', '0 2 * * *', '--level', 'crash', '--window', '01:00-05:00', '--jitter', '60000', '--keep-daily', '7', '--keep-last', '3']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('policy of plan ops created (revision');
    expect(created.stdout).toContain('schedule   crash cron "0 2 * * *", 01:00-05:00 UTC, jitter 1m0s');
    const yaml = await snapctl(['policy', 'show', 'ops', '-o', 'yaml']);
    expect(yaml.stdout).toMatch(/^planId: ops\nschedule:\n {2}intervalMs: 0\n {2}cron: "0 2 \* \* \*"\n {2}level: crash\n {2}windowStart: "01:00"\n/);
    expect(yaml.stdout).toContain('retention:\n  keepLast: 3\n  keepDaily: 7\n');
    const list = await snapctl(['policy', 'list']);
    expect(list.stdout).toMatch(/^PLAN +TENANT +SCHEDULE +RETENTION +REVISION +AGE\nops +acme +crash cron "0 2 \* \* \*"/);
    const json = JSON.parse((await snapctl(['policy', 'show', 'ops', '-o', 'json'])).stdout) as { revision: number };
    const stale = await snapctl(['policy', 'update', 'ops', '--keep-last', '5', '--revision', String(json.revision + 7)]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('FAILED_PRECONDITION');
    const updated = await snapctl(['policy', 'update', 'ops', '--keep-last', '5', '--revision', String(json.revision)]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toContain('schedule   -');
    expect(updated.stdout).toContain('retention  last 5');
    expect((await snapctl(['policy', 'delete', 'ops'])).code).toBe(0);
    const gone = await snapctl(['policy', 'show', 'ops']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('plan ops has no policy');
  });

  it('an invalid cron is refused by the coordinator naming it; a bad command line is a usage error', async () => {
    const bad = await snapctl(['policy', 'create', 'ops', '--cron', '0 25 * * *']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('policy.schedule.cron is invalid: cron "0 25 * * *": hour "25" is outside 0-23');
    const both = await snapctl(['policy', 'create', 'ops', '--cron', '* * * * *', '--interval', '5']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('exactly one of --interval MS and --cron EXPR');
    expect((await snapctl(['policy', 'create', 'ops'])).stderr).toContain('a policy needs a schedule');
  });
});

describe('snapctl stats, list and watch', () => {
  it('stats sums up the plan; list shows AGE, and -o wide the tenant, epoch and times', async () => {
    coordinator.checkpoints.records.set(901, record({ id: 901 }));
    coordinator.checkpoints.records.set(902, record({ id: 902, finishedAtUnixMs: NOW - 122_000, parts: [{ server: 'srv1', app: 'APP1', acked: true, inlineState: { base64: '', digest: 'd', sizeBytes: 4096 } }] }));
    coordinator.checkpoints.records.set(903, record({ id: 903, state: 'aborted', levelAchieved: undefined, failureReason: 'timeout', failureDetail: 'srv1/APP1 did not ack', finishedAtUnixMs: NOW - 60_000 }));
    const stats = await snapctl(['stats', 'ops']);
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toContain('plan ops: 3 checkpoints in the store (2 completed, 1 aborted, 0 in flight)');
    expect(stats.stdout).toMatch(/duration +1\.00s +2\.00s +3\.00s/);
    expect(stats.stdout).toMatch(/size +2\.0KiB +3\.0KiB +4\.0KiB/);
    expect(stats.stdout).toContain('latest completed  902');
    expect(stats.stdout).toContain('last failure      903 at 2023-11-14T22:22:20Z: timeout: srv1/APP1 did not ack');
    const list = await snapctl(['list', '--plan', 'ops']);
    expect(list.stdout).toMatch(/^ID +PLAN +LEVEL +STATE +PROGRESS +AGE +DURATION/);
    expect(list.stdout).toMatch(/\n901 +ops +app +completed +1\/1 acked +2m /);
    const wide = await snapctl(['list', '--plan', 'ops', '-o', 'wide']);
    expect(wide.stdout).toMatch(/^ID +PLAN +TENANT +EPOCH +LEVEL .* CREATED +FINISHED +FAILURE/);
    expect((await snapctl(['list', '-o', 'xml'])).code).toBe(2);
  });

  it('a completed crash checkpoint without volumes or hooks is flagged, in list and show', async () => {
    coordinator.checkpoints.records.set(
      904,
      record({ id: 904, levelRequested: 'crash', levelAchieved: 'crash', parts: [{ server: 'srv1', app: 'APP1', acked: false }], servers: [{ server: 'srv1', frozenAtUnixMs: NOW - 1000, thawedAtUnixMs: NOW - 900, hooks: [] }] }),
    );
    const list = await snapctl(['list', '--plan', 'ops']);
    expect(list.stdout).toMatch(/\n904 +ops +crash +completed +1\/1 frozen .*WARNING: captured nothing/);
    expect((await snapctl(['show', '904'])).stdout).toContain('WARNING: captured nothing (crash level, the plan has no volumes and no server ran a freeze hook)');
    const take = await snapctl(['take', '--plan', 'ops', '--level', 'crash']);
    expect(take.stderr).toContain('snapctl: warning: plan ops has no volumes: a crash-level checkpoint captures only what the servers\' freeze hooks save');
  });

  it('watch --plan shows the newest checkpoint, then each change with the time between, until Ctrl-C', async () => {
    const watched = snapctl(['watch', '--plan', 'ops', '--interval', '100'], { interruptAfter: /checkpoint 950 .*completed/ });
    await new Promise((r) => setTimeout(r, 400));
    coordinator.checkpoints.records.set(950, record({ id: 950, state: 'collecting', levelAchieved: undefined, finishedAtUnixMs: undefined }));
    await new Promise((r) => setTimeout(r, 400));
    coordinator.checkpoints.records.set(950, record({ id: 950 }));
    const out = await watched;
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.trim().split('\n');
    expect(lines[0]).toBe('watching plan ops every 100ms; Ctrl-C ends');
    expect(lines.filter((l) => / checkpoint 9\d\d /.test(l)).map((l) => / checkpoint (\d+) +\S+ +(\S+)/.exec(l)?.slice(1).join(' '))).toEqual(['904 completed', '950 collecting', '950 completed']);
    expect(lines.at(-1)).toMatch(/^2023-11-14T22:23:20Z +\+0ms {2}ops {2}checkpoint 950 {2}app {2}completed {2}1\/1 acked {2}age 2m {2}took 1\.00s$/);
  });
});

describe('snapctl completion', () => {
  it('prints a bash script that bash accepts and that completes commands and options', async () => {
    const script = (await snapctl(['completion', 'bash'])).stdout;
    const complete = (line: string): string => {
      const words = line.split(' ');
      const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _snapctl; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      return r.stdout.trim();
    };
    expect(complete('snapctl po')).toBe('policy');
    expect(complete('snapctl policy c')).toBe('create');
    expect(complete('snapctl policy create ops --keep-d')).toBe('--keep-daily');
    expect(complete('snapctl list -o ')).toBe('text wide json yaml');
    expect((await snapctl(['completion', 'zsh'])).stdout).toMatch(/^#compdef snapctl\n.*bashcompinit/s);
  });
});
