/**
 * What a rollback or restore needs to know before it changes anything, gathered and checked here so
 * that the operation machine (src/control/operation.ts) only starts acting on a request that can
 * succeed: which agents are alive, whether every part's state and channel state can be read back
 * with the digest its app acked, what each target server is sent, which plan's epoch line the
 * targets run under, and which volume goes where.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { SnapshotCounts } from '../../src/core/types.js';
import type { ChannelId } from '../../src/ids.js';
import { parseChannelId } from '../../src/ids.js';
import { processId, type AppRestore, type ObjectRef } from '../../src/wire/index.js';
import type { StateObjects } from '../../adapters/state-store.js';
import type { AgentPresence } from '../agents.js';
import type { ControlBus } from '../bus.js';
import { fail, ok, type Result } from '../errors.js';
import type { AppRef, CheckpointRecord, Plan, Volume } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import type { VolumeBackend, VolumeSnapshotRef } from '../volumes/backend.js';
import { appStateOf } from './part-state.js';

/** What rollback and restore use of the coordinator. */
export interface RestoreDeps {
  readonly store: CoordinatorStore;
  readonly bus: Pick<ControlBus, 'send' | 'onEvents'>;
  readonly objects: StateObjects;
  readonly logger: Logger;
  /** How long each phase of an operation waits for every agent's answer. */
  readonly timeoutMs: number;
  /** Crash-level checkpoints are put back volume by volume through the backend. */
  readonly volumes?: VolumeBackend;
  /**
   * Which agents are alive. With it, an operation to a server without a live agent is refused at
   * once, before anything changes, instead of waiting `timeoutMs` for an answer that cannot come.
   */
  readonly agents?: AgentPresence;
}

/** Objects read back at once while a part check runs: enough to hide latency, few enough for a large plan. */
const PART_READS_IN_FLIGHT_MAX = 8;

/**
 * FAILED_PRECONDITION naming every one of `servers` without a live agent, or ok. A late agent (silent
 * for a while, not yet offline) passes: it may only be busy, and the operation's resends and phase
 * timeout are the right judges of that; an agent never seen or offline cannot answer.
 */
export function checkAgentsPresent(tenant: string, servers: readonly string[], agents: AgentPresence | undefined, what: string): Result<void> {
  if (agents === undefined) return ok(undefined);
  const absent = [...new Set(servers)].sort().flatMap((server) => {
    const agent = agents.get(tenant, server);
    if (agent === undefined) return [`${server} (no agent has registered)`];
    return agent.status === 'offline' ? [`${server} (its agent is offline)`] : [];
  });
  if (absent.length === 0) return ok(undefined);
  return fail(
    'failed-precondition',
    `${what} not started: no live agent of tenant ${tenant} on ${absent.join(', ')}; start an agent there (snapctl agents lists them) or choose servers that have one`,
  );
}

/**
 * Reads back every object the checkpoint's parts name (app states and channel states), each checked
 * against the size and digest its app acked, and checks each inline state's digest: a rollback to a
 * part that cannot be restored is refused before anything changes. FAILED_PRECONDITION names every
 * part that fails; UNAVAILABLE when the store could not answer (a retry may pass).
 */
export async function checkPartsReadable(record: CheckpointRecord, objects: StateObjects): Promise<Result<void>> {
  const problems: string[] = [];
  let unavailable = false;
  const reads: { who: string; ref: ObjectRef }[] = [];
  for (const p of record.parts) {
    const who = `${p.server}/${p.app}`;
    if (!p.counts) {
      problems.push(`${who} has no acked counts`);
      continue;
    }
    const state = appStateOf(p);
    if (!state.ok) problems.push(state.message);
    else if (state.value.kind === 'object') reads.push({ who, ref: state.value.ref });
    if (p.channelState) reads.push({ who: `${who} (channel state)`, ref: p.channelState });
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < reads.length) {
      const read = reads[next++] as (typeof reads)[number];
      const got = await objects.get(record.tenant, read.ref);
      if (got.ok) continue;
      if (got.error.kind === 'unavailable') unavailable = true;
      problems.push(`${read.who}: ${got.error.message}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PART_READS_IN_FLIGHT_MAX, reads.length) }, worker));
  if (problems.length === 0) return ok(undefined);
  const what = `checkpoint ${record.id} cannot be restored: ${problems.sort().join('; ')}`;
  return unavailable ? fail('unavailable', `${what}; the state store did not answer in time: retry`) : fail('failed-precondition', what);
}

/** What each target server is sent to restore its apps: state, channel state, counts, channels renamed by the mapping. */
export function restoreCommands(record: CheckpointRecord, mapping: ReadonlyMap<string, AppRef>): Result<Map<string, AppRestore[]>> {
  const byServer = new Map<string, AppRestore[]>();
  for (const p of record.parts) {
    const target = mapping.get(processId(p.server, p.app));
    if (!target || !p.counts) return fail('failed-precondition', `checkpoint ${record.id} has no stored state for ${p.server}/${p.app}`);
    const state = appStateOf(p);
    if (!state.ok) return fail('failed-precondition', `checkpoint ${record.id}: ${state.message}`);
    const aliases: Record<ChannelId, ChannelId> = {};
    for (const ch of [...Object.keys(p.counts.sent), ...Object.keys(p.counts.received)]) {
      const mapped = mapChannel(ch, mapping);
      if (mapped !== ch) aliases[ch] = mapped;
    }
    const list = byServer.get(target.server) ?? [];
    list.push({
      app: target.app,
      state: state.value,
      ...(p.channelState ? { channelState: p.channelState } : {}),
      counts: mapCounts(p.counts, mapping),
      channelAliases: aliases,
    });
    byServer.set(target.server, list);
  }
  return ok(byServer);
}

/** The identity mapping of a rollback: every app back onto itself. */
export function identityMapping(record: CheckpointRecord): Map<string, AppRef> {
  return new Map(record.parts.map((p) => [processId(p.server, p.app), { server: p.server, app: p.app }]));
}

/**
 * The epoch line a restore's targets run under: the registered plan whose apps are exactly the
 * targets (its id: its checkpoints are triggered at its epoch, which must be the one its apps are
 * restored into), else a line of the restore's own, named after the source plan and the targets.
 * FAILED_PRECONDITION when plans hold only some of the targets, since a plan with apps left at the
 * old epoch could not take a checkpoint any more.
 */
export async function epochLineOfTargets(record: CheckpointRecord, targets: readonly string[], store: CoordinatorStore): Promise<Result<{ line: string; plan?: string }>> {
  const owner = await planOfTargets(record.tenant, targets, store);
  if (!owner.ok) return owner;
  if (owner.value !== undefined) return ok({ line: owner.value, plan: owner.value });
  return ok({ line: `restore-${createHash('sha256').update(`${record.planId}|${[...targets].sort().join(',')}`).digest('hex').slice(0, 32)}` });
}

async function planOfTargets(tenant: string, targets: readonly string[], store: CoordinatorStore): Promise<Result<string | undefined>> {
  const wanted = new Set(targets);
  const touched: { id: string; apps: string[] }[] = [];
  let token = '';
  do {
    const page = await store.plans.list({ tenant }, 100, token);
    if (!page.ok) return page;
    for (const plan of page.value.items) {
      const apps = plan.apps.map((a) => processId(a.server, a.app));
      if (apps.some((a) => wanted.has(a))) touched.push({ id: plan.id, apps });
    }
    token = page.value.nextPageToken;
  } while (token !== '');
  if (touched.length === 0) return ok(undefined);
  const exact = touched.length === 1 && touched[0] !== undefined && touched[0].apps.length === wanted.size && touched[0].apps.every((a) => wanted.has(a));
  if (exact) return ok(touched[0]?.id);
  return fail(
    'failed-precondition',
    `the restore targets ${[...wanted].sort().join(', ')} are not exactly the apps of one plan (${touched.map((t) => `plan ${t.id} has ${[...t.apps].sort().join(', ')}`).join('; ')}): restore into all the apps of one plan, or into servers no plan uses`,
  );
}

/**
 * Each volume snapshot of a crash-level checkpoint and the volume of the target plan it goes onto:
 * the one with the same volume id on the mapped server, else the one at the same position there.
 */
export function volumePairs(record: CheckpointRecord, servers: Readonly<Record<string, string>>, target: Plan): Result<{ snapshot: VolumeSnapshotRef; volume: Volume }[]> {
  const pairs: { snapshot: VolumeSnapshotRef; volume: Volume }[] = [];
  for (const snap of record.volumes) {
    const server = servers[snap.server];
    if (server === undefined) return fail('invalid-argument', `no target server for ${snap.server}, which holds volume ${snap.volumeId}`);
    const own = record.volumes.filter((v) => v.server === snap.server);
    const theirs = target.volumes.filter((v) => v.server === server);
    const volume = theirs.find((v) => v.id === snap.volumeId) ?? theirs[own.indexOf(snap)];
    if (!volume) return fail('failed-precondition', `plan ${target.id} has no volume on ${server} to take volume ${snap.volumeId} of ${snap.server}`);
    pairs.push({ snapshot: snap, volume });
  }
  return ok(pairs);
}

function mapChannel(channel: ChannelId, mapping: ReadonlyMap<string, AppRef>): ChannelId {
  const ends = parseChannelId(channel);
  if (!ends) return channel;
  const from = mapping.get(ends.from);
  const to = mapping.get(ends.to);
  return `${from ? processId(from.server, from.app) : ends.from}->${to ? processId(to.server, to.app) : ends.to}`;
}

function mapCounts(c: SnapshotCounts, mapping: ReadonlyMap<string, AppRef>): SnapshotCounts {
  const map = (r: Readonly<Record<string, number>>): Record<string, number> => Object.fromEntries(Object.entries(r).map(([ch, n]) => [mapChannel(ch, mapping), n]));
  return { sent: map(c.sent), received: map(c.received) };
}
