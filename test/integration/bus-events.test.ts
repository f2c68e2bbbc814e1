/**
 * The coordinator's bus takes an event only from the subject of the sender it claims to be:
 * `snap.<tenant>.evt.<server>`. Anything else is counted as forged and dropped.
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlBus } from '../../coordinator/bus.js';
import { startNatsServer, type NatsServerHandle } from '../../examples/nats-server.js';
import { encodeEvent, type AgentEvent } from '../../src/wire/index.js';

let nats: NatsServerHandle;
let nc: NatsConnection;
let bus: ControlBus;
const got: AgentEvent[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  bus = new ControlBus(nc, pino({ level: 'silent' }));
  bus.onEvents((e) => got.push(e));
  await bus.start();
}, 30_000);

afterAll(async () => {
  bus?.stop();
  await nc?.drain();
  await nats?.stop();
});

function heartbeat(tenant: string, server: string, n: number): Uint8Array {
  const r = encodeEvent({ requestId: `r${n}`, tenant, server, epoch: 0, type: 'heartbeat', frozen: false, checkpointsInFlight: [], highestCheckpointId: 0 });
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('a flood of malformed events', () => {
  it('is counted, logged at a bounded rate, and the bus still takes good events', async () => {
    const lines: string[] = [];
    const sink = { write: (l: string) => lines.push(l) };
    const nc2 = await connect({ servers: nats.url });
    const flooded = new ControlBus(nc2, pino({ level: 'info' }, sink));
    const seen: AgentEvent[] = [];
    flooded.onEvents((e) => seen.push(e));
    await flooded.start();
    try {
      for (let i = 0; i < 5_000; i++) nc.publish('snap.acme.evt.s1', new Uint8Array([0xff, i & 0xff, 0x01]));
      nc.publish('snap.acme.evt.s1', heartbeat('acme', 's1', 3));
      await nc.flush();
      for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(seen.map((e) => e.requestId)).toEqual(['r3']);
      expect(flooded.counters.malformedEvents).toBe(5_000);
      expect(lines.length).toBeLessThanOrEqual(20);
    } finally {
      flooded.stop();
      await nc2.drain();
    }
    // Stopping wrote the summary of what was left out.
    expect(lines.some((l) => l.includes('"suppressed"'))).toBe(true);
  }, 30_000);
});

describe('events and the subject they came on', () => {
  it.each([
    ['another server of the tenant', 'snap.acme.evt.s1', 'acme', 's2'],
    ['another tenant', 'snap.acme.evt.s1', 'other', 's1'],
    ['a server that is a prefix of the subject\'s', 'snap.acme.evt.s10', 'acme', 's1'],
    ['a tenant that is a prefix of the subject\'s', 'snap.acme2.evt.s1', 'acme', 's1'],
  ])('an event claiming %s is dropped as forged', async (_what, subject, tenant, server) => {
    const forged = bus.counters.forgedEvents;
    const before = got.length;
    nc.publish(subject, heartbeat(tenant, server, 1));
    nc.publish('snap.acme.evt.s1', heartbeat('acme', 's1', 2));
    await nc.flush();
    for (let i = 0; i < 100 && got.length === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(bus.counters.forgedEvents).toBe(forged + 1);
    expect(got.slice(before).map((e) => `${e.tenant}/${e.server}/${e.requestId}`)).toEqual(['acme/s1/r2']);
  });
});
