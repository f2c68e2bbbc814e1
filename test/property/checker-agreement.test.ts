/**
 * The fast cut checker (counts, FIFO shortcut) and the brute-force one (full history, definitions
 * applied literally) must agree on every small run: on the verdict, on which (kind, channel) pairs
 * are violated, and on the details they both compute. Runs are built from fast-check arbitraries only,
 * so a failure shrinks to a small run and prints its seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkCut,
  checkCutByHistory,
  countsFromHistory,
  type CutReport,
  type LocalEvent,
  type RunHistory,
} from '../../src/checker/index.js';
import type { RecordedMessage } from '../../src/core/types.js';
import type { Channel } from '../../src/graph/index.js';
import { channelId } from '../../src/ids.js';

const processCountMin = 2;
const processCountMax = 5;
const stepsMax = 40;
const runsCount = 300;

interface Corruption {
  readonly channel: number;
  readonly op: 'drop' | 'duplicate' | 'reorder' | 'add';
  readonly position: number;
}

interface RunPlan {
  readonly processCount: number;
  readonly channelPairs: readonly (readonly [number, number])[];
  /** Each step acts on channel `channel % channels`: a send, or a receive of the oldest in-flight message. */
  readonly steps: readonly { readonly channel: number; readonly send: boolean }[];
  /** `global` cuts at one instant of the interleaving (never an orphan); `local` picks each snapshot freely. */
  readonly cut:
    | { readonly kind: 'global'; readonly at: number }
    | { readonly kind: 'local'; readonly points: readonly number[] };
  readonly corruptions: readonly Corruption[];
}

const processCountArb = fc.integer({ min: processCountMin, max: processCountMax });
const runPlan: fc.Arbitrary<RunPlan> = processCountArb.chain((processCount) => {
  const pairs: [number, number][] = [];
  for (let i = 0; i < processCount; i += 1) for (let j = 0; j < processCount; j += 1) if (i !== j) pairs.push([i, j]);
  return fc.record({
    processCount: fc.constant(processCount),
    channelPairs: fc.subarray(pairs, { minLength: 1 }),
    steps: fc.array(fc.record({ channel: fc.nat(), send: fc.boolean() }), { maxLength: stepsMax }),
    cut: fc.oneof(
      fc.record({ kind: fc.constant('global' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('local' as const),
        points: fc.array(fc.nat(), { minLength: processCount, maxLength: processCount }),
      }),
    ),
    corruptions: fc.oneof(
      fc.constant([]),
      fc.array(
        fc.record({
          channel: fc.nat(),
          op: fc.constantFrom('drop' as const, 'duplicate' as const, 'reorder' as const, 'add' as const),
          position: fc.nat(),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    ),
  });
});

/** Plays the plan: a FIFO interleaving, one snapshot per process, then the (possibly corrupted) states. */
function buildHistory(plan: RunPlan): RunHistory {
  const processes = Array.from({ length: plan.processCount }, (_, i) => `p${i}`);
  const channels: Channel[] = plan.channelPairs.map(([i, j]) => {
    const from = processes[i]!;
    const to = processes[j]!;
    return { id: channelId(from, to), from, to };
  });

  const global: { process: string; event: LocalEvent }[] = [];
  const lastSent = channels.map(() => 0);
  const inFlight: number[][] = channels.map(() => []);
  for (const step of plan.steps) {
    const c = step.channel % channels.length;
    const channel = channels[c]!;
    const queue = inFlight[c]!;
    if (step.send || queue.length === 0) {
      lastSent[c] = lastSent[c]! + 1;
      queue.push(lastSent[c]!);
      global.push({ process: channel.from, event: { kind: 'send', channel: channel.id, seq: lastSent[c]! } });
    } else {
      const seq = queue.shift()!;
      global.push({ process: channel.to, event: { kind: 'receive', channel: channel.id, seq } });
    }
  }

  const local = new Map(processes.map((p) => [p, global.filter((g) => g.process === p).map((g) => g.event)]));
  const snapshotPoint = (process: string, i: number): number => {
    const length = local.get(process)!.length;
    if (plan.cut.kind === 'local') return plan.cut.points[i]! % (length + 1);
    const at = plan.cut.at % (global.length + 1);
    return global.slice(0, at).filter((g) => g.process === process).length;
  };
  const events: Record<string, LocalEvent[]> = {};
  processes.forEach((p, i) => {
    const own = local.get(p)!;
    const point = snapshotPoint(p, i);
    events[p] = [...own.slice(0, point), { kind: 'snapshot' }, ...own.slice(point)];
  });

  // The exact state of each channel under FIFO: seqs (received, sent] at the two snapshots.
  const before = (process: string, kind: 'send' | 'receive', channel: string): number => {
    const own = events[process]!;
    const beforeSnapshot = own.slice(0, own.findIndex((e) => e.kind === 'snapshot'));
    return beforeSnapshot.filter((e) => e.kind === kind && e.channel === channel).length;
  };
  const states = channels.map((channel) => {
    const sent = before(channel.from, 'send', channel.id);
    const received = before(channel.to, 'receive', channel.id);
    const state: number[] = [];
    for (let seq = received + 1; seq <= sent; seq += 1) state.push(seq);
    return { sent, received, state };
  });

  for (const corruption of plan.corruptions) {
    const { sent, received, state } = states[corruption.channel % channels.length]!;
    const length = state.length;
    const at = (size: number): number => corruption.position % size;
    let op = corruption.op;
    if ((op === 'drop' || op === 'duplicate') && length === 0) op = 'add';
    if (op === 'reorder' && length < 2) op = 'add';
    if (op === 'drop') state.splice(at(length), 1);
    else if (op === 'duplicate') {
      const i = at(length);
      state.splice(i + 1, 0, state[i]!);
    } else if (op === 'reorder') {
      const i = at(length - 1);
      [state[i], state[i + 1]] = [state[i + 1]!, state[i]!];
    } else {
      // A seq outside (received, sent]: one not yet sent, or (when there is one) one already received.
      const outside = received > 0 && corruption.position % 2 === 0 ? received : sent + 1;
      state.splice(at(length + 1), 0, outside);
    }
  }

  return {
    channels,
    events,
    channelStates: Object.fromEntries(channels.map((c, i) => [c.id, states[i]!.state])),
  };
}

function fastReport(history: RunHistory): CutReport {
  const channelStates: Record<string, RecordedMessage<null>[]> = {};
  for (const [id, seqs] of Object.entries(history.channelStates)) {
    channelStates[id] = seqs.map((seq) => ({ seq, payload: null }));
  }
  return checkCut({ channels: history.channels, snapshots: countsFromHistory(history), channelStates });
}

function violatedPairs(report: CutReport): string[] {
  return report.violations
    .map((v) => `${v.kind} ${'channel' in v ? v.channel : 'process' in v ? v.process : ''}`)
    .sort();
}

/** Everything but the prose, which the two checkers word differently on purpose. */
function details(report: CutReport): unknown[] {
  return report.violations.map(({ message: _message, ...rest }) => rest);
}

describe('cut checker agreement', () => {
  it('the count-based checker and the history-based checker agree on every small run', () => {
    const verdicts = { consistent: 0, inconsistent: 0 };
    const kinds = new Set<string>();
    fc.assert(
      fc.property(runPlan, (plan) => {
        const history = buildHistory(plan);
        const fast = fastReport(history);
        const brute = checkCutByHistory(history);
        expect(fast.consistent).toBe(brute.consistent);
        expect(violatedPairs(fast)).toEqual(violatedPairs(brute));
        expect(details(fast)).toEqual(details(brute));
        verdicts[fast.consistent ? 'consistent' : 'inconsistent'] += 1;
        for (const v of fast.violations) kinds.add(v.kind);
      }),
      { numRuns: runsCount },
    );
    // Without these the property could pass vacuously, e.g. if every generated cut were consistent.
    expect(verdicts.consistent).toBeGreaterThan(runsCount / 10);
    expect(verdicts.inconsistent).toBeGreaterThan(runsCount / 10);
    expect([...kinds].sort()).toEqual(['channel-state', 'orphan']);
  });

  it('a correct state over a global-instant cut is always consistent', () => {
    fc.assert(
      fc.property(runPlan, (plan) => {
        const cut = plan.cut.kind === 'global' ? plan.cut : ({ kind: 'global', at: 0 } as const);
        const history = buildHistory({ ...plan, cut, corruptions: [] });
        expect(fastReport(history)).toEqual({ consistent: true, violations: [] });
        expect(checkCutByHistory(history)).toEqual({ consistent: true, violations: [] });
      }),
      { numRuns: runsCount },
    );
  });
});
