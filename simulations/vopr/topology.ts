/**
 * A seed's tenant: servers with apps and volumes, and plans over them. Plans may share servers (the
 * case of defect 1) but never an app: an app belongs to at most one plan (docs/api.md). Spare
 * servers, in no plan, are where checkpoints are restored into.
 */
import { channelId } from '../../src/ids.js';
import type { Prng } from '../prng.js';

export const TENANT = 't1';

/** `opaque`: level app over the apps' own channels (quiesced in topological order, src/control/round-opaque.ts). */
export type Level = 'app' | 'crash' | 'opaque';

export interface SimApp {
  readonly server: string;
  readonly app: string;
}

export interface SimPlan {
  readonly id: string;
  readonly level: Level;
  readonly apps: readonly SimApp[];
  readonly servers: readonly string[];
  /** One volume per server of the plan, named `<server>-<plan>`. */
  readonly volumes: readonly { readonly server: string; readonly volume: string }[];
  /** Opaque plans: a chain over the apps in order; empty otherwise. */
  readonly channels: readonly { readonly id: string; readonly from: string; readonly to: string }[];
  readonly maxConcurrent: number;
  readonly timeoutMs: number;
  readonly freezeDeadlineMs: number;
}

export interface Topology {
  readonly servers: readonly string[];
  readonly spareServers: readonly string[];
  /** Apps per server, plans' and spare ones alike. */
  readonly appsOf: ReadonlyMap<string, readonly string[]>;
  readonly plans: readonly SimPlan[];
}

export const APPS_PER_SERVER = 3;

export function drawTopology(prng: Prng): Topology {
  const serverCount = 3 + prng.int(3);
  const servers = Array.from({ length: serverCount }, (_, i) => `s${i + 1}`);
  const spareServers = Array.from({ length: 1 + prng.int(2) }, (_, i) => `r${i + 1}`);
  const appsOf = new Map<string, string[]>();
  for (const s of [...servers, ...spareServers]) appsOf.set(s, Array.from({ length: APPS_PER_SERVER }, (_, i) => `a${i + 1}`));
  const free = new Map(servers.map((s) => [s, [...(appsOf.get(s) as string[])]]));
  const planCount = 2 + prng.int(3);
  const plans: SimPlan[] = [];
  for (let p = 0; p < planCount; p++) {
    const want = 1 + prng.int(Math.min(3, serverCount));
    const candidates = servers.filter((s) => (free.get(s) as string[]).length > 0);
    const chosen: string[] = [];
    while (chosen.length < want && candidates.length > 0) chosen.push(candidates.splice(prng.int(candidates.length), 1)[0] as string);
    if (chosen.length === 0) break;
    chosen.sort();
    const apps = chosen.map((server) => ({ server, app: (free.get(server) as string[]).shift() as string }));
    const id = `p${p + 1}`;
    const r = prng.next();
    const level: Level = r < 0.4 ? 'app' : r < 0.75 ? 'crash' : 'opaque';
    const ids = apps.map((a) => `${a.server}/${a.app}`);
    plans.push({
      id,
      level,
      apps,
      channels: level === 'opaque' ? ids.slice(1).map((to, i) => ({ id: channelId(ids[i] as string, to), from: ids[i] as string, to })) : [],
      servers: chosen,
      volumes: chosen.map((server) => ({ server, volume: `${server}-${id}` })),
      maxConcurrent: prng.next() < 0.7 ? 1 : 2,
      timeoutMs: 1_000 + prng.int(3_000),
      freezeDeadlineMs: 300 + prng.int(1_500),
    });
  }
  return { servers, spareServers, appsOf, plans };
}

export function describeTopology(t: Topology): string {
  return t.plans.map((p) => `${p.id}(${p.level},max${p.maxConcurrent}:${p.apps.map((a) => `${a.server}/${a.app}`).join('+')})`).join(' ');
}
