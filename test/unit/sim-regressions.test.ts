/**
 * Runs the simulator once failed, pinned by scenario file, algorithm and seed: each must now pass.
 * A row names the bug it pins down; the scenario file's description says what the run shows.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../simulations/engine.js';
import { parseScenario } from '../../simulations/scenario-file.js';
import type { Algorithm } from '../../simulations/types.js';

const scenariosDir = join(import.meta.dirname, '../../simulations/scenarios');

const regressions: readonly { file: string; algorithm: Algorithm; seed: number; bug: string }[] = [
  {
    file: 'long-tail-slow-channel.json',
    algorithm: 'chandy-lamport',
    seed: 1460811225,
    bug: 'an unbounded long-tail delay held one message (and the barriers behind it) 10 s: checkpoints 9-12 timed out without faults',
  },
];

describe('simulator regressions', () => {
  it.each(regressions)('$file, $algorithm, seed $seed: every checkpoint completes and every cut is consistent ($bug)', ({ file, algorithm, seed }) => {
    const parsed = parseScenario(readFileSync(join(scenariosDir, file), 'utf8'), file);
    if (!parsed.ok) throw new Error(parsed.error.join('\n'));
    const r = runSimulation(parsed.value, { algorithm, seed });
    expect(r.violations).toEqual([]);
    expect(r.checkpoints.filter((c) => !c.completed).map((c) => `${c.id}: ${c.abortReason ?? '?'}`)).toEqual([]);
    expect(r.metrics.checkpointsCompleted).toBeGreaterThan(0);
  });
});
