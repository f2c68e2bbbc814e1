/**
 * The simulator benchmark's scenario (`npm run bench:sim`): a random cyclic graph of token-passing
 * processes under periodic checkpoints. The pinned-digest test runs it too, so the figures and the
 * byte-identity check are about the same run.
 */
import type { Scenario } from './types.js';

export function benchScenario(processes: number, durationMs: number): Scenario {
  return {
    name: `bench-random-cyclic-${processes}`,
    topology: { kind: 'random-cyclic', processes, degree: 2 },
    workload: { kind: 'tokens', initialTokens: 1000, sendIntervalMs: 1 },
    delays: { kind: 'uniform', minMs: 1, maxMs: 5 },
    checkpoints: { firstAtMs: 10, intervalMs: 100, timeoutMs: 60_000 },
    channelWindowMessagesMax: 64,
    durationMs,
  };
}
