/**
 * The round machine at the crash level: freeze every server, one group snapshot, thaw, the window
 * check; and defect 6 of issue 9: volume snapshots that the backend finishes after the round aborted
 * are deleted (and the record says so), unless the negative control `leak-late-volume-snapshots`
 * re-creates the leak, which the fault simulator must then catch.
 */
import { describe, expect, it } from 'vitest';
import { CrashLevel } from '../../src/control/round-crash.js';
import type { NegativeControls } from '../../src/control/negative-controls.js';
import type { TakenVolume } from '../../src/control/round.js';
import { decline, drive, frozen, thawed, type Driver } from '../support/round-fixtures.js';

const VOLUMES = [
  { id: 'v1', server: 's1' },
  { id: 'v2', server: 's2' },
];

function crash(negativeControls?: NegativeControls, volumes = VOLUMES): Driver {
  const created = CrashLevel.create({ planId: 'p', servers: ['s1', 's2'], volumes, volumeBackend: true, freezeDeadlineMs: 500 });
  if (!created.ok) throw new Error(created.message);
  const d = drive(created.level, negativeControls);
  d.feed({ type: 'start' });
  return d;
}

function taken(at: number): TakenVolume[] {
  return VOLUMES.map((v) => ({ volumeId: v.id, server: v.server, snapshotRef: `${v.id}@cp-7`, startedAtUnixMs: at, endedAtUnixMs: at }));
}

/** Both servers frozen at 1000: the group snapshot is asked for. */
function frozenAll(d: Driver): void {
  d.feed({ type: 'frozen', event: frozen('s1') });
  d.feed({ type: 'frozen', event: frozen('s2') });
}

describe('round at the crash level', () => {
  it('every server frozen, the group snapshotted, everyone thawed, the window checked, then the commit', () => {
    const d = crash();
    expect(d.of('publish').map((p) => [p.server, p.command.type])).toEqual([
      ['s1', 'freeze'],
      ['s2', 'freeze'],
    ]);
    frozenAll(d);
    expect(d.of('snapshot-volumes')).toEqual([{ type: 'snapshot-volumes', oneByOne: false }]);
    d.nowMs = 1_010;
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_005) });
    expect(d.of('request-thaw')).toEqual([{ type: 'request-thaw', servers: ['s1', 's2'] }]);
    d.nowMs = 1_020;
    d.feed({ type: 'thawed', event: thawed('s1', false) });
    d.feed({ type: 'thaw-answered', server: 's1', confirmed: true });
    d.feed({ type: 'thawed', event: thawed('s2', false) });
    expect(d.of('commit')).toEqual([]);
    d.feed({ type: 'thaw-answered', server: 's2', confirmed: true });
    expect(d.of('set-volumes')[0]?.volumes.map((v) => [v.volumeId, v.frozenAtUnixMs, v.snapshotAtUnixMs, v.thawedAtUnixMs])).toEqual([
      ['v1', 1_000, 1_005, 1_020],
      ['v2', 1_000, 1_005, 1_020],
    ]);
    expect(d.of('commit')).toEqual([{ type: 'commit', objects: [] }]);
  });

  it('a server thawed by its watchdog before the snapshot ended fails the round as freeze-failed', () => {
    const d = crash();
    frozenAll(d);
    d.feed({ type: 'thawed', event: thawed('s2', true) });
    expect(d.round.failure).toEqual({ reason: 'freeze-failed', detail: 's2 thawed by its watchdog before the volume snapshot' });
  });

  it('a backend answer that does not match the call is refused before any thaw', () => {
    const d = crash();
    frozenAll(d);
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(999) });
    expect(d.round.failure?.reason).toBe('internal');
    expect(d.round.failure?.detail).toMatch(/outside its call/);
  });

  it('a freeze decline thaws every server; the abort waits for their answers before it cleans up', () => {
    const d = crash();
    d.feed({ type: 'decline', event: decline('s1', undefined, 'hook-failed', 'flush failed') });
    expect(d.round.failure).toEqual({ reason: 'hook-failed', detail: 's1 could not freeze (hook-failed): flush failed' });
    expect(d.of('request-thaw')).toHaveLength(1);
    expect(d.of('clean-up')).toEqual([]);
    d.feed({ type: 'thaw-answered', server: 's1', confirmed: true });
    d.feed({ type: 'thaw-answered', server: 's2', confirmed: false });
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: false, volumes: [] }]);
  });

  it('the freeze deadline passing before the group snapshot ended fails the round, even when no watchdog thaw is heard', () => {
    const d = crash();
    expect(d.of('start-timer')).toContainEqual({ type: 'start-timer', name: 'freeze-deadline', ms: 500 });
    frozenAll(d);
    d.nowMs = 1_500;
    d.feed({ type: 'timer-fired', name: 'freeze-deadline' });
    expect(d.round.failure).toEqual({ reason: 'freeze-failed', detail: "the volume snapshot did not end within the freeze deadline of 500 ms (the agents' watchdogs thaw them then)" });
    expect(d.of('request-thaw')).toHaveLength(1);
  });

  it('a server that has not frozen by the freeze deadline fails the round then, not at the checkpoint timeout', () => {
    const d = crash();
    d.feed({ type: 'frozen', event: frozen('s1') });
    d.feed({ type: 'timer-fired', name: 'freeze-deadline' });
    expect(d.round.failure?.detail).toBe("not every server froze within the freeze deadline of 500 ms (the agents' watchdogs thaw them then)");
  });

  it('a group snapshot that ended before the freeze deadline is not affected by it: the timer is cancelled', () => {
    const d = crash();
    frozenAll(d);
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_000) });
    expect(d.of('cancel-timer')).toContainEqual({ type: 'cancel-timer', name: 'freeze-deadline' });
    expect(d.feed({ type: 'timer-fired', name: 'freeze-deadline' }).rejected?.reason).toBe('stale-timer');
    expect(d.round.failure).toBeNull();
  });

  it('a timeout names the servers that did not freeze', () => {
    const d = crash();
    d.feed({ type: 'frozen', event: frozen('s1') });
    d.feed({ type: 'timer-fired', name: 'checkpoint' });
    expect(d.round.failure?.detail).toBe('not every app acked within 1000 ms: not frozen: s2');
  });

  it('snapshots taken before a failed window check are deleted with the abort', () => {
    const d = crash();
    frozenAll(d);
    d.nowMs = 1_010;
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_005) });
    d.nowMs = 1_003;
    d.feed({ type: 'thawed', event: thawed('s1', true) });
    d.feed({ type: 'thaw-answered', server: 's1', confirmed: true });
    d.feed({ type: 'thaw-answered', server: 's2', confirmed: true });
    expect(d.round.failure?.reason).toBe('freeze-failed');
    expect(d.of('request-thaw')).toHaveLength(2);
    d.feed({ type: 'thaw-answered', server: 's1', confirmed: true });
    d.feed({ type: 'thaw-answered', server: 's2', confirmed: true });
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: false, volumes: taken(1_005) }]);
  });
});

describe('defect 6: volume snapshots finishing after the abort', () => {
  /** Frozen, snapshot under way, then a watchdog thaw aborts the round and both thaws are answered. */
  function abortedWhileSnapshotting(negativeControls?: NegativeControls): Driver {
    const d = crash(negativeControls);
    frozenAll(d);
    d.nowMs = 1_600;
    d.feed({ type: 'thawed', event: thawed('s1', true) });
    d.feed({ type: 'thaw-answered', server: 's1', confirmed: true });
    d.feed({ type: 'thaw-answered', server: 's2', confirmed: true });
    return d;
  }

  it('the abort waits for the volume call under way, then deletes what it brings with the rest, and the record says which were deleted', () => {
    const d = abortedWhileSnapshotting();
    expect(d.round.state).toBe('aborting');
    expect(d.of('clean-up')).toEqual([]);
    expect(d.of('start-timer')).toContainEqual({ type: 'start-timer', name: 'settle', ms: 5_000 });
    d.nowMs = 2_000;
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_500) });
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: false, volumes: taken(1_500) }]);
    d.nowMs = 2_100;
    d.feed({ type: 'cleaned', volumes: taken(1_500) });
    expect(d.round.state).toBe('aborted');
    expect(d.of('set-volumes').at(-1)?.volumes.map((v) => [v.volumeId, v.deletedAtUnixMs, v.deleteError])).toEqual([
      ['v1', 2_100, undefined],
      ['v2', 2_100, undefined],
    ]);
    expect(d.round.failure?.detail).toBe('s1 thawed by its watchdog before the volume snapshot; volume snapshots deleted: v1 of s1 (v1@cp-7), v2 of s2 (v2@cp-7)');
    expect(d.effects.at(-1)).toEqual({ type: 'ended', state: 'aborted' });
  });

  it('snapshots that arrive after the round ended (the settle wait ran out) are deleted too, and the aborted record is updated', () => {
    const d = abortedWhileSnapshotting();
    d.feed({ type: 'timer-fired', name: 'settle' });
    d.feed({ type: 'cleaned', volumes: [] });
    expect(d.round.state).toBe('aborted');
    const ended = d.effects.length;
    d.nowMs = 9_000;
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_500) });
    expect(d.effects.slice(ended).filter((e) => e.type === 'clean-up')).toEqual([{ type: 'clean-up', objects: false, volumes: taken(1_500) }]);
    d.feed({ type: 'cleaned', volumes: taken(1_500) });
    const late = d.effects.slice(ended).map((e) => e.type);
    expect(late.slice(-3)).toEqual(['set-volumes', 'set-failure', 'persist']);
    expect(d.of('set-failure')[0]?.failure.detail).toMatch(/; volume snapshots deleted: v1 of s1 \(v1@cp-7\), v2 of s2 \(v2@cp-7\)$/);
  });

  it('a deletion that fails is recorded with its error', () => {
    const d = abortedWhileSnapshotting();
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_500) });
    d.feed({ type: 'cleaned', volumes: taken(1_500), volumesError: 'rbd: permission denied' });
    expect(d.of('set-volumes').at(-1)?.volumes.map((v) => [v.volumeId, v.deletedAtUnixMs, v.deleteError])).toEqual([
      ['v1', undefined, 'rbd: permission denied'],
      ['v2', undefined, 'rbd: permission denied'],
    ]);
    expect(d.round.failure?.detail).toMatch(/volume snapshots not deleted: v1 of s1 \(v1@cp-7\), v2 of s2 \(v2@cp-7\): rbd: permission denied$/);
  });

  it('negative control leak-late-volume-snapshots: the abort does not wait, and the late snapshots are never deleted', () => {
    const d = abortedWhileSnapshotting(new Set(['leak-late-volume-snapshots']));
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: false, volumes: [] }]);
    d.feed({ type: 'cleaned', volumes: [] });
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: taken(1_500) });
    expect(d.of('clean-up')).toHaveLength(1);
    expect(d.of('set-volumes')).toEqual([]);
  });
});
