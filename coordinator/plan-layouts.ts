/**
 * Which agents hold which layout of each plan's per-server trigger parts (wire.proto, PlanTrigger).
 * The trigger broadcast carries no per-server part, so that its size does not grow with the plan;
 * a server gets its part in a Trigger of its own unless it answered the plan's previous checkpoint
 * of the same layout (an answer shows it held the layout: it took the trigger). So a server that
 * lost its layout (its agent restarted, and its new registration was lost on the way) misses at
 * most one checkpoint, whose silence takes it off the holders. Memory only: a restarted coordinator
 * knows no holders and sends every part once again; an agent that registers anew is forgotten too.
 */
import { createHash } from 'node:crypto';

/** One server's part, as the round's trigger effect gives it. */
export interface ServerPart {
  readonly server: string;
  readonly apps: readonly string[];
  readonly initiatorApps: readonly string[];
  readonly backEdgeChannels: readonly string[];
}

/** Checkpoints whose answers are still noted; the oldest is forgotten first. */
const CHECKPOINTS_NOTED_MAX = 256;

interface PlanEntry {
  readonly tenant: string;
  layout: string;
  /** The plan's latest checkpoint and the servers that answered it. */
  checkpointId: number;
  answered: Set<string>;
}

export class PlanLayouts {
  /** `tenant/plan` -> its latest broadcast's layout and who answered it. */
  private readonly plans = new Map<string, PlanEntry>();
  /** Checkpoint id (coordinator-wide) -> its plan's entry, to note answers. */
  private readonly checkpoints = new Map<number, PlanEntry>();

  /** Names the parts by their content: the same plan graph and policy give the same id. */
  static idOf(parts: readonly ServerPart[]): string {
    // The round hands out the same parts array for every checkpoint of a plan graph and policy.
    let id = ids.get(parts);
    if (id === undefined) {
      id = digest(parts);
      ids.set(parts, id);
    }
    return id;
  }

  /**
   * The servers of `parts` that need their part sent for checkpoint `checkpointId` of layout
   * `layout`: all but those that answered the plan's previous checkpoint of the same layout. Notes
   * the checkpoint, whose answers decide the next one's.
   */
  missing(tenant: string, plan: string, checkpointId: number, layout: string, parts: readonly ServerPart[]): ServerPart[] {
    const key = `${tenant}/${plan}`;
    const previous = this.plans.get(key);
    const holders = previous !== undefined && previous.layout === layout ? previous.answered : undefined;
    const entry: PlanEntry = { tenant, layout, checkpointId, answered: new Set() };
    this.plans.set(key, entry);
    this.checkpoints.set(checkpointId, entry);
    if (this.checkpoints.size > CHECKPOINTS_NOTED_MAX) this.checkpoints.delete(this.checkpoints.keys().next().value as number);
    if (holders === undefined) return [...parts];
    return holders.size === parts.length ? [] : parts.filter((p) => !holders.has(p.server));
  }

  /** An answer of `server` about `checkpointId`: it took the trigger, so it holds the layout. */
  answered(tenant: string, server: string, checkpointId: number): void {
    const entry = this.checkpoints.get(checkpointId);
    if (entry !== undefined && entry.tenant === tenant) entry.answered.add(server);
  }

  /** The agent registered anew: it may have restarted and forgotten every layout. */
  forget(tenant: string, server: string): void {
    const prefix = `${tenant}/`;
    for (const [key, entry] of this.plans) if (key.startsWith(prefix)) entry.answered.delete(server);
  }
}

function digest(parts: readonly ServerPart[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p.server}\n${p.apps.join(',')}\n${p.initiatorApps.join(',')}\n${p.backEdgeChannels.join(',')}\n`);
  return h.digest('base64url').slice(0, 22);
}

const ids = new WeakMap<readonly ServerPart[], string>();
