/**
 * The checks of a restore's mapping that need nothing but the request and the checkpoint (defect 8):
 * every app of the checkpoint gets exactly one target, no two apps share a target, the mapping names
 * nothing the checkpoint does not hold, and no target is one of the checkpoint's own servers (that
 * is a rollback; a restore there would run the plan's apps under a second epoch line). Each failure
 * is INVALID_ARGUMENT at once, before anything is read or changed.
 */

export interface AppAt {
  readonly server: string;
  readonly app: string;
}

export interface RestoreMapping {
  /** Source server -> target server. */
  readonly servers: Readonly<Record<string, string>>;
  /** Single apps; wins over the server mapping. */
  readonly apps: readonly { readonly source: AppAt; readonly target: AppAt }[];
}

export interface CheckpointShape {
  readonly id: number;
  readonly apps: readonly AppAt[];
  /** Servers holding a volume snapshot of the checkpoint (crash level). */
  readonly volumeServers: readonly string[];
}

export type MappingCheck =
  /** Source `server/app` -> its target, for every app of the checkpoint. */
  | { readonly ok: true; readonly targets: ReadonlyMap<string, AppAt> }
  | { readonly ok: false; readonly kind: 'invalid-argument'; readonly message: string };

const id = (a: AppAt): string => `${a.server}/${a.app}`;

export function checkRestoreMapping(checkpoint: CheckpointShape, mapping: RestoreMapping): MappingCheck {
  const bad = (message: string): MappingCheck => ({ ok: false, kind: 'invalid-argument', message: `restore of checkpoint ${checkpoint.id}: ${message}` });
  const ownServers = new Set([...checkpoint.apps.map((a) => a.server), ...checkpoint.volumeServers]);
  const ownApps = new Set(checkpoint.apps.map(id));
  const unknownServers = Object.keys(mapping.servers).filter((s) => !ownServers.has(s)).sort();
  if (unknownServers.length > 0) return bad(`the mapping names ${unknownServers.join(', ')}, which the checkpoint does not hold (it holds ${[...ownServers].sort().join(', ')})`);
  const sources = mapping.apps.map((m) => id(m.source));
  const unknownApps = sources.filter((s) => !ownApps.has(s)).sort();
  if (unknownApps.length > 0) return bad(`the mapping names ${unknownApps.join(', ')}, which the checkpoint does not hold (it holds ${[...ownApps].sort().join(', ')})`);
  const twice = sources.filter((s, i) => sources.indexOf(s) !== i);
  if (twice.length > 0) return bad(`${[...new Set(twice)].sort().join(', ')} mapped twice`);
  const targets = new Map<string, AppAt>();
  const missing: string[] = [];
  for (const a of checkpoint.apps) {
    const byApp = mapping.apps.find((m) => m.source.server === a.server && m.source.app === a.app);
    const server = mapping.servers[a.server];
    const target = byApp ? byApp.target : server !== undefined ? { server, app: a.app } : undefined;
    if (target === undefined) missing.push(id(a));
    else targets.set(id(a), target);
  }
  const unmappedVolumes = checkpoint.volumeServers.filter((s) => mapping.servers[s] === undefined);
  if (missing.length > 0 || unmappedVolumes.length > 0) {
    return bad(`no target for ${[...missing, ...unmappedVolumes.map((s) => `the volumes of ${s}`)].sort().join(', ')}: map every server (or app) of the checkpoint`);
  }
  const onOwn = [...new Set([...targets.values()].map((t) => t.server).concat(checkpoint.volumeServers.map((s) => mapping.servers[s] as string)))].filter((s) => ownServers.has(s)).sort();
  if (onOwn.length > 0) {
    return bad(`${onOwn.join(', ')} ${onOwn.length === 1 ? 'is' : 'are'} the checkpoint's own server${onOwn.length === 1 ? '' : 's'}: restore into other servers, or use RollbackSnapshot to put the plan's own servers back`);
  }
  const byTarget = new Map<string, string[]>();
  for (const [source, t] of targets) byTarget.set(id(t), [...(byTarget.get(id(t)) ?? []), source]);
  const shared = [...byTarget].filter(([, s]) => s.length > 1).map(([t, s]) => `${s.sort().join(' and ')} -> ${t}`);
  if (shared.length > 0) return bad(`two source apps map to the same target app (${shared.sort().join('; ')})`);
  return { ok: true, targets };
}
