/**
 * Which agents hold which layout of each plan's per-server trigger parts (wire.proto, PlanTrigger).
 * The trigger broadcast carries no per-server part, so that its size does not grow with the plan;
 * a server gets its part in a Trigger of its own until one of its answers shows it holds the layout.
 * Memory only: a restarted coordinator knows no holders and sends every part once again, and an
 * agent that registers anew (it may have restarted) is forgotten as a holder.
 */
import { createHash } from 'node:crypto';

/** One server's part, as the round's trigger effect gives it. */
export interface ServerPart {
  readonly server: string;
  readonly apps: readonly string[];
  readonly initiatorApps: readonly string[];
  readonly backEdgeChannels: readonly string[];
}

/** Checkpoints whose answers may still confirm a holder; the oldest is forgotten first. */
const CONFIRMING_CHECKPOINTS_MAX = 256;

interface Confirming {
  readonly key: string;
  readonly layout: string;
}

export class PlanLayouts {
  /** `tenant/plan` -> the layout last broadcast and the servers known to hold it. */
  private readonly plans = new Map<string, { layout: string; holders: Set<string> }>();
  /** `tenant/checkpoint` -> the plan layout its parts were sent under. */
  private readonly confirming = new Map<string, Confirming>();

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
   * The servers of `parts` that need their part sent for a checkpoint of layout `layout`; remembers
   * the checkpoint so that their answers confirm them.
   */
  missing(tenant: string, plan: string, checkpointId: number, layout: string, parts: readonly ServerPart[]): ServerPart[] {
    const key = `${tenant}/${plan}`;
    let entry = this.plans.get(key);
    if (entry === undefined || entry.layout !== layout) {
      entry = { layout, holders: new Set() };
      this.plans.set(key, entry);
    }
    const holders = entry.holders;
    const missing = holders.size === parts.length ? [] : parts.filter((p) => !holders.has(p.server));
    if (missing.length > 0) {
      this.confirming.set(`${tenant}/${checkpointId}`, { key, layout });
      if (this.confirming.size > CONFIRMING_CHECKPOINTS_MAX) this.confirming.delete(this.confirming.keys().next().value as string);
    }
    return missing;
  }

  /** An answer of `server` about `checkpointId`: it took the trigger, so it holds the layout. */
  answered(tenant: string, server: string, checkpointId: number): void {
    if (this.confirming.size === 0) return;
    const c = this.confirming.get(`${tenant}/${checkpointId}`);
    if (c === undefined) return;
    const entry = this.plans.get(c.key);
    if (entry !== undefined && entry.layout === c.layout) entry.holders.add(server);
  }

  /** The agent registered anew: it may have restarted and forgotten every layout. */
  forget(tenant: string, server: string): void {
    const prefix = `${tenant}/`;
    for (const [key, entry] of this.plans) if (key.startsWith(prefix)) entry.holders.delete(server);
  }
}

function digest(parts: readonly ServerPart[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p.server}\n${p.apps.join(',')}\n${p.initiatorApps.join(',')}\n${p.backEdgeChannels.join(',')}\n`);
  return h.digest('base64url').slice(0, 22);
}

const ids = new WeakMap<readonly ServerPart[], string>();
