/**
 * Re-registration after a coordinator restart (issue 9, defect 9), coordinator side: an agent the
 * registry does not know as registered is asked to register again with a hello, at most once per
 * interval; and the bus's resend interval is validated where it is configured.
 */
import { describe, expect, it } from 'vitest';
import { AgentRegistry, trackAgents } from '../../coordinator/agents.js';
import { ControlBus, validateControlBusLimits, type ControlWithoutId } from '../../coordinator/bus.js';
import type { AgentEvent } from '../../src/wire/index.js';

function fakeBus(): { emit(e: AgentEvent): void; sent: ControlWithoutId[]; bus: Pick<ControlBus, 'onEvents' | 'send'> } {
  const listeners: ((e: AgentEvent) => void)[] = [];
  const sent: ControlWithoutId[] = [];
  return {
    sent,
    emit: (e) => listeners.forEach((l) => l(e)),
    bus: {
      onEvents: (l) => {
        listeners.push(l);
        return () => undefined;
      },
      send: (c) => {
        sent.push(c);
        return `c:${sent.length}`;
      },
    },
  };
}

const header = { tenant: 't', server: 's1', epoch: 0 };
let n = 0;
const heartbeat = (): AgentEvent => ({ ...header, requestId: `e${++n}`, type: 'heartbeat', frozen: false, checkpointsInFlight: [], highestCheckpointId: 0 });
const register = (): AgentEvent => ({ ...header, requestId: `e${++n}`, type: 'register', apps: ['a'], version: '1' });

describe('coordinator: agents register again', () => {
  it('a heartbeat from an agent that never registered here brings a hello, once per interval, and none once it registered', () => {
    const clock = { now: 1_000 };
    const f = fakeBus();
    const registry = new AgentRegistry({ now: () => clock.now });
    trackAgents(f.bus, registry, { helloIntervalMs: 1_000, now: () => clock.now });
    f.emit(heartbeat());
    f.emit(heartbeat());
    expect(f.sent).toEqual([{ type: 'hello', tenant: 't', server: 's1', plan: '', epoch: 0 }]);
    clock.now += 1_000;
    f.emit(heartbeat());
    expect(f.sent).toHaveLength(2);
    f.emit(register());
    clock.now += 5_000;
    f.emit(heartbeat());
    expect(f.sent).toHaveLength(2);
    expect(registry.get('t', 's1')?.apps).toEqual(['a']);
  });

  it('an ack from an unregistered agent counts as unregistered too', () => {
    const registry = new AgentRegistry();
    expect(registry.observe({ ...header, requestId: 'x', type: 'thawed', checkpointId: 1, thawedAtUnixMs: 1, byWatchdog: false, hooks: [], frozenAtUnixMs: 0 })).toBe('unregistered');
  });

  it('the resend interval must be a positive integer', () => {
    expect(validateControlBusLimits({ resendIntervalMs: 0 })).toMatch(/resendIntervalMs must be a positive integer, got 0/);
    expect(validateControlBusLimits({ resendIntervalMs: 1_000 })).toBeUndefined();
    expect(() => new ControlBus({} as never, {} as never, { resendIntervalMs: 1.5 })).toThrow(/resendIntervalMs/);
  });
});
