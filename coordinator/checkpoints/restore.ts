/**
 * Rollback (the plan's own servers back to a checkpoint) and restore (a checkpoint into other
 * servers). Both are two-phase: every agent restores its apps under a new epoch and keeps them
 * paused; only when all answered `restored` are they resumed, so no app sends in the new epoch to an
 * app that is still in the old one. The new epoch fences everything still in flight from before.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { SnapshotCounts } from '../../src/core/types.js';
import type { ChannelId, CheckpointId, Epoch } from '../../src/ids.js';
import { parseChannelId } from '../../src/ids.js';
import { processId, type AppRestore } from '../../src/wire/index.js';
import type { StateObjects } from '../../adapters/state-store.js';
import type { AgentPresence } from '../agents.js';
import type { RestoreRequest } from '../api.js';
import type { ControlBus } from '../bus.js';
import { fail, ok, type Result } from '../errors.js';
import type { AppRef, CheckpointRecord } from '../model.js';
import { appStateOf } from './part-state.js';
import type { CoordinatorStore } from '../store/index.js';
import type { VolumeBackend, VolumeSnapshotRef } from '../volumes/backend.js';

export interface RestoreDeps {
  readonly store: CoordinatorStore;
  readonly bus: ControlBus;
  readonly objects: StateObjects;
  readonly logger: Logger;
  readonly timeoutMs: number;
  /** Crash-level checkpoints are restored volume by volume through the backend. */
  readonly volumes?: VolumeBackend;
  /**
   * Which agents are alive. With it, a rollback or restore to a server without a live agent fails at
   * once, before anything is sent or an epoch moved, instead of waiting `timeoutMs` for an answer
   * that cannot come. Without it that check is skipped.
   */
  readonly agents?: AgentPresence;
}

/**
 * FAILED_PRECONDITION naming every one of `servers` without a live agent, or ok. A late agent (silent
 * for a while, not yet offline) passes: it may only be busy, and the restore's own timeout is the
 * right judge of that; an agent never seen or offline cannot answer.
 */
export function checkAgentsPresent(tenant: string, servers: readonly string[], deps: Pick<RestoreDeps, 'agents'>, what: string): Result<void> {
  const agents = deps.agents;
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

export async function rollback(record: CheckpointRecord, deps: RestoreDeps): Promise<Result<{ epoch: Epoch }>> {
  const present = checkAgentsPresent(record.tenant, record.parts.map((p) => p.server), deps, `rollback to checkpoint ${record.id}`);
  if (!present.ok) return present;
  const epoch = await deps.store.epochs.bump(record.planId);
  if (!epoch.ok) return epoch;
  const identity = new Map(record.parts.map((p) => [processId(p.server, p.app), { server: p.server, app: p.app }]));
  return runRestore(record, identity, epoch.value, deps, 'rollback', record.planId);
}

export async function restoreInto(
  request: RestoreRequest,
  deps: RestoreDeps,
  get: (id: CheckpointId) => Promise<Result<CheckpointRecord>>,
): Promise<Result<{ epoch: Epoch }>> {
  const record = await get(request.checkpointId);
  if (!record.ok) return record;
  if (record.value.state !== 'completed') {
    return fail('failed-precondition', `checkpoint ${request.checkpointId} is ${record.value.state}; only a completed checkpoint can be restored`);
  }
  const mapping = new Map<string, AppRef>();
  const missing: string[] = [];
  for (const p of record.value.parts) {
    const byApp = request.apps.find((m) => m.source.server === p.server && m.source.app === p.app);
    const server = request.servers[p.server];
    const target = byApp ? byApp.target : server !== undefined ? { server, app: p.app } : undefined;
    if (!target) missing.push(processId(p.server, p.app));
    else mapping.set(processId(p.server, p.app), target);
  }
  if (missing.length > 0) return fail('invalid-argument', `no target for ${missing.join(', ')}: map every server (or app) of the checkpoint`);
  const targets = [...mapping.values()].map((t) => processId(t.server, t.app));
  if (new Set(targets).size !== targets.length) return fail('invalid-argument', 'two source apps map to the same target app');
  // The targets run under an epoch line of their own, so the original plan's epoch is left untouched.
  // When the targets are the apps of a registered plan, that line is the plan's: its checkpoints are
  // triggered at its epoch, which must be the one its apps are restored into.
  const owner = await planOfTargets(record.value.tenant, targets, deps.store);
  if (!owner.ok) return owner;
  // Last of the checks: what is wrong with the request itself is said before who is missing.
  const targetServers = [...mapping.values()].map((t) => t.server);
  const volumeServers = record.value.volumes.flatMap((v) => request.servers[v.server] ?? []);
  const present = checkAgentsPresent(record.value.tenant, [...targetServers, ...volumeServers], deps, `restore of checkpoint ${request.checkpointId}`);
  if (!present.ok) return present;
  if (record.value.levelAchieved === 'crash') return crashRestoreInto(record.value, request.servers, owner.value, deps);
  const key = owner.value ?? `restore-${createHash('sha256').update(`${record.value.planId}|${[...targets].sort().join(',')}`).digest('hex').slice(0, 32)}`;
  const epoch = await deps.store.epochs.bump(key);
  if (!epoch.ok) return epoch;
  return runRestore(record.value, mapping, epoch.value, deps, 'restore', key);
}

/**
 * The registered plan whose apps are exactly the restore's targets (its id), undefined when no plan
 * has any of them; FAILED_PRECONDITION when plans hold only some of them, since a plan with apps
 * left at the old epoch could not take a checkpoint any more.
 */
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

function mapChannel(channel: ChannelId, mapping: ReadonlyMap<string, AppRef>): ChannelId {
  const ends = parseChannelId(channel);
  if (!ends) return channel;
  const from = mapping.get(ends.from);
  const to = mapping.get(ends.to);
  return `${from ? processId(from.server, from.app) : ends.from}->${to ? processId(to.server, to.app) : ends.to}`;
}

function mapCounts(c: SnapshotCounts, mapping: ReadonlyMap<string, AppRef>): SnapshotCounts {
  const map = (r: Readonly<Record<string, number>>): Record<string, number> =>
    Object.fromEntries(Object.entries(r).map(([ch, n]) => [mapChannel(ch, mapping), n]));
  return { sent: map(c.sent), received: map(c.received) };
}

async function runRestore(
  record: CheckpointRecord,
  mapping: ReadonlyMap<string, AppRef>,
  epoch: Epoch,
  deps: RestoreDeps,
  what: 'rollback' | 'restore',
  /** The plan (or, for a restore into servers of no plan, the restore's own line) whose epoch this is. */
  epochLine: string,
): Promise<Result<{ epoch: Epoch }>> {
  const log = deps.logger.child({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, epoch });
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
  log.info({ servers: [...byServer.keys()] }, `${what}: restoring`);
  const answers = await Promise.all(
    [...byServer].map(async ([server, apps]) => {
      const reply = await deps.bus.request({ type: 'restore', tenant: record.tenant, server, plan: epochLine, epoch, checkpointId: record.id, apps }, deps.timeoutMs);
      return { server, reply };
    }),
  );
  const failed = answers.filter((a) => a.reply?.type !== 'restored');
  if (failed.length > 0) {
    const detail = failed
      .map((a) => `${a.server}: ${a.reply === undefined ? `no answer within ${deps.timeoutMs} ms` : a.reply.type === 'decline' ? `${a.reply.reason}: ${a.reply.detail}` : a.reply.type}`)
      .join('; ');
    log.error({ detail }, `${what} failed`);
    return fail('unavailable', `${what} to checkpoint ${record.id} incomplete (${detail}); the apps that did restore stay paused at epoch ${epoch}: retry the ${what}`);
  }
  const resumed = await Promise.all(
    [...byServer.keys()].map((server) => deps.bus.request({ type: 'resume', tenant: record.tenant, server, plan: epochLine, epoch, checkpointId: record.id, apps: [] }, deps.timeoutMs)),
  );
  const notResumed = [...byServer.keys()].filter((_, i) => resumed[i]?.type !== 'resumed');
  if (notResumed.length > 0) return fail('unavailable', `${what} done but ${notResumed.join(', ')} did not confirm resuming; check the agents`);
  log.info(`${what} complete`);
  return ok({ epoch });
}

/**
 * Crash-level rollback: every server frozen (the apps stop through their hooks), the volumes put
 * back by the backend as one group, then thawed with `afterRestore` so the restore hooks make the
 * apps reload from disk before the thaw and resume hooks run.
 */
export async function crashRollback(
  record: CheckpointRecord,
  servers: readonly string[],
  volumes: readonly import('../model.js').Volume[],
  backend: import('../volumes/backend.js').VolumeBackend | undefined,
  freezeDeadlineMs: number,
  deps: RestoreDeps,
): Promise<Result<{ epoch: Epoch }>> {
  const log = deps.logger.child({ checkpointId: record.id, plan: record.planId, tenant: record.tenant, level: 'crash' });
  const present = checkAgentsPresent(record.tenant, servers, deps, `rollback to checkpoint ${record.id}`);
  if (!present.ok) return present;
  if (record.volumes.length > 0 && !backend) return fail('failed-precondition', 'the checkpoint has volume snapshots but this coordinator has no volume backend');
  const thawAll = (afterRestore: boolean): Promise<(import('../../src/wire/index.js').AgentEvent | undefined)[]> =>
    Promise.all(servers.map((server) => deps.bus.request({ type: 'thaw', tenant: record.tenant, server, plan: record.planId, epoch: record.epoch, checkpointId: record.id, afterRestore }, deps.timeoutMs)));
  const frozen = await Promise.all(
    servers.map((server) => deps.bus.request({ type: 'freeze', tenant: record.tenant, server, plan: record.planId, epoch: record.epoch, checkpointId: record.id, deadlineMs: freezeDeadlineMs }, deps.timeoutMs)),
  );
  const notFrozen = servers.filter((_, i) => frozen[i]?.type !== 'frozen');
  if (notFrozen.length > 0) {
    await thawAll(false);
    return fail('unavailable', `rollback to checkpoint ${record.id} not started: ${notFrozen.join(', ')} did not freeze; everything was thawed again`);
  }
  if (backend && record.volumes.length > 0) {
    const reverted = await backend.revert(record.volumes, volumes);
    if (!reverted.ok) {
      await thawAll(false);
      return fail('internal', `reverting the volumes to checkpoint ${record.id} failed: ${reverted.error.message}; everything was thawed again`);
    }
  }
  const thawed = await thawAll(true);
  const notThawed = servers.filter((_, i) => thawed[i]?.type !== 'thawed');
  if (notThawed.length > 0) return fail('unavailable', `volumes reverted to checkpoint ${record.id}, but ${notThawed.join(', ')} did not confirm the thaw (their watchdogs thaw at the deadline)`);
  log.info('crash-level rollback complete');
  return ok({ epoch: record.epoch });
}

/**
 * A crash-level checkpoint into other servers: the target plan's servers frozen (their apps stop
 * through their hooks), each volume snapshot put onto the matching volume of the target server (same
 * volume id, else the one at the same position), then thawed with `afterRestore` so the restore hooks
 * start the apps on the restored volumes. The originals are not touched.
 */
async function crashRestoreInto(
  record: CheckpointRecord,
  servers: Readonly<Record<string, string>>,
  targetPlanId: string | undefined,
  deps: RestoreDeps,
): Promise<Result<{ epoch: Epoch }>> {
  if (!deps.volumes) return fail('failed-precondition', 'the checkpoint holds volume snapshots but this coordinator has no volume backend');
  if (targetPlanId === undefined) {
    return fail('failed-precondition', 'a crash-level checkpoint is restored onto the volumes of a registered plan: register a plan for the target servers, with their volumes, first');
  }
  const target = await deps.store.plans.get(targetPlanId);
  if (!target.ok) return target;
  const epoch = await deps.store.epochs.get(targetPlanId);
  if (!epoch.ok) return epoch;
  const pairs: { snapshot: VolumeSnapshotRef; volume: import('../model.js').Volume }[] = [];
  for (const snap of record.volumes) {
    const server = servers[snap.server];
    if (server === undefined) return fail('invalid-argument', `no target server for ${snap.server}, which holds volume ${snap.volumeId}`);
    const own = record.volumes.filter((v) => v.server === snap.server);
    const theirs = target.value.volumes.filter((v) => v.server === server);
    const volume = theirs.find((v) => v.id === snap.volumeId) ?? theirs[own.indexOf(snap)];
    if (!volume) return fail('failed-precondition', `plan ${targetPlanId} has no volume on ${server} to take volume ${snap.volumeId} of ${snap.server}`);
    pairs.push({ snapshot: snap, volume });
  }
  const targetServers = [...new Set(pairs.map((p) => p.volume.server))];
  const freezeDeadlineMs = record.options.freezeDeadlineMs;
  const thawAll = (afterRestore: boolean) =>
    Promise.all(targetServers.map((server) => deps.bus.request({ type: 'thaw', tenant: record.tenant, server, plan: targetPlanId, epoch: epoch.value, checkpointId: record.id, afterRestore }, deps.timeoutMs)));
  const frozen = await Promise.all(
    targetServers.map((server) => deps.bus.request({ type: 'freeze', tenant: record.tenant, server, plan: targetPlanId, epoch: epoch.value, checkpointId: record.id, deadlineMs: freezeDeadlineMs }, deps.timeoutMs)),
  );
  const notFrozen = targetServers.filter((_, i) => frozen[i]?.type !== 'frozen');
  if (notFrozen.length > 0) {
    await thawAll(false);
    return fail('unavailable', `restore of checkpoint ${record.id} not started: ${notFrozen.join(', ')} did not freeze; everything was thawed again`);
  }
  for (const p of pairs) {
    const r = await deps.volumes.restoreTo(p.snapshot, p.volume);
    if (!r.ok) {
      await thawAll(false);
      return fail('internal', `restoring volume ${p.snapshot.volumeId} onto ${p.volume.id} of ${p.volume.server} failed: ${r.error.message}; everything was thawed again`);
    }
  }
  const thawed = await thawAll(true);
  const notThawed = targetServers.filter((_, i) => thawed[i]?.type !== 'thawed');
  if (notThawed.length > 0) return fail('unavailable', `volumes restored, but ${notThawed.join(', ')} did not confirm the thaw (their watchdogs thaw at the deadline)`);
  deps.logger.info({ checkpointId: record.id, plan: targetPlanId }, 'crash-level restore into other servers complete');
  return ok({ epoch: epoch.value });
}
