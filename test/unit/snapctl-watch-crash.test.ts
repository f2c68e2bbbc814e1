/**
 * `take --watch` on a terminal at crash level: the table is one row per server (freezing, frozen,
 * thawed), never the plan's apps "waiting" for acks that crash level does not ask for; a completed
 * one that captured nothing says so at the end.
 */
import { describe, expect, it } from 'vitest';
import { progressView } from '../../coordinator/grpc/convert.js';
import type { CheckpointRecord, ProgressEvent } from '../../coordinator/model.js';
import { WatchView } from '../../coordinator/snapctl/watch-view.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

const T0 = 1_700_000_000_000;

function event(kind: ProgressEvent['kind'], checkpoint: CheckpointRecord, server?: string): ReturnType<typeof progressView> {
  return progressView({ kind, atUnixMs: T0, ...(server !== undefined ? { server } : {}), checkpoint });
}

describe('watch view at crash level', () => {
  it('shows servers freezing, frozen and thawed, and no app waiting', () => {
    const view = new WatchView('tty', () => T0);
    const base = checkpointRecord({ levelRequested: 'crash', state: 'collecting', servers: [{ server: 'srv1', hooks: [] }, { server: 'srv2', hooks: [] }] });
    const first = view.onEvent(event('state-changed', base));
    expect(first).toMatch(/SERVER +PHASE +FROZEN FOR +HOOKS\nsrv1 +freezing +- +0\nsrv2 +freezing +- +0\n/);
    expect(first).not.toContain('waiting');
    const frozen = { ...base, servers: [{ server: 'srv1', frozenAtUnixMs: T0, hooks: [] }, { server: 'srv2', hooks: [] }] };
    expect(view.onEvent(event('server-frozen', frozen, 'srv1'))).toMatch(/srv1 +frozen +- +0\nsrv2 +freezing/);
    const done: CheckpointRecord = {
      ...base,
      state: 'completed',
      levelAchieved: 'crash',
      triggeredAtUnixMs: T0,
      finishedAtUnixMs: T0 + 300,
      servers: [
        { server: 'srv1', frozenAtUnixMs: T0, thawedAtUnixMs: T0 + 120, hooks: [] },
        { server: 'srv2', frozenAtUnixMs: T0 + 10, thawedAtUnixMs: T0 + 130, hooks: [] },
      ],
    };
    const last = view.onEvent(event('state-changed', done));
    expect(last).toMatch(/srv1 +thawed +120ms +0\nsrv2 +thawed +120ms +0\n/);
    expect(last).not.toContain('waiting');
    expect(view.finish()).toBe('checkpoint 1 completed at level crash in 300ms\nWARNING: captured nothing (crash level, the plan has no volumes and no server ran a freeze hook)\n');
  });
});
