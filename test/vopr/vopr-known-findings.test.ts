/**
 * The open defects the simulator found (simulations/vopr/known-findings.ts) each still show at the
 * seed the entry names. When this fails for one, its fix has landed: delete the entry, and the CI
 * run then holds the machines to that invariant again.
 */
import { describe, expect, it } from 'vitest';
import { KNOWN_FINDINGS, type KnownFinding } from '../../simulations/vopr/known-findings.js';
import { runSeed } from '../../simulations/vopr/run.js';

describe('vopr: known findings', () => {
  it.each(Object.entries(KNOWN_FINDINGS).map(([name, f]) => [name, f.seed] as const))('%s still shows at seed %i', (name, seed) => {
    const r = runSeed(seed, [], { traceAll: false });
    expect(r.violations.map((v) => v.known)).toContain(name as KnownFinding);
  });
});
