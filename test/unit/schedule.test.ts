import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TakeSnapshotRequest } from '../../coordinator/api.js';
import { failWith, ok } from '../../coordinator/errors.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { parseScheduleSpec, PlanSchedule } from '../../coordinator/schedule.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

describe('schedule specification', () => {
  it.each([
    ['plan=demo,interval=1000', { planId: 'demo', level: 'app', intervalMs: 1000, minPauseMs: 0, tolerableFailures: 3 }],
    ['plan=p1,interval=500,level=crash,min-pause=200,tolerable-failures=0', { planId: 'p1', level: 'crash', intervalMs: 500, minPauseMs: 200, tolerableFailures: 0 }],
  ])('%s parses', (text, spec) => {
    expect(parseScheduleSpec(text)).toEqual({ ok: true, spec });
  });

  it.each([
    ['interval=1000', 'plan=ID is required'],
    ['plan=demo', 'interval=MS is required'],
    ['plan=demo,interval=0', 'interval must be an integer >= 1'],
    ['plan=demo,interval=10,level=full', 'level must be none, crash or app'],
    ['plan=demo,interval=10,every=3', 'unknown key every'],
    ['plan=demo,interval', 'expected key=value pairs'],
  ])('%s is refused: %s', (text, message) => {
    const r = parseScheduleSpec(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });
});

describe('periodic schedule', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function harness(outcomes: ('completed' | 'aborted' | 'busy')[]) {
    const requests: TakeSnapshotRequest[] = [];
    let id = 0;
    const deps = {
      take: async (r: TakeSnapshotRequest) => {
        requests.push(r);
        const next = outcomes.shift() ?? 'completed';
        if (next === 'busy') return failWith<CheckpointRecord>('resource-exhausted', 'PLAN_BUSY', 'checkpoint 1 of plan demo is in flight (max_concurrent 1)');
        id += 1;
        return ok({ ...checkpointRecord(), id, state: next === 'completed' ? ('completed' as const) : ('aborted' as const), failureDetail: next === 'aborted' ? 'timeout' : undefined } as CheckpointRecord);
      },
      waitFor: async (n: number): Promise<CheckpointRecord> => ({ ...checkpointRecord(), id: n, state: 'completed' }),
      logger: pino({ level: 'silent' }),
    };
    return { requests, deps };
  }

  it('takes periodic checkpoints of the plan at its interval', async () => {
    const { requests, deps } = harness([]);
    const s = new PlanSchedule({ planId: 'demo', level: 'app', intervalMs: 100, minPauseMs: 0, tolerableFailures: 3 }, deps);
    s.start();
    await vi.advanceTimersByTimeAsync(350);
    s.stop();
    expect(requests.length).toBe(3);
    expect(requests.every((r) => r.periodic === true && r.planId === 'demo' && r.level === 'app')).toBe(true);
  });

  it('a tick that finds a checkpoint in flight is skipped, not counted as a failure', async () => {
    const { requests, deps } = harness(['busy', 'busy', 'busy', 'busy', 'busy']);
    const s = new PlanSchedule({ planId: 'demo', level: 'app', intervalMs: 100, minPauseMs: 0, tolerableFailures: 0 }, deps);
    s.start();
    await vi.advanceTimersByTimeAsync(550);
    s.stop();
    expect(requests.length).toBe(5);
  });

  it('more consecutive failures than tolerable suspend the schedule until a checkpoint completes', async () => {
    const { requests, deps } = harness([]);
    deps.waitFor = async (n: number) => ({ ...checkpointRecord(), id: n, state: 'aborted' as const });
    const s = new PlanSchedule({ planId: 'demo', level: 'app', intervalMs: 100, minPauseMs: 0, tolerableFailures: 1 }, deps);
    s.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(requests.length).toBe(2);
    deps.waitFor = async (n: number) => ({ ...checkpointRecord(), id: n, state: 'completed' as const });
    s.noteCompleted();
    await vi.advanceTimersByTimeAsync(250);
    s.stop();
    expect(requests.length).toBe(4);
  });
});
