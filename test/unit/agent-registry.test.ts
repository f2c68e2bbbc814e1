/**
 * The agent registry's status transitions with a hand-moved clock (no sleeps): online, late after
 * lateAfterMs of silence, offline after offlineAfterMs, back online at the next sign of life; the
 * frozen flag follows heartbeats and freeze/thaw events.
 */
import { describe, expect, it } from 'vitest';
import { AgentRegistry, validateAgentRegistryLimits } from '../../coordinator/agents.js';
import type { AgentEvent } from '../../src/wire/index.js';

const t0 = 1_700_000_000_000;

function register(server: string, tenant = 'acme', apps = ['APP1']): AgentEvent {
  return { type: 'register', requestId: `r-${server}`, tenant, server, epoch: 0, apps, version: '1.2.3' };
}

function heartbeat(server: string, frozen = false, tenant = 'acme', highestCheckpointId = 0): AgentEvent {
  return { type: 'heartbeat', requestId: `h-${server}`, tenant, server, epoch: 0, frozen, checkpointsInFlight: [], highestCheckpointId };
}

function setup() {
  const clock = { now: t0 };
  const registry = new AgentRegistry({ limits: { lateAfterMs: 1_000, offlineAfterMs: 5_000, agentsMax: 3 }, now: () => clock.now });
  return { clock, registry };
}

describe('agent registry', () => {
  it("keeps each agent's fence: a heartbeat says it, an event about a higher checkpoint raises it; a plan's is the highest of its servers", () => {
    const { registry } = setup();
    registry.observe(register('srv1'));
    registry.observe(register('srv2'));
    expect(registry.highestCheckpointId('acme', ['srv1', 'srv2'])).toBe(0);
    registry.observe(heartbeat('srv1', false, 'acme', 7));
    expect(registry.highestCheckpointId('acme', ['srv1', 'srv2'])).toBe(7);
    // A busy agent sends no heartbeat: its acks, declines and progress name the ids its apps saw.
    registry.observe({ type: 'progress', requestId: 'p-1', tenant: 'acme', server: 'srv2', epoch: 0, checkpointId: 1_000_000_000, app: 'APP1', phase: 'started', bytesDone: 0 });
    expect(registry.highestCheckpointId('acme', ['srv1', 'srv2'])).toBe(1_000_000_000);
    expect(registry.highestCheckpointId('acme', ['srv1'])).toBe(7);
    expect(registry.highestCheckpointId('other', ['srv1', 'srv2'])).toBe(0);
    // The heartbeat tells the fence as it is now: a restarted agent's is 0 again.
    registry.observe(heartbeat('srv2', false, 'acme', 0));
    expect(registry.highestCheckpointId('acme', ['srv1', 'srv2'])).toBe(7);
  });

  it('a registered agent is online with its apps and version', async () => {
    const { registry } = setup();
    expect(registry.observe(register('srv1'))).toBe('registered');
    expect(registry.get('acme', 'srv1')).toEqual({
      tenant: 'acme',
      server: 'srv1',
      apps: ['APP1'],
      version: '1.2.3',
      status: 'online',
      registeredAtUnixMs: t0,
      lastHeartbeatAtUnixMs: t0,
      frozen: false,
    });
  });

  it('silence: online up to lateAfterMs, late up to offlineAfterMs, then offline', () => {
    const { clock, registry } = setup();
    registry.observe(register('srv1'));
    clock.now = t0 + 1_000;
    expect(registry.get('acme', 'srv1')?.status).toBe('online');
    clock.now = t0 + 1_001;
    expect(registry.get('acme', 'srv1')?.status).toBe('late');
    clock.now = t0 + 5_000;
    expect(registry.get('acme', 'srv1')?.status).toBe('late');
    clock.now = t0 + 5_001;
    expect(registry.get('acme', 'srv1')?.status).toBe('offline');
  });

  it('a heartbeat brings an offline agent back online', () => {
    const { clock, registry } = setup();
    registry.observe(register('srv1'));
    clock.now = t0 + 60_000;
    expect(registry.get('acme', 'srv1')?.status).toBe('offline');
    expect(registry.observe(heartbeat('srv1'))).toBe('heartbeat');
    expect(registry.get('acme', 'srv1')).toMatchObject({ status: 'online', lastHeartbeatAtUnixMs: t0 + 60_000, registeredAtUnixMs: t0 });
  });

  it('any event is a sign of life, not only heartbeats', () => {
    const { clock, registry } = setup();
    registry.observe(register('srv1'));
    clock.now = t0 + 3_000;
    const progress: AgentEvent = { type: 'progress', requestId: 'p1', tenant: 'acme', server: 'srv1', epoch: 0, checkpointId: 1, app: 'APP1', phase: 'uploading', bytesDone: 10 };
    expect(registry.observe(progress)).toBe('alive');
    expect(registry.get('acme', 'srv1')?.status).toBe('online');
  });

  it('an event received late (older than the last one) does not move the clock back', () => {
    const { registry } = setup();
    registry.observe(register('srv1'), t0 + 500);
    registry.observe(heartbeat('srv1'), t0 + 100);
    expect(registry.get('acme', 'srv1')?.lastHeartbeatAtUnixMs).toBe(t0 + 500);
  });

  it('the frozen flag follows heartbeats and freeze/thaw events, and survives a re-register', () => {
    const { registry } = setup();
    registry.observe(register('srv1'));
    registry.observe({ type: 'frozen', requestId: 'f', tenant: 'acme', server: 'srv1', epoch: 0, checkpointId: 1, frozenAtUnixMs: t0, hooksMs: 5, hooks: [] });
    expect(registry.get('acme', 'srv1')?.frozen).toBe(true);
    expect(registry.observe(register('srv1'))).toBe('re-registered');
    expect(registry.get('acme', 'srv1')?.frozen).toBe(true);
    registry.observe(heartbeat('srv1', false));
    expect(registry.get('acme', 'srv1')?.frozen).toBe(false);
    registry.observe(heartbeat('srv1', true));
    registry.observe({ type: 'thawed', requestId: 't', tenant: 'acme', server: 'srv1', epoch: 0, checkpointId: 1, thawedAtUnixMs: t0, byWatchdog: true, hooks: [], frozenAtUnixMs: t0 });
    expect(registry.get('acme', 'srv1')?.frozen).toBe(false);
  });

  it('a heartbeat from an agent that never registered is tracked with unknown apps', () => {
    const { registry } = setup();
    expect(registry.observe(heartbeat('srv2'))).toBe('unregistered');
    expect(registry.get('acme', 'srv2')).toMatchObject({ apps: [], version: '', registeredAtUnixMs: 0, status: 'online' });
    expect(registry.observe(register('srv2'))).toBe('registered');
  });

  it('the same server name in two tenants is two agents; list filters by tenant and sorts by server', async () => {
    const { registry } = setup();
    registry.observe(register('srv2', 'acme'));
    registry.observe(register('srv1', 'acme'));
    registry.observe(register('srv1', 'globex'));
    const acme = await registry.list('acme');
    expect(acme.ok && acme.value.map((a) => a.server)).toEqual(['srv1', 'srv2']);
    const all = await registry.list(undefined);
    expect(all.ok && all.value.map((a) => `${a.tenant}/${a.server}`)).toEqual(['acme/srv1', 'acme/srv2', 'globex/srv1']);
  });

  it('beyond agentsMax a new agent is refused while known ones still update', () => {
    const { registry } = setup();
    for (const s of ['a', 'b', 'c']) registry.observe(register(s));
    expect(registry.observe(register('d'))).toBe('registry-full');
    expect(registry.get('acme', 'd')).toBeUndefined();
    expect(registry.observe(heartbeat('a'))).toBe('heartbeat');
  });

  it('limits are validated at construction', () => {
    expect(validateAgentRegistryLimits({ lateAfterMs: 5_000, offlineAfterMs: 5_000, agentsMax: 1 })).toMatch(/offlineAfterMs \(5000\) must be greater than lateAfterMs/);
    expect(() => new AgentRegistry({ limits: { lateAfterMs: 0 } })).toThrow(/lateAfterMs must be a positive integer/);
  });
});
