/**
 * Structural analysis of a validated app graph: topological order (opaque channels are quiesced
 * upstream first), strongly connected components (quiesced together), back edges (inputs that
 * aligned ABS records instead of blocking on) and initiators (where barriers are injected).
 *
 * Every result is deterministic: ties are broken by declaration order, so the same plan always yields
 * the same checkpoint schedule. Every traversal is iterative, because plans can be large (10k
 * processes) and a recursive DFS would overflow the call stack on a long chain.
 *
 * Adjacency is built once per graph object and cached (a WeakMap, so it goes when the graph goes).
 * The cache relies on graphs being immutable, which `AppGraph`'s readonly fields promise.
 */
import type { ChannelId, ProcessId } from '../ids.js';
import type { AppGraph, Channel } from './graph.js';
import { err, ok, type Result } from '../result.js';

/**
 * The order, or a cycle that prevents one: `cycle` lists processes p0, p1, ..., pk joined by channels
 * p0->p1, ..., pk->p0, starting at its earliest-declared process.
 */
export type TopologicalOrder = Result<readonly ProcessId[], { readonly cycle: readonly ProcessId[] }>;

/**
 * Topological order by Kahn's algorithm; among the processes ready at any point the earliest declared
 * goes first, so the order is the unique smallest one by declaration index. That choice needs a heap:
 * O(V log V + E).
 */
export function topologicalOrder(graph: AppGraph): TopologicalOrder {
  const index = indexGraph(graph);
  const n = graph.processes.length;
  const inDegree = new Int32Array(n);
  for (let p = 0; p < n; p += 1) inDegree[p] = index.inputs[p]!.length;

  const ready = new MinHeap();
  for (let p = 0; p < n; p += 1) if (inDegree[p] === 0) ready.push(p);

  const order: ProcessId[] = [];
  const emitted = new Uint8Array(n);
  while (ready.size > 0) {
    const p = ready.pop();
    order.push(graph.processes[p]!);
    emitted[p] = 1;
    for (const c of index.outputs[p]!) {
      const q = index.toOf[c]!;
      inDegree[q] = inDegree[q]! - 1;
      if (inDegree[q] === 0) ready.push(q);
    }
  }
  if (order.length === n) return ok(order);
  return err({ cycle: findCycleAmong(graph, index, emitted) });
}

/**
 * Strongly connected components by Tarjan's algorithm, iterative. Components come out in topological
 * order of the condensation: when a channel joins two different components, the component of its
 * sender comes first. Processes inside a component are in declaration order. O(V + E).
 */
export function stronglyConnectedComponents(graph: AppGraph): ProcessId[][] {
  const index = indexGraph(graph);
  const n = graph.processes.length;
  const UNVISITED = -1;
  const order = new Int32Array(n).fill(UNVISITED); // Tarjan's `index`
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const nextOutput = new Int32Array(n); // how far each open call has got through its outputs
  const componentStack: number[] = [];
  const callStack: number[] = [];
  const emittedInReverse: number[][] = [];
  let counter = 0;

  const open = (p: number): void => {
    order[p] = counter;
    low[p] = counter;
    counter += 1;
    componentStack.push(p);
    onStack[p] = 1;
    callStack.push(p);
  };

  for (let root = 0; root < n; root += 1) {
    if (order[root] !== UNVISITED) continue;
    open(root);
    while (callStack.length > 0) {
      const v = callStack[callStack.length - 1]!;
      const outputs = index.outputs[v]!;
      const at = nextOutput[v]!;
      if (at < outputs.length) {
        nextOutput[v] = at + 1;
        const w = index.toOf[outputs[at]!]!;
        if (order[w] === UNVISITED) open(w);
        else if (onStack[w] === 1) low[v] = Math.min(low[v]!, order[w]!);
        continue;
      }
      // Every output of v explored: the "return" of the recursive version.
      callStack.pop();
      if (low[v] === order[v]) {
        const component: number[] = [];
        let w: number;
        do {
          w = componentStack.pop()!;
          onStack[w] = 0;
          component.push(w);
        } while (w !== v);
        component.sort((a, b) => a - b);
        emittedInReverse.push(component);
      }
      const parent = callStack[callStack.length - 1];
      if (parent !== undefined) low[parent] = Math.min(low[parent]!, low[v]!);
    }
  }
  // Tarjan finishes a component only after every component it reaches: reverse topological order.
  return emittedInReverse.reverse().map((component) => component.map((p) => graph.processes[p]!));
}

/**
 * The channels that close cycles, found by an iterative depth-first search that starts at the sources
 * (processes without inputs) in declaration order, then at any process still unvisited, in declaration
 * order, and visits outputs in declaration order. A back edge leads to a process still on the DFS
 * path; removing all of them leaves a DAG (the DFS forest plus forward and cross edges), and every
 * cycle keeps at least one of its channels in the set. O(V + E).
 */
export function backEdges(graph: AppGraph): Set<ChannelId> {
  const index = indexGraph(graph);
  const n = graph.processes.length;
  const WHITE = 0;
  const GREY = 1; // on the current DFS path
  const BLACK = 2;
  const colour = new Uint8Array(n);
  const nextOutput = new Int32Array(n);
  const result = new Set<ChannelId>();

  const explore = (root: number): void => {
    const path: number[] = [root];
    colour[root] = GREY;
    while (path.length > 0) {
      const v = path[path.length - 1]!;
      const outputs = index.outputs[v]!;
      const at = nextOutput[v]!;
      if (at >= outputs.length) {
        colour[v] = BLACK;
        path.pop();
        continue;
      }
      nextOutput[v] = at + 1;
      const c = outputs[at]!;
      const w = index.toOf[c]!;
      if (colour[w] === GREY) result.add(graph.channels[c]!.id);
      else if (colour[w] === WHITE) {
        colour[w] = GREY;
        path.push(w);
      }
    }
  };

  for (let p = 0; p < n; p += 1) if (index.inputs[p]!.length === 0) explore(p);
  for (let p = 0; p < n; p += 1) if (colour[p] === WHITE) explore(p);
  return result;
}

/**
 * The processes with no inputs once back edges are removed, in declaration order: the sources, plus
 * one root per cycle that no source reaches (for a pure ring, its earliest-declared process). ABS
 * injects barriers here; every other process receives a barrier on a forward input.
 */
export function initiators(graph: AppGraph): ProcessId[] {
  const index = indexGraph(graph);
  const back = backEdges(graph);
  return graph.processes.filter((_, p) => index.inputs[p]!.every((c) => back.has(graph.channels[c]!.id)));
}

/** The channels into `process`, in declaration order. Throws for a process the graph does not declare. */
export function inputsOf(graph: AppGraph, process: ProcessId): readonly Channel[] {
  const index = indexGraph(graph);
  return index.inputChannels[processIndex(index, process)]!;
}

/** The channels out of `process`, in declaration order. Throws for a process the graph does not declare. */
export function outputsOf(graph: AppGraph, process: ProcessId): readonly Channel[] {
  const index = indexGraph(graph);
  return index.outputChannels[processIndex(index, process)]!;
}

/** Processes and channels by position in the graph's arrays; plain numbers keep the traversals fast. */
interface GraphIndex {
  readonly positionOf: ReadonlyMap<ProcessId, number>;
  /** Per process: positions of its input (output) channels, in declaration order. */
  readonly inputs: readonly (readonly number[])[];
  readonly outputs: readonly (readonly number[])[];
  readonly inputChannels: readonly (readonly Channel[])[];
  readonly outputChannels: readonly (readonly Channel[])[];
  /** Per channel: the position of its receiver. */
  readonly toOf: Int32Array;
}

const indexCache = new WeakMap<AppGraph, GraphIndex>();

function indexGraph(graph: AppGraph): GraphIndex {
  const cached = indexCache.get(graph);
  if (cached !== undefined) return cached;

  const n = graph.processes.length;
  const positionOf = new Map<ProcessId, number>();
  graph.processes.forEach((p, i) => {
    if (positionOf.has(p)) throw new Error(`graph analysis needs a validated graph: process ${p} is declared twice`);
    positionOf.set(p, i);
  });
  const inputs: number[][] = Array.from({ length: n }, () => []);
  const outputs: number[][] = Array.from({ length: n }, () => []);
  const toOf = new Int32Array(graph.channels.length);
  graph.channels.forEach((channel, c) => {
    const from = positionOf.get(channel.from);
    const to = positionOf.get(channel.to);
    if (from === undefined || to === undefined) {
      throw new Error(`graph analysis needs a validated graph: channel ${channel.id} has an undeclared endpoint`);
    }
    outputs[from]!.push(c);
    inputs[to]!.push(c);
    toOf[c] = to;
  });
  const channelsAt = (positions: readonly number[]): readonly Channel[] => positions.map((c) => graph.channels[c]!);
  const index: GraphIndex = {
    positionOf,
    inputs,
    outputs,
    inputChannels: inputs.map(channelsAt),
    outputChannels: outputs.map(channelsAt),
    toOf,
  };
  indexCache.set(graph, index);
  return index;
}

function processIndex(index: GraphIndex, process: ProcessId): number {
  const p = index.positionOf.get(process);
  if (p === undefined) throw new Error(`process ${process} is not part of the graph`);
  return p;
}

/**
 * After Kahn's algorithm stalls, every process not emitted still has an input from another process
 * not emitted. Walking such inputs backwards from the earliest-declared stalled process must revisit a
 * process; the stretch between the two visits is a cycle.
 */
function findCycleAmong(graph: AppGraph, index: GraphIndex, emitted: Uint8Array): ProcessId[] {
  const start = emitted.indexOf(0);
  if (start < 0) throw new Error('findCycleAmong: every process was emitted, so there is no cycle');
  const walk: number[] = [];
  const stepOf = new Map<number, number>();
  let current = start;
  while (!stepOf.has(current)) {
    stepOf.set(current, walk.length);
    walk.push(current);
    const input = index.inputs[current]!.find((c) => emitted[positionOfSender(graph, index, c)] === 0);
    if (input === undefined) throw new Error('findCycleAmong: a stalled process has no stalled input');
    current = positionOfSender(graph, index, input);
  }
  // walk[i+1] -> walk[i] is a channel, so the forward cycle is the repeated stretch reversed.
  const cycle = walk.slice(stepOf.get(current)).reverse();
  let first = 0;
  for (let i = 1; i < cycle.length; i += 1) if (cycle[i]! < cycle[first]!) first = i;
  return [...cycle.slice(first), ...cycle.slice(0, first)].map((p) => graph.processes[p]!);
}

function positionOfSender(graph: AppGraph, index: GraphIndex, channel: number): number {
  return index.positionOf.get(graph.channels[channel]!.from)!;
}

/** A binary min-heap of process positions, for Kahn's algorithm with declaration-order ties. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]! <= value) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined) throw new Error('MinHeap.pop on an empty heap');
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= items.length) break;
        const right = left + 1;
        const child = right < items.length && items[right]! < items[left]! ? right : left;
        if (items[child]! >= last) break;
        items[i] = items[child]!;
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}
