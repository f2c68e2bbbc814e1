/**
 * Log channels in the simulator (simulations/scenarios/log-channels-crash.json): two of the cycle's
 * channels are logs, so their receivers record ranges; the cut checker reads the ranges back from
 * the log, and the recoveries replay them. The coordinated algorithms stay consistent and legal, the
 * `none` baseline is still caught, and the receivers copy fewer messages than with in-band channels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../simulations/engine.js';
import { parseScenario, validateScenario } from '../../simulations/scenario-file.js';
import type { Scenario } from '../../simulations/types.js';

const FILE = 'simulations/scenarios/log-channels-crash.json';
const text = readFileSync(join(import.meta.dirname, '../..', FILE), 'utf8');
const parsed = parseScenario(text, FILE);
if (!parsed.ok) throw new Error(parsed.error.join('\n'));
const scenario: Scenario = parsed.value;
const { logChannels: _logs, ...inBand } = scenario;

describe('simulator: log channels', () => {
  for (const algorithm of ['chandy-lamport', 'abs', 'abs-timeout', 'sync'] as const) {
    it(`${algorithm}: every cut with log ranges is consistent and both recoveries are legal (seeds 1-5)`, () => {
      for (let seed = 1; seed <= 5; seed++) {
        const r = runSimulation(scenario, { algorithm, seed, recoveryFigures: true });
        expect(r.violations, `seed ${seed}`).toEqual([]);
        expect(r.metrics.recoveries).toBe(2);
        expect(r.checkpoints.filter((c) => c.completed).length).toBeGreaterThan(3);
      }
    });
  }

  it('none: the baseline is still caught with log channels', () => {
    const found = [1, 2, 3].some((seed) => runSimulation(scenario, { algorithm: 'none', seed }).violations.length > 0);
    expect(found).toBe(true);
  });

  it('chandy-lamport: log inputs copy no messages, their ranges are replayed instead', () => {
    let copiedWithLogs = 0;
    let copiedInBand = 0;
    let replayedWithLogs = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const withLogs = runSimulation(scenario, { algorithm: 'chandy-lamport', seed, recoveryFigures: true });
      copiedWithLogs += withLogs.metrics.channelStateMessagesTotal;
      replayedWithLogs += withLogs.metrics.replayedMessages ?? 0;
      copiedInBand += runSimulation(inBand, { algorithm: 'chandy-lamport', seed }).metrics.channelStateMessagesTotal;
    }
    expect(copiedWithLogs).toBeLessThan(copiedInBand);
    expect(replayedWithLogs).toBeGreaterThan(0);
  });

  it('a log channel that is not a channel of the graph is refused, with the valid names', () => {
    const r = validateScenario({ ...JSON.parse(text), logChannels: ['b->a'] }, 'x.json');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.join('\n')).toMatch(/logChannels\[0\].*b->a.*a->b/);
    const notFifo = validateScenario({ ...JSON.parse(text), fifo: false }, 'x.json');
    expect(notFifo.ok).toBe(false);
  });

  it('the rollback algorithms refuse log channels', () => {
    expect(() => runSimulation(scenario, { algorithm: 'uncoordinated', seed: 1 })).toThrow(/coordinated algorithms only/);
  });
});
