/**
 * The cut for opaque channels (an app's own TCP, invisible to the agent), as a sans-I/O state
 * machine the coordinator drives: apps are quiesced through their hooks in topological order of the
 * graph's strongly connected components. Upstream first; a downstream component drains what its
 * upstream components sent, up to the output positions they reported when they quiesced, then
 * quiesces and is captured; an upstream component stays quiesced until every component downstream of
 * it is captured, so nothing it could send is missing from, or extra in, the cut. A strongly
 * connected component is quiesced as one.
 *
 * This is the synchronous baseline of the ABS paper: every app stalls for the time its downstream
 * takes to drain and capture. The stall per app is what `quiescedFor` in the stats measures.
 */
import { stronglyConnectedComponents, type AppGraph } from '../graph/index.js';
import type { ChannelId, ProcessId } from '../ids.js';

export type QuiesceInput =
  | { readonly type: 'start' }
  /** The app's quiesce hook finished; it reports how much it had sent on each output, when it knows. */
  | { readonly type: 'quiesced'; readonly app: ProcessId; readonly outputPositions: Readonly<Record<ChannelId, number>> }
  | { readonly type: 'captured'; readonly app: ProcessId }
  | { readonly type: 'failed'; readonly app: ProcessId; readonly reason: string };

export type QuiesceEffect =
  /** Quiesce these apps; before that, each must drain its inputs up to the given positions. */
  | { readonly type: 'quiesce'; readonly apps: readonly ProcessId[]; readonly drainTo: Readonly<Record<ChannelId, number>> }
  /** Capture the state of these quiesced apps. */
  | { readonly type: 'capture'; readonly apps: readonly ProcessId[] }
  /** Let these apps run again. */
  | { readonly type: 'resume'; readonly apps: readonly ProcessId[] }
  | { readonly type: 'done'; readonly positions: Readonly<Record<ChannelId, number>> }
  | { readonly type: 'aborted'; readonly reason: string; readonly resumed: readonly ProcessId[] };

export type QuiesceRejectReason = 'not-started' | 'already-started' | 'unknown-app' | 'unexpected' | 'finished';

export interface QuiesceResult {
  readonly effects: readonly QuiesceEffect[];
  readonly rejected?: { readonly reason: QuiesceRejectReason; readonly detail: string };
}

type Phase = 'waiting' | 'quiescing' | 'capturing' | 'captured' | 'resumed';

interface Component {
  readonly index: number;
  readonly apps: readonly ProcessId[];
  readonly upstream: ReadonlySet<number>;
  readonly downstream: ReadonlySet<number>;
  /** Channels from other components into this one. */
  readonly inputs: readonly { readonly id: ChannelId; readonly from: ProcessId }[];
  phase: Phase;
  readonly quiesced: Set<ProcessId>;
  readonly captured: Set<ProcessId>;
}

export class QuiescePlan {
  private readonly components: Component[];
  private readonly componentOf = new Map<ProcessId, Component>();
  private readonly positions: Record<ChannelId, number> = {};
  private state: 'new' | 'running' | 'done' | 'aborted' = 'new';

  constructor(graph: AppGraph) {
    const sccs = stronglyConnectedComponents(graph);
    const index = new Map<ProcessId, number>();
    sccs.forEach((apps, i) => apps.forEach((a) => index.set(a, i)));
    const up = sccs.map(() => new Set<number>());
    const down = sccs.map(() => new Set<number>());
    const inputs = sccs.map((): { id: ChannelId; from: ProcessId }[] => []);
    for (const c of graph.channels) {
      const a = index.get(c.from) as number;
      const b = index.get(c.to) as number;
      if (a === b) continue;
      up[b]?.add(a);
      down[a]?.add(b);
      inputs[b]?.push({ id: c.id, from: c.from });
    }
    this.components = sccs.map((apps, i) => ({
      index: i,
      apps,
      upstream: up[i] as Set<number>,
      downstream: down[i] as Set<number>,
      inputs: inputs[i] as { id: ChannelId; from: ProcessId }[],
      phase: 'waiting' as Phase,
      quiesced: new Set<ProcessId>(),
      captured: new Set<ProcessId>(),
    }));
    for (const c of this.components) for (const a of c.apps) this.componentOf.set(a, c);
  }

  /** The components in the order they are quiesced (upstream first), for display. */
  order(): ProcessId[][] {
    return this.components.map((c) => [...c.apps]);
  }

  step(input: QuiesceInput): QuiesceResult {
    const out: QuiesceEffect[] = [];
    if (this.state === 'done' || this.state === 'aborted') return reject(out, 'finished', `the quiesce plan has ${this.state}`);
    if (input.type === 'start') {
      if (this.state !== 'new') return reject(out, 'already-started', 'the quiesce plan already started');
      this.state = 'running';
      for (const c of this.components) if (c.upstream.size === 0) this.quiesce(c, out);
      return { effects: out };
    }
    if (this.state === 'new') return reject(out, 'not-started', 'start the quiesce plan first');
    const c = this.componentOf.get(input.app);
    if (!c) return reject(out, 'unknown-app', `${input.app} is not in the plan`);
    switch (input.type) {
      case 'failed': {
        const resumed = this.components.filter((x) => x.phase !== 'waiting' && x.phase !== 'resumed').flatMap((x) => [...x.apps]);
        for (const x of this.components) if (x.phase !== 'waiting') x.phase = 'resumed';
        this.state = 'aborted';
        if (resumed.length > 0) out.push({ type: 'resume', apps: resumed });
        out.push({ type: 'aborted', reason: `${input.app}: ${input.reason}`, resumed });
        return { effects: out };
      }
      case 'quiesced': {
        if (c.phase !== 'quiescing' || c.quiesced.has(input.app)) return reject(out, 'unexpected', `${input.app} reported quiesced while ${c.phase}`);
        c.quiesced.add(input.app);
        Object.assign(this.positions, input.outputPositions);
        if (c.quiesced.size < c.apps.length) return { effects: out };
        c.phase = 'capturing';
        out.push({ type: 'capture', apps: c.apps });
        // A downstream component can quiesce once every component upstream of it is quiesced.
        for (const d of c.downstream) {
          const dc = this.components[d] as Component;
          if (dc.phase === 'waiting' && [...dc.upstream].every((u) => (this.components[u] as Component).phase !== 'waiting' && (this.components[u] as Component).phase !== 'quiescing')) {
            this.quiesce(dc, out);
          }
        }
        return { effects: out };
      }
      case 'captured': {
        if (c.phase !== 'capturing' || c.captured.has(input.app)) return reject(out, 'unexpected', `${input.app} reported captured while ${c.phase}`);
        c.captured.add(input.app);
        if (c.captured.size < c.apps.length) return { effects: out };
        c.phase = 'captured';
        this.resumeWhatCan(out);
        return { effects: out };
      }
    }
  }

  private quiesce(c: Component, out: QuiesceEffect[]): void {
    c.phase = 'quiescing';
    const drainTo: Record<ChannelId, number> = {};
    for (const i of c.inputs) {
      const p = this.positions[i.id];
      if (p !== undefined) drainTo[i.id] = p;
    }
    out.push({ type: 'quiesce', apps: c.apps, drainTo });
  }

  /** A captured component resumes once everything downstream of it is captured too. */
  private resumeWhatCan(out: QuiesceEffect[]): void {
    const ready = this.components.filter(
      (x) => x.phase === 'captured' && [...x.downstream].every((d) => {
        const p = (this.components[d] as Component).phase;
        return p === 'captured' || p === 'resumed';
      }),
    );
    // Downstream resumes first, so a resumed upstream never sends into a still-quiesced app.
    for (const x of ready.reverse()) {
      x.phase = 'resumed';
      out.push({ type: 'resume', apps: x.apps });
    }
    if (this.components.every((x) => x.phase === 'resumed')) {
      this.state = 'done';
      out.push({ type: 'done', positions: { ...this.positions } });
    }
  }
}

function reject(effects: QuiesceEffect[], reason: QuiesceRejectReason, detail: string): QuiesceResult {
  return { effects, rejected: { reason, detail } };
}
