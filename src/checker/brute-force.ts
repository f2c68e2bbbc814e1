/**
 * A reference cut checker that works from the full history of a run instead of counts. It applies
 * the definitions literally, with no FIFO shortcut and no cleverness (quadratic is fine: it only ever
 * sees small runs), so that a property test can hold `checkCut` to the same verdict.
 *
 * Definitions, for a channel c = p -> q:
 * - pre-snapshot sends of c: the send events of c in p's history before p's snapshot event;
 * - pre-snapshot receives of c: the receive events of c in q's history before q's snapshot event;
 * - orphan: some pre-snapshot receive has no pre-snapshot send with the same seq;
 * - exact state: the recorded seqs equal the pre-snapshot sends, in send order, minus the seqs of
 *   pre-snapshot receives.
 */
import type { ChannelId, ProcessId } from '../ids.js';
import type { SnapshotCounts } from '../core/types.js';
import type { Channel } from '../graph/graph.js';
import type { CutReport, SeqRange, Violation } from './cut.js';

/** One event in the local history of a process, in the order the process saw it. */
export type LocalEvent =
  | { readonly kind: 'send'; readonly channel: ChannelId; readonly seq: number }
  | { readonly kind: 'receive'; readonly channel: ChannelId; readonly seq: number }
  | { readonly kind: 'snapshot' };

export interface RunHistory {
  readonly channels: readonly Channel[];
  /** Per process, its local events in order. At most one snapshot each; a process without one is reported. */
  readonly events: Readonly<Record<ProcessId, readonly LocalEvent[]>>;
  /** Per channel, the seqs recorded as its state, in recorded order. Absent means empty. */
  readonly channelStates: Readonly<Record<ChannelId, readonly number[]>>;
}

export function checkCutByHistory(history: RunHistory): CutReport {
  assertWellFormed(history);
  const violations: Violation[] = [];

  const missing: ProcessId[] = [];
  for (const channel of history.channels) {
    for (const process of [channel.from, channel.to]) {
      if (snapshotAt(history, process) === undefined && !missing.includes(process)) {
        missing.push(process);
        violations.push({
          kind: 'missing-snapshot',
          process,
          message: `process ${process} has no snapshot event (it is an endpoint of ${channel.id})`,
        });
      }
    }
  }

  for (const channel of history.channels) {
    if (missing.includes(channel.from) || missing.includes(channel.to)) continue;
    const sends = preSnapshotSeqs(history, channel.from, 'send', channel.id);
    const receives = preSnapshotSeqs(history, channel.to, 'receive', channel.id);

    const orphans = receives.filter((seq) => !sends.includes(seq));
    if (orphans.length > 0) {
      violations.push({
        kind: 'orphan',
        channel: channel.id,
        sent: sends.length,
        received: receives.length,
        message:
          `orphan on ${channel.id}: ${channel.to} received seqs ${orphans.join(', ')} before its snapshot, ` +
          `which ${channel.from} had not sent before its snapshot`,
      });
    }

    const expected = sends.filter((seq) => !receives.includes(seq));
    const recorded = Object.hasOwn(history.channelStates, channel.id) ? history.channelStates[channel.id]! : [];
    if (!sameList(recorded, expected)) {
      const firstAppearances = recorded.filter((seq, i) => expected.includes(seq) && recorded.indexOf(seq) === i);
      const inExpectedOrder = expected.filter((seq) => firstAppearances.includes(seq));
      violations.push({
        kind: 'channel-state',
        channel: channel.id,
        expected: { afterSeq: receives.length, throughSeq: sends.length },
        missing: toRanges(expected.filter((seq) => !recorded.includes(seq))),
        unexpected: recorded.filter((seq, i) => !expected.includes(seq) && recorded.indexOf(seq) === i),
        duplicates: recorded.filter((seq, i) => secondOccurrence(recorded, seq) === i),
        outOfOrder: !sameList(firstAppearances, inExpectedOrder),
        message: `channel state of ${channel.id} is [${recorded.join(', ')}] but should be [${expected.join(', ')}]`,
      });
    }
  }

  const known = history.channels.map((c) => c.id);
  for (const id of Object.keys(history.channelStates)) {
    if (!known.includes(id)) {
      violations.push({
        kind: 'unknown-channel',
        channel: id,
        message: `a channel state was recorded for ${id}, which is not a channel of the graph`,
      });
    }
  }

  return { consistent: violations.length === 0, violations };
}

/**
 * The counts each process would report at its snapshot: for each of its output (input) channels, how
 * many send (receive) events precede its snapshot event. Processes without a snapshot are left out,
 * so `checkCut` reports them as missing, as `checkCutByHistory` does.
 */
export function countsFromHistory(history: RunHistory): Record<ProcessId, SnapshotCounts> {
  assertWellFormed(history);
  const entries: [ProcessId, SnapshotCounts][] = [];
  for (const process of Object.keys(history.events)) {
    if (snapshotAt(history, process) === undefined) continue;
    const count = (kind: 'send' | 'receive', channel: ChannelId): [ChannelId, number] => [
      channel,
      preSnapshotSeqs(history, process, kind, channel).length,
    ];
    const sent = history.channels.filter((c) => c.from === process).map((c) => count('send', c.id));
    const received = history.channels.filter((c) => c.to === process).map((c) => count('receive', c.id));
    // fromEntries defines own properties, so a channel called `__proto__` stays an ordinary key.
    entries.push([process, { sent: Object.fromEntries(sent), received: Object.fromEntries(received) }]);
  }
  return Object.fromEntries(entries);
}

/** The position of the process's snapshot event, or undefined when it has none. */
function snapshotAt(history: RunHistory, process: ProcessId): number | undefined {
  const events = eventsOf(history, process);
  const at = events.findIndex((e) => e.kind === 'snapshot');
  return at < 0 ? undefined : at;
}

function preSnapshotSeqs(
  history: RunHistory,
  process: ProcessId,
  kind: 'send' | 'receive',
  channel: ChannelId,
): number[] {
  const at = snapshotAt(history, process);
  if (at === undefined) throw new Error(`preSnapshotSeqs: process ${process} has no snapshot`);
  return eventsOf(history, process)
    .slice(0, at)
    .flatMap((e) => (e.kind === kind && e.channel === channel ? [e.seq] : []));
}

function eventsOf(history: RunHistory, process: ProcessId): readonly LocalEvent[] {
  return Object.hasOwn(history.events, process) ? history.events[process]! : [];
}

/** A malformed history is a bug in whoever built it (a test or the simulator), not a cut to judge. */
function assertWellFormed(history: RunHistory): void {
  for (const [process, events] of Object.entries(history.events)) {
    if (events.filter((e) => e.kind === 'snapshot').length > 1) {
      throw new Error(`history: process ${process} has more than one snapshot event`);
    }
    for (const event of events) {
      if (event.kind === 'snapshot') continue;
      const channel = history.channels.find((c) => c.id === event.channel);
      const end = event.kind === 'send' ? channel?.from : channel?.to;
      if (end !== process) {
        throw new Error(
          `history: process ${process} has a ${event.kind} on ${event.channel}, which is not its channel`,
        );
      }
    }
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The position of the second occurrence of `seq`, or -1. */
function secondOccurrence(list: readonly number[], seq: number): number {
  return list.indexOf(seq, list.indexOf(seq) + 1);
}

function toRanges(seqs: readonly number[]): SeqRange[] {
  const sorted = [...seqs].sort((a, b) => a - b);
  const ranges: SeqRange[] = [];
  for (const seq of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.last + 1 === seq) ranges[ranges.length - 1] = { first: last.first, last: seq };
    else ranges.push({ first: seq, last: seq });
  }
  return ranges;
}
