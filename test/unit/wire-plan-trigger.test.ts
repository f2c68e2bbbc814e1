/**
 * The wire pieces of the agent's control work (issue 9): the per-plan trigger broadcast
 * (PlanTrigger on snap.<tenant>.plan.<plan>.trg), the hello command, and a trigger's plan apps.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeControl,
  decodePlanTrigger,
  encodeControl,
  encodePlanTrigger,
  planTriggerSubject,
  planTriggerWildcard,
  type Control,
  type PlanTrigger,
} from '../../src/wire/index.js';

const trigger: PlanTrigger = {
  requestId: 'c:boot:1',
  tenant: 'acme',
  plan: 'orders',
  epoch: 3,
  checkpointId: 42,
  policy: { kind: 'aligned-timeout', alignmentTimeoutMs: 500 },
  timeoutMs: 10_000,
  inlineStateBytesMax: 4096,
  completedCheckpointId: 40,
  layout: 'Xy_1-z',
};

function encoded(t: PlanTrigger): Uint8Array {
  const r = encodePlanTrigger(t);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('plan trigger broadcast on the wire', () => {
  it('a plan trigger survives encoding and decoding unchanged', () => {
    expect(decodePlanTrigger(encoded(trigger))).toEqual({ ok: true, value: trigger });
  });

  it('its subject is tenant-scoped, and an agent\'s wildcard covers every plan of its tenant only', () => {
    expect(planTriggerSubject('acme', 'orders')).toBe('snap.acme.plan.orders.trg');
    expect(planTriggerWildcard('acme')).toBe('snap.acme.plan.*.trg');
  });

  it.each([
    ['no layout', { layout: '' }, 'layout'],
    ['a layout with a space', { layout: 'a b' }, 'layout'],
    ['a completed checkpoint not below the triggered one', { completedCheckpointId: 42 }, 'completed_checkpoint_id'],
    ['an aligned timeout of 0', { policy: { kind: 'aligned-timeout', alignmentTimeoutMs: 0 } }, 'alignment_timeout_ms'],
  ])('a plan trigger with %s is refused naming the field', (_what, patch, field) => {
    const r = encodePlanTrigger({ ...trigger, ...patch } as PlanTrigger);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.field).toBe(field);
  });

  it('bytes that are not a plan trigger decode to a typed error, never a throw', () => {
    const r = decodePlanTrigger(new Uint8Array([0xff, 0xff, 0xff]));
    expect(r.ok).toBe(false);
  });
});

describe('hello and a trigger\'s apps on the wire', () => {
  const base = { requestId: 'c:1', tenant: 'acme', server: 's1', epoch: 0 };

  it('hello travels without plan and checkpoint', () => {
    const c = { ...base, plan: '', type: 'hello' } as Control;
    const bytes = encodeControl(c);
    expect(bytes.ok && decodeControl(bytes.value)).toEqual({ ok: true, value: c });
  });

  it('a hello that names a plan is refused', () => {
    const r = encodeControl({ ...base, plan: 'p', type: 'hello' } as Control);
    expect(!r.ok && r.error.field).toBe('plan');
  });

  it('a plan trigger stays the same size whatever the plan\'s size: it names a layout, not the servers', () => {
    expect(encoded(trigger).byteLength).toBeLessThan(80);
  });

  it('a trigger may name the layout its part belongs to; an empty one reads as absent', () => {
    const t = { ...base, plan: 'p', type: 'trigger', checkpointId: 1, policy: { kind: 'aligned' }, timeoutMs: 100, initiatorApps: ['a'], backEdgeChannels: [], inlineStateBytesMax: 0, apps: ['a'] } as const;
    const withLayout = encodeControl({ ...t, layout: 'L1' });
    expect(withLayout.ok && decodeControl(withLayout.value)).toEqual({ ok: true, value: { ...t, layout: 'L1' } });
    const empty = encodeControl({ ...t, layout: '' });
    expect(empty.ok && decodeControl(empty.value)).toEqual({ ok: true, value: t });
    const bad = encodeControl({ ...t, layout: 'no spaces' });
    expect(!bad.ok && bad.error.field).toBe('trigger.layout');
  });

  it('a trigger carries its plan\'s apps on the server; none reads as absent (every app)', () => {
    const t = { ...base, plan: 'p', type: 'trigger', checkpointId: 1, policy: { kind: 'aligned' }, timeoutMs: 100, initiatorApps: ['a'], backEdgeChannels: [], inlineStateBytesMax: 0 } as const;
    const withApps = encodeControl({ ...t, apps: ['a', 'b'] });
    expect(withApps.ok && decodeControl(withApps.value)).toEqual({ ok: true, value: { ...t, apps: ['a', 'b'] } });
    const without = encodeControl({ ...t, apps: [] });
    expect(without.ok && decodeControl(without.value)).toEqual({ ok: true, value: t });
    const twice = encodeControl({ ...t, apps: ['a', 'a'] });
    expect(!twice.ok && twice.error.field).toBe('trigger.apps[1]');
  });
});
