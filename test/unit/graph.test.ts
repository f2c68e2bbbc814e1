import { describe, expect, it } from 'vitest';
import {
  backEdges,
  initiators,
  inputsOf,
  outputsOf,
  stronglyConnectedComponents,
  topologicalOrder,
  validateGraph,
  type AppGraph,
  type GraphInput,
} from '../../src/graph/index.js';

/** Builds a graph from `a->b` strings; fails the test if the graph is invalid. */
function graphOf(processes: readonly string[], edges: readonly string[]): AppGraph {
  const channels = edges.map((e) => {
    const [from, to] = e.split('->');
    return { from: from!, to: to! };
  });
  const result = validateGraph({ processes, channels });
  if (!result.ok) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.graph;
}

function without(graph: AppGraph, removed: ReadonlySet<string>): AppGraph {
  return { processes: graph.processes, channels: graph.channels.filter((c) => !removed.has(c.id)) };
}

function ring(size: number): AppGraph {
  const processes = Array.from({ length: size }, (_, i) => `p${i}`);
  return graphOf(
    processes,
    processes.map((p, i) => `${p}->${processes[(i + 1) % size]}`),
  );
}

/** A deterministic generator for the large smoke test; tests own their randomness, seeded. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('validateGraph', () => {
  it('a well-formed graph is accepted with channel ids derived from the ends', () => {
    const result = validateGraph({ processes: ['a', 'b'], channels: [{ from: 'a', to: 'b' }] });
    expect(result).toEqual({
      ok: true,
      graph: { processes: ['a', 'b'], channels: [{ id: 'a->b', from: 'a', to: 'b' }] },
    });
  });

  it('a graph without processes is rejected as empty', () => {
    const result = validateGraph({ processes: [], channels: [] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([{ kind: 'empty-graph', message: 'the graph declares no processes' }]);
  });

  it('a process declared twice is reported once, by name, with its count', () => {
    const result = validateGraph({ processes: ['a', 'b', 'a', 'a'], channels: [] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      { kind: 'duplicate-process', process: 'a', count: 3, message: 'process a is declared 3 times' },
    ]);
  });

  it('a channel to an undeclared process names the channel, the process and the end', () => {
    const result = validateGraph({ processes: ['a'], channels: [{ from: 'a', to: 'ghost' }] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      {
        kind: 'unknown-endpoint',
        channel: 'a->ghost',
        process: 'ghost',
        end: 'to',
        message: 'channel a->ghost ends at undeclared process ghost',
      },
    ]);
  });

  it('a channel declared twice is a duplicate edge', () => {
    const result = validateGraph({
      processes: ['a', 'b'],
      channels: [
        { from: 'a', to: 'b' },
        { from: 'b', to: 'a' },
        { from: 'a', to: 'b' },
      ],
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      { kind: 'duplicate-edge', channel: 'a->b', count: 2, message: 'channel a->b is declared 2 times' },
    ]);
  });

  it('a channel from a process to itself is a self-loop', () => {
    const result = validateGraph({ processes: ['a'], channels: [{ from: 'a', to: 'a' }] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      { kind: 'self-loop', channel: 'a->a', process: 'a', message: 'channel a->a connects process a to itself' },
    ]);
  });

  it('every error is reported, not just the first', () => {
    const input: GraphInput = {
      processes: ['a', 'b', 'b'],
      channels: [
        { from: 'x', to: 'y' },
        { from: 'c', to: 'c' },
        { from: 'a', to: 'b' },
        { from: 'a', to: 'b' },
      ],
    };
    const result = validateGraph(input);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => [e.kind, 'channel' in e ? e.channel : 'process' in e ? e.process : ''])).toEqual([
      ['duplicate-process', 'b'],
      ['unknown-endpoint', 'x->y'],
      ['unknown-endpoint', 'x->y'],
      ['self-loop', 'c->c'],
      ['unknown-endpoint', 'c->c'],
      ['duplicate-edge', 'a->b'],
    ]);
    for (const error of result.errors) expect(error.message.length).toBeGreaterThan(0);
  });
});

describe('topologicalOrder', () => {
  it('a DAG is ordered with ties broken by declaration order', () => {
    const graph = graphOf(['d', 'c', 'b', 'a'], ['a->b', 'c->b', 'b->d']);
    expect(topologicalOrder(graph)).toEqual({ ok: true, value: ['c', 'a', 'b', 'd'] });
  });

  it('a process that becomes ready early still waits for an earlier-declared ready process', () => {
    // After a, both c (declared 2nd) and b (declared 3rd) are ready; c goes first.
    const graph = graphOf(['a', 'c', 'b'], ['a->b', 'a->c']);
    expect(topologicalOrder(graph)).toEqual({ ok: true, value: ['a', 'c', 'b'] });
  });

  it('a graph with a cycle yields the cycle, starting at its earliest-declared process', () => {
    const graph = graphOf(['s', 'x', 'y', 'z'], ['s->x', 'y->z', 'z->x', 'x->y']);
    expect(topologicalOrder(graph)).toEqual({ ok: false, error: { cycle: ['x', 'y', 'z'] } });
  });

  it('the reported cycle is made of real channels', () => {
    const graph = graphOf(['a', 'b', 'c', 'd', 'e'], ['a->b', 'b->c', 'c->d', 'd->b', 'd->e', 'e->a']);
    const result = topologicalOrder(graph);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const ids = new Set(graph.channels.map((c) => c.id));
    result.error.cycle.forEach((p, i) => expect(ids.has(`${p}->${result.error.cycle[(i + 1) % result.error.cycle.length]}`)).toBe(true));
    expect(result.error.cycle[0]).toBe('a');
  });
});

describe('stronglyConnectedComponents', () => {
  it('a ring is one component', () => {
    expect(stronglyConnectedComponents(ring(4))).toEqual([['p0', 'p1', 'p2', 'p3']]);
  });

  it('two rings joined by a channel are two components, upstream first', () => {
    const graph = graphOf(['c', 'd', 'a', 'b'], ['c->d', 'd->c', 'a->b', 'b->a', 'b->c']);
    expect(stronglyConnectedComponents(graph)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });

  it('a DAG has one component per process, in topological order', () => {
    const graph = graphOf(['d', 'c', 'b', 'a'], ['a->b', 'c->b', 'b->d']);
    const components = stronglyConnectedComponents(graph);
    expect(components.every((c) => c.length === 1)).toBe(true);
    const order = components.map((c) => c[0]!);
    for (const channel of graph.channels) expect(order.indexOf(channel.from)).toBeLessThan(order.indexOf(channel.to));
  });
});

describe('backEdges and initiators', () => {
  it('a ring has one back edge, into its first process, which is its initiator', () => {
    const graph = ring(5);
    expect([...backEdges(graph)]).toEqual(['p4->p0']);
    expect(initiators(graph)).toEqual(['p0']);
  });

  it('a diamond with a feedback channel: the DFS from the source marks only the feedback as back edge', () => {
    const graph = graphOf(['s', 'a', 'b', 't'], ['s->a', 's->b', 'a->t', 'b->t', 't->s']);
    // s has an input (t->s), so there is no source; the DFS starts at s, the first declared process.
    expect([...backEdges(graph)]).toEqual(['t->s']);
    expect(initiators(graph)).toEqual(['s']);
    expect(topologicalOrder(without(graph, backEdges(graph)))).toEqual({ ok: true, value: ['s', 'a', 'b', 't'] });
  });

  it('a diamond fed by a source with a cycle inside: the DFS starts at the source', () => {
    const graph = graphOf(['a', 'b', 'src', 't'], ['src->a', 'src->b', 'a->t', 'b->t', 't->a']);
    expect([...backEdges(graph)]).toEqual(['t->a']);
    expect(initiators(graph)).toEqual(['src']);
  });

  it('removing the back edges of a complete graph leaves a DAG', () => {
    const processes = ['a', 'b', 'c', 'd', 'e'];
    const edges = processes.flatMap((p) => processes.filter((q) => q !== p).map((q) => `${p}->${q}`));
    const graph = graphOf(processes, edges);
    const back = backEdges(graph);
    // A DFS on a complete graph is a single path; every channel against it is a back edge.
    expect(back.size).toBe(10);
    expect(topologicalOrder(without(graph, back)).ok).toBe(true);
    expect(initiators(graph)).toEqual(['a']);
  });

  it('a DAG has no back edges and its sources are its initiators', () => {
    const graph = graphOf(['d', 'c', 'b', 'a'], ['a->b', 'c->b', 'b->d']);
    expect(backEdges(graph).size).toBe(0);
    expect(initiators(graph)).toEqual(['c', 'a']);
  });

  it('a ring unreachable from the source gets its own initiator', () => {
    const graph = graphOf(['src', 'x', 'y', 'z'], ['src->x', 'y->z', 'z->y']);
    expect([...backEdges(graph)]).toEqual(['z->y']);
    expect(initiators(graph)).toEqual(['src', 'y']);
  });
});

describe('inputsOf and outputsOf', () => {
  it('return the channels of a process in declaration order', () => {
    const graph = graphOf(['a', 'b', 'c'], ['c->b', 'a->b', 'b->c']);
    expect(inputsOf(graph, 'b').map((c) => c.id)).toEqual(['c->b', 'a->b']);
    expect(outputsOf(graph, 'b').map((c) => c.id)).toEqual(['b->c']);
    expect(inputsOf(graph, 'a')).toEqual([]);
  });

  it('asking about an undeclared process is a bug and throws', () => {
    expect(() => inputsOf(graphOf(['a'], []), 'zzz')).toThrow(/zzz/);
  });
});

describe('large graphs', () => {
  it('a 10,000-process random graph is analysed with consistent results', () => {
    const random = lcg(20240601);
    const size = 10_000;
    const processes = Array.from({ length: size }, (_, i) => `server${i % 97}/app${i}`);
    const seen = new Set<string>();
    const channels: { from: string; to: string }[] = [];
    while (channels.length < 3 * size) {
      const from = processes[Math.floor(random() * size)]!;
      const to = processes[Math.floor(random() * size)]!;
      const key = `${from}->${to}`;
      if (from === to || seen.has(key)) continue;
      seen.add(key);
      channels.push({ from, to });
    }
    const result = validateGraph({ processes, channels });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const graph = result.graph;

    const back = backEdges(graph);
    expect(back.size).toBeGreaterThan(0);
    const dag = without(graph, back);
    const order = topologicalOrder(dag);
    expect(order.ok).toBe(true);

    const components = stronglyConnectedComponents(graph);
    const componentOf = new Map<string, number>();
    components.forEach((members, i) => members.forEach((p) => componentOf.set(p, i)));
    expect(componentOf.size).toBe(size);
    // Components come in topological order of the condensation.
    const againstOrder = graph.channels.filter((c) => componentOf.get(c.from)! > componentOf.get(c.to)!);
    expect(againstOrder).toEqual([]);
    // A back edge always closes a cycle, so its ends share a component.
    const backAcross = graph.channels.filter(
      (c) => back.has(c.id) && componentOf.get(c.from) !== componentOf.get(c.to),
    );
    expect(backAcross).toEqual([]);

    const starts = initiators(graph);
    expect(starts.length).toBeGreaterThan(0);
    expect(starts.filter((p) => inputsOf(dag, p).length > 0)).toEqual([]);
    const notStarts = new Set(graph.processes);
    for (const p of starts) notStarts.delete(p);
    expect([...notStarts].filter((p) => inputsOf(dag, p).length === 0)).toEqual([]);
  });

  it('a 100,000-process chain closed into a ring does not overflow the stack', () => {
    const graph = ring(100_000);
    expect(backEdges(graph).size).toBe(1);
    expect(stronglyConnectedComponents(graph)).toHaveLength(1);
    expect(initiators(graph)).toEqual(['p0']);
    const cut = topologicalOrder(graph);
    expect(cut.ok).toBe(false);
    if (!cut.ok) expect(cut.error.cycle).toHaveLength(100_000);
  });
});
