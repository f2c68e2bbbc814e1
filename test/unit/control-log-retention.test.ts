import { describe, expect, it } from 'vitest';
import { decideLogRetention, oldestRange, type StreamFacts, type StreamLimits } from '../../src/control/log-retention.js';

const NO_LIMITS: StreamLimits = { maxMsgs: 0, maxBytes: 0, maxAgeMs: 0, maxMsgsPerSubject: 0 };

/** A stream holding sequences 1..1000 of 100 bytes each; the needed record is 60 s old, its subject holds 500. */
function facts(over: Omit<Partial<StreamFacts>, 'limits'> & { limits?: Partial<StreamLimits> } = {}): StreamFacts {
  return {
    firstSeq: 1,
    lastSeq: 1000,
    messages: 1000,
    bytes: 100_000,
    needed: { present: true, ageMs: 60_000, subjectMessages: 500 },
    ...over,
    limits: { ...NO_LIMITS, ...over.limits },
  };
}

// The range of checkpoint 7 starts after stream sequence 801: 200 records from 801 to 1000.
const cases: { name: string; afterOffset?: number; facts: StreamFacts; kind: string; limit?: string }[] = [
  { name: 'no limits', facts: facts(), kind: 'ok' },
  { name: 'limits far from the range', facts: facts({ limits: { maxMsgs: 1000, maxBytes: 1_000_000, maxAgeMs: 3_600_000, maxMsgsPerSubject: 10_000 } }), kind: 'ok' },
  { name: 'max_msgs: 200 of 240 (83 %)', facts: facts({ limits: { maxMsgs: 240 } }), kind: 'at-risk', limit: 'maxMsgs' },
  { name: 'max_msgs: 200 of 260 (77 %)', facts: facts({ limits: { maxMsgs: 260 } }), kind: 'ok' },
  { name: 'max_bytes: 20,000 of 22,000', facts: facts({ limits: { maxBytes: 22_000 } }), kind: 'at-risk', limit: 'maxBytes' },
  { name: 'max_age: 60 s of 70 s', facts: facts({ limits: { maxAgeMs: 70_000 } }), kind: 'at-risk', limit: 'maxAgeMs' },
  { name: 'max_age: 60 s of 80 s (75 %)', facts: facts({ limits: { maxAgeMs: 80_000 } }), kind: 'ok' },
  { name: 'per subject: at most the 200 since of 220', facts: facts({ limits: { maxMsgsPerSubject: 220 } }), kind: 'at-risk', limit: 'maxMsgsPerSubject' },
  { name: 'per subject: the subject holds 100 of 1000', facts: facts({ limits: { maxMsgsPerSubject: 1000 }, needed: { present: true, ageMs: 0, subjectMessages: 100 } }), kind: 'ok' },
  { name: 'the worst limit decides', facts: facts({ limits: { maxMsgs: 210, maxAgeMs: 70_000 } }), kind: 'at-risk', limit: 'maxMsgs' },
  { name: 'the first sequence passed the record', facts: facts({ firstSeq: 802 }), kind: 'dropped' },
  { name: 'the first sequence is the record', facts: facts({ firstSeq: 801, limits: { maxMsgs: 10_000 } }), kind: 'ok' },
  { name: 'the record is gone (a per-subject drop)', facts: facts({ needed: { present: false } }), kind: 'dropped' },
  { name: 'nothing consumed at the cut: the range starts at sequence 1', afterOffset: 0, facts: facts({ firstSeq: 2 }), kind: 'dropped' },
  { name: 'nothing consumed at the cut, all kept', afterOffset: 0, facts: facts(), kind: 'ok' },
];

describe('log retention: does the stream still hold the oldest retained range', () => {
  for (const c of cases) {
    it(c.name, () => {
      const v = decideLogRetention('s2/APP2->s3/APP3', 'LOG', { checkpointId: 7, afterOffset: c.afterOffset ?? 801 }, c.facts);
      expect(v.kind).toBe(c.kind);
      if (c.limit !== undefined) expect(v).toMatchObject({ limit: c.limit, checkpointId: 7 });
      if (v.kind !== 'ok') expect(v.detail).toMatch(/checkpoint 7 on s2\/APP2->s3\/APP3/);
    });
  }

  it('the smallest offset decides among the retained checkpoints; none: nothing needed', () => {
    expect(oldestRange([{ checkpointId: 9, afterOffset: 50 }, { checkpointId: 4, afterOffset: 20 }, { checkpointId: 6, afterOffset: 30 }])).toEqual({ checkpointId: 4, afterOffset: 20 });
    expect(oldestRange([])).toBeUndefined();
  });
});
