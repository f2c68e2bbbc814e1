import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QuiescePlan, type QuiesceEffect } from '../../src/core/quiesce.js';
import { validateGraph } from '../../src/graph/index.js';

function graph(edges: [string, string][], extra: string[] = []) {
  const processes = [...new Set([...extra, ...edges.flat()])];
  const v = validateGraph({ processes, channels: edges.map(([from, to]) => ({ from, to })) });
  if (!v.ok) throw new Error(v.errors.map((e) => e.message).join());
  return v.graph;
}

const types = (effects: readonly QuiesceEffect[]) => effects.map((e) => ('apps' in e ? `${e.type} ${e.apps.join(',')}` : e.type));

describe('opaque quiesce plan', () => {
  it('chain of three: upstream first, downstream drains to the reported position, each resumes once its downstream is captured', () => {
    const p = new QuiescePlan(graph([['a', 'b'], ['b', 'c']]));
    expect(types(p.step({ type: 'start' }).effects)).toEqual(['quiesce a']);
    const qa = p.step({ type: 'quiesced', app: 'a', outputPositions: { 'a->b': 17 } }).effects;
    expect(types(qa)).toEqual(['capture a', 'quiesce b']);
    expect(qa[1]).toMatchObject({ drainTo: { 'a->b': 17 } });
    expect(types(p.step({ type: 'captured', app: 'a' }).effects)).toEqual([]);
    expect(types(p.step({ type: 'quiesced', app: 'b', outputPositions: { 'b->c': 5 } }).effects)).toEqual(['capture b', 'quiesce c']);
    // a may run again: b is captured and stays quiesced, so what a sends now waits outside the cut.
    expect(types(p.step({ type: 'captured', app: 'b' }).effects)).toEqual(['resume a']);
    expect(types(p.step({ type: 'quiesced', app: 'c', outputPositions: {} }).effects)).toEqual(['capture c']);
    expect(types(p.step({ type: 'captured', app: 'c' }).effects)).toEqual(['resume c', 'resume b', 'done']);
  });

  it('a strongly connected component is quiesced, captured and resumed as one', () => {
    const p = new QuiescePlan(graph([['src', 'x'], ['x', 'y'], ['y', 'x']]));
    p.step({ type: 'start' });
    expect(types(p.step({ type: 'quiesced', app: 'src', outputPositions: { 'src->x': 3 } }).effects)).toEqual(['capture src', 'quiesce x,y']);
    expect(p.step({ type: 'quiesced', app: 'x', outputPositions: {} }).effects).toEqual([]);
    expect(types(p.step({ type: 'quiesced', app: 'y', outputPositions: {} }).effects)).toEqual(['capture x,y']);
  });

  it('a diamond quiesces the join only once both branches are quiesced', () => {
    const p = new QuiescePlan(graph([['a', 'b'], ['a', 'c'], ['b', 'd'], ['c', 'd']]));
    p.step({ type: 'start' });
    expect(types(p.step({ type: 'quiesced', app: 'a', outputPositions: {} }).effects)).toEqual(['capture a', 'quiesce b', 'quiesce c']);
    expect(types(p.step({ type: 'quiesced', app: 'b', outputPositions: {} }).effects)).toEqual(['capture b']);
    expect(types(p.step({ type: 'quiesced', app: 'c', outputPositions: {} }).effects)).toEqual(['capture c', 'quiesce d']);
  });

  it('a failure resumes every app already touched and aborts', () => {
    const p = new QuiescePlan(graph([['a', 'b'], ['b', 'c']]));
    p.step({ type: 'start' });
    p.step({ type: 'quiesced', app: 'a', outputPositions: {} });
    const r = p.step({ type: 'failed', app: 'b', reason: 'hook exited 1' });
    expect(types(r.effects)).toEqual(['resume a,b', 'aborted']);
    expect(p.step({ type: 'captured', app: 'a' }).rejected?.reason).toBe('finished');
  });

  it('reports out of order are rejected with a reason, not thrown', () => {
    const p = new QuiescePlan(graph([['a', 'b']]));
    expect(p.step({ type: 'quiesced', app: 'a', outputPositions: {} }).rejected?.reason).toBe('not-started');
    p.step({ type: 'start' });
    expect(p.step({ type: 'captured', app: 'a' }).rejected?.reason).toBe('unexpected');
    expect(p.step({ type: 'quiesced', app: 'zz', outputPositions: {} }).rejected?.reason).toBe('unknown-app');
  });

  it('on any DAG, no app resumes before everything downstream of it is captured, and every app is captured once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 50 }), (n, raw, picks) => {
        const names = Array.from({ length: n }, (_, i) => `p${i}`);
        const seen = new Set<string>();
        const edges: [string, string][] = [];
        for (const [x, y] of raw) {
          const a = x % n;
          const b = y % n;
          if (a >= b || seen.has(`${a}-${b}`)) continue;
          seen.add(`${a}-${b}`);
          edges.push([names[a] as string, names[b] as string]);
        }
        const g = graph(edges, names);
        const p = new QuiescePlan(g);
        const captured = new Set<string>();
        const resumed = new Set<string>();
        const pendingQuiesce: string[] = [];
        const pendingCapture: string[] = [];
        const apply = (effects: readonly QuiesceEffect[]): void => {
          for (const e of effects) {
            if (e.type === 'quiesce') pendingQuiesce.push(...e.apps);
            if (e.type === 'capture') pendingCapture.push(...e.apps);
            if (e.type === 'resume') {
              for (const a of e.apps) {
                const downstream = g.channels.filter((c) => c.from === a).map((c) => c.to);
                for (const d of downstream) if (!captured.has(d)) throw new Error(`${a} resumed before ${d} was captured`);
                resumed.add(a);
              }
            }
          }
        };
        apply(p.step({ type: 'start' }).effects);
        let k = 0;
        while (pendingQuiesce.length + pendingCapture.length > 0) {
          const pick = picks[k++ % Math.max(1, picks.length)] ?? 0;
          const fromQuiesce = pendingCapture.length === 0 || (pendingQuiesce.length > 0 && pick % 2 === 0);
          const list = fromQuiesce ? pendingQuiesce : pendingCapture;
          const [app] = list.splice(pick % list.length, 1) as [string];
          if (fromQuiesce) apply(p.step({ type: 'quiesced', app, outputPositions: {} }).effects);
          else {
            if (captured.has(app)) throw new Error(`${app} captured twice`);
            captured.add(app);
            apply(p.step({ type: 'captured', app }).effects);
          }
        }
        expect(captured.size).toBe(n);
        expect(resumed.size).toBe(n);
      }),
      { numRuns: 200 },
    );
  });
});
