/**
 * Builds the app graph of a scenario. Random graphs draw from their own seeded stream so the same
 * graph seed gives the same graph whatever the run does with its own randomness.
 */
import { channelId, type ProcessId } from '../src/ids.js';
import type { AppGraph } from '../src/graph/index.js';
import { Prng } from './prng.js';
import type { TopologySpec } from './types.js';

const DEGREE_DEFAULT = 2;

export function buildTopology(spec: TopologySpec, runSeed: number): AppGraph {
  if (spec.kind === 'explicit') {
    return {
      processes: [...spec.processes],
      channels: spec.channels.map(([from, to]) => ({ id: channelId(from, to), from, to })),
    };
  }
  const n = spec.processes;
  const names: ProcessId[] = Array.from({ length: n }, (_, i) => `p${i}`);
  const edges: [number, number][] = [];
  switch (spec.kind) {
    case 'pipeline':
      for (let i = 0; i + 1 < n; i++) edges.push([i, i + 1]);
      break;
    case 'fan-in':
      // p0..p(n-2) all feed the last process.
      for (let i = 0; i + 1 < n; i++) edges.push([i, n - 1]);
      break;
    case 'fan-out':
      for (let i = 1; i < n; i++) edges.push([0, i]);
      break;
    case 'diamond': {
      // p0 fans out to the middle processes, which fan in to the last one.
      for (let i = 1; i + 1 < n; i++) {
        edges.push([0, i]);
        edges.push([i, n - 1]);
      }
      if (n === 2) edges.push([0, 1]);
      break;
    }
    case 'ring':
      for (let i = 0; i < n; i++) edges.push([i, (i + 1) % n]);
      break;
    case 'complete':
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) edges.push([i, j]);
      break;
    case 'random-dag':
    case 'random-cyclic': {
      const rng = new Prng(spec.graphSeed ?? runSeed ^ 0x5eed);
      const degree = spec.degree ?? DEGREE_DEFAULT;
      const seen = new Set<number>();
      const add = (a: number, b: number): void => {
        const key = a * n + b;
        if (a === b || seen.has(key)) return;
        seen.add(key);
        edges.push([a, b]);
      };
      // A spine keeps the graph connected: every process after the first is fed by an earlier one.
      for (let i = 1; i < n; i++) add(rng.int(i), i);
      const extra = Math.max(0, Math.round(n * degree) - (n - 1));
      for (let k = 0; k < extra; k++) {
        const a = rng.int(n);
        const b = rng.int(n);
        if (spec.kind === 'random-dag') add(Math.min(a, b), Math.max(a, b));
        else add(a, b);
      }
      // A random cyclic graph always has at least one cycle.
      if (spec.kind === 'random-cyclic' && n > 1) add(n - 1, 0);
      break;
    }
  }
  return {
    processes: names,
    channels: edges.map(([a, b]) => {
      const from = names[a] as ProcessId;
      const to = names[b] as ProcessId;
      return { id: channelId(from, to), from, to };
    }),
  };
}
