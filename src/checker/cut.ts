/**
 * The cut checker: given the local snapshot counts and recorded channel states of one checkpoint, it
 * checks invariants 1-3 of DESIGN.md section 4 (no orphans, exact channel state, conservation of
 * tokens). It is what the simulator, the scenario tests and the coordinator's self-check use to say
 * "consistent", so it reports every violation with the offending sequence numbers instead of stopping
 * at the first.
 *
 * It trusts per-channel FIFO: the number of messages sent (received) on a channel is then the last
 * sequence number sent (received). `brute-force.ts` checks the same cut from the full event history,
 * without that shortcut, and a property test holds the two to the same verdict.
 *
 * Cost: linear in the number of channels plus recorded messages; a recorded state that is out of
 * order is sorted (O(m log m) for that channel) to find its gaps.
 */
import type { ChannelId, ProcessId } from '../ids.js';
import type { RecordedMessage, SnapshotCounts } from '../core/types.js';
import type { Channel } from '../graph/graph.js';

export interface TokenAccounting<P> {
  /** Tokens in the whole system when the run started. */
  readonly initialTotal: number;
  /** Tokens held by each process in its snapshot. */
  readonly processTokens: Readonly<Record<ProcessId, number>>;
  /** Tokens carried by one in-flight message. */
  readonly tokensOf: (payload: P) => number;
}

export interface CutInput<P> {
  readonly channels: readonly Channel[];
  /** One entry per process; a counter absent from `sent`/`received` means zero messages. */
  readonly snapshots: Readonly<Record<ProcessId, SnapshotCounts>>;
  /** A channel absent here has an empty recorded state. */
  readonly channelStates: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>;
  /** Present for token workloads only: enables the conservation check (invariant 3). */
  readonly tokens?: TokenAccounting<P>;
  /**
   * The ranges log channels recorded (`CheckpointAck.logRanges`): the state of a log channel is the
   * range of its log, which must be exactly (received, sent]. Its messages stay in the log: pass them
   * in `channelStates` as well (read from the log) to have them checked and counted like a recorded
   * state, or leave them out to check the range alone (conservation then misses their tokens).
   */
  readonly logRanges?: Readonly<Record<ChannelId, { readonly afterSeq: number; readonly throughSeq: number }>>;
}

/** An inclusive run of sequence numbers, so that a long gap stays one small value. */
export interface SeqRange {
  readonly first: number;
  readonly last: number;
}

export type Violation =
  /** A channel endpoint has no local snapshot, so its channels cannot be judged. */
  | { readonly kind: 'missing-snapshot'; readonly process: ProcessId; readonly message: string }
  /** Invariant 1: the receiver's snapshot includes messages the sender's snapshot had not sent. */
  | {
      readonly kind: 'orphan';
      readonly channel: ChannelId;
      readonly sent: number;
      readonly received: number;
      readonly message: string;
    }
  /** Invariant 2: the recorded state is not exactly seqs afterSeq+1 .. throughSeq, in order, once each. */
  | {
      readonly kind: 'channel-state';
      readonly channel: ChannelId;
      /** The exact state is the seqs in (afterSeq, throughSeq]: afterSeq = received, throughSeq = sent. */
      readonly expected: { readonly afterSeq: number; readonly throughSeq: number };
      /** Expected seqs absent from the recorded state, ascending. */
      readonly missing: readonly SeqRange[];
      /** Distinct recorded seqs outside the expected range, in order of first appearance. */
      readonly unexpected: readonly number[];
      /** Distinct seqs recorded more than once, in order of first repetition. */
      readonly duplicates: readonly number[];
      /** True when the expected seqs, taken at their first appearance, are not in ascending order. */
      readonly outOfOrder: boolean;
      readonly message: string;
    }
  /** Invariant 2 on a log channel: its recorded range is not (received, sent]. */
  | {
      readonly kind: 'log-range';
      readonly channel: ChannelId;
      readonly expected: { readonly afterSeq: number; readonly throughSeq: number };
      readonly recorded: { readonly afterSeq: number; readonly throughSeq: number };
      readonly message: string;
    }
  /** A recorded state for a channel that is not part of the graph. */
  | { readonly kind: 'unknown-channel'; readonly channel: ChannelId; readonly message: string }
  /** Invariant 3: tokens in process states plus channel states differ from the initial total. */
  | {
      readonly kind: 'conservation';
      readonly expected: number;
      readonly actual: number;
      readonly inProcesses: number;
      readonly inChannels: number;
      readonly message: string;
    };

export type ViolationKind = Violation['kind'];

export interface CutReport {
  readonly consistent: boolean;
  readonly violations: readonly Violation[];
}

/** How many seqs a violation message lists before it summarises the rest; the fields hold them all. */
export const messageSeqsListedMax = 10;

/**
 * Checks one cut. Violations come out in a stable order: missing snapshots (in order of first
 * mention by a channel), then per channel in declaration order its orphan and channel-state
 * violations, then recorded states of unknown channels, then conservation.
 */
export function checkCut<P>(input: CutInput<P>): CutReport {
  const violations: Violation[] = [];

  const missing = new Set<ProcessId>();
  for (const channel of input.channels) {
    for (const process of [channel.from, channel.to]) {
      if (!Object.hasOwn(input.snapshots, process) && !missing.has(process)) {
        missing.add(process);
        violations.push({
          kind: 'missing-snapshot',
          process,
          message: `process ${process} has no snapshot (it is an endpoint of ${channel.id})`,
        });
      }
    }
  }

  const known = new Set<ChannelId>();
  for (const channel of input.channels) {
    known.add(channel.id);
    if (missing.has(channel.from) || missing.has(channel.to)) continue;
    const sent = countOf(input.snapshots[channel.from]!.sent, channel.id);
    const received = countOf(input.snapshots[channel.to]!.received, channel.id);
    if (received > sent) {
      violations.push({
        kind: 'orphan',
        channel: channel.id,
        sent,
        received,
        message:
          `orphan on ${channel.id}: receiver ${channel.to} had received ${received} messages ` +
          `but sender ${channel.from} had sent only ${sent} at its snapshot`,
      });
    }
    const range = input.logRanges?.[channel.id];
    if (range !== undefined && (range.afterSeq !== received || range.throughSeq !== sent)) {
      violations.push({
        kind: 'log-range',
        channel: channel.id,
        expected: { afterSeq: received, throughSeq: sent },
        recorded: { afterSeq: range.afterSeq, throughSeq: range.throughSeq },
        message:
          `log range of ${channel.id} is (${range.afterSeq}, ${range.throughSeq}], but receiver ${channel.to} had ` +
          `received ${received} and sender ${channel.from} had sent ${sent}`,
      });
    }
    if (range !== undefined && !Object.hasOwn(input.channelStates, channel.id)) continue;
    const recorded = recordedSeqs(input.channelStates, channel.id);
    const stateViolation = checkChannelState(channel, received, sent, recorded);
    if (stateViolation !== undefined) violations.push(stateViolation);
  }
  for (const id of Object.keys(input.logRanges ?? {})) {
    if (!known.has(id)) {
      violations.push({ kind: 'unknown-channel', channel: id, message: `a log range was recorded for ${id}, which is not a channel of the graph` });
    }
  }

  for (const id of Object.keys(input.channelStates)) {
    if (!known.has(id)) {
      violations.push({
        kind: 'unknown-channel',
        channel: id,
        message: `a channel state was recorded for ${id}, which is not a channel of the graph`,
      });
    }
  }

  if (input.tokens !== undefined) {
    const conservation = checkConservation(input, input.tokens);
    if (conservation !== undefined) violations.push(conservation);
  }

  return { consistent: violations.length === 0, violations };
}

/** Compares a recorded state with the seqs in (received, sent]. */
function checkChannelState(
  channel: Channel,
  received: number,
  sent: number,
  recorded: readonly number[],
): Extract<Violation, { kind: 'channel-state' }> | undefined {
  const seen = new Set<number>();
  const unexpected: number[] = [];
  const duplicateSet = new Set<number>();
  const duplicates: number[] = [];
  // First appearances of expected seqs, in recorded order: a correct state lists each once, ascending.
  const firstAppearances: number[] = [];
  let outOfOrder = false;
  for (const seq of recorded) {
    if (seen.has(seq)) {
      if (!duplicateSet.has(seq)) {
        duplicateSet.add(seq);
        duplicates.push(seq);
      }
      continue;
    }
    seen.add(seq);
    if (!(Number.isSafeInteger(seq) && seq > received && seq <= sent)) {
      unexpected.push(seq);
      continue;
    }
    const previous = firstAppearances[firstAppearances.length - 1];
    if (previous !== undefined && seq < previous) outOfOrder = true;
    firstAppearances.push(seq);
  }

  const expectedCount = Math.max(0, sent - received);
  const missing =
    firstAppearances.length === expectedCount
      ? [] // every expected seq appears, since they are distinct and in range
      : gaps(received, sent, outOfOrder ? [...firstAppearances].sort((a, b) => a - b) : firstAppearances);

  if (missing.length === 0 && unexpected.length === 0 && duplicates.length === 0 && !outOfOrder) return undefined;

  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing ${formatRanges(missing)}`);
  if (unexpected.length > 0) problems.push(`unexpected ${formatSeqs(unexpected)}`);
  if (duplicates.length > 0) problems.push(`duplicated ${formatSeqs(duplicates)}`);
  if (outOfOrder) problems.push(`out of order (recorded ${formatSeqs(recorded)})`);
  const wanted = sent > received ? `seqs ${formatRange({ first: received + 1, last: sent })}` : 'no messages';
  return {
    kind: 'channel-state',
    channel: channel.id,
    expected: { afterSeq: received, throughSeq: sent },
    missing,
    unexpected,
    duplicates,
    outOfOrder,
    message:
      `channel state of ${channel.id} is not exact: expected ${wanted} (receiver ${channel.to} had received ` +
      `${received}, sender ${channel.from} had sent ${sent}); ${problems.join('; ')}`,
  };
}

/** The runs of (received, sent] not covered by `present`, which must be ascending, distinct and in range. */
function gaps(received: number, sent: number, present: readonly number[]): SeqRange[] {
  const result: SeqRange[] = [];
  let next = received + 1;
  for (const seq of present) {
    if (seq > next) result.push({ first: next, last: seq - 1 });
    next = seq + 1;
  }
  if (next <= sent) result.push({ first: next, last: sent });
  return result;
}

function checkConservation<P>(
  input: CutInput<P>,
  tokens: TokenAccounting<P>,
): Extract<Violation, { kind: 'conservation' }> | undefined {
  let inProcesses = 0;
  for (const amount of Object.values(tokens.processTokens)) inProcesses += amount;
  // Only channels of the graph count: a state recorded for an unknown channel is reported on its own.
  let inChannels = 0;
  for (const channel of input.channels) {
    const state = Object.hasOwn(input.channelStates, channel.id) ? input.channelStates[channel.id]! : [];
    for (const message of state) inChannels += tokens.tokensOf(message.payload);
  }
  const actual = inProcesses + inChannels;
  if (actual === tokens.initialTotal) return undefined;
  return {
    kind: 'conservation',
    expected: tokens.initialTotal,
    actual,
    inProcesses,
    inChannels,
    message:
      `tokens are not conserved: expected ${tokens.initialTotal} in total but found ${actual} ` +
      `(${inProcesses} in process states, ${inChannels} in channel states)`,
  };
}

/** Own properties only: a process or channel named like `constructor` must not read Object.prototype. */
function countOf(counts: Readonly<Record<ChannelId, number>>, channel: ChannelId): number {
  return Object.hasOwn(counts, channel) ? counts[channel]! : 0;
}

function recordedSeqs<P>(
  states: Readonly<Record<ChannelId, readonly RecordedMessage<P>[]>>,
  channel: ChannelId,
): number[] {
  return Object.hasOwn(states, channel) ? states[channel]!.map((m) => m.seq) : [];
}

function formatSeqs(seqs: readonly number[]): string {
  const shown = seqs.slice(0, messageSeqsListedMax).join(', ');
  const rest = seqs.length - messageSeqsListedMax;
  return rest > 0 ? `${shown} and ${rest} more` : shown;
}

function formatRange(range: SeqRange): string {
  return range.first === range.last ? `${range.first}` : `${range.first}..${range.last}`;
}

function formatRanges(ranges: readonly SeqRange[]): string {
  const shown = ranges.slice(0, messageSeqsListedMax).map(formatRange).join(', ');
  const rest = ranges.length - messageSeqsListedMax;
  return rest > 0 ? `${shown} and ${rest} more ranges` : shown;
}
