/**
 * The round machine (src/control/round.ts) at level app: the phases, the timers as effects, the
 * commit, and what an abort asks for. Inputs the round must refuse are listed in one table.
 */
import { describe, expect, it } from 'vitest';
import { AppLevel, type AppLevelConfig } from '../../src/control/round-app.js';
import { Round, type RoundInput, type RoundLevel } from '../../src/control/round.js';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';
import { ack, CHECKPOINT_ID, decline, drive, planGraphOf, progress, ref, type Driver, type InputAt } from '../support/round-fixtures.js';

function appLevel(config: Partial<AppLevelConfig> = {}): AppLevel {
  const created = AppLevel.create({
    checkpointId: CHECKPOINT_ID,
    graph: planGraphOf(['s1/a', 's2/b'], [['s1/a', 's2/b']]),
    policy: { kind: 'aligned' },
    timeoutMs: 1_000,
    inlineStateBytesMax: 1024,
    completedBefore: 3,
    volumes: [],
    volumeBackend: false,
    planId: 'p',
    ...config,
  });
  if (!created.ok) throw new Error(created.message);
  return created.level;
}

function started(level: RoundLevel = appLevel()): Driver {
  const d = drive(level);
  d.feed({ type: 'start' });
  return d;
}

/** A one-app round whose commit was asked for. */
function committing(): Driver {
  const d = started(appLevel({ graph: planGraphOf(['s1/a'], []) }));
  d.feed({ type: 'ack', event: ack('s1/a') });
  expect(d.of('commit')).toHaveLength(1);
  return d;
}

describe('round at level app', () => {
  it('start: the record goes triggering then collecting, the checkpoint timer starts, one trigger effect names every server', () => {
    const d = started();
    expect(d.states()).toEqual(['triggering', 'collecting']);
    expect(d.of('start-timer')).toContainEqual({ type: 'start-timer', name: 'checkpoint', ms: 1_000 });
    const [t] = d.of('trigger');
    expect(t?.triggers).toEqual([
      { server: 's1', apps: ['a'], initiatorApps: ['a'], backEdgeChannels: [] },
      { server: 's2', apps: ['b'], initiatorApps: [], backEdgeChannels: [] },
    ]);
    expect(t?.completedCheckpointId).toBe(3);
  });

  it('every ack: the commit checks every acked object, then the round completes and ends', () => {
    const d = started();
    d.feed({ type: 'ack', event: ack('s1/a', { sent: { 's1/a->s2/b': 2 } }) });
    expect(d.of('commit')).toEqual([]);
    d.feed({ type: 'ack', event: ack('s2/b', { received: { 's1/a->s2/b': 2 } }) });
    expect(d.states()).toEqual(['triggering', 'collecting', 'committing']);
    expect(d.of('cancel-timer')).toContainEqual({ type: 'cancel-timer', name: 'checkpoint' });
    expect(d.of('commit')[0]?.objects.map((o) => o.who)).toEqual(['s1/a', 's2/b']);
    d.feed({ type: 'committed', ok: true });
    expect(d.states().at(-1)).toBe('completed');
    expect(d.effects.at(-1)).toEqual({ type: 'ended', state: 'completed' });
  });

  it('an orphan in the acked counts aborts the round before any commit', () => {
    const d = started();
    d.feed({ type: 'ack', event: ack('s1/a', { sent: { 's1/a->s2/b': 1 } }) });
    d.feed({ type: 'ack', event: ack('s2/b', { received: { 's1/a->s2/b': 2 } }) });
    expect(d.of('commit')).toEqual([]);
    expect(d.round.failure?.reason).toBe('internal');
    expect(d.round.failure?.detail).toMatch(/the cut is not consistent/);
  });

  it('an ack while the abort cleans up is refused, and the object it names is deleted once that clean-up answered', () => {
    const d = started();
    d.feed({ type: 'cancel', detail: 'a manual request outranks it' });
    expect(d.round.state).toBe('aborting');
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: true, volumes: [] }]);
    const r = d.feed({ type: 'ack', event: ack('s1/a') });
    expect(r.rejected?.reason).toBe('aborted');
    // The clean-up under way may have listed the prefix before this object was stored.
    expect(d.of('clean-up')).toHaveLength(1);
    const before = d.effects.length;
    d.feed({ type: 'cleaned', volumes: [] });
    expect(d.effects.slice(before).map((e) => e.type)).toEqual(['set-state', 'persist', 'clean-up', 'start-timer', 'ended']);
    expect(d.of('clean-up')[1]).toEqual({ type: 'clean-up', objects: true, volumes: [], lateObjects: ['cp/7/s1/a/state'] });
    expect(d.round.state).toBe('aborted');
  });

  it('an ack after the round ended aborted (its trigger came late, or the abort notice was lost): a clean-up of the objects it names', () => {
    const d = started();
    d.feed({ type: 'cancel', detail: 'stop' });
    d.feed({ type: 'cleaned', volumes: [] });
    expect(d.round.state).toBe('aborted');
    const late = Object.assign({}, ack('s2/b'), { channelState: ref('cp/7/s2/b/channels') });
    const r = d.feed({ type: 'ack', event: late });
    expect(r.rejected?.reason).toBe('finished');
    expect(r.effects.filter((e) => e.type === 'clean-up')).toEqual([{ type: 'clean-up', objects: true, volumes: [], lateObjects: ['cp/7/s2/b/state', 'cp/7/s2/b/channels'] }]);
    // Its outcome is taken (logged when objects were left), the record is not changed.
    const cleaned = d.feed({ type: 'cleaned', objectsError: 'NATS down', volumes: [] });
    expect(cleaned.rejected).toBeUndefined();
    expect(cleaned.effects.map((e) => e.type)).toEqual(['log']);
  });

  it("a decline after the round ended aborted: the checkpoint's prefix is swept again (a store it saw fail may have landed)", () => {
    const d = started();
    d.feed({ type: 'cancel', detail: 'stop' });
    d.feed({ type: 'cleaned', volumes: [] });
    const r = d.feed({ type: 'decline', event: decline('s2', 'b', 'store-failed', 'timeout on put (it may have landed)') });
    expect(r.rejected?.reason).toBe('finished');
    expect(r.effects.filter((e) => e.type === 'clean-up')).toEqual([{ type: 'clean-up', objects: true, volumes: [] }]);
  });

  it("an ack after the round completed deletes nothing: its object is the record's", () => {
    const d = started(appLevel({ graph: planGraphOf(['s1/a'], []) }));
    d.feed({ type: 'ack', event: ack('s1/a') });
    d.feed({ type: 'committed', ok: true });
    expect(d.feed({ type: 'ack', event: ack('s1/a') }).rejected?.reason).toBe('finished');
    expect(d.of('clean-up')).toEqual([]);
  });

  it('a decline aborts: the part says why, every server gets an abort notice, every stored part is cleaned up, then aborted', () => {
    const d = started();
    d.feed({ type: 'ack', event: ack('s1/a') });
    d.feed({ type: 'decline', event: decline('s2', 'b', 'channel-failed', 'gap on s1/a->s2/b') });
    expect(d.of('patch-part')).toContainEqual({ type: 'patch-part', server: 's2', app: 'b', patch: { failureReason: 'channel-failed', failureDetail: 'gap on s1/a->s2/b' } });
    expect(d.round.failure).toEqual({ reason: 'channel-failed', detail: 's2/b declined (channel-failed): gap on s1/a->s2/b' });
    expect(d.of('publish').map((p) => [p.server, p.command.type, p.bestEffort])).toEqual([
      ['s1', 'abort', true],
      ['s2', 'abort', true],
    ]);
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: true, volumes: [] }]);
    expect(d.states().at(-1)).toBe('aborting');
    d.feed({ type: 'cleaned', volumes: [] });
    expect(d.states().at(-1)).toBe('aborted');
    expect(d.effects.at(-3)).toEqual({ type: 'persist' });
    expect(d.effects.at(-1)).toEqual({ type: 'ended', state: 'aborted' });
  });

  it("an aborted round sweeps its prefix once more after the agents' own timeout: an answer lost or held back by the abort notice leaves its object behind", () => {
    const d = started();
    d.feed({ type: 'cancel', detail: 'stop' });
    d.feed({ type: 'cleaned', volumes: [] });
    // Armed before the end (1 000 ms checkpoint timeout + 5 000 ms settle), fired after it.
    expect(d.effects.at(-2)).toEqual({ type: 'start-timer', name: 'late-sweep', ms: 6_000 });
    const r = d.feed({ type: 'timer-fired', name: 'late-sweep' });
    expect(r.rejected).toBeUndefined();
    expect(r.effects).toEqual([{ type: 'clean-up', objects: true, volumes: [] }]);
    expect(d.feed({ type: 'cleaned', volumes: [] }).rejected).toBeUndefined();
  });

  it('a timeout names the silent apps first, then those that answered with their phase, and marks the silent parts', () => {
    const level = appLevel({ graph: planGraphOf(['s1/a', 's2/b', 's3/c'], [['s1/a', 's2/b'], ['s2/b', 's3/c']]) });
    const d = started(level);
    d.feed({ type: 'ack', event: ack('s1/a') });
    d.feed({ type: 'progress', event: progress('s2/b', 'aligning') });
    d.nowMs += 1_000;
    d.feed({ type: 'timer-fired', name: 'checkpoint' });
    expect(d.round.failure).toEqual({ reason: 'timeout', detail: 'not every app acked within 1000 ms: no answer from s3/c; no ack yet from s2/b (aligning)' });
    expect(d.of('patch-part')).toEqual([{ type: 'patch-part', server: 's3', app: 'c', patch: { failureReason: 'timeout', failureDetail: 'no answer to the trigger before the timeout' } }]);
  });

  it('an inline state above the trigger limit fails the round as declined', () => {
    const d = started(appLevel({ inlineStateBytesMax: 2 }));
    const big = Object.assign({}, ack('s1/a'), { state: { kind: 'inline' as const, bytes: new Uint8Array(3) } });
    d.feed({ type: 'ack', event: big });
    expect(d.round.failure?.reason).toBe('declined');
    expect(d.round.failure?.detail).toMatch(/3 bytes of state inline, above the trigger's limit of 2/);
  });

  it('a commit known not to have stored the record aborts with its reason and cleans up', () => {
    const d = committing();
    d.feed({ type: 'committed', ok: false, reason: 'store-failed', detail: 'cp/7/s1/a/state missing' });
    expect(d.round.failure).toEqual({ reason: 'store-failed', detail: 'cp/7/s1/a/state missing' });
    expect(d.of('clean-up')).toHaveLength(1);
  });

  it('a commit write that may have landed is read back before anything is deleted: the record says completed, the round completes', () => {
    const d = committing();
    d.feed({ type: 'commit-unknown', detail: 'timeout on put' });
    expect(d.of('read-record')).toHaveLength(1);
    expect(d.round.state).toBe('committing');
    expect(d.of('clean-up')).toEqual([]);
    d.feed({ type: 'record-read', ok: true, state: 'completed' });
    expect(d.round.state).toBe('completed');
    expect(d.effects.at(-1)).toEqual({ type: 'ended', state: 'completed' });
    expect(d.of('clean-up')).toEqual([]);
  });

  it('a commit write that may have landed and did not: the round aborts as store-failed, saying why, and cleans up', () => {
    const d = committing();
    d.feed({ type: 'commit-unknown', detail: 'timeout on put' });
    d.feed({ type: 'record-read', ok: true, state: 'committing' });
    expect(d.round.failure).toEqual({ reason: 'store-failed', detail: 'timeout on put; the record read back says committing: the commit did not land' });
    expect(d.of('clean-up')).toHaveLength(1);
  });

  it('a commit that never answers is read back at the commit timer, and read again while the read does not answer', () => {
    const d = committing();
    d.feed({ type: 'timer-fired', name: 'commit' });
    expect(d.round.failure).toBeNull();
    expect(d.of('read-record')).toHaveLength(1);
    d.feed({ type: 'record-read', ok: false, detail: 'NATS down' });
    expect(d.of('read-record')).toHaveLength(1);
    expect(d.of('start-timer').at(-1)).toEqual({ type: 'start-timer', name: 'commit', ms: 2_000 });
    d.feed({ type: 'timer-fired', name: 'commit' });
    expect(d.of('read-record')).toHaveLength(2);
    // The commit's own answer, if it comes first, settles it; the read that follows is refused.
    d.feed({ type: 'committed', ok: true });
    expect(d.round.state).toBe('completed');
    expect(d.feed({ type: 'record-read', ok: true, state: 'completed' }).rejected?.reason).toBe('finished');
  });

  it('a cancel while the commit is under way is refused as too late: the commit landing completes the round', () => {
    const d = committing();
    const r = d.feed({ type: 'cancel', detail: 'CancelCheckpoint' });
    expect(r.rejected?.reason).toBe('committing');
    expect(r.effects).toEqual([]);
    d.feed({ type: 'commit-unknown', detail: 'lost reply' });
    expect(d.feed({ type: 'cancel', detail: 'again' }).rejected?.reason).toBe('committing');
    d.feed({ type: 'record-read', ok: true, state: 'completed' });
    expect(d.round.state).toBe('completed');
    expect(d.of('clean-up')).toEqual([]);
  });

  it("a failure while the commit is under way waits for its outcome: dropped if it landed, the round's failure if it did not", () => {
    const landed = committing();
    landed.feed({ type: 'publish-failed', server: 's1', command: 'abort', detail: 'closed' });
    expect(landed.round.state).toBe('committing');
    expect(landed.of('clean-up')).toEqual([]);
    landed.feed({ type: 'committed', ok: true });
    expect(landed.round.state).toBe('completed');

    const lost = committing();
    lost.feed({ type: 'publish-failed', server: 's1', command: 'abort', detail: 'closed' });
    lost.feed({ type: 'committed', ok: false, reason: 'store-failed', detail: 'object missing' });
    expect(lost.round.failure).toEqual({ reason: 'internal', detail: 'abort for s1 not sent: closed' });
    expect(lost.of('clean-up')).toHaveLength(1);
  });

  it('the stored record follows the live one: one refresh timer for many acks, none once the commit is asked for', () => {
    const d = started(appLevel({ graph: planGraphOf(['s1/a', 's1/b', 's1/c'], []) }));
    d.feed({ type: 'ack', event: ack('s1/a') });
    d.feed({ type: 'ack', event: ack('s1/b') });
    expect(d.of('start-timer').filter((t) => t.name === 'refresh')).toHaveLength(1);
    d.feed({ type: 'timer-fired', name: 'refresh' });
    expect(d.of('persist')).toHaveLength(1);
    d.feed({ type: 'ack', event: ack('s1/c') });
    expect(d.of('commit')).toHaveLength(1);
    expect(d.feed({ type: 'timer-fired', name: 'refresh' }).rejected?.reason).toBe('stale-timer');
    expect(d.of('persist')).toHaveLength(1);
  });

  it('a failed write of the live record is written again at the next refresh', () => {
    const d = started();
    d.feed({ type: 'timer-fired', name: 'refresh' });
    const timers = d.of('start-timer').length;
    d.feed({ type: 'stored', ok: false, detail: 'NATS down' });
    expect(d.of('start-timer').slice(timers)).toEqual([{ type: 'start-timer', name: 'refresh', ms: 100 }]);
  });

  it('a trigger that cannot be sent fails the round as internal', () => {
    const d = started();
    d.feed({ type: 'publish-failed', server: 's2', command: 'trigger', detail: 'not encodable' });
    expect(d.round.failure).toEqual({ reason: 'internal', detail: 'trigger for s2 not sent: not encodable' });
  });

  it('a sync checkpoint sends its complete notice to every server; others leave it to the next trigger', () => {
    const sync = started(appLevel({ graph: planGraphOf(['s1/a'], []), policy: { kind: 'sync' } }));
    sync.feed({ type: 'ack', event: ack('s1/a') });
    sync.feed({ type: 'committed', ok: true });
    expect(sync.of('publish').map((p) => p.command.type)).toEqual(['complete']);
    const aligned = started(appLevel({ graph: planGraphOf(['s1/a'], []) }));
    aligned.feed({ type: 'ack', event: ack('s1/a') });
    aligned.feed({ type: 'committed', ok: true });
    expect(aligned.of('publish')).toEqual([]);
  });

  it('level none with volumes copies them one by one before the commit, and records each copy', () => {
    const d = started(appLevel({ graph: planGraphOf(['s1/a'], []), policy: { kind: 'none' }, volumes: [{ id: 'v1', server: 's1' }], volumeBackend: true }));
    d.feed({ type: 'ack', event: ack('s1/a') });
    expect(d.of('snapshot-volumes')).toEqual([{ type: 'snapshot-volumes', oneByOne: true }]);
    expect(d.of('commit')).toEqual([]);
    d.feed({ type: 'volume-snapshot-finished', ok: true, taken: [{ volumeId: 'v1', server: 's1', snapshotRef: 'v1@7', startedAtUnixMs: 1_000, endedAtUnixMs: 1_000 }] });
    expect(d.of('set-volumes')[0]?.volumes).toEqual([{ volumeId: 'v1', server: 's1', snapshotRef: 'v1@7', frozenAtUnixMs: 0, snapshotAtUnixMs: 1_000, thawedAtUnixMs: 0 }]);
    expect(d.of('commit')).toHaveLength(1);
  });
});

describe('round inputs that are refused', () => {
  const cases: { name: string; before: RoundInput['type'][]; input: InputAt; reason: string }[] = [
    { name: 'an ack before the round started', before: [], input: { type: 'ack', event: ack('s1/a') }, reason: 'not-started' },
    { name: 'a second start', before: ['start'], input: { type: 'start' }, reason: 'already-started' },
    { name: 'a duplicate ack', before: ['start', 'ack'], input: { type: 'ack', event: ack('s1/a') }, reason: 'duplicate' },
    { name: 'an ack from an app outside the plan', before: ['start'], input: { type: 'ack', event: ack('s9/z') }, reason: 'unknown-participant' },
    { name: 'a frozen event at level app', before: ['start'], input: { type: 'frozen', event: { requestId: 'r', tenant: 't', server: 's1', epoch: 0, type: 'frozen', checkpointId: CHECKPOINT_ID, frozenAtUnixMs: 0, hooksMs: 0, hooks: [] } }, reason: 'unexpected' },
    { name: 'a timer that is not armed', before: ['start'], input: { type: 'timer-fired', name: 'settle' }, reason: 'stale-timer' },
    { name: 'a commit outcome while collecting', before: ['start'], input: { type: 'committed', ok: true }, reason: 'unexpected' },
    { name: 'a clean-up outcome nobody asked for', before: ['start'], input: { type: 'cleaned', volumes: [] }, reason: 'unexpected' },
    { name: 'a volume result without a call', before: ['start'], input: { type: 'volume-snapshot-finished', ok: true, taken: [] }, reason: 'unexpected' },
    { name: 'an unknown commit outcome while collecting', before: ['start'], input: { type: 'commit-unknown', detail: 'timeout' }, reason: 'unexpected' },
    { name: 'a record read back that nobody asked for', before: ['start'], input: { type: 'record-read', ok: true, state: 'completed' }, reason: 'unexpected' },
    { name: 'a cancel of an aborting round', before: ['start', 'cancel'], input: { type: 'cancel', detail: 'again' }, reason: 'aborted' },
  ];
  const prior: Record<string, InputAt> = {
    start: { type: 'start' },
    ack: { type: 'ack', event: ack('s1/a') },
    cancel: { type: 'cancel', detail: 'stop' },
  };
  for (const c of cases) {
    it(`${c.name}: rejected as ${c.reason}, no effect`, () => {
      const d = drive(appLevel());
      for (const b of c.before) d.feed(prior[b] as InputAt);
      const r = d.feed(c.input);
      expect(r.rejected?.reason).toBe(c.reason);
      expect(r.effects).toEqual([]);
    });
  }

  it('limits are validated when the round is made', () => {
    const r = Round.create({ checkpointId: 1, timeoutMs: 0, commitTimeoutMs: 1, refreshMs: 1, settleMs: -1, negativeControls: NO_NEGATIVE_CONTROLS }, appLevel());
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toBe('timeoutMs must be a positive integer, got 0; settleMs must be a positive integer, got -1');
  });
});
