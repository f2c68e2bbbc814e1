/** bench/security/: the API section's expectations come from docs/security.md and cover every RPC. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { documentedRoles } from '../../bench/security/api.js';
import { coordinatorRpcs, requestFor } from '../../bench/security/rpc.js';
import { METHOD_ROLES } from '../../coordinator/grpc/auth.js';
import { demoPlan } from '../../examples/demo/plan.js';

const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');

describe('security suite: the API section', () => {
  it("docs/security.md's role table names every RPC of the service, with the role the coordinator enforces", () => {
    const documented = documentedRoles(doc);
    expect(Object.fromEntries(coordinatorRpcs().map((r) => [r.name, documented.get(r.name)]))).toEqual(METHOD_ROLES);
  });

  it('a role table that is missing, or names no role, is an error, not an empty expectation', () => {
    const apiSection = doc.slice(doc.indexOf('## The gRPC API'));
    expect(() => documentedRoles(apiSection.replace('### What each credential allows', '### Roles'))).toThrow(/no heading/);
    expect(() => documentedRoles('## The gRPC API\n\n### What each credential allows\n\n| role | may call |\n')).toThrow(/no role table/);
  });

  it("requests name the target's plan and checkpoint wherever the request type has them", () => {
    const plan = demoPlan('acme', 'acme-plan');
    const byName = new Map(coordinatorRpcs().map((r) => [r.name, r]));
    const request = (name: string) => {
      const rpc = byName.get(name);
      if (rpc === undefined) throw new Error(`no ${name}`);
      return requestFor(rpc, { tenant: 'acme', plan, checkpointId: 7 });
    };
    expect(request('GetPlan')).toEqual({ plan_id: 'acme-plan' });
    expect(request('RollbackSnapshot')).toMatchObject({ checkpoint_id: '7' });
    expect(request('TakeSnapshot')).toMatchObject({ plan_id: 'acme-plan', level: 'CONSISTENCY_LEVEL_APP' });
    expect(request('CreatePolicy')).toEqual({ policy: { plan_id: 'acme-plan' } });
    expect(request('RestoreSnapshot')).toMatchObject({ checkpoint_id: '7', servers: [{ source_server: 's1', target_server: 'security-suite-target' }] });
    expect(request('ListPlans')).toMatchObject({ tenant: 'acme' });
    expect((request('RegisterPlan')['plan'] as { id: string; tenant: string })).toMatchObject({ id: 'acme-plan', tenant: 'acme' });
    const kinds = Object.fromEntries(['RegisterPlan', 'GetCheckpoint', 'ListAgents'].map((n) => [n, byName.get(n)]).map(([n, r]) => [n, r && typeof r !== 'string' ? [r.carriesPlan, r.namesItem, r.listsTenant] : []]));
    expect(kinds).toEqual({ RegisterPlan: [true, true, false], GetCheckpoint: [false, true, false], ListAgents: [false, false, true] });
  });
});
