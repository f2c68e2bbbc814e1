/**
 * What a checkpoint needs from a plan's app graph: the participants (`server/app`), who initiates
 * under each policy, and which inputs close a cycle (for aligned mode), grouped by server so each
 * agent's trigger carries only its own part.
 */
import type { PolicyConfig } from '../../src/core/types.js';
import { backEdges, initiators, stronglyConnectedComponents, validateGraph, type AppGraph } from '../../src/graph/index.js';
import type { ChannelId, ProcessId } from '../../src/ids.js';
import { processId, splitProcessId } from '../../src/wire/index.js';
import type { Plan } from '../model.js';

export interface PlanGraph {
  readonly graph: AppGraph;
  readonly participants: readonly ProcessId[];
  readonly servers: readonly string[];
  readonly backEdges: ReadonlySet<ChannelId>;
  /** Channels the barrier protocol cannot see (opaque, log): not supported at level app yet. */
  readonly unsupportedChannels: readonly string[];
}

export function planGraph(plan: Plan): { ok: true; value: PlanGraph } | { ok: false; message: string } {
  const processes = plan.apps.map((a) => processId(a.server, a.app));
  const inBand = plan.channels.filter((c) => c.kind === 'in-band');
  const v = validateGraph({
    processes,
    channels: inBand.map((c) => ({ from: processId(c.from.server, c.from.app), to: processId(c.to.server, c.to.app) })),
  });
  if (!v.ok) return { ok: false, message: `plan ${plan.id} has an invalid app graph: ${v.errors.map((e) => e.message).join('; ')}` };
  const servers = [...new Set(plan.apps.map((a) => a.server))];
  return {
    ok: true,
    value: {
      graph: v.graph,
      participants: processes,
      servers,
      backEdges: backEdges(v.graph),
      unsupportedChannels: plan.channels
        .filter((c) => c.kind !== 'in-band')
        .map((c) => `${processId(c.from.server, c.from.app)}->${processId(c.to.server, c.to.app)} (${c.kind})`),
    },
  };
}

/** A plan whose channels are all `opaque` (at least one): its level-app cut is made by quiescing. */
export function isAllOpaque(plan: Plan): boolean {
  return plan.channels.length > 0 && plan.channels.every((c) => c.kind === 'opaque');
}

/**
 * The graph of an all-opaque plan, opaque channels included (planGraph keeps only in-band ones):
 * what the QuiescePlan orders and what the cut of an opaque checkpoint is checked on.
 */
export function opaqueGraph(plan: Plan): { ok: true; value: AppGraph } | { ok: false; message: string } {
  const v = validateGraph({
    processes: plan.apps.map((a) => processId(a.server, a.app)),
    channels: plan.channels.filter((c) => c.kind === 'opaque').map((c) => ({ from: processId(c.from.server, c.from.app), to: processId(c.to.server, c.to.app) })),
  });
  if (!v.ok) return { ok: false, message: `plan ${plan.id} has an invalid app graph: ${v.errors.map((e) => e.message).join('; ')}` };
  return { ok: true, value: v.graph };
}

/**
 * Who is triggered: under ABS the sources once back edges are removed; under Chandy-Lamport one
 * process per source component (a marker reaches only what is downstream; the first member keeps the
 * choice deterministic); under sync and none every process.
 */
export function initiatorsFor(g: PlanGraph, policy: PolicyConfig): ProcessId[] {
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

/** The apps of one server among `processes`. */
/** What a server's trigger names: its apps among the initiators, and the back edges into its apps. */
export interface ServerTrigger {
  readonly initiatorApps: string[];
  readonly backEdgeChannels: ChannelId[];
}

/**
 * Every server's trigger, in one pass over the initiators and the channels (a plan may have a
 * thousand servers: a pass per server would make each round quadratic).
 */
export function serverTriggers(g: PlanGraph, initiators: readonly ProcessId[], withBackEdges: boolean): Map<string, ServerTrigger> {
  const byServer = new Map<string, ServerTrigger>(g.servers.map((s) => [s, { initiatorApps: [], backEdgeChannels: [] }]));
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
  return byServer;
}
