/**
 * Simulator throughput: simulated events per second on one core for a 1,000-process random cyclic
 * graph under periodic checkpoints (DESIGN.md section 8 target: >= 1,000,000 events/s).
 *
 *   npm run bench:sim -- [--processes N] [--duration MS] [--algorithm NAME] [--repeat K] [--json]
 */
import { parseArgs } from 'node:util';
import { runSimulation } from '../simulations/engine.js';
import { ALGORITHMS, type Algorithm, type Scenario } from '../simulations/types.js';

const TARGET_EVENTS_PER_SEC = 1_000_000;

const { values } = parseArgs({
  options: {
    processes: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '2000' },
    algorithm: { type: 'string', default: 'abs' },
    repeat: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run bench:sim -- [--processes N=1000] [--duration MS=2000] [--algorithm ${ALGORITHMS.join('|')}] [--repeat K=3] [--seed N=1] [--json]`);
  process.exit(0);
}
const algorithm = values.algorithm as Algorithm;
if (!ALGORITHMS.includes(algorithm)) {
  console.error(`unknown algorithm ${values.algorithm}; one of ${ALGORITHMS.join(', ')}`);
  process.exit(2);
}
const processes = Number(values.processes);
const durationMs = Number(values.duration);
const repeat = Number(values.repeat);

const scenario: Scenario = {
  name: `bench-random-cyclic-${processes}`,
  topology: { kind: 'random-cyclic', processes, degree: 2 },
  workload: { kind: 'tokens', initialTokens: 1000, sendIntervalMs: 1 },
  delays: { kind: 'uniform', minMs: 1, maxMs: 5 },
  checkpoints: { firstAtMs: 10, intervalMs: 100, timeoutMs: 60_000 },
  channelWindowMessagesMax: 64,
  durationMs,
};

const runs: { events: number; seconds: number; rate: number; consistent: boolean; completed: number }[] = [];
for (let i = 0; i < repeat; i++) {
  const t0 = process.hrtime.bigint();
  const r = runSimulation(scenario, { algorithm, seed: Number(values.seed) + i });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  runs.push({
    events: r.metrics.events,
    seconds,
    rate: r.metrics.events / seconds,
    consistent: r.consistent,
    completed: r.metrics.checkpointsCompleted,
  });
}
const best = Math.max(...runs.map((r) => r.rate));
const median = runs.map((r) => r.rate).sort((a, b) => a - b)[Math.floor(runs.length / 2)] as number;
const result = {
  benchmark: 'sim',
  algorithm,
  processes,
  durationMs,
  runs,
  eventsPerSecMedian: Math.round(median),
  eventsPerSecBest: Math.round(best),
  target: TARGET_EVENTS_PER_SEC,
  ratioToTarget: Number((median / TARGET_EVENTS_PER_SEC).toFixed(3)),
  node: process.version,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`simulator, ${algorithm}, ${processes} processes, ${durationMs} ms simulated, ${repeat} run(s)`);
  for (const r of runs) {
    console.log(`  ${r.events.toLocaleString('en-US')} events in ${r.seconds.toFixed(3)} s = ${Math.round(r.rate).toLocaleString('en-US')} events/s (${r.completed} checkpoints, ${r.consistent ? 'consistent' : 'VIOLATIONS'})`);
  }
  console.log(`median ${result.eventsPerSecMedian.toLocaleString('en-US')} events/s; target ${TARGET_EVENTS_PER_SEC.toLocaleString('en-US')}; ratio ${result.ratioToTarget}`);
}
if (runs.some((r) => !r.consistent)) process.exit(1);
