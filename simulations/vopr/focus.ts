/**
 * The minimal trace of a failure: of the events up to the first violation, the last few that concern
 * what it names (its checkpoints, plans, agents, idempotency keys), so the report shows the story of
 * the failing checkpoint rather than the heartbeat of the whole world. When the violation names
 * nothing the trace knows, the last events before it.
 */
import type { Violation } from './invariants.js';

export const FOCUS_LINES_MAX = 40;

/** Patterns of trace lines about what the violation's words name. */
export function focusPatterns(v: Violation): RegExp[] {
  const out: RegExp[] = [];
  const ids = new Set<string>();
  for (const m of v.detail.matchAll(/\bckpt[/-](\d+)|\bcheckpoints? (\d+)|checkpoint \d+ \((\d+)\)|in flight \(([\d, ]+)\)|\bby checkpoint (\d+)/g)) {
    for (const g of m.slice(1)) if (g !== undefined) for (const id of g.split(/,\s*/)) if (id !== '') ids.add(id);
  }
  for (const id of ids) out.push(new RegExp(`\\bckpt[ /-]${id}\\b|\\bcheckpoint ${id}\\b|:${id}:`));
  // The checkpoints it names tell its story best; plans, agents and keys only when it names none.
  if (out.length > 0) return out;
  for (const m of v.detail.matchAll(/\bplan (p\d+)/g)) out.push(new RegExp(`\\b${m[1]}\\b|^ *\\d+ op `));
  for (const m of v.detail.matchAll(/\bagent ([sr]\d+)\b|\b([sr]\d+)\/a\d+/g)) out.push(new RegExp(`\\b${m[1] ?? m[2]}\\b`));
  for (const m of v.detail.matchAll(/\bkey (k\d+-\d+)/g)) out.push(new RegExp(`\\b${m[1]}\\b`));
  return out;
}

export function focusTrace(lines: readonly string[], v: Violation | undefined, max = FOCUS_LINES_MAX): string[] {
  if (v === undefined) return lines.slice(-max);
  const upTo = lines.filter((l) => Number(l.slice(0, 7)) <= v.atMs);
  const patterns = focusPatterns(v);
  const picked = patterns.length === 0 ? upTo : upTo.filter((l) => patterns.some((p) => p.test(l)));
  return (picked.length > 0 ? picked : upTo).slice(-max);
}
