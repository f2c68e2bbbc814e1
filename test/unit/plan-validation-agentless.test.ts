/**
 * Plan validation of servers without an agent (agentless_servers): what a person is told when the
 * marking is wrong. A valid one names a server of the plan that hosts no app and has disks.
 */
import { describe, expect, it } from 'vitest';
import type { PlanInput } from '../../coordinator/model.js';
import { validatePlan } from '../../coordinator/plan-validation.js';
import { planInput } from '../support/coordinator-fixtures.js';

/** srv1..srv3 run the demo apps; vm1 is a machine with two disks and no agent. */
const mixed = (overrides: Partial<PlanInput> = {}): PlanInput =>
  planInput({
    servers: ['srv1', 'srv2', 'srv3', 'vm1'],
    volumes: [
      { id: 'vol1', server: 'srv1', backendRef: 'pool/vol1' },
      { id: 'vm1-sys', server: 'vm1', backendRef: 'sys' },
      { id: 'vm1-data', server: 'vm1', backendRef: 'data' },
    ],
    agentlessServers: [{ server: 'vm1', backendRef: '/run/vm1.qmp' }],
    ...overrides,
  });

const rows: { name: string; plan: PlanInput; error?: RegExp }[] = [
  { name: 'a plan mixing servers with and without agents is valid', plan: mixed() },
  { name: 'a guest agent socket beside the QMP socket is valid', plan: mixed({ agentlessServers: [{ server: 'vm1', backendRef: '/run/vm1.qmp', guestAgentRef: '/run/vm1.qga' }] }) },
  { name: 'a server not in the plan is refused', plan: mixed({ agentlessServers: [{ server: 'vm9', backendRef: '/run/vm9.qmp' }] }), error: /agentless_servers\[0\]\.server "vm9" is not one of the plan's servers/ },
  {
    name: 'a server listed twice is refused',
    plan: mixed({ agentlessServers: [{ server: 'vm1', backendRef: 'a' }, { server: 'vm1', backendRef: 'b' }] }),
    error: /agentless_servers\[1\]\.server "vm1" is listed twice/,
  },
  { name: 'an empty backend_ref is refused', plan: mixed({ agentlessServers: [{ server: 'vm1', backendRef: '' }] }), error: /agentless_servers\[0\]\.backend_ref is empty/ },
  {
    name: 'a guest_agent_ref with a newline is refused',
    plan: mixed({ agentlessServers: [{ server: 'vm1', backendRef: '/q', guestAgentRef: '/a\nb' }] }),
    error: /agentless_servers\[0\]\.guest_agent_ref contains control characters/,
  },
  {
    name: 'a server without an agent and without volumes is refused: pausing it would capture nothing',
    plan: mixed({ volumes: [{ id: 'vol1', server: 'srv1', backendRef: 'pool/vol1' }] }),
    error: /agentless_servers\[0\]\.server "vm1" has no volume: list its disks \(the system disk too\)/,
  },
  {
    name: 'an app on a server without an agent is refused',
    plan: mixed({ agentlessServers: [{ server: 'srv1', backendRef: '/run/srv1.qmp' }] }),
    error: /apps\[0\]\.server "srv1" runs no agent/,
  },
];

describe('plan validation: servers without an agent', () => {
  for (const row of rows) {
    it(row.name, () => {
      const r = validatePlan(row.plan);
      if (row.error === undefined) expect(r.ok ? 'valid' : r.error.message).toBe('valid');
      else expect(r.ok ? 'valid' : r.error.message).toMatch(row.error);
    });
  }
});
