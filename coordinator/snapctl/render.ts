/** How snapctl shows plans, checkpoints and agents to a person (the --json output is the views themselves). */
import type { AuditEntry } from '../audit.js';
import type { VerifyReport } from '../api.js';
import type { CheckpointView } from '../checkpoint-view.js';
import type { PlanStats } from '../metrics/plan-stats.js';
import type { AgentInfo, CheckpointCopy, Plan } from '../model.js';
import type { CopyView } from '../grpc/convert-sites.js';
import type { Policy } from '../policies/model.js';
import { ageText, bytesText, durationText, table, timeText } from './table.js';

export function plansTable(plans: readonly Plan[]): string {
  if (plans.length === 0) return 'no plans\n';
  return table(
    ['ID', 'TENANT', 'SERVERS', 'APPS', 'CHANNELS', 'VOLUMES', 'REVISION', 'UPDATED'],
    plans.map((p) => [p.id, p.tenant, String(p.servers.length), String(p.apps.length), String(p.channels.length), String(p.volumes.length), String(p.revision), timeText(p.updatedAtUnixMs)]),
  );
}

export function planText(p: Plan): string {
  const parts = [
    `plan ${p.id}  tenant ${p.tenant}  revision ${p.revision}`,
    `created ${timeText(p.createdAtUnixMs)}  updated ${timeText(p.updatedAtUnixMs)}`,
    `servers: ${p.servers.join(', ')}`,
    '',
    p.apps.length === 0 ? 'apps: none\n' : table(['APP'], p.apps.map((a) => [`${a.server}/${a.app}`])),
    p.channels.length === 0
      ? 'channels: none\n'
      : table(
          ['FROM', 'TO', 'KIND', 'LOG STREAM', 'LOG SUBJECT'],
          p.channels.map((c) => [`${c.from.server}/${c.from.app}`, `${c.to.server}/${c.to.app}`, c.kind, c.logStream ?? '', c.logSubject ?? '']),
        ),
    p.volumes.length === 0 ? 'volumes: none\n' : table(['VOLUME', 'SERVER', 'BACKEND REF'], p.volumes.map((v) => [v.id, v.server, v.backendRef])),
  ];
  return parts.join('\n');
}

/** `app` or `app->crash` when a fallback lowered the level. */
export function levelText(c: CheckpointView): string {
  return c.levelAchieved !== undefined && c.levelAchieved !== c.levelRequested ? `${c.levelRequested}->${c.levelAchieved}` : c.levelRequested;
}

export function failureText(c: Pick<CheckpointView, 'failureReason' | 'failureDetail'>): string {
  if (c.failureReason === undefined) return c.failureDetail ?? '';
  return c.failureDetail === undefined ? c.failureReason : `${c.failureReason}: ${c.failureDetail}`;
}

/**
 * A crash-level checkpoint is taken by freezing servers, not by apps acking: its apps never ack, so
 * its progress is its servers' (only when the record lists them; older records and fakes do not).
 */
function byServers(c: CheckpointView): boolean {
  return (c.levelAchieved ?? c.levelRequested) === 'crash' && c.servers.length > 0;
}

/** `3/3 acked`, or `2/3 frozen` for a checkpoint taken by freezing servers. */
export function progressText(c: CheckpointView): string {
  if (byServers(c)) return `${c.servers.filter((f) => f.frozenAtUnixMs !== undefined).length}/${c.servers.length} frozen`;
  return `${c.stats.acked}/${c.stats.total} acked`;
}

/**
 * A completed crash-level checkpoint of a plan without volumes whose servers ran no freeze hook:
 * it froze the file systems and captured nothing. Said wherever the checkpoint is shown, so that
 * "completed, 0 B" is never taken for a backup.
 */
export function capturedNothing(c: CheckpointView): boolean {
  return c.state === 'completed' && (c.levelAchieved ?? c.levelRequested) === 'crash' && c.volumes.length === 0 && c.servers.every((f) => f.hooks.length === 0);
}

export const CAPTURED_NOTHING = 'WARNING: captured nothing (crash level, the plan has no volumes and no server ran a freeze hook)';

/** One copy in a cell: `dr 1.2 s` (its lag), or `dr failed`. */
function copyCell(c: CheckpointCopy): string {
  return c.state === 'copied' ? `${c.site} ${durationText(c.lagMs)}` : `${c.site} failed`;
}

/**
 * `wide` adds the tenant, epoch, and the creation and finish times; a COPIES column (each site with
 * its copy's lag, docs/sites.md) appears when a listed checkpoint has copies.
 */
export function checkpointsTable(checkpoints: readonly CheckpointView[], nowUnixMs: number = Date.now(), wide = false): string {
  if (checkpoints.length === 0) return 'no checkpoints\n';
  const header = ['ID', 'PLAN', 'LEVEL', 'STATE', 'PROGRESS', 'AGE', 'DURATION', 'SIZE', 'FAILURE'];
  const copies = checkpoints.some((c) => (c.copies ?? []).length > 0);
  if (copies) header.splice(header.indexOf('FAILURE'), 0, 'COPIES');
  if (wide) header.splice(2, 0, 'TENANT', 'EPOCH');
  if (wide) header.splice(header.indexOf('FAILURE'), 0, 'CREATED', 'FINISHED');
  return (
    table(
      header,
      checkpoints.map((c) => {
        const row = [
          `${c.id}${c.safety ? '*' : ''}${c.pinned ? ' (pinned)' : ''}`,
          c.planId,
          levelText(c),
          c.state,
          progressText(c),
          ageText(nowUnixMs - c.createdAtUnixMs),
          c.stats.durationMs > 0 ? durationText(c.stats.durationMs) : '-',
          bytesText(c.stats.sizeBytes),
          capturedNothing(c) ? CAPTURED_NOTHING : failureText(c),
        ];
        if (copies) row.splice(row.length - 1, 0, (c.copies ?? []).map(copyCell).join(', ') || '-');
        if (wide) row.splice(2, 0, c.tenant, String(c.epoch));
        if (wide) row.splice(row.length - 1, 0, timeText(c.createdAtUnixMs), timeText(c.finishedAtUnixMs));
        return row;
      }),
    ) + (checkpoints.some((c) => c.safety) ? '* safety checkpoint taken by a rollback\n' : '')
  );
}

export function appStatsTable(c: CheckpointView): string {
  if (c.stats.apps.length === 0) return 'apps: none\n';
  return table(
    ['APP', 'ACKED', 'AT', 'DELAY', 'ALIGN', 'SYNC', 'ASYNC', 'SIZE', 'CHANNEL STATE', 'UNALIGNED', 'FAILURE'],
    c.stats.apps.map((a) => [
      `${a.server}/${a.app}`,
      a.acked ? 'yes' : 'no',
      timeText(a.ackedAtUnixMs),
      durationText(a.startDelayMs),
      durationText(a.alignmentMs),
      durationText(a.syncMs),
      durationText(a.asyncMs),
      bytesText(a.sizeBytes),
      bytesText(a.channelStateBytes),
      a.finishedUnaligned ? 'yes' : '',
      failureText(a),
    ]),
  );
}

export function checkpointText(c: CheckpointView): string {
  const o = c.options;
  const lines = [
    `checkpoint ${c.id}${c.safety ? ' (safety checkpoint taken by a rollback)' : ''}${c.pinned ? ' (pinned: retention keeps it)' : ''}`,
    `plan             ${c.planId} (tenant ${c.tenant}, epoch ${c.epoch})`,
    `level            requested ${c.levelRequested}, achieved ${c.levelAchieved ?? '-'}`,
    ...(c.fallbackReason !== undefined ? [`fallback         ${c.fallbackReason}`] : []),
    `state            ${c.state}`,
    ...(c.failureReason !== undefined || c.failureDetail !== undefined ? [`failure          ${failureText(c)}`] : []),
    `options          timeout ${durationText(o.timeoutMs)}, ${o.alignmentMode}` +
      (o.alignmentMode === 'aligned' ? `, alignment timeout ${o.alignmentTimeoutMs === 0 ? 'never' : durationText(o.alignmentTimeoutMs)}` : '') +
      `, fallback ${o.fallbackPolicy}, freeze deadline ${durationText(o.freezeDeadlineMs)}, max concurrent ${o.maxConcurrent ?? 1}`,
    ...(c.idempotencyKey !== undefined ? [`idempotency key  ${c.idempotencyKey}`] : []),
    ...(c.importedFrom !== undefined
      ? [`imported         from site ${c.importedFrom.site}: checkpoint ${c.importedFrom.sourceCheckpointId} of site ${c.importedFrom.sourceSite}, copied ${timeText(c.importedFrom.copiedAtUnixMs)}`]
      : []),
    `created          ${timeText(c.createdAtUnixMs)}`,
    `triggered        ${timeText(c.stats.triggeredAtUnixMs)}`,
    `last ack         ${timeText(c.stats.lastAckAtUnixMs)}`,
    `finished         ${timeText(c.finishedAtUnixMs)}${c.stats.durationMs > 0 ? ` (${durationText(c.stats.durationMs)})` : ''}`,
    byServers(c) ? `servers frozen   ${progressText(c).replace(/ frozen$/, '')}` : `acked            ${c.stats.acked}/${c.stats.total}`,
    `size             ${bytesText(c.stats.sizeBytes)} (channel state ${bytesText(c.stats.channelStateBytes)})`,
    ...(capturedNothing(c) ? [CAPTURED_NOTHING] : []),
    '',
  ];
  const volumes =
    c.volumes.length === 0
      ? 'volumes: none\n'
      : table(
          ['VOLUME', 'SERVER', 'SNAPSHOT', 'FROZEN', 'SNAPSHOT AT', 'THAWED'],
          c.volumes.map((v) => [v.volumeId, v.server, v.snapshotRef, timeText(v.frozenAtUnixMs), timeText(v.snapshotAtUnixMs), timeText(v.thawedAtUnixMs)]),
        );
  const servers =
    c.servers.length === 0
      ? ''
      : table(
          ['SERVER', 'FROZEN', 'THAWED', 'FROZEN FOR', 'BY WATCHDOG'],
          c.servers.map((f) => [
            f.server,
            timeText(f.frozenAtUnixMs),
            timeText(f.thawedAtUnixMs),
            f.frozenAtUnixMs !== undefined && f.thawedAtUnixMs !== undefined ? durationText(f.thawedAtUnixMs - f.frozenAtUnixMs) : '-',
            f.byWatchdog ? 'yes' : 'no',
          ]),
        );
  const hookRows = c.servers.flatMap((f) =>
    f.hooks.map((h) => [
      f.server,
      h.app ?? '-',
      h.hook,
      h.action,
      h.timedOut ? 'timed out' : h.signal !== undefined ? h.signal : String(h.exitCode),
      durationText(h.durationMs),
      String(h.attempts),
      h.stderr.trim().split('\n').slice(-1)[0] ?? '',
    ]),
  );
  const hooks = hookRows.length === 0 ? '' : table(['SERVER', 'APP', 'HOOK', 'ACTION', 'EXIT', 'TOOK', 'TRIES', 'STDERR (LAST LINE)'], hookRows);
  // At crash level the apps are captured with their servers' volumes and never ack: a table of "no"
  // rows would only mislead, so the servers' table says how the checkpoint went instead.
  const apps = byServers(c) ? `apps: ${c.stats.apps.map((a) => `${a.server}/${a.app}`).join(', ') || 'none'} (crash level: captured on their servers' volumes, no per-app state)\n` : appStatsTable(c);
  const copies = (c.copies ?? []).length === 0 ? '' : copiesTable(c.copies ?? []);
  return `${lines.join('\n')}\n${apps}\n${volumes}${servers ? `\n${servers}` : ''}${hooks ? `\n${hooks}` : ''}${copies ? `\n${copies}` : ''}`;
}

/** A checkpoint's copies at other sites: when each was made and its lag, or why it failed. */
function copiesTable(copies: readonly CheckpointCopy[]): string {
  return table(
    ['COPY AT SITE', 'STATE', 'AT', 'LAG', 'DETAIL'],
    copies.map((c) => (c.state === 'copied' ? [c.site, c.state, timeText(c.copiedAtUnixMs), durationText(c.lagMs), ''] : [c.site, c.state, timeText(c.failedAtUnixMs), '-', c.detail])),
  );
}

/** The copies a site holds (snapctl copies). */
export function siteCopiesTable(site: string, copies: readonly CopyView[]): string {
  if (copies.length === 0) return `site ${site} holds no copies\n`;
  return table(
    ['SOURCE SITE', 'CHECKPOINT', 'PLAN', 'TENANT', 'LEVEL', 'FINISHED', 'COPIED', 'OBJECTS', 'SIZE'],
    copies.map((c) => [
      c.sourceSite,
      String(c.sourceCheckpointId),
      c.checkpoint.planId,
      c.checkpoint.tenant,
      levelText(c.checkpoint),
      timeText(c.checkpoint.finishedAtUnixMs),
      timeText(c.copiedAtUnixMs),
      String(c.objects),
      bytesText(c.bytes),
    ]),
  );
}

export function agentsTable(agents: readonly AgentInfo[], nowUnixMs: number): string {
  if (agents.length === 0) return 'no agents\n';
  return table(
    ['TENANT', 'SERVER', 'STATUS', 'FROZEN', 'APPS', 'VERSION', 'LAST HEARTBEAT'],
    agents.map((a) => [
      a.tenant,
      a.server,
      a.status,
      a.frozen ? 'FROZEN' : '',
      a.apps.join(',') || '-',
      a.version || '-',
      a.lastHeartbeatAtUnixMs > 0 ? `${durationText(Math.max(0, nowUnixMs - a.lastHeartbeatAtUnixMs))} ago` : '-',
    ]),
  );
}

export function auditTable(entries: readonly AuditEntry[]): string {
  if (entries.length === 0) return 'no audit entries\n';
  return table(
    ['TIME', 'IDENTITY', 'TENANT', 'METHOD', 'CODE', 'ARGUMENTS'],
    entries.map((e) => [e.time, e.identity || '-', e.tenant || '-', e.method, e.code, e.arguments]),
  );
}

export function verifyText(id: number, report: VerifyReport): string {
  if (report.ok) return `checkpoint ${id}: ok\n`;
  return `checkpoint ${id}: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}\n` + table(['PART', 'PROBLEM'], report.problems.map((p) => [p.part, p.detail]));
}

function scheduleText(p: Policy): string {
  const s = p.schedule;
  if (s === undefined) return '-';
  const when = s.cron !== '' ? `cron "${s.cron}"` : `every ${durationText(s.intervalMs)}`;
  const window = s.windowStart !== '' ? `, ${s.windowStart}-${s.windowEnd} UTC` : '';
  const jitter = s.jitterMs > 0 ? `, jitter ${durationText(s.jitterMs)}` : '';
  return `${s.level} ${when}${window}${jitter}`;
}

function retentionText(p: Policy): string {
  const r = p.retention;
  if (r === undefined) return 'coordinator default';
  const parts = [
    r.keepLast > 0 ? `last ${r.keepLast}` : '',
    r.keepDaily > 0 ? `${r.keepDaily} daily` : '',
    r.keepWeekly > 0 ? `${r.keepWeekly} weekly` : '',
    r.keepMonthly > 0 ? `${r.keepMonthly} monthly` : '',
    r.keepWithinMs > 0 ? `within ${durationText(r.keepWithinMs)}` : '',
  ];
  return parts.filter((x) => x !== '').join(', ');
}

export function policiesTable(policies: readonly Policy[], nowUnixMs: number): string {
  if (policies.length === 0) return 'no policies\n';
  return table(
    ['PLAN', 'TENANT', 'SCHEDULE', 'RETENTION', 'REVISION', 'AGE'],
    policies.map((p) => [p.planId, p.tenant, scheduleText(p), retentionText(p), String(p.revision), ageText(nowUnixMs - p.createdAtUnixMs)]),
  );
}

export function policyText(p: Policy): string {
  const s = p.schedule;
  return [
    `policy of plan ${p.planId}  tenant ${p.tenant}  revision ${p.revision}`,
    `created ${timeText(p.createdAtUnixMs)}  updated ${timeText(p.updatedAtUnixMs)}`,
    `schedule   ${scheduleText(p)}`,
    ...(s !== undefined ? [`           min pause ${durationText(s.minPauseMs)}, suspended after ${s.tolerableFailures} consecutive failures`] : []),
    `retention  ${retentionText(p)} (pinned checkpoints and recent rollbacks' safety checkpoints and targets are always kept)`,
    '',
  ].join('\n');
}

export function statsText(s: PlanStats): string {
  const lines = [
    `plan ${s.planId}: ${s.checkpointsTotal} checkpoints in the store (${s.completed} completed, ${s.aborted} aborted, ${s.inFlight} in flight)`,
    s.completed === 0
      ? 'no completed checkpoint'
      : table(
          ['OF COMPLETED', 'MIN', 'AVG', 'MAX'],
          [
            ['duration', durationText(s.durationMinMs), durationText(s.durationAvgMs), durationText(s.durationMaxMs)],
            ['size', bytesText(s.sizeMinBytes), bytesText(s.sizeAvgBytes), bytesText(s.sizeMaxBytes)],
          ],
        ).trimEnd(),
    `latest completed  ${s.latestCompletedId === 0 ? '-' : `${s.latestCompletedId} at ${timeText(s.latestCompletedAtUnixMs)}`}`,
    `last failure      ${s.lastFailure === undefined ? '-' : `${s.lastFailure.id} at ${timeText(s.lastFailure.atUnixMs)}: ${failureText({ ...(s.lastFailure.reason !== undefined ? { failureReason: s.lastFailure.reason } : {}), ...(s.lastFailure.detail !== '' ? { failureDetail: s.lastFailure.detail } : {}) }) || 'no reason given'}`}`,
    '',
  ];
  return lines.join('\n');
}
