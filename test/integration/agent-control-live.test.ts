/**
 * The agent's control decisions over a real nats-server with real agents and a real ControlBus:
 * epochs per plan (defect 1 of issue 9), resent and deduplicated commands (defect 3b), agents that
 * register again with a new coordinator (defect 9), and the per-plan trigger broadcast.
 *
 * Two plans share two servers: plan A is s1/a1 -> s2/a2, plan B is s1/b1 -> s2/b2 (an app belongs to
 * one plan at most). The apps are small counters that keep sending, so a restore of one plan that
 * disturbed the other would show as a failed channel or a declined checkpoint.
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import type { AppHandler, AppLink } from '../../agent/app.js';
import { parseAgentConfig, type AgentConfig } from '../../agent/config.js';
import { AgentRegistry, trackAgents } from '../../coordinator/agents.js';
import { ControlBus } from '../../coordinator/bus.js';
import type { AgentEvent, AppRestore } from '../../src/wire/index.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const TENANT = 'ac';
const silent = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

/** A counter app: its state is the number of messages it sent and received. */
class CounterApp implements AppHandler {
  sent = 0;
  received = 0;
  restores = 0;
  link: AppLink | undefined;
  deliver(): void {
    this.received += 1;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ sent: this.sent, received: this.received }));
  }
  restore(state: Uint8Array): void {
    const s = JSON.parse(new TextDecoder().decode(state)) as { sent: number; received: number };
    this.sent = s.sent;
    this.received = s.received;
    this.restores += 1;
  }
  async send(): Promise<void> {
    const out = this.link?.outputs[0];
    if (out === undefined) return;
    this.sent += 1;
    await this.link?.send(out, new Uint8Array([1]));
  }
}

function config(server: string, apps: { name: string; inputs?: string[]; outputs?: string[] }[], url: string): AgentConfig {
  const parsed = parseAgentConfig({
    tenant: TENANT,
    server,
    nats: { servers: [url] },
    apps: apps.map((a) => ({ name: a.name, inputs: a.inputs ?? [], outputs: a.outputs ?? [] })),
    heartbeatIntervalMs: 300,
    triggerWaitMs: 500,
  });
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.config;
}

let nats: NatsServerHandle;
let nc: NatsConnection;
let bus: ControlBus;
const events: AgentEvent[] = [];
const agents: Agent[] = [];
const byServer = new Map<string, Agent>();
const apps = new Map<string, CounterApp>();
let traffic: NodeJS.Timeout | undefined;

async function startAgent(server: string, appConfigs: { name: string; inputs?: string[]; outputs?: string[] }[]): Promise<Agent> {
  const agent = await Agent.start(config(server, appConfigs, nats.url), silent);
  agents.push(agent);
  byServer.set(server, agent);
  for (const a of appConfigs) {
    const app = new CounterApp();
    const attached = agent.attach(a.name, app);
    if (!attached.ok) throw new Error(attached.error.message);
    app.link = attached.link;
    apps.set(`${server}/${a.name}`, app);
  }
  await agent.ready();
  return agent;
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 8_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Ack = Extract<AgentEvent, { type: 'ack' }>;

/** Waits for one answer (ack or decline) of each app to a checkpoint; returns the acks by app. */
async function answers(checkpointId: number, who: string[]): Promise<Map<string, Ack>> {
  const got = await until(`answers to checkpoint ${checkpointId}`, () => {
    const mine = events.filter((e) => (e.type === 'ack' || e.type === 'decline') && e.checkpointId === checkpointId);
    const declined = mine.find((e) => e.type === 'decline');
    if (declined?.type === 'decline') throw new Error(`checkpoint ${checkpointId} declined by ${declined.server}/${declined.app ?? ''}: ${declined.reason}: ${declined.detail}`);
    const acks = new Map<string, Ack>(mine.flatMap((e) => (e.type === 'ack' ? [[`${e.server}/${e.app}`, e] as const] : [])));
    return who.every((w) => acks.has(w)) ? acks : undefined;
  });
  return got;
}

const A = { s1: ['a1'], s2: ['a2'] } as const;
const B = { s1: ['b1'], s2: ['b2'] } as const;

function trigger(plan: string, epoch: number, checkpointId: number, servers: Readonly<Record<string, readonly string[]>>, initiators: Readonly<Record<string, readonly string[]>>): void {
  for (const [server, planApps] of Object.entries(servers)) {
    bus.send({
      type: 'trigger',
      tenant: TENANT,
      server,
      plan,
      epoch,
      checkpointId,
      policy: { kind: 'aligned' },
      timeoutMs: 10_000,
      initiatorApps: initiators[server] ?? [],
      backEdgeChannels: [],
      inlineStateBytesMax: 4096,
      apps: planApps,
    });
  }
}

function restoreOf(ack: Ack): AppRestore {
  return { app: ack.app, state: ack.state, counts: ack.counts, channelAliases: {} };
}

/** Rolls plan's apps back to the acked checkpoint at `epoch`, then resumes them. */
async function rollback(plan: string, epoch: number, acks: Map<string, Ack>): Promise<void> {
  const byServer = new Map<string, AppRestore[]>();
  for (const [who, ack] of acks) {
    const server = who.split('/')[0] as string;
    byServer.set(server, [...(byServer.get(server) ?? []), restoreOf(ack)]);
  }
  const checkpointId = [...acks.values()][0]?.checkpointId as number;
  const restored = await Promise.all([...byServer].map(([server, list]) => bus.request({ type: 'restore', tenant: TENANT, server, plan, epoch, checkpointId, apps: list }, 5_000)));
  for (const r of restored) expect(r?.type, JSON.stringify(r)).toBe('restored');
  const resumed = await Promise.all([...byServer.keys()].map((server) => bus.request({ type: 'resume', tenant: TENANT, server, plan, epoch, checkpointId, apps: [] }, 5_000)));
  for (const r of resumed) expect(r?.type).toBe('resumed');
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  bus = new ControlBus(nc, silent);
  await bus.start();
  bus.onEvents((e) => events.push(e));
  await startAgent('s1', [
    { name: 'a1', outputs: ['s1/a1->s2/a2'] },
    { name: 'b1', outputs: ['s1/b1->s2/b2'] },
  ]);
  await startAgent('s2', [
    { name: 'a2', inputs: ['s1/a1->s2/a2'] },
    { name: 'b2', inputs: ['s1/b1->s2/b2'] },
  ]);
  traffic = setInterval(() => {
    for (const id of ['s1/a1', 's1/b1']) apps.get(id)?.send().catch(() => undefined);
  }, 5);
}, 30_000);

afterAll(async () => {
  if (traffic) clearInterval(traffic);
  for (const a of agents) await a.stop();
  bus?.stop();
  await nc?.drain().catch(() => undefined);
  await nats?.stop();
});

describe('defect 1: epochs per plan on the agent', () => {
  it('after a rollback of plan A, plan B on the same servers completes its next checkpoint', async () => {
    const first = await answers((trigger('A', 0, 1, A, { s1: ['a1'] }), 1), ['s1/a1', 's2/a2']);
    await answers((trigger('B', 0, 2, B, { s1: ['b1'] }), 2), ['s1/b1', 's2/b2']);
    const b2 = apps.get('s2/b2') as CounterApp;
    const receivedBefore = b2.received;
    await rollback('A', 1, first);
    // Plan B's channel kept flowing through plan A's restore on the same agents.
    await until('plan B traffic after plan A\'s restore', () => (b2.received > receivedBefore ? true : undefined));
    // Plan B is still at epoch 0: its trigger must not be refused as stale.
    await answers((trigger('B', 0, 3, B, { s1: ['b1'] }), 3), ['s1/b1', 's2/b2']);
    // Plan A runs at its new epoch, over channels of the new generation.
    await answers((trigger('A', 1, 4, A, { s1: ['a1'] }), 4), ['s1/a1', 's2/a2']);
    expect(apps.get('s1/b1')?.restores).toBe(0);
    expect(apps.get('s2/b2')?.restores).toBe(0);
    expect(apps.get('s2/a2')?.restores).toBe(1);
  }, 30_000);

  it('a new plan over apps that were restored into completes a checkpoint at once', async () => {
    // Plan A2 takes over A's apps (A deleted): a new plan, so its epoch line starts at 0.
    await answers((trigger('A2', 0, 5, A, { s1: ['a1'] }), 5), ['s1/a1', 's2/a2']);
  }, 20_000);
});

/** Plan D's restore into s3 (epoch 1) and its request id, resent after s3 restarts. */
const dRestore = {
  control: { type: 'restore' as const, tenant: TENANT, server: 's3', plan: 'D', epoch: 1, checkpointId: 9, apps: [{ app: 'd1', state: { kind: 'inline' as const, bytes: new TextEncoder().encode(JSON.stringify({ sent: 7, received: 0 })) }, counts: { sent: {}, received: {} }, channelAliases: {} }] },
  requestId: '',
};

describe('defect 3b: commands are resent until answered, and answered once', () => {
  it('a restore published before the agent subscribed is answered once the agent is up', async () => {
    const control = dRestore.control;
    const answer = bus.request(control, 8_000);
    await new Promise((r) => setTimeout(r, 1_200));
    await startAgent('s3', [{ name: 'd1' }]);
    const reply = await answer;
    expect(reply?.type, JSON.stringify(reply)).toBe('restored');
    const app = apps.get('s3/d1') as CounterApp;
    expect(app.sent).toBe(7);

    // The same command again (a resend after a lost answer): the first answer, not a second restore.
    const requestId = reply?.inReplyTo as string;
    dRestore.requestId = requestId;
    bus.send(control, requestId);
    const again = await until('the remembered answer', () => events.filter((e) => e.inReplyTo === requestId && e.requestId === reply?.requestId).length >= 2 ? true : undefined);
    expect(again).toBe(true);
    expect(app.restores).toBe(1);
  }, 20_000);
});

describe('an agent restart', () => {
  it('a restarted agent serves its plan at the epoch the plan\'s next command brings', async () => {
    // s3 was restored into plan D's epoch 1 above; a new agent process knows nothing of it.
    const s3 = byServer.get('s3') as Agent;
    await s3.stop();
    agents.splice(agents.indexOf(s3), 1);
    await startAgent('s3', [{ name: 'd1' }]);
    await answers((trigger('D', 1, 30, { s3: ['d1'] }, { s3: ['d1'] }), 30), ['s3/d1']);
  }, 20_000);

  it('a resend of the restore it carried out before it restarted, coming after the resume, is declined as stale, and its app is not restored again', async () => {
    // The new process forgot the request id; the operation's resume tells it plan D's restore at epoch 1 is over.
    const resumed = await bus.request({ type: 'resume', tenant: TENANT, server: 's3', plan: 'D', epoch: 1, checkpointId: 9, apps: [] }, 5_000);
    expect(resumed?.type).toBe('resumed');
    const { requestId, control } = dRestore;
    expect(requestId).not.toBe('');
    bus.send(control, requestId);
    const decline = await until('the decline of the stale restore', () => events.find((e) => e.inReplyTo === requestId && e.type === 'decline'));
    expect(decline.type === 'decline' && decline.reason).toBe('stale-epoch');
    expect(apps.get('s3/d1')?.restores).toBe(0);
    // Not paused: plan D's next checkpoint completes.
    await answers((trigger('D', 1, 31, { s3: ['d1'] }, { s3: ['d1'] }), 31), ['s3/d1']);
  }, 20_000);
});

describe('defect 9: agents register again with a new coordinator', () => {
  it('after a coordinator restart, the registry lists the agents with their apps within seconds', async () => {
    // The coordinator that was there when the agents started is gone; a new one starts from nothing.
    const nc2 = await connect({ servers: nats.url });
    const bus2 = new ControlBus(nc2, silent);
    const registry = new AgentRegistry({ logger: silent });
    trackAgents(bus2, registry);
    await bus2.start();
    try {
      const listed = await until('s1 and s2 registered', () => {
        const s1 = registry.get(TENANT, 's1');
        const s2 = registry.get(TENANT, 's2');
        return s1 && s2 && s1.registeredAtUnixMs > 0 && s2.registeredAtUnixMs > 0 ? [s1, s2] : undefined;
      }, 5_000);
      expect(listed.map((a) => a.apps)).toEqual([['a1', 'b1'], ['a2', 'b2']]);
    } finally {
      bus2.stop();
      await nc2.drain().catch(() => undefined);
    }
  }, 15_000);
});

describe('the trigger broadcast', () => {
  const broadcast = (checkpointId: number): string =>
    bus.broadcastTrigger({
      tenant: TENANT,
      plan: 'B',
      epoch: 0,
      checkpointId,
      policy: { kind: 'aligned' },
      timeoutMs: 10_000,
      inlineStateBytesMax: 4096,
      servers: [
        { server: 's1', apps: ['b1'], initiatorApps: ['b1'], backEdgeChannels: [] },
        { server: 's2', apps: ['b2'], initiatorApps: [], backEdgeChannels: [] },
      ],
    });

  it('one message per plan reaches the plan\'s agents, and agents of other plans ignore it', async () => {
    const before = events.length;
    const partsBefore = bus.counters.partsSent;
    broadcast(20);
    await answers(20, ['s1/b1', 's2/b2']);
    // First time: neither agent is known to hold the plan's layout, so each got its part as well.
    expect(bus.counters.partsSent - partsBefore).toBe(2);
    await new Promise((r) => setTimeout(r, 300));
    const others = events.slice(before).filter((e) => e.type === 'ack' && e.checkpointId === 20 && !['b1', 'b2'].includes(e.app));
    expect(others).toEqual([]);
    // Their acks showed they hold it: the next checkpoint is the broadcast alone, and still reaches both.
    const partsAfterFirst = bus.counters.partsSent;
    broadcast(21);
    await answers(21, ['s1/b1', 's2/b2']);
    expect(bus.counters.partsSent).toBe(partsAfterFirst);
  }, 20_000);
});
