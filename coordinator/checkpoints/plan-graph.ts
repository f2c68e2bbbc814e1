/**
 * A plan record's app graph, as the round machines take it: the graph of in-band and log channels an
 * app-level round runs barriers over (src/control/round-graph.ts says who initiates), and the opaque
 * graph a quiescing round orders.
 */
import { backEdges, validateGraph, type AppGraph } from '../../src/graph/index.js';
import type { PlanGraph } from '../../src/control/round-graph.js';
import { processId } from '../../src/wire/index.js';
import type { Plan } from '../model.js';

export type { PlanGraph };

type PlanGraphResult = { ok: true; value: PlanGraph } | { ok: false; message: string };

/** Per plan object: a cached plan (coordinator/store/cached.ts) is the same object until it changes. */
const graphs = new WeakMap<Plan, PlanGraphResult>();

export function planGraph(plan: Plan): PlanGraphResult {
  let g = graphs.get(plan);
  if (g === undefined) {
    g = buildPlanGraph(plan);
    graphs.set(plan, g);
  }
  return g;
}

function buildPlanGraph(plan: Plan): PlanGraphResult {
  const processes = plan.apps.map((a) => processId(a.server, a.app));
  // Log channels carry barriers too (apart from their messages, docs/channels.md): one graph.
  const inBand = plan.channels.filter((c) => c.kind === 'in-band' || c.kind === 'log');
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
        .filter((c) => c.kind === 'opaque')
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
