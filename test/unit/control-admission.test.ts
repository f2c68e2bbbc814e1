import { describe, expect, it } from 'vitest';
import { EMPTY_SLOTS, stepAdmission, validateAdmissionConfig, type AdmissionConfig, type AdmissionInput, type PlanSlots } from '../../src/control/admission.js';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';

const config: AdmissionConfig = { maxConcurrentMax: 8, negativeControls: NO_NEGATIVE_CONTROLS };
const checkThenAct: AdmissionConfig = { ...config, negativeControls: new Set(['check-then-act-admission']) };

function req(checkpointId: number, more: Partial<Extract<AdmissionInput, { type: 'request' }>> = {}): AdmissionInput {
  return { type: 'request', checkpointId, periodic: false, maxConcurrent: 1, owner: 'c1', nowMs: 1000 + checkpointId, ...more };
}

function run(inputs: readonly AdmissionInput[], cfg = config, start: PlanSlots = EMPTY_SLOTS): { slots: PlanSlots; effects: unknown[] } {
  let slots = start;
  const effects: unknown[] = [];
  for (const i of inputs) {
    const s = stepAdmission(slots, i, cfg);
    slots = s.slots;
    effects.push(...s.effects);
  }
  return { slots, effects };
}

describe('admission: one plan, max_concurrent', () => {
  it('admits the first request and answers busy to the next, naming the checkpoint in the way', () => {
    const { slots, effects } = run([req(1), req(2)]);
    expect(slots.slots.map((s) => s.checkpointId)).toEqual([1]);
    expect(effects).toEqual([
      { type: 'admitted', checkpointId: 1 },
      { type: 'busy', checkpointId: 2, inFlight: [1], maxConcurrent: 1 },
    ]);
  });

  it('a busy answer changes nothing', () => {
    const first = stepAdmission(EMPTY_SLOTS, req(1), config);
    const second = stepAdmission(first.slots, req(2), config);
    expect(second.changed).toBe(false);
    expect(second.slots).toBe(first.slots);
  });

  it('a released slot makes room for the next request', () => {
    const { slots, effects } = run([req(1), { type: 'release', checkpointId: 1 }, req(2)]);
    expect(slots.slots.map((s) => s.checkpointId)).toEqual([2]);
    expect(effects).toContainEqual({ type: 'released', checkpointId: 1 });
    expect(effects).toContainEqual({ type: 'admitted', checkpointId: 2 });
  });

  it('max_concurrent 3 admits three and refuses the fourth', () => {
    const { slots, effects } = run([1, 2, 3, 4].map((id) => req(id, { maxConcurrent: 3 })));
    expect(slots.slots).toHaveLength(3);
    expect(effects.at(-1)).toEqual({ type: 'busy', checkpointId: 4, inFlight: [1, 2, 3], maxConcurrent: 3 });
  });

  it('a manual request outranks a periodic one: the newest periodic checkpoint is preempted before the manual one is admitted', () => {
    const { slots, effects } = run([req(1, { periodic: true, maxConcurrent: 2 }), req(2, { periodic: true, maxConcurrent: 2 }), req(3, { maxConcurrent: 2 })]);
    expect(slots.slots.map((s) => s.checkpointId)).toEqual([1, 3]);
    expect(effects.slice(-2)).toEqual([
      { type: 'preempt', checkpointId: 2, by: 3 },
      { type: 'admitted', checkpointId: 3 },
    ]);
  });

  it('a periodic request never displaces anything, and a manual one never displaces a manual one', () => {
    expect(run([req(1, { periodic: true }), req(2, { periodic: true })]).effects.at(-1)).toMatchObject({ type: 'busy' });
    expect(run([req(1), req(2, { periodic: true })]).effects.at(-1)).toMatchObject({ type: 'busy' });
    expect(run([req(1), req(2)]).effects.at(-1)).toMatchObject({ type: 'busy' });
  });

  it('stale, duplicate and unknown inputs are outcomes, not exceptions', () => {
    const one = stepAdmission(EMPTY_SLOTS, req(1), config).slots;
    expect(stepAdmission(one, req(1), config).rejected?.reason).toBe('duplicate');
    expect(stepAdmission(one, { type: 'release', checkpointId: 9 }, config).rejected?.reason).toBe('unknown-checkpoint');
    expect(stepAdmission(one, req(2, { maxConcurrent: 0 }), config).rejected?.reason).toBe('invalid-limit');
    expect(stepAdmission(one, req(2, { maxConcurrent: 9 }), config).rejected?.reason).toBe('invalid-limit');
  });

  it('reclaim frees the slots of its owner that the owner no longer runs, and only those', () => {
    const slots = run([req(1, { maxConcurrent: 3 }), req(2, { maxConcurrent: 3, owner: 'c2' }), req(3, { maxConcurrent: 3 })]).slots;
    const s = stepAdmission(slots, { type: 'reclaim', owner: 'c1', liveIds: [3] }, config);
    expect(s.effects).toEqual([{ type: 'reclaimed', checkpointIds: [1] }]);
    expect(s.slots.slots.map((x) => x.checkpointId)).toEqual([2, 3]);
  });

  it('the limit is validated at construction', () => {
    expect(validateAdmissionConfig(config)).toBeUndefined();
    expect(validateAdmissionConfig({ ...config, maxConcurrentMax: 0 })).toMatch(/maxConcurrentMax/);
  });
});

/**
 * Concurrent requests as the shell runs them: each reads the slots, awaits (allocating an id), then
 * steps over the slots as they are at its write. Production decides on what it writes over (the
 * compare-and-set makes read and write one act); the negative control decides on its earlier read.
 */
function interleaved(cfg: AdmissionConfig, callers: number): number {
  let slots = EMPTY_SLOTS;
  const reads = Array.from({ length: callers }, () => slots);
  let most = 0;
  for (let i = 0; i < callers; i++) {
    slots = stepAdmission(slots, req(i + 1, { checked: reads[i] }), cfg).slots;
    most = Math.max(most, slots.slots.length);
  }
  return most;
}

describe('admission: negative control check-then-act-admission', () => {
  it('without it, three callers that read at once still get one slot between them', () => {
    expect(interleaved(config, 3)).toBe(1);
  });

  it('with it, the same three callers all get in: the limit fails, as defect 5 did', () => {
    expect(interleaved(checkThenAct, 3)).toBe(3);
  });
});
