/**
 * The round machine at level app over opaque channels: the core's QuiescePlan drives quiesce,
 * capture and resume commands per server; the cut is checked on the reported positions; an abort
 * resumes what it quiesced and waits for captures under way, so that their states are cleaned up.
 */
import { describe, expect, it } from 'vitest';
import { OpaqueLevel } from '../../src/control/round-opaque.js';
import { captured, decline, drive, graphOf, quiesced, type Driver } from '../support/round-fixtures.js';

function chain(): Driver {
  const d = drive(new OpaqueLevel({ graph: graphOf(['o1/A', 'o2/B'], [['o1/A', 'o2/B']]) }));
  d.feed({ type: 'start' });
  return d;
}

const commands = (d: Driver) => d.of('publish').map((p) => `${p.server} ${p.command.type}${'apps' in p.command ? ` ${p.command.apps.join(',')}` : ''}${p.command.type === 'quiesce' ? ` ${JSON.stringify(p.command.drainTo)}` : ''}`);

describe('round at level app over opaque channels', () => {
  it('upstream first: quiesce A, capture A and quiesce B to its position, resume downstream first, then commit both states', () => {
    const d = chain();
    d.feed({ type: 'quiesced', event: quiesced('o1/A', { 'o1/A->o2/B': 5 }) });
    d.feed({ type: 'captured', event: captured('o1/A') });
    d.feed({ type: 'quiesced', event: quiesced('o2/B', {}) });
    d.nowMs += 30;
    d.feed({ type: 'captured', event: captured('o2/B') });
    expect(commands(d)).toEqual(['o1 quiesce A {}', 'o1 capture A', 'o2 quiesce B {"o1/A->o2/B":5}', 'o2 capture B', 'o2 resume B', 'o1 resume A']);
    expect(d.of('patch-part').filter((p) => p.patch.alignmentMs !== undefined).map((p) => [p.app, p.patch.alignmentMs])).toEqual([
      ['B', 30],
      ['A', 30],
    ]);
    expect(d.of('commit')[0]?.objects.map((o) => o.who)).toEqual(['o1/A', 'o2/B']);
  });

  it('a chain of three: the source resumes once its direct downstream is captured, which stays quiesced until its own downstream is captured', () => {
    // DESIGN.md section 3: upstream stays quiesced until its downstream has snapshotted. Once B is
    // captured, what A sends next waits in front of B (still quiesced), outside the cut, so A may
    // run again while C still drains: A's recorded stall may then be shorter than C's.
    const d = drive(new OpaqueLevel({ graph: graphOf(['o1/A', 'o2/B', 'o3/C'], [['o1/A', 'o2/B'], ['o2/B', 'o3/C']]) }));
    d.feed({ type: 'start' });
    d.feed({ type: 'quiesced', event: quiesced('o1/A', { 'o1/A->o2/B': 5 }) });
    d.nowMs += 10;
    d.feed({ type: 'quiesced', event: quiesced('o2/B', { 'o2/B->o3/C': 4 }) });
    d.nowMs += 10;
    d.feed({ type: 'captured', event: captured('o1/A') });
    d.feed({ type: 'captured', event: captured('o2/B') });
    expect(commands(d).filter((c) => c.includes('resume'))).toEqual(['o1 resume A']);
    d.feed({ type: 'quiesced', event: quiesced('o3/C', {}) });
    d.nowMs += 50;
    d.feed({ type: 'captured', event: captured('o3/C') });
    expect(commands(d).filter((c) => c.includes('resume'))).toEqual(['o1 resume A', 'o3 resume C', 'o2 resume B']);
    const stall = Object.fromEntries(d.of('patch-part').filter((p) => p.patch.alignmentMs !== undefined).map((p) => [p.app, p.patch.alignmentMs]));
    expect(stall).toEqual({ A: 20, B: 70, C: 60 });
    expect(d.of('commit')).toHaveLength(1);
  });

  it('an abort resumes every app still quiesced, downstream first', () => {
    const d = drive(new OpaqueLevel({ graph: graphOf(['o1/A', 'o2/B', 'o3/C'], [['o1/A', 'o2/B'], ['o2/B', 'o3/C']]) }));
    d.feed({ type: 'start' });
    d.feed({ type: 'quiesced', event: quiesced('o1/A', { 'o1/A->o2/B': 5 }) });
    d.feed({ type: 'quiesced', event: quiesced('o2/B', { 'o2/B->o3/C': 4 }) });
    d.feed({ type: 'cancel', detail: 'rollback of the plan' });
    expect(commands(d).filter((c) => c.includes('resume'))).toEqual(['o3 resume C', 'o2 resume B', 'o1 resume A']);
  });

  it('a decline resumes every app told to quiesce, aborts with the hook named, and cleans every part up', () => {
    const d = chain();
    d.feed({ type: 'quiesced', event: quiesced('o1/A', { 'o1/A->o2/B': 5 }) });
    d.feed({ type: 'captured', event: captured('o1/A') });
    const failing = Object.assign(decline('o2', 'B', 'hook-failed', 'quiesce hook failed'), {
      hooks: [{ hook: '10-db', action: 'freeze' as const, exitCode: 3, timedOut: false, durationMs: 5, stderr: 'lock held\n', attempts: 1, app: 'B' }],
    });
    d.feed({ type: 'decline', event: failing });
    expect(d.round.failure).toEqual({ reason: 'hook-failed', detail: 'o2/B declined (hook-failed): quiesce hook failed [10-db freeze exit 3: lock held]' });
    expect(commands(d).slice(-2)).toEqual(['o1 resume A', 'o2 resume B']);
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: true, volumes: [] }]);
  });

  it('an abort waits for a capture under way, so the state it stores is recorded and deleted', () => {
    const d = chain();
    d.feed({ type: 'quiesced', event: quiesced('o1/A', {}) });
    d.feed({ type: 'cancel', detail: 'rollback of the plan' });
    expect(d.of('clean-up')).toEqual([]);
    expect(d.of('start-timer').map((t) => t.name)).toContain('settle');
    d.feed({ type: 'captured', event: captured('o1/A') });
    expect(d.of('patch-part').some((p) => p.app === 'A' && p.patch.state !== undefined)).toBe(true);
    expect(d.of('clean-up')).toEqual([{ type: 'clean-up', objects: true, volumes: [] }]);
  });

  it('a quiesced report the plan does not expect fails the round', () => {
    const d = chain();
    const r = d.feed({ type: 'quiesced', event: quiesced('o2/B', {}) });
    expect(r.rejected?.reason).toBe('unexpected');
    expect(d.round.failure?.reason).toBe('internal');
  });

  it('a timeout names the apps not captured and where each stands', () => {
    const d = chain();
    d.feed({ type: 'quiesced', event: quiesced('o1/A', {}) });
    d.feed({ type: 'timer-fired', name: 'checkpoint' });
    expect(d.round.failure?.detail).toBe('not every app acked within 1000 ms: not captured: o1/A (capturing), o2/B (quiescing)');
  });
});
