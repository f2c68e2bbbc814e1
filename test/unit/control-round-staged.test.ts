/**
 * A staged round (BeginCheckpoint / FinishCheckpoint): the same round machine, held once every
 * participant answered until the caller's finish brings its volume snapshots, bounded by the hold
 * deadline. Bad finishes are refused (changing nothing) or fail the round, which then thaws.
 */
import { describe, expect, it } from 'vitest';
import { AppLevel } from '../../src/control/round-app.js';
import { CrashLevel } from '../../src/control/round-crash.js';
import { HOLD_DEADLINE_PASSED, type TakenVolume } from '../../src/control/round.js';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';
import { ack, drive, frozen, planGraphOf, thawed, type Driver } from '../support/round-fixtures.js';

const VOLUMES = [
  { id: 'v1', server: 's1' },
  { id: 'v2', server: 's2' },
];
const HOLD_MS = 800;

function stagedCrash(): Driver {
  const created = CrashLevel.create({ planId: 'p', servers: ['s1', 's2'], volumes: VOLUMES, volumeBackend: false, freezeDeadlineMs: HOLD_MS });
  if (!created.ok) throw new Error(created.message);
  const d = drive(created.level, NO_NEGATIVE_CONTROLS, 1_000, HOLD_MS);
  d.feed({ type: 'start' });
  return d;
}

/** Both servers frozen at 1000: the round is held. */
function held(): Driver {
  const d = stagedCrash();
  d.feed({ type: 'frozen', event: frozen('s1') });
  d.feed({ type: 'frozen', event: frozen('s2') });
  return d;
}

function given(from: number, to: number, volumes = VOLUMES): TakenVolume[] {
  return volumes.map((v) => ({ volumeId: v.id, server: v.server, snapshotRef: `karbor-${v.id}`, startedAtUnixMs: from, endedAtUnixMs: to }));
}

function thawBoth(d: Driver): void {
  for (const s of ['s1', 's2']) {
    d.feed({ type: 'thawed', event: thawed(s, false) });
    d.feed({ type: 'thaw-answered', server: s, confirmed: true });
  }
}

describe('staged round, crash level', () => {
  it('every server frozen: held, no volume call; the finish thaws, records the caller\'s snapshots and commits', () => {
    const d = held();
    expect(d.states()).toEqual(['triggering', 'collecting', 'held']);
    expect(d.of('start-timer').map((t) => [t.name, t.ms])).toContainEqual(['hold', HOLD_MS]);
    expect(d.of('snapshot-volumes')).toEqual([]);
    expect(d.of('request-thaw')).toEqual([]);
    d.nowMs = 1_300;
    const r = d.feed({ type: 'finish', volumes: given(1_100, 1_200) });
    expect(r.rejected).toBeUndefined();
    expect(d.of('cancel-timer').map((t) => t.name)).toContain('hold');
    expect(d.of('request-thaw')).toEqual([{ type: 'request-thaw', servers: ['s1', 's2'] }]);
    thawBoth(d);
    expect(d.of('set-volumes')[0]?.volumes.map((v) => [v.volumeId, v.snapshotRef, v.frozenAtUnixMs, v.snapshotAtUnixMs])).toEqual([
      ['v1', 'karbor-v1', 1_000, 1_100],
      ['v2', 'karbor-v2', 1_000, 1_100],
    ]);
    expect(d.of('commit')).toEqual([{ type: 'commit', objects: [] }]);
    d.feed({ type: 'committed', ok: true });
    expect(d.states().at(-1)).toBe('completed');
  });

  it('a finish before every server froze is refused and changes nothing', () => {
    const d = stagedCrash();
    d.feed({ type: 'frozen', event: frozen('s1') });
    const before = d.effects.length;
    const r = d.feed({ type: 'finish', volumes: given(1_000, 1_000) });
    expect(r.rejected?.reason).toBe('not-held');
    expect(d.effects.length).toBe(before);
  });

  it.each([
    ['a volume not in the plan', given(1_100, 1_200, [...VOLUMES, { id: 'v9', server: 's1' }]), 'volume v9 of s1 is not a volume of the plan'],
    ['a volume of the plan missing', given(1_100, 1_200, VOLUMES.slice(0, 1)), 'no snapshot given for volume v2 of s2'],
    ['a volume given twice', given(1_100, 1_200, [...VOLUMES, VOLUMES[0] as { id: string; server: string }]), 'volume v1 of s1 is given twice'],
  ])('%s: refused as invalid, the round stays held and a right finish still completes it', (_name, volumes, detail) => {
    const d = held();
    d.nowMs = 1_300;
    const r = d.feed({ type: 'finish', volumes });
    expect(r.rejected).toEqual({ reason: 'invalid-volumes', detail });
    expect(d.round.state).toBe('held');
    expect(d.of('request-thaw')).toEqual([]);
    expect(d.feed({ type: 'finish', volumes: given(1_100, 1_200) }).rejected).toBeUndefined();
    thawBoth(d);
    expect(d.of('commit')).toHaveLength(1);
  });

  it.each([
    ['started before every server froze', given(990, 1_200), 'started before every server was frozen at 1000: outside the frozen window'],
    ['ending after the finish arrived (a clock ahead)', given(1_100, 1_400), 'ends after the finish arrived at 1300'],
    ['ending before it starts', given(1_200, 1_100), 'ends before it starts'],
  ])('a snapshot %s fails the round: it thaws every server and commits nothing', (_name, volumes, detail) => {
    const d = held();
    d.nowMs = 1_300;
    expect(d.feed({ type: 'finish', volumes }).rejected).toBeUndefined();
    expect(d.round.failure?.reason).toBe('volume-snapshot-failed');
    expect(d.round.failure?.detail).toContain(detail);
    expect(d.of('request-thaw')).toEqual([{ type: 'request-thaw', servers: ['s1', 's2'] }]);
    thawBoth(d);
    expect(d.of('commit')).toEqual([]);
    // The caller's snapshots are the caller's: the clean-up deletes none of them.
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: false, volumes: [] }]);
    d.feed({ type: 'cleaned', volumes: [] });
    expect(d.round.state).toBe('aborted');
  });

  it('negative control skip-staged-window-check: a finish outside the window commits (the fault simulator must catch it)', () => {
    const created = CrashLevel.create({ planId: 'p', servers: ['s1', 's2'], volumes: VOLUMES, volumeBackend: false, freezeDeadlineMs: HOLD_MS, negativeControls: new Set(['skip-staged-window-check']) });
    if (!created.ok) throw new Error(created.message);
    const d = drive(created.level, NO_NEGATIVE_CONTROLS, 1_000, HOLD_MS);
    d.feed({ type: 'start' });
    d.feed({ type: 'frozen', event: frozen('s1') });
    d.feed({ type: 'frozen', event: frozen('s2') });
    d.nowMs = 1_300;
    d.feed({ type: 'finish', volumes: given(900, 1_200) });
    thawBoth(d);
    expect(d.round.failure).toBeNull();
    expect(d.of('commit')).toHaveLength(1);
  });

  it('the hold deadline passes while held: aborted (timeout), every server thawed; a finish after it is told so', () => {
    const d = held();
    d.nowMs = 1_800;
    d.feed({ type: 'timer-fired', name: 'hold' });
    expect(d.round.failure?.reason).toBe('timeout');
    expect(d.round.failure?.detail.startsWith(HOLD_DEADLINE_PASSED)).toBe(true);
    expect(d.of('request-thaw')).toEqual([{ type: 'request-thaw', servers: ['s1', 's2'] }]);
    // The crash level's own freeze deadline, armed after the hold's, is cancelled with the abort.
    expect(d.feed({ type: 'timer-fired', name: 'freeze-deadline' }).rejected?.reason).toBe('stale-timer');
    expect(d.feed({ type: 'finish', volumes: given(1_100, 1_200) }).rejected?.reason).toBe('hold-expired');
    thawBoth(d);
    d.feed({ type: 'cleaned', volumes: [] });
    expect(d.round.state).toBe('aborted');
    expect(d.feed({ type: 'finish', volumes: given(1_100, 1_200) }).rejected?.reason).toBe('hold-expired');
  });

  it('a second finish is refused as a duplicate, while committing and once completed', () => {
    const d = held();
    d.nowMs = 1_300;
    d.feed({ type: 'finish', volumes: given(1_100, 1_200) });
    expect(d.feed({ type: 'finish', volumes: given(1_100, 1_200) }).rejected?.reason).toBe('duplicate');
    thawBoth(d);
    d.feed({ type: 'committed', ok: true });
    expect(d.feed({ type: 'finish', volumes: given(1_100, 1_200) }).rejected?.reason).toBe('duplicate');
  });

  it('a cancel while held aborts and thaws, as for any round', () => {
    const d = held();
    d.feed({ type: 'cancel', detail: 'caller gave up' });
    expect(d.round.failure?.reason).toBe('cancelled');
    expect(d.of('request-thaw')).toHaveLength(1);
  });

  it('a round not begun as staged takes no finish', () => {
    const created = CrashLevel.create({ planId: 'p', servers: ['s1'], volumes: [], volumeBackend: false, freezeDeadlineMs: 500 });
    if (!created.ok) throw new Error(created.message);
    const d = drive(created.level);
    d.feed({ type: 'start' });
    expect(d.feed({ type: 'finish', volumes: [] }).rejected?.reason).toBe('not-staged');
  });
});

describe('staged round, app level (policy sync)', () => {
  function stagedApp(): Driver {
    const created = AppLevel.create({
      checkpointId: 7,
      graph: planGraphOf(['s1/a', 's2/b'], [['s1/a', 's2/b']]),
      policy: { kind: 'sync' },
      timeoutMs: HOLD_MS,
      inlineStateBytesMax: 1024,
      completedBefore: undefined,
      volumes: [{ id: 'v1', server: 's1' }],
      volumeBackend: false,
      planId: 'p',
    });
    if (!created.ok) throw new Error(created.message);
    const d = drive(created.level, NO_NEGATIVE_CONTROLS, 1_000, HOLD_MS);
    d.feed({ type: 'start' });
    return d;
  }

  it('every app acked: held; the finish after the last ack commits the acked objects and releases the apps', () => {
    const d = stagedApp();
    d.feed({ type: 'ack', event: ack('s1/a', { sent: { 's2/b': 1 } }) });
    d.nowMs = 1_050;
    d.feed({ type: 'ack', event: ack('s2/b', { received: { 's1/a': 1 } }) });
    expect(d.round.state).toBe('held');
    expect(d.of('commit')).toEqual([]);
    d.nowMs = 1_200;
    expect(d.feed({ type: 'finish', volumes: [{ volumeId: 'v1', server: 's1', snapshotRef: 'k-v1', startedAtUnixMs: 1_060, endedAtUnixMs: 1_100 }] }).rejected).toBeUndefined();
    expect(d.of('set-volumes')[0]?.volumes.map((v) => [v.volumeId, v.frozenAtUnixMs, v.snapshotAtUnixMs])).toEqual([['v1', 1_050, 1_060]]);
    expect(d.of('commit')[0]?.objects.map((o) => o.who)).toEqual(['s1/a', 's2/b']);
    d.feed({ type: 'committed', ok: true });
    expect(d.of('publish').filter((p) => p.command.type === 'complete').map((p) => p.server)).toEqual(['s1', 's2']);
  });

  it('a snapshot started before the last app acked fails the round: the apps get abort notices', () => {
    const d = stagedApp();
    d.feed({ type: 'ack', event: ack('s1/a', { sent: { 's2/b': 1 } }) });
    d.nowMs = 1_050;
    d.feed({ type: 'ack', event: ack('s2/b', { received: { 's1/a': 1 } }) });
    d.nowMs = 1_200;
    d.feed({ type: 'finish', volumes: [{ volumeId: 'v1', server: 's1', snapshotRef: 'k-v1', startedAtUnixMs: 1_010, endedAtUnixMs: 1_100 }] });
    expect(d.round.failure?.detail).toContain('started before every app acked at 1050');
    expect(d.of('publish').filter((p) => p.command.type === 'abort').map((p) => p.server)).toEqual(['s1', 's2']);
  });
});
