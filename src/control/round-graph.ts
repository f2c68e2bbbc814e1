/**
 * What an app-level round needs from a plan's app graph: the participants (`server/app`), who
 * initiates under each policy, and which inputs close a cycle (for aligned mode), grouped by server
 * so each agent's trigger carries only its own part. Pure: the coordinator builds the graph from the
 * plan record (coordinator/checkpoints/plan-graph.ts) and the simulator from its scenario.
 */
import type { PolicyConfig } from '../core/types.js';
import { initiators, stronglyConnectedComponents, type AppGraph } from '../graph/index.js';
import type { ChannelId, ProcessId } from '../ids.js';
import { splitProcessId } from '../wire/index.js';

export interface PlanGraph {
  readonly graph: AppGraph;
  readonly participants: readonly ProcessId[];
  readonly servers: readonly string[];
  readonly backEdges: ReadonlySet<ChannelId>;
  /** Channels the barrier protocol cannot see (opaque, log): not supported at level app yet. */
  readonly unsupportedChannels: readonly string[];
}

/**
 * Who is triggered: under ABS the sources once back edges are removed; under Chandy-Lamport one
 * process per source component (a marker reaches only what is downstream; the first member keeps the
 * choice deterministic); under sync and none every process.
 */
export function initiatorsFor(g: PlanGraph, policy: PolicyConfig): readonly ProcessId[] {
  return memo(g, `initiators:${policy.kind}`, () => findInitiators(g, policy));
}

/**
 * A plan's graph is the same object for every checkpoint until the plan changes, so what each
 * round derives from it (the initiators, every server's trigger part) is derived once per graph and
 * policy; the results are read only.
 */
const derived = new WeakMap<PlanGraph, Map<string, unknown>>();

function memo<T>(g: PlanGraph, key: string, make: () => T): T {
  let m = derived.get(g);
  if (m === undefined) {
    m = new Map();
    derived.set(g, m);
  }
  if (!m.has(key)) m.set(key, make());
  return m.get(key) as T;
}

function findInitiators(g: PlanGraph, policy: PolicyConfig): ProcessId[] {
  switch (policy.kind) {
    case 'aligned':
    case 'aligned-timeout':
      return initiators(g.graph);
    case 'unaligned': {
      const sccs = stronglyConnectedComponents(g.graph);
      const component = new Map<ProcessId, number>();
      sccs.forEach((members, i) => members.forEach((m) => component.set(m, i)));
      const fed = new Set<number>();
      for (const c of g.graph.channels) {
        const a = component.get(c.from);
        const b = component.get(c.to);
        if (a !== b && b !== undefined) fed.add(b);
      }
      return sccs.flatMap((members, i) => (fed.has(i) ? [] : [members[0] as ProcessId]));
    }
    case 'sync':
    case 'none':
      return [...g.participants];
  }
}

/**
 * What a server's trigger names: the plan's apps on it (an agent may host apps of other plans, which
 * this trigger must not reach), those among the initiators, and the back edges into its apps.
 */
export interface ServerTrigger {
  readonly server: string;
  readonly apps: string[];
  readonly initiatorApps: string[];
  readonly backEdgeChannels: ChannelId[];
}

/**
 * Every server's trigger, in the plan's server order, in one pass over the initiators and the
 * channels (a plan may have a thousand servers: a pass per server would make each round quadratic).
 */
export function serverTriggers(g: PlanGraph, initiators: readonly ProcessId[], withBackEdges: boolean): readonly ServerTrigger[] {
  // Keyed by the initiators array itself: initiatorsFor hands out one array per graph and policy.
  const byInitiators = memo(g, `triggers:${String(withBackEdges)}`, () => new WeakMap<readonly ProcessId[], readonly ServerTrigger[]>());
  let t = byInitiators.get(initiators);
  if (t === undefined) {
    t = buildServerTriggers(g, initiators, withBackEdges);
    byInitiators.set(initiators, t);
  }
  return t;
}

function buildServerTriggers(g: PlanGraph, initiators: readonly ProcessId[], withBackEdges: boolean): ServerTrigger[] {
  const list: ServerTrigger[] = g.servers.map((server) => ({ server, apps: [], initiatorApps: [], backEdgeChannels: [] }));
  const byServer = new Map<string, ServerTrigger>(list.map((t) => [t.server, t]));
  for (const p of g.participants) {
    const s = splitProcessId(p);
    if (s) byServer.get(s.server)?.apps.push(s.app);
  }
  for (const p of initiators) {
    const s = splitProcessId(p);
    if (s) byServer.get(s.server)?.initiatorApps.push(s.app);
  }
  if (withBackEdges) {
    for (const c of g.graph.channels) {
      if (!g.backEdges.has(c.id)) continue;
      const to = splitProcessId(c.to);
      if (to) byServer.get(to.server)?.backEdgeChannels.push(c.id);
    }
  }
  return list;
}
