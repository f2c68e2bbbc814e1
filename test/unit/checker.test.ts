import { describe, expect, it } from 'vitest';
import { checkCut, type CutInput, type Violation } from '../../src/checker/index.js';
import type { RecordedMessage, SnapshotCounts } from '../../src/core/types.js';
import type { Channel } from '../../src/graph/index.js';

const ab: Channel = { id: 'a->b', from: 'a', to: 'b' };
const ba: Channel = { id: 'b->a', from: 'b', to: 'a' };

/** Messages carrying `tokens` each, one per seq. */
function messages(seqs: readonly number[], tokens = 0): RecordedMessage<number>[] {
  return seqs.map((seq) => ({ seq, payload: tokens }));
}

function counts(sent: Record<string, number>, received: Record<string, number>): SnapshotCounts {
  return { sent, received };
}

/** a->b and b->a; a sent `sentAB` on a->b, b received `receivedAB` of them; b->a is quiet. */
function twoProcesses(sentAB: number, receivedAB: number, stateAB: readonly number[]): CutInput<number> {
  return {
    channels: [ab, ba],
    snapshots: {
      a: counts({ 'a->b': sentAB }, { 'b->a': 0 }),
      b: counts({ 'b->a': 0 }, { 'a->b': receivedAB }),
    },
    channelStates: { 'a->b': messages(stateAB) },
  };
}

function only<K extends Violation['kind']>(violations: readonly Violation[], kind: K): Extract<Violation, { kind: K }> {
  expect(violations.map((v) => v.kind)).toEqual([kind]);
  return violations[0] as Extract<Violation, { kind: K }>;
}

describe('checkCut', () => {
  it('a two-process cut with one in-flight message recorded is consistent', () => {
    expect(checkCut(twoProcesses(3, 2, [3]))).toEqual({ consistent: true, violations: [] });
  });

  it('a channel absent from the channel states counts as empty', () => {
    const input: CutInput<number> = { ...twoProcesses(2, 2, []), channelStates: {} };
    expect(checkCut(input).consistent).toBe(true);
  });

  it('a counter absent from the snapshot counts as zero', () => {
    const input: CutInput<number> = {
      channels: [ab],
      snapshots: { a: counts({}, {}), b: counts({}, {}) },
      channelStates: {},
    };
    expect(checkCut(input).consistent).toBe(true);
  });

  it('a receiver that had received more than the sender had sent is an orphan', () => {
    const report = checkCut(twoProcesses(3, 5, []));
    expect(report.consistent).toBe(false);
    const orphan = only(report.violations, 'orphan');
    expect(orphan).toMatchObject({ channel: 'a->b', sent: 3, received: 5 });
    expect(orphan.message).toBe(
      'orphan on a->b: receiver b had received 5 messages but sender a had sent only 3 at its snapshot',
    );
  });

  it('an orphan with messages recorded reports them as unexpected too', () => {
    const report = checkCut(twoProcesses(3, 5, [4]));
    expect(report.violations.map((v) => v.kind)).toEqual(['orphan', 'channel-state']);
    expect(report.violations[1]).toMatchObject({ unexpected: [4], missing: [] });
  });

  it('an in-flight message left out of the channel state is missing, by seq', () => {
    const report = checkCut(twoProcesses(6, 2, [3, 5]));
    const state = only(report.violations, 'channel-state');
    expect(state).toMatchObject({
      channel: 'a->b',
      expected: { afterSeq: 2, throughSeq: 6 },
      missing: [
        { first: 4, last: 4 },
        { first: 6, last: 6 },
      ],
      unexpected: [],
      duplicates: [],
      outOfOrder: false,
    });
    expect(state.message).toBe(
      'channel state of a->b is not exact: expected seqs 3..6 (receiver b had received 2, sender a had sent 6); missing 4, 6',
    );
  });

  it('a long gap is one range, however large', () => {
    const report = checkCut(twoProcesses(1_000_000_000, 0, [1]));
    expect(only(report.violations, 'channel-state').missing).toEqual([{ first: 2, last: 1_000_000_000 }]);
  });

  it('a message recorded twice is a duplicate', () => {
    const report = checkCut(twoProcesses(4, 1, [2, 3, 3, 4]));
    const state = only(report.violations, 'channel-state');
    expect(state).toMatchObject({ missing: [], unexpected: [], duplicates: [3], outOfOrder: false });
    expect(state.message).toContain('duplicated 3');
  });

  it('a channel state in the wrong order is out of order, with nothing missing', () => {
    const report = checkCut(twoProcesses(4, 1, [2, 4, 3]));
    const state = only(report.violations, 'channel-state');
    expect(state).toMatchObject({ missing: [], unexpected: [], duplicates: [], outOfOrder: true });
    expect(state.message).toContain('out of order (recorded 2, 4, 3)');
  });

  it('a recorded message already received, or not yet sent, is unexpected', () => {
    const report = checkCut(twoProcesses(4, 2, [2, 3, 4, 5]));
    const state = only(report.violations, 'channel-state');
    expect(state).toMatchObject({ missing: [], unexpected: [2, 5], duplicates: [], outOfOrder: false });
    expect(state.message).toContain('unexpected 2, 5');
  });

  it('several faults on one channel are all reported in one violation', () => {
    const report = checkCut(twoProcesses(10, 0, [9, 1, 1, 2, 12, 5]));
    expect(only(report.violations, 'channel-state')).toMatchObject({
      missing: [
        { first: 3, last: 4 },
        { first: 6, last: 8 },
        { first: 10, last: 10 },
      ],
      unexpected: [12],
      duplicates: [1],
      outOfOrder: true,
    });
  });

  it('a process without a snapshot is reported once and its channels are not judged', () => {
    const input: CutInput<number> = {
      channels: [ab, ba],
      snapshots: { a: counts({ 'a->b': 1 }, { 'b->a': 9 }) },
      channelStates: {},
    };
    const report = checkCut(input);
    const missing = only(report.violations, 'missing-snapshot');
    expect(missing.process).toBe('b');
    expect(missing.message).toBe('process b has no snapshot (it is an endpoint of a->b)');
  });

  it('a state recorded for a channel outside the graph is reported', () => {
    const input: CutInput<number> = { ...twoProcesses(1, 1, []), channelStates: { 'a->c': messages([1]) } };
    expect(only(checkCut(input).violations, 'unknown-channel').channel).toBe('a->c');
  });

  it('processes named like Object.prototype members are ordinary processes', () => {
    const channel: Channel = { id: 'constructor->toString', from: 'constructor', to: 'toString' };
    const input: CutInput<number> = { channels: [channel], snapshots: {}, channelStates: {} };
    expect(checkCut(input).violations.map((v) => v.kind)).toEqual(['missing-snapshot', 'missing-snapshot']);
  });

  describe('conservation', () => {
    const tokenCut = (processTokens: Record<string, number>, state: readonly number[]): CutInput<number> => ({
      ...twoProcesses(3, 1, state),
      channelStates: { 'a->b': messages(state, 10) },
      tokens: { initialTotal: 100, processTokens, tokensOf: (payload) => payload },
    });

    it('tokens in processes plus channels equal to the initial total are conserved', () => {
      expect(checkCut(tokenCut({ a: 50, b: 30 }, [2, 3])).consistent).toBe(true);
    });

    it('tokens lost from the cut are a conservation violation with the split shown', () => {
      const report = checkCut(tokenCut({ a: 50, b: 30 }, [2]));
      expect(report.violations.map((v) => v.kind)).toEqual(['channel-state', 'conservation']);
      const conservation = report.violations[1] as Extract<Violation, { kind: 'conservation' }>;
      expect(conservation).toMatchObject({ expected: 100, actual: 90, inProcesses: 80, inChannels: 10 });
      expect(conservation.message).toBe(
        'tokens are not conserved: expected 100 in total but found 90 (80 in process states, 10 in channel states)',
      );
    });

    it('tokens counted twice break conservation even when the channel states are exact', () => {
      const report = checkCut(tokenCut({ a: 60, b: 30 }, [2, 3]));
      expect(only(report.violations, 'conservation')).toMatchObject({ expected: 100, actual: 110 });
    });
  });

  it('every violation message names its channel or process and reads as a sentence', () => {
    const input: CutInput<number> = {
      channels: [ab, ba, { id: 'c->a', from: 'c', to: 'a' }],
      snapshots: {
        a: counts({ 'a->b': 2 }, { 'b->a': 4 }),
        b: counts({ 'b->a': 3 }, { 'a->b': 0 }),
      },
      channelStates: { 'a->b': messages([2, 1]) },
      tokens: { initialTotal: 1, processTokens: {}, tokensOf: () => 0 },
    };
    const report = checkCut(input);
    expect(report.violations.map((v) => v.message)).toEqual([
      'process c has no snapshot (it is an endpoint of c->a)',
      'channel state of a->b is not exact: expected seqs 1..2 (receiver b had received 0, sender a had sent 2); out of order (recorded 2, 1)',
      'orphan on b->a: receiver a had received 4 messages but sender b had sent only 3 at its snapshot',
      'tokens are not conserved: expected 1 in total but found 0 (0 in process states, 0 in channel states)',
    ]);
  });
});

describe('log channels: the state is a range of the log', () => {
  const logCut = (range: { afterSeq: number; throughSeq: number }, withMessages?: readonly number[]): CutInput<number> => ({
    channels: [ab, ba],
    snapshots: { a: counts({ 'a->b': 5 }, { 'b->a': 0 }), b: counts({ 'b->a': 0 }, { 'a->b': 2 }) },
    channelStates: withMessages === undefined ? {} : { 'a->b': messages(withMessages) },
    logRanges: { 'a->b': range },
  });

  it('the range (received, sent] with no copied messages is consistent', () => {
    expect(checkCut(logCut({ afterSeq: 2, throughSeq: 5 })).violations).toEqual([]);
  });

  it('a range that ends short of what the sender had sent is a log-range violation', () => {
    const v = only(checkCut(logCut({ afterSeq: 2, throughSeq: 4 })).violations, 'log-range');
    expect(v.expected).toEqual({ afterSeq: 2, throughSeq: 5 });
    expect(v.message).toContain('log range of a->b is (2, 4]');
  });

  it("the range's messages read from the log are checked like a recorded state", () => {
    expect(checkCut(logCut({ afterSeq: 2, throughSeq: 5 }, [3, 4, 5])).consistent).toBe(true);
    expect(only(checkCut(logCut({ afterSeq: 2, throughSeq: 5 }, [3, 5])).violations, 'channel-state').missing).toEqual([{ first: 4, last: 4 }]);
  });

  it('without a range, an empty state of a channel with messages in flight is still a violation', () => {
    const input = { ...logCut({ afterSeq: 2, throughSeq: 5 }), logRanges: {} };
    expect(only(checkCut(input).violations, 'channel-state').missing).toEqual([{ first: 3, last: 5 }]);
  });
});
