/**
 * Tenants as NATS accounts, agents as NATS users (docs/security.md), proved against a real
 * nats-server 2.9 in operator mode: what an agent may not do is refused by NATS itself (a
 * permissions violation), and each refusal has its positive control beside it (the same client
 * doing what it may), so a test cannot pass because nothing flows at all.
 */
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { openLogInbound, openLogOutbound } from '../../agent/channels/log.js';
import { startSecuredNats, type SecuredNats } from '../../examples/secured-nats.js';
import { agentInboxPrefix, channelSubject, controlSubject, eventSubject, planTriggerSubject } from '../../src/wire/index.js';
import { waitUntil } from '../support/live-processes.js';
import { sleep } from '../support/nats-server.js';

const DELIVERY_WAIT_MS = 300;

interface Watch {
  readonly got: string[];
}

function watch(nc: NatsConnection, subject: string): Watch {
  const got: string[] = [];
  // A refused subscription calls back once with the permissions error and no message.
  nc.subscribe(subject, { callback: (e, m) => e === null && got.push(`${m.subject} ${new TextDecoder().decode(m.data)}`) });
  return { got };
}

/** Violations the server reported to this connection. */
function violations(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') seen.push(String(s.data));
  })();
  return seen;
}

describe('NATS accounts and per-agent users (operator mode, real nats-server)', () => {
  let nats: SecuredNats;
  let coordinator: NatsConnection;
  const agents = new Map<string, NatsConnection>();
  const agent = (tenant: string, server: string): NatsConnection => agents.get(`${tenant}/${server}`) as NatsConnection;

  beforeAll(async () => {
    nats = await startSecuredNats({ tenants: { acme: ['s1', 's2'], globex: ['s1'] } });
    coordinator = await nats.connect(nats.coordinatorCreds, { name: 'coordinator' });
    for (const [tenant, server] of [['acme', 's1'], ['acme', 's2'], ['globex', 's1']] as const) {
      agents.set(`${tenant}/${server}`, await nats.connect(nats.agentCreds(tenant, server), { inboxPrefix: agentInboxPrefix(tenant, server) }));
    }
  });

  afterAll(async () => {
    for (const nc of agents.values()) await nc.close().catch(() => undefined);
    await coordinator?.close();
    await nats?.stop();
  });

  it('events: an agent reaches the coordinator on its own evt subject only, not as another server or tenant', async () => {
    const events = watch(coordinator, 'snap.*.evt.*');
    await coordinator.flush();
    const a = agent('acme', 's1');
    const refused = violations(a);
    a.publish(eventSubject('acme', 's1'), 'own');
    a.publish(eventSubject('acme', 's2'), 'forged-server');
    a.publish(eventSubject('globex', 's1'), 'forged-tenant');
    await a.flush();
    await sleep(DELIVERY_WAIT_MS);
    expect(events.got).toEqual(['snap.acme.evt.s1 own']);
    expect(refused.filter((v) => v === 'PERMISSIONS_VIOLATION')).toHaveLength(2);
  });

  it("commands: the coordinator reaches each tenant's agent on its ctl and trigger subjects, and no other tenant", async () => {
    const acme = watch(agent('acme', 's1'), controlSubject('acme', 's1'));
    const acmeTriggers = watch(agent('acme', 's1'), 'snap.acme.plan.*.trg');
    // globex's agent with the same server name, on its own subjects.
    const globex = watch(agent('globex', 's1'), controlSubject('globex', 's1'));
    await agent('acme', 's1').flush();
    await agent('globex', 's1').flush();
    coordinator.publish(controlSubject('acme', 's1'), 'ctl');
    coordinator.publish(planTriggerSubject('acme', 'p1'), 'trg');
    await coordinator.flush();
    await sleep(DELIVERY_WAIT_MS);
    expect(acme.got).toEqual(['snap.acme.ctl.s1 ctl']);
    expect(acmeTriggers.got).toEqual(['snap.acme.plan.p1.trg trg']);
    expect(globex.got).toEqual([]);
  });

  it("subscriptions: an agent cannot read another server's ctl, another tenant's subjects, or channels into another server", async () => {
    const a = agent('acme', 's2');
    const refused = violations(a);
    const theirs = [controlSubject('acme', 's1'), 'snap.globex.>', channelSubject('acme', 's1/A->s3/C') as string, 'snap.acme.evt.*', '_INBOX.acme.s1.>'];
    const watches = theirs.map((s) => watch(a, s));
    const own = watch(a, controlSubject('acme', 's2'));
    await a.flush();
    coordinator.publish(controlSubject('acme', 's1'), 'for s1');
    coordinator.publish(controlSubject('acme', 's2'), 'for s2');
    coordinator.publish(controlSubject('globex', 's1'), 'for globex');
    agent('acme', 's1').publish(channelSubject('acme', 's1/A->s3/C') as string, 'data');
    agent('acme', 's1').publish(eventSubject('acme', 's1'), 'event');
    await coordinator.flush();
    await agent('acme', 's1').flush();
    await sleep(DELIVERY_WAIT_MS);
    expect(watches.map((w) => w.got)).toEqual(theirs.map(() => []));
    expect(own.got).toEqual(['snap.acme.ctl.s2 for s2']);
    expect(refused.filter((v) => v === 'PERMISSIONS_VIOLATION')).toHaveLength(theirs.length);
  });

  it('channels: an agent sends only on channels out of its server and credits only channels into it', async () => {
    const s2 = agent('acme', 's2');
    const into = watch(s2, channelSubject('acme', 's1/A->s2/B') as string);
    const credit = watch(agent('acme', 's1'), 'snap.acme.cr.s1.*.*.*');
    await s2.flush();
    await agent('acme', 's1').flush();
    const s1 = agent('acme', 's1');
    s1.publish(channelSubject('acme', 's1/A->s2/B') as string, 'real');
    // s3 pretending to be s1's data, from s1's neighbour s2 itself: refused.
    s2.publish(channelSubject('acme', 's3/C->s2/B') as string, 'forged');
    s2.publish('snap.acme.cr.s1.A.s2.B', 'credit');
    s2.publish('snap.acme.cr.s1.A.s3.C', 'forged credit');
    await s1.flush();
    await s2.flush();
    await sleep(DELIVERY_WAIT_MS);
    expect(into.got).toEqual(['snap.acme.ch.s1.A.s2.B real']);
    expect(credit.got).toEqual(['snap.acme.cr.s1.A.s2.B credit']);
  });

  it("state: an agent stores and reads its tenant's objects, and cannot touch another tenant's bucket, nor create or delete a stream", async () => {
    const a = agent('acme', 's1');
    const objects = new JetStreamStateObjects(a);
    const put = await objects.put('acme', 'cp/1/s1/A/state', new TextEncoder().encode('state of A'));
    expect(put.ok).toBe(true);
    if (!put.ok) return;
    const read = await objects.get('acme', put.value);
    expect(read.ok && new TextDecoder().decode(read.value)).toBe('state of A');
    const foreign = await objects.put('globex', 'cp/1/s1/A/state', new TextEncoder().encode('x'));
    expect(foreign.ok ? 'stored' : foreign.error.message).toMatch(/Permissions Violation/);
    const jsm = await a.jetstreamManager();
    await expect(jsm.streams.delete('OBJ_snap-state-acme')).rejects.toThrow(/Permissions Violation/);
    await expect(jsm.streams.add({ name: 'EVIL', subjects: ['evil.>'] })).rejects.toThrow(/Permissions Violation/);
    await expect(jsm.streams.purge('OBJ_snap-state-acme')).rejects.toThrow(/Permissions Violation/);
    // The coordinator's user in acme sees what the agent stored: the bucket was not replaced.
    const tenantUser = await nats.connect(`${nats.tenantCredsDir}/acme/coordinator.creds`);
    try {
      const listed = await new JetStreamStateObjects(tenantUser).list('acme', 'cp/1/');
      expect(listed).toEqual({ ok: true, value: ['cp/1/s1/A/state'] });
    } finally {
      await tenantUser.close();
    }
  });

  it('log channels: an agent enrolled for them publishes on its channel subject and reads the stream; without the grant, or on another subject, NATS refuses', async () => {
    const admin = await nats.connect(`${nats.tenantCredsDir}/acme/coordinator.creds`);
    const opened: { close(): Promise<void> }[] = [];
    const connections: NatsConnection[] = [];
    const as = async (server: string): Promise<NatsConnection> => {
      const nc = await nats.connect(nats.agentCreds('acme', server), { inboxPrefix: agentInboxPrefix('acme', server) });
      connections.push(nc);
      return nc;
    };
    try {
      // The operator's part: the stream, made in the tenant's account.
      await (await admin.jetstreamManager()).streams.add({ name: 'ORDERS', subjects: ['ORDERS.>'] });
      const channel = 'l1/A->l2/B';
      const log = { stream: 'ORDERS', subject: 'ORDERS.l1.A.l2.B' };
      await nats.enroll('acme', 'l1', { publish: [log], read: [] });
      await nats.enroll('acme', 'l2', { publish: [], read: ['ORDERS'] });
      await nats.enroll('acme', 'l3');
      const got: number[] = [];
      const inbound = await openLogInbound(await as('l2'), { tenant: 'acme', channel, epoch: 0, log, onEnvelope: (e) => e.type === 'message' && got.push(e.seq) });
      opened.push(inbound);
      const outbound = await openLogOutbound(await as('l1'), { tenant: 'acme', channel, epoch: 0, log });
      opened.push(outbound);
      await outbound.sendMessage(1, 0, new TextEncoder().encode('order 1'));
      await waitUntil('the receiver to read message 1', () => got.length === 1, { timeoutMs: 5_000 });
      expect(got).toEqual([1]);

      // The receiver may not publish on the channel; an agent without the grant opens neither end.
      const receiver = await as('l2');
      await expect((receiver.jetstream()).publish(log.subject, new TextEncoder().encode('forged'), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation|503|timeout/i);
      const other = await as('l3');
      await expect(openLogOutbound(other, { tenant: 'acme', channel, epoch: 0, log })).rejects.toThrow(/Permissions Violation/i);
      await expect(openLogInbound(other, { tenant: 'acme', channel, epoch: 0, log, onEnvelope: () => undefined })).rejects.toThrow(/Permissions Violation/i);
      // The sender may not publish on another subject of the stream.
      await expect((await as('l1')).jetstream().publish('ORDERS.l9.X.l2.B', new TextEncoder().encode('forged'), { timeout: 2_000 })).rejects.toThrow(/Permissions Violation|503|timeout/i);
      const { state } = await (await admin.jetstreamManager()).streams.info('ORDERS');
      expect(state.messages).toBe(1);
    } finally {
      for (const o of opened) await o.close().catch(() => undefined);
      for (const nc of connections) await nc.close().catch(() => undefined);
      await admin.close();
    }
  });

  it('a tenant created while the coordinator is connected reaches it at once (the import applies to its subscription)', async () => {
    const events = watch(coordinator, 'snap.*.evt.*');
    await coordinator.flush();
    await nats.createTenant('initech');
    const creds = await nats.enroll('initech', 'v1');
    const nc = await nats.connect(creds, { inboxPrefix: agentInboxPrefix('initech', 'v1') });
    try {
      nc.publish(eventSubject('initech', 'v1'), 'hello');
      await nc.flush();
      await sleep(DELIVERY_WAIT_MS);
      expect(events.got).toEqual(['snap.initech.evt.v1 hello']);
    } finally {
      await nc.close();
    }
  });

  it('revocation: a revoked agent is disconnected within seconds and refused from then on; its neighbours keep working', async () => {
    const a = agent('acme', 's2');
    let disconnectedAt: number | undefined;
    void (async () => {
      for await (const s of a.status()) if (s.type === 'disconnect' && disconnectedAt === undefined) disconnectedAt = performance.now();
    })();
    const started = performance.now();
    await nats.revoke('acme', 's2');
    while (disconnectedAt === undefined && performance.now() - started < 10_000) await sleep(20);
    expect(disconnectedAt).toBeDefined();
    const ms = (disconnectedAt as number) - started;
    console.log(`revoked agent disconnected ${Math.round(ms)} ms after the revocation was pushed`);
    expect(ms).toBeLessThan(5_000);
    await expect(nats.connect(nats.agentCreds('acme', 's2'))).rejects.toThrow(/Authorization Violation/);
    // Enrolled again: a new credential works, the old one stays refused.
    const again = await nats.enroll('acme', 's2');
    const nc = await nats.connect(again);
    await nc.close();
    const events = watch(coordinator, 'snap.acme.evt.s1');
    await coordinator.flush();
    agent('acme', 's1').publish(eventSubject('acme', 's1'), 'still here');
    await agent('acme', 's1').flush();
    await sleep(DELIVERY_WAIT_MS);
    expect(events.got).toEqual(['snap.acme.evt.s1 still here']);
  });
});
