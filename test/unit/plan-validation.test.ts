/**
 * Plan validation, one row per rule: what a person gets told when a plan is wrong. Every message
 * names the field as the .proto spells it and the offending value.
 */
import { describe, expect, it } from 'vitest';
import type { PlanInput } from '../../coordinator/model.js';
import { planLimitsDefault, validatePlan } from '../../coordinator/plan-validation.js';
import { planInput } from '../support/coordinator-fixtures.js';

const base = planInput();
const [app1, app2, app3] = base.apps as [PlanInput['apps'][number], PlanInput['apps'][number], PlanInput['apps'][number]];

interface Row {
  readonly name: string;
  readonly plan: PlanInput;
  /** undefined: valid. */
  readonly error?: RegExp;
}

const rows: Row[] = [
  { name: 'the demo plan (diamond, cycle, every channel kind) is valid', plan: base },
  { name: 'a plan with servers and volumes but no apps is valid (crash level only)', plan: planInput({ apps: [], channels: [] }) },
  { name: 'an id with a dot is refused', plan: planInput({ id: 'a.b' }), error: /id "a\.b" must match \[A-Za-z0-9_-\]\{1,64\}/ },
  { name: 'an empty id is refused', plan: planInput({ id: '' }), error: /id "" must match/ },
  { name: 'an id of 65 characters is refused', plan: planInput({ id: 'x'.repeat(65) }), error: /id "x{64}\.\.\." must match/ },
  { name: 'a tenant with a space is refused', plan: planInput({ tenant: 'a b' }), error: /tenant "a b" must match/ },
  { name: 'no servers is refused', plan: planInput({ servers: [], apps: [], channels: [], volumes: [] }), error: /servers is empty/ },
  { name: 'a server listed twice is refused', plan: planInput({ servers: ['srv1', 'srv2', 'srv3', 'srv1'] }), error: /servers\[3\] "srv1" is listed twice/ },
  { name: 'a server name with a slash is refused', plan: planInput({ servers: ['srv1', 'srv2', 'srv3', 'a/b'] }), error: /servers\[3\] "a\/b" must match/ },
  { name: 'an app on an unlisted server is refused', plan: planInput({ apps: [app1, app2, { server: 'srv9', app: 'APP3' }] }), error: /apps\[2\]\.server "srv9" is not one of the plan's servers/ },
  { name: 'an app listed twice is refused', plan: planInput({ apps: [app1, app2, app3, app1] }), error: /apps\[3\] srv1\/APP1 is listed twice/ },
  { name: 'an app name with a dot is refused', plan: planInput({ apps: [app1, app2, app3, { server: 'srv1', app: 'x.y' }] }), error: /apps\[3\]\.app "x\.y" must match/ },
  {
    name: 'a channel from an app not in the plan is refused',
    plan: planInput({ channels: [{ from: { server: 'srv1', app: 'GHOST' }, to: app2, kind: 'in-band' }] }),
    error: /channels\[0\]\.from_app srv1\/GHOST is not one of the plan's apps/,
  },
  {
    name: 'a channel to an app not in the plan is refused',
    plan: planInput({ channels: [{ from: app1, to: { server: 'srv2', app: 'GHOST' }, kind: 'in-band' }] }),
    error: /channels\[0\]\.to_app srv2\/GHOST is not one of the plan's apps/,
  },
  { name: 'a self-loop is refused', plan: planInput({ channels: [{ from: app1, to: app1, kind: 'in-band' }] }), error: /channels\[0\] connects srv1\/APP1 to itself/ },
  {
    name: 'a channel listed twice is refused, even with another kind',
    plan: planInput({
      channels: [
        { from: app1, to: app2, kind: 'in-band' },
        { from: app1, to: app2, kind: 'opaque' },
      ],
    }),
    error: /channels\[1\] srv1\/APP1->srv2\/APP2 is listed twice/,
  },
  { name: 'a log channel without a log stream is refused', plan: planInput({ channels: [{ from: app1, to: app2, kind: 'log' }] }), error: /channels\[0\]\.log_stream is required for a log channel/ },
  {
    name: 'a log stream name with a dot is refused',
    plan: planInput({ channels: [{ from: app1, to: app2, kind: 'log', logStream: 'a.b' }] }),
    error: /channels\[0\]\.log_stream "a\.b" must match/,
  },
  {
    name: 'a log stream on an in-band channel is refused',
    plan: planInput({ channels: [{ from: app1, to: app2, kind: 'in-band', logStream: 'S' }] }),
    error: /channels\[0\]\.log_stream is only for log channels, not in-band/,
  },
  {
    name: 'a log channel with its subject is accepted',
    plan: planInput({ channels: [{ from: app1, to: app2, kind: 'log', logStream: 'S', logSubject: 'S.srv1.APP1.srv2.APP2' }] }),
  },
  {
    name: 'a log subject with a wildcard is refused',
    plan: planInput({ channels: [{ from: app1, to: app2, kind: 'log', logStream: 'S', logSubject: 'S.>' }] }),
    error: /channels\[0\]\.log_subject "S\.>" must be dot-separated tokens/,
  },
  {
    name: 'two log channels on one subject are refused',
    plan: planInput({
      channels: [
        { from: app1, to: app2, kind: 'log', logStream: 'S', logSubject: 'S.x' },
        { from: app2, to: app3, kind: 'log', logStream: 'S', logSubject: 'S.x' },
      ],
    }),
    error: /channels\[1\]\.log_subject S\.x is the subject of another log channel/,
  },
  {
    name: 'a log subject on an in-band channel is refused',
    plan: planInput({ channels: [{ from: app1, to: app2, kind: 'in-band', logSubject: 'S.x' }] }),
    error: /channels\[0\]\.log_subject is only for log channels, not in-band/,
  },
  {
    name: 'an unknown channel kind is refused',
    plan: planInput({ channels: [{ from: app1, to: app2, kind: 'carrier-pigeon' as 'opaque' }] }),
    error: /channels\[0\]\.kind "carrier-pigeon" must be one of in-band, log, opaque/,
  },
  {
    name: 'a volume on an unlisted server is refused',
    plan: planInput({ volumes: [{ id: 'v1', server: 'srv9', backendRef: 'pool/v1' }] }),
    error: /volumes\[0\]\.server "srv9" is not one of the plan's servers/,
  },
  {
    name: 'a volume id listed twice is refused',
    plan: planInput({
      volumes: [
        { id: 'v1', server: 'srv1', backendRef: 'pool/a' },
        { id: 'v1', server: 'srv2', backendRef: 'pool/b' },
      ],
    }),
    error: /volumes\[1\]\.id "v1" is listed twice/,
  },
  { name: 'an empty backend ref is refused', plan: planInput({ volumes: [{ id: 'v1', server: 'srv1', backendRef: '' }] }), error: /volumes\[0\]\.backend_ref is empty/ },
  {
    name: 'a backend ref with a newline is refused',
    plan: planInput({ volumes: [{ id: 'v1', server: 'srv1', backendRef: 'pool/a\nrm -rf' }] }),
    error: /volumes\[0\]\.backend_ref contains control characters/,
  },
  {
    name: 'more servers than the limit is refused before anything else is checked',
    plan: planInput({ servers: Array.from({ length: planLimitsDefault.planServersMax + 1 }, (_, i) => `s${i}`) }),
    error: /servers has 1001 entries, more than the maximum of 1000/,
  },
];

describe('plan validation', () => {
  for (const row of rows) {
    it(row.name, () => {
      const result = validatePlan(row.plan);
      if (row.error === undefined) {
        expect(result).toEqual({ ok: true, value: row.plan });
      } else {
        expect(result.ok).toBe(false);
        if (result.ok) return;
        expect(result.error.kind).toBe('invalid-argument');
        expect(result.error.message).toMatch(row.error);
      }
    });
  }

  it('every problem is reported at once, counted, and cut off after problemsReportedMax', () => {
    const plan = planInput({ id: 'a.b', tenant: 'c d', servers: ['srv1', 'srv2', 'srv3', 'srv1'] });
    const result = validatePlan(plan);
    expect(result.ok ? '' : result.error.message).toMatch(/^invalid plan: 3 problems: id "a\.b".*; tenant "c d".*; servers\[3\] "srv1" is listed twice$/);
    const many = planInput({ apps: Array.from({ length: 15 }, (_, i) => ({ server: 'nowhere', app: `A${i}` })), channels: [] });
    const cut = validatePlan(many, { ...planLimitsDefault, problemsReportedMax: 3 });
    expect(cut.ok ? '' : cut.error.message).toMatch(/^invalid plan: 15 problems: .*; and 12 more$/);
  });
});
