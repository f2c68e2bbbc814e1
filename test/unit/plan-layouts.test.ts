/** coordinator/plan-layouts.ts: which servers get their trigger part beside the plan's broadcast. */
import { describe, expect, it } from 'vitest';
import { PlanLayouts, type ServerPart } from '../../coordinator/plan-layouts.js';

const parts: ServerPart[] = ['s1', 's2', 's3'].map((server) => ({ server, apps: ['a'], initiatorApps: ['a'], backEdgeChannels: [] }));
const L = PlanLayouts.idOf(parts);
const servers = (p: readonly ServerPart[]): string[] => p.map((x) => x.server);

describe('trigger parts beside the broadcast', () => {
  it('the first checkpoint sends every part; then only to servers that did not answer the previous one', () => {
    const l = new PlanLayouts();
    expect(servers(l.missing('t', 'p', 1, L, parts))).toEqual(['s1', 's2', 's3']);
    for (const s of ['s1', 's2', 's3']) l.answered('t', s, 1);
    expect(l.missing('t', 'p', 2, L, parts)).toEqual([]);
    // s3 lost its layout (say its agent restarted and its registration was lost): it stays silent.
    l.answered('t', 's1', 2);
    l.answered('t', 's2', 2);
    expect(servers(l.missing('t', 'p', 3, L, parts))).toEqual(['s3']);
  });

  it('another layout (the plan or the policy changed) sends every part again', () => {
    const l = new PlanLayouts();
    l.missing('t', 'p', 1, L, parts);
    for (const s of ['s1', 's2', 's3']) l.answered('t', s, 1);
    const changed = parts.map((p) => ({ ...p, initiatorApps: [] }));
    expect(servers(l.missing('t', 'p', 2, PlanLayouts.idOf(changed), changed))).toEqual(['s1', 's2', 's3']);
  });

  it('an agent that registers anew is sent its part; answers of another tenant confirm nothing', () => {
    const l = new PlanLayouts();
    l.missing('t', 'p', 1, L, parts);
    for (const s of ['s1', 's2', 's3']) l.answered('t', s, 1);
    l.forget('t', 's2');
    l.answered('other', 's1', 1);
    expect(servers(l.missing('t', 'p', 2, L, parts))).toEqual(['s2']);
  });

  it('the layout id names the parts by their content, and is the same for the same parts array', () => {
    expect(PlanLayouts.idOf(parts)).toBe(L);
    expect(PlanLayouts.idOf(parts.map((p) => ({ ...p })))).toBe(L);
    expect(PlanLayouts.idOf([...parts].reverse())).not.toBe(L);
    expect(L).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});
