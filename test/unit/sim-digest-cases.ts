/**
 * The simulator runs whose results `sim-digests.test.ts` pins: every shipped scenario under every
 * algorithm with two seeds, traced (the trace records every message, barrier and snapshot with its
 * time, so a change in the order of the core's effects shows), a run through a scheduler object
 * instead of the inlined default, and 1,000-process runs as the benchmark drives them.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchScenario } from '../../simulations/bench-scenario.js';
import { delayModelScheduler } from '../../simulations/delays.js';
import { runSimulation } from '../../simulations/engine.js';
import { parseScenario } from '../../simulations/scenario-file.js';
import { ALGORITHMS, type Algorithm, type RunOptions, type Scenario } from '../../simulations/types.js';

export interface DigestCase {
  readonly name: string;
  readonly scenario: Scenario;
  readonly options: RunOptions;
}

const scenariosDir = join(import.meta.dirname, '../../simulations/scenarios');

export function digestCases(): DigestCase[] {
  const cases: DigestCase[] = [];
  for (const file of readdirSync(scenariosDir).filter((f) => f.endsWith('.json')).sort()) {
    const parsed = parseScenario(readFileSync(join(scenariosDir, file), 'utf8'), file);
    if (!parsed.ok) throw new Error(parsed.error.join('\n'));
    for (const algorithm of ALGORITHMS) {
      for (const seed of [1, 7]) cases.push({ name: `${file} ${algorithm} seed ${seed}`, scenario: parsed.value, options: { algorithm, seed, trace: true } });
    }
  }
  const ring = cases.find((c) => c.name.startsWith('ring.json')) as DigestCase;
  for (const algorithm of ['chandy-lamport', 'abs-timeout'] as const satisfies readonly Algorithm[]) {
    cases.push({
      name: `ring.json ${algorithm} seed 3, scheduler object`,
      scenario: ring.scenario,
      options: { algorithm, seed: 3, trace: true, scheduler: delayModelScheduler(ring.scenario.delays) },
    });
  }
  for (const algorithm of ALGORITHMS) {
    cases.push({ name: `bench 1000 processes ${algorithm} seed 1`, scenario: benchScenario(1000, 300), options: { algorithm, seed: 1 } });
  }
  return cases;
}

/** The digest of everything a run reports, or of the error it throws. */
export function runDigest(c: DigestCase): string {
  let text: string;
  try {
    text = JSON.stringify(runSimulation(c.scenario, c.options));
  } catch (e) {
    text = `error: ${e instanceof Error ? e.message : String(e)}`;
  }
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
