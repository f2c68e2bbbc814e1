/**
 * A short chaos run (`npm run chaos`, bench/chaos-run.ts) as a real process: a 3-node NATS cluster,
 * two coordinators, six agents, a few checkpoints and a fault every checkpoint or two. Its one JSON
 * line must hold the issue's invariants, its exit code must agree with them, and the faults it
 * counts must have happened.
 */
import { describe, expect, it } from 'vitest';
import { spawnTsx } from '../support/live-processes.js';

describe('the chaos run, short', () => {
  it('prints one JSON line: nothing inconsistent, stuck, lost or leaked, 80% completed, exit code 0', async () => {
    // Seed 2 with a fault every 2 checkpoints on average: agent kills, a leader kill and NATS faults within 12 checkpoints.
    const run = spawnTsx('chaos', 'bench/chaos.ts', ['--checkpoints', '12', '--seed', '2', '--fault-every', '2', '--periodic-ms', '3000', '--json', '--log-level', 'warn']);
    const timer = setTimeout(() => void run.stop(), 170_000);
    const { code } = await run.exited;
    clearTimeout(timer);
    const lines = run.stdout().trim().split('\n');
    expect(lines, run.stderr().slice(-5_000)).toHaveLength(1);
    const r = JSON.parse(lines[0] as string) as Record<string, unknown> & { requested: number; completed: number; preempted: number };
    const why = `${lines[0]}\n${run.stderr().slice(-5_000)}`;
    expect(r.seed).toBe(2);
    expect({ inconsistent: r.inconsistent, frozen: r.frozen_past_deadline, lost: r.lost_committed, leaked: r.leaked, stuck: r.stuck }, why).toEqual({ inconsistent: 0, frozen: 0, lost: 0, leaked: 0, stuck: 0 });
    expect(r.requested_by_kind).toMatchObject({ manual: 12 });
    // A periodic checkpoint a manual one took the place of is not a failure (bench/chaos-run.ts passed()).
    expect(r.completed, why).toBeGreaterThanOrEqual(0.8 * (r.requested - r.preempted));
    expect((r.agent_kills as number) + (r.leader_kills as number) + (r.nats_kills as number) + (r.nats_pauses as number), why).toBeGreaterThanOrEqual(3);
    expect(r.duration_ms).toBeGreaterThan(0);
    expect(code, why).toBe(0);
  }, 180_000);
});
