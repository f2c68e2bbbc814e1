/**
 * A rollback or restore to servers without a live agent fails at once with FAILED_PRECONDITION
 * naming them, before it sends anything or moves an epoch; without the check it would wait the whole
 * restore timeout for answers that cannot come.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AgentPresence } from '../../coordinator/agents.js';
import { checkAgentsPresent, restoreInto, rollback, type RestoreDeps } from '../../coordinator/checkpoints/restore.js';
import type { AgentInfo, AgentStatus } from '../../coordinator/model.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

function agents(statuses: Record<string, AgentStatus>): AgentPresence {
  return {
    get: (tenant: string, server: string): AgentInfo | undefined => {
      const status = statuses[server];
      if (status === undefined) return undefined;
      return { tenant, server, apps: [], version: 'test', status, registeredAtUnixMs: 1, lastHeartbeatAtUnixMs: 1, frozen: false };
    },
  };
}

/** A dependency that fails the test if the code under test touches it at all. */
function untouchable<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get: (_, key) => {
      throw new Error(`${name}.${String(key)} was used before the agents were checked`);
    },
  });
}

/**
 * The store as far as the restore may read it before the agents are checked: the plans (is the
 * request itself sound?) and nothing else (no epoch moved, no record touched).
 */
function readOnlyPlans(): RestoreDeps['store'] {
  const plans = { list: async () => ({ ok: true as const, value: { items: [], nextPageToken: '' } }) };
  return new Proxy({} as RestoreDeps['store'], {
    get: (_, key) => {
      if (key === 'plans') return plans;
      throw new Error(`store.${String(key)} was used before the agents were checked`);
    },
  });
}

function deps(present: AgentPresence): RestoreDeps {
  return {
    store: readOnlyPlans(),
    bus: untouchable('bus'),
    objects: untouchable('objects'),
    logger: pino({ level: 'silent' }),
    timeoutMs: 30_000,
    agents: present,
  };
}

const completed = checkpointRecord({ id: 7, state: 'completed' });

describe('restore and rollback check for live agents first', () => {
  it('restore to servers no agent ever registered on: FAILED_PRECONDITION naming them, nothing sent', async () => {
    const result = await restoreInto({ checkpointId: 7, servers: { srv1: 's7', srv2: 's8' }, apps: [] }, deps(agents({ s8: 'online' })), async () => ({ ok: true, value: completed }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.kind).toBe('failed-precondition');
    expect(result.error.message).toMatch(/^restore of checkpoint 7 not started: no live agent of tenant acme on s7 \(no agent has registered\);/);
    expect(result.error.message).not.toContain('s8');
  });

  it('rollback with one of the plan\'s agents offline: FAILED_PRECONDITION naming it, the epoch left alone', async () => {
    const result = await rollback(completed, deps(agents({ srv1: 'online', srv2: 'offline' })));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.kind).toBe('failed-precondition');
    expect(result.error.message).toContain('srv2 (its agent is offline)');
  });

  it('online and late agents pass: a late one may only be busy, and the restore timeout judges it', () => {
    expect(checkAgentsPresent('acme', ['srv1', 'srv2', 'srv1'], { agents: agents({ srv1: 'online', srv2: 'late' }) }, 'restore').ok).toBe(true);
  });

  it('without an agent registry the check is skipped', () => {
    expect(checkAgentsPresent('acme', ['nowhere'], {}, 'restore').ok).toBe(true);
  });
});
