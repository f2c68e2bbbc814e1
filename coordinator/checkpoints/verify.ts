/**
 * VerifyCheckpoint: every part present and matching its digest, the channel states readable, and the
 * cut checker passing on the recorded per-channel counts and channel states (invariants 1 and 2).
 */
import { checkCut } from '../../src/checker/index.js';
import type { RecordedMessage, SnapshotCounts } from '../../src/core/types.js';
import type { ChannelId, ProcessId } from '../../src/ids.js';
import { processId } from '../../src/wire/index.js';
import type { StateObjects } from '../../adapters/state-store.js';
import { isSealed, parseSealedHeader } from '../../adapters/state-crypto.js';
import type { VerifyReport } from '../api.js';
import type { CheckpointRecord, Plan } from '../model.js';
import { isAllOpaque, opaqueGraph, planGraph } from './plan-graph.js';
import { readChannelState, readPartState } from './part-state.js';

export async function verifyCheckpoint(record: CheckpointRecord, plan: Plan | undefined, objects: StateObjects): Promise<VerifyReport> {
  const problems: { part: string; detail: string }[] = [];
  if (record.state !== 'completed') problems.push({ part: 'checkpoint', detail: `state is ${record.state}, not completed` });
  if (record.levelAchieved === 'crash') return { ok: problems.length === 0 && verifyCrash(record, plan, problems), problems };
  const snapshots: Record<ProcessId, SnapshotCounts> = {};
  const channelStates: Record<ChannelId, readonly RecordedMessage<Uint8Array>[]> = {};
  // Log channels' states are ranges of their streams: checked as ranges, their messages not read.
  const logRanges: Record<ChannelId, { afterSeq: number; throughSeq: number }> = {};
  // Parts whose channel state could not be read: without it the cut checker would report the
  // messages it holds as missing, a violation that is not there (docs/RELIABILITY.md, F7).
  const unread: string[] = [];
  for (const p of record.parts) {
    const who = processId(p.server, p.app);
    if (!p.acked || (!p.state && !p.inlineState) || !p.counts) {
      problems.push({ part: who, detail: 'never acked: no state recorded' });
      continue;
    }
    snapshots[who] = p.counts;
    const state = await readPartState(record.tenant, p, objects);
    if (!state.ok) problems.push({ part: `${who} state`, detail: state.message });
    // A state sealed by the agent (docs/security.md) is opened only by the agent, at restore: here
    // its header must parse and name a key.
    else if (isSealed(state.value)) {
      const header = parseSealedHeader(state.value);
      if (!header.ok) problems.push({ part: `${who} state`, detail: header.error.message });
    }
    if (p.channelState) {
      const stored = await readChannelState(record.tenant, p, objects);
      if (!stored.ok) {
        problems.push({ part: `${who} channel state`, detail: stored.message });
        unread.push(who);
      } else {
        Object.assign(channelStates, stored.value.messages);
        Object.assign(logRanges, stored.value.logRanges);
      }
    }
  }
  if (!plan) {
    problems.push({ part: 'plan', detail: `plan ${record.planId} no longer exists: the cut cannot be checked` });
  } else if (unread.length > 0) {
    problems.push({ part: 'cut', detail: `not checked: the channel state of ${unread.join(', ')} could not be read (see above); verify again` });
  } else {
    // An app-level checkpoint of an all-opaque plan was cut by quiescing: its cut is checked on the
    // opaque channels, with the positions the hooks reported as counts.
    const opaque = record.levelAchieved === 'app' && isAllOpaque(plan);
    const pg = opaque ? undefined : planGraph(plan);
    const g = opaque ? opaqueGraph(plan) : pg?.ok ? { ok: true as const, value: pg.value.graph } : { ok: false as const, message: pg && !pg.ok ? pg.message : 'no graph' };
    if (!g.ok) problems.push({ part: 'plan', detail: g.message });
    else {
      const report = checkCut({ channels: g.value.channels, snapshots, channelStates, logRanges });
      for (const v of report.violations) problems.push({ part: 'channel' in v && typeof v.channel === 'string' ? `cut ${v.channel}` : 'cut', detail: v.message });
    }
  }
  return { ok: problems.length === 0, problems };
}

/**
 * A crash-level checkpoint holds volume snapshots, not app states: every volume of the plan must have
 * one, taken inside its server's frozen window (as the coordinator saw it).
 */
function verifyCrash(record: CheckpointRecord, plan: Plan | undefined, problems: { part: string; detail: string }[]): boolean {
  // A staged checkpoint's snapshots are the caller's (callerVolumes), checked the same way.
  const volumes = [...record.volumes, ...(record.callerVolumes ?? [])];
  for (const v of plan?.volumes ?? []) {
    const s = volumes.find((x) => x.volumeId === v.id && x.server === v.server);
    if (!s) problems.push({ part: `volume ${v.id}`, detail: `no snapshot of volume ${v.id} of ${v.server}` });
  }
  for (const s of volumes) {
    const f = record.servers?.find((x) => x.server === s.server);
    if (!f || f.frozenAtUnixMs === undefined) {
      problems.push({ part: `volume ${s.volumeId}`, detail: `${s.server} has no recorded freeze` });
      continue;
    }
    if (s.snapshotAtUnixMs < f.frozenAtUnixMs) problems.push({ part: `volume ${s.volumeId}`, detail: `snapshotted at ${s.snapshotAtUnixMs}, before ${s.server} was frozen at ${f.frozenAtUnixMs}` });
    if (f.byWatchdog) problems.push({ part: `volume ${s.volumeId}`, detail: `${s.server} thawed by its watchdog: the snapshot may lie outside its frozen window` });
  }
  return problems.length === 0;
}
