/**
 * The forgery and reads sections, on the live system's nats-server in operator mode
 * (examples/secured-nats.ts): tenants are accounts and each agent a user with the exact permissions
 * `snapctl agent enroll` gives (coordinator/nats-auth/permissions.ts). Beside the daemons, a
 * subscriber with each daemon's own credentials subscribes to what the daemon reads (the
 * coordinator's to every tenant's events, each agent's to its control subject, its tenant's plan
 * triggers, its inputs' data and its outputs' credits), so that a delivery is seen, and the
 * coordinator's view of agents, plans and checkpoints is compared before and after, so that a
 * change of state is seen.
 *
 * - forgery: acme's agent on s1 publishes every control command, every event, a plan trigger,
 *   every envelope kind and a credit onto globex's subjects, and onto the subjects of acme's other
 *   servers (their events and control, channels that do not start at s1 and credits of channels
 *   that do not end there). A forgery is accepted when NATS did not refuse the publish (no
 *   permissions violation answered it) or when a subscriber got it; and if the coordinator's view
 *   changed, the section says so (`stateChanged`).
 * - reads: the same agent subscribes to globex's subjects, to another server's control, events,
 *   inputs and inbox, and to everything (`>`), while the rightful publishers send on them; and it
 *   reads globex's state bucket. A read succeeded when NATS did not refuse the subscription, when a
 *   message reached it, or when the bucket answered.
 *
 * Before any of it, a positive control: each subscriber gets a message its rightful publisher
 * sends, so that nothing counts as refused because nothing flows at all. After each, a negative
 * control: the attacker's own event subject and control subject, which it may use, must be seen as
 * getting through, so that the detection cannot pass by seeing nothing.
 */
import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import type { PlanInput } from '../../coordinator/model.js';
import { agentInboxPrefix, channelSubject, controlSubject, creditSubject, eventSubject, planTriggerSubject, processId } from '../../src/wire/index.js';
import { controlSamples, creditSample, envelopeSamples, eventSamples, planTriggerSample, type Sample, type Where } from './samples.js';
import { sleep, TENANTS, type SecuredSystem, type Tenant } from './system.js';

const ATTACKER = { tenant: 'acme', server: 's1' } as const satisfies { tenant: Tenant; server: string };
/** How long a subscriber is given to receive what was published, after the publisher's flush. */
const DELIVERY_WAIT_MS = 500;
/** How long a refusal is waited for after the flush that follows the publish or subscription. */
const REFUSAL_WAIT_MS = 1_000;
const FINDINGS_MAX = 50;
const UNUSED_CHECKPOINT_ID = 1_000_000_000;

export interface ForgeryFinding {
  readonly what: string;
  readonly subject: string;
  readonly refused: boolean;
  readonly delivered: boolean;
}

export interface ForgeryResult {
  readonly forgeriesTried: number;
  readonly forgeriesAccepted: number;
  readonly readsTried: number;
  readonly readsSucceeded: number;
  /** Rightful messages sent, and received by their subscribers (the positive control). */
  readonly controlsSent: number;
  readonly controlsDelivered: number;
  /** The coordinator's view of agents, plans and checkpoints differed after the forgeries. */
  readonly stateChanged: boolean;
  readonly findings: readonly ForgeryFinding[];
}

const channelIds = (plan: PlanInput): string[] => plan.channels.map((c) => `${processId(c.from.server, c.from.app)}->${processId(c.to.server, c.to.app)}`);
const ends = (channel: string): { from: string; to: string } => {
  const [from, to] = channel.split('->').map((p) => p.split('/')[0] ?? '');
  return { from: from ?? '', to: to ?? '' };
};
const must = (subject: string | undefined): string => {
  if (subject === undefined) throw new Error('malformed channel id');
  return subject;
};
/** The rightful messages and the negative control are of harmless kinds: a ping, a heartbeat. */
const sampleOf = (samples: readonly Sample[], kind: string): Uint8Array => {
  const found = samples.find((x) => x.kind === kind);
  if (found === undefined) throw new Error(`no sample ${kind}`);
  return found.bytes;
};
const keyOf = (subject: string, bytes: Uint8Array): string => `${subject} ${Buffer.from(bytes).toString('hex')}`;

/** Every message a subscriber got, by subject and bytes. */
class Received {
  readonly keys = new Set<string>();
  record(subject: string, bytes: Uint8Array): void {
    this.keys.add(keyOf(subject, bytes));
  }
}

/** Counts the permissions violations the server answers a connection with. */
function violations(nc: NatsConnection): { count: number } {
  const seen = { count: 0 };
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error' && String(s.data).includes('PERMISSIONS_VIOLATION')) seen.count += 1;
  })();
  return seen;
}

async function refusedAfter(nc: NatsConnection, seen: { count: number }, before: number): Promise<boolean> {
  await nc.flush();
  const deadline = Date.now() + REFUSAL_WAIT_MS;
  while (seen.count === before && Date.now() < deadline) await sleep(5);
  return seen.count > before;
}

interface Rightful {
  readonly nc: NatsConnection;
  readonly subject: string;
  readonly bytes: Uint8Array;
}

/**
 * What the coordinator shows of each tenant: its agents (not their online status, which load alone
 * may change), its plan's revision, its checkpoints with their states and epochs.
 */
async function coordinatorView(system: SecuredSystem): Promise<string> {
  const client = system.service;
  const view = await Promise.all(
    TENANTS.map(async (tenant) => {
      const agents = await client.listAgents(tenant);
      const plan = await client.getPlan(system.plans[tenant].id);
      const checkpoints = await client.listCheckpoints({ filter: { planId: system.plans[tenant].id }, pageSize: 1_000, pageToken: '' });
      return {
        tenant,
        agents: agents.ok ? agents.value.map((a) => [a.server, a.apps, a.version, a.frozen, a.registeredAtUnixMs]) : agents.error.message,
        plan: plan.ok ? plan.value.revision : plan.error.message,
        checkpoints: checkpoints.ok ? checkpoints.value.items.map((c) => [c.id, c.state, c.epoch]) : checkpoints.error.message,
      };
    }),
  );
  return JSON.stringify(view);
}

export async function forgerySection(system: SecuredSystem, log: Logger): Promise<ForgeryResult> {
  const { nats, plans } = system;
  const connections: NatsConnection[] = [];
  const open = async (creds: string, name: string, inboxPrefix?: string): Promise<NatsConnection> => {
    const nc = await nats.connect(creds, { name, ...(inboxPrefix !== undefined ? { inboxPrefix } : {}) });
    connections.push(nc);
    return nc;
  };
  try {
    const received = new Received();
    const listen = (nc: NatsConnection, subject: string): Subscription => nc.subscribe(subject, { callback: (error, m) => error === null && received.record(m.subject, m.data) });
    const coordinator = await open(nats.coordinatorCreds, 'coordinator');
    listen(coordinator, 'snap.*.evt.*');
    const agents = new Map<string, NatsConnection>();
    for (const tenant of TENANTS) {
      const plan = plans[tenant];
      for (const server of plan.servers) {
        const nc = await open(nats.agentCreds(tenant, server), `agent ${tenant}/${server}`, agentInboxPrefix(tenant, server));
        agents.set(`${tenant}/${server}`, nc);
        listen(nc, controlSubject(tenant, server));
        listen(nc, `snap.${tenant}.plan.*.trg`);
        for (const c of channelIds(plan)) {
          if (ends(c).to === server) listen(nc, must(channelSubject(tenant, c)));
          if (ends(c).from === server) listen(nc, must(creditSubject(tenant, c)));
        }
      }
    }
    for (const nc of connections) await nc.flush();
    const agent = (tenant: string, server: string): NatsConnection => agents.get(`${tenant}/${server}`) as NatsConnection;

    // The rightful publisher of every subject a forgery or a read aims at, with one message each.
    // Messages name a checkpoint no round reaches: a forgery that got through would still be seen, without ending a real round.
    const where = (tenant: Tenant, server: string): Where => ({ tenant, server, plan: plans[tenant].id, app: plans[tenant].apps.find((a) => a.server === server)?.app ?? '', epoch: 0, checkpointId: UNUSED_CHECKPOINT_ID });
    const rightful: Rightful[] = TENANTS.flatMap((tenant) => [
      ...plans[tenant].servers.flatMap((s) => [
        { nc: coordinator, subject: controlSubject(tenant, s), bytes: sampleOf(controlSamples(where(tenant, s)), 'ctl:ping') },
        { nc: agent(tenant, s), subject: eventSubject(tenant, s), bytes: sampleOf(eventSamples(where(tenant, s)), 'evt:heartbeat') },
      ]),
      { nc: coordinator, subject: planTriggerSubject(tenant, plans[tenant].id), bytes: planTriggerSample(where(tenant, 's1')).bytes },
      ...channelIds(plans[tenant]).flatMap((c) => [
        // A message already delivered (a duplicate, dropped) and a credit granting nothing new.
        { nc: agent(tenant, ends(c).from), subject: must(channelSubject(tenant, c)), bytes: sampleOf(envelopeSamples(c, 0, 1, UNUSED_CHECKPOINT_ID), 'ch:message') },
        { nc: agent(tenant, ends(c).to), subject: must(creditSubject(tenant, c)), bytes: creditSample(c, 0, 0).bytes },
      ]),
    ]);
    const sendRightful = async (): Promise<void> => {
      for (const r of rightful) r.nc.publish(r.subject, r.bytes);
      for (const nc of new Set(rightful.map((r) => r.nc))) await nc.flush();
      await sleep(DELIVERY_WAIT_MS);
    };
    await sendRightful();
    const controlsDelivered = rightful.filter((r) => received.keys.has(keyOf(r.subject, r.bytes))).length;
    if (controlsDelivered !== rightful.length) throw new Error(`positive control: ${rightful.length - controlsDelivered} of ${rightful.length} rightful messages did not reach their subscribers; forgery figures would mean nothing`);
    log.info({ controls: rightful.length }, 'positive control: every rightful message reached its subscriber');

    const findings: ForgeryFinding[] = [];
    const note = (f: ForgeryFinding): void => {
      log.error(f, 'got through');
      if (findings.length < FINDINGS_MAX) findings.push(f);
    };

    // Forgery: as acme's s1, onto globex and onto acme's other servers.
    const viewBefore = await coordinatorView(system);
    const forger = await open(nats.agentCreds(ATTACKER.tenant, ATTACKER.server), 'forger', agentInboxPrefix(ATTACKER.tenant, ATTACKER.server));
    const forgerRefusals = violations(forger);
    const forgeries: { what: string; subject: string; bytes: Uint8Array }[] = [];
    const add = (what: string, subject: string, samples: readonly Sample[]): void => void forgeries.push(...samples.map((s) => ({ what: `${what}: ${s.kind}`, subject, bytes: s.bytes })));
    for (const tenant of TENANTS) {
      const own = tenant === ATTACKER.tenant;
      const victims = plans[tenant].servers.filter((s) => !own || s !== ATTACKER.server);
      for (const s of victims) {
        add(`${tenant}/${s}'s control`, controlSubject(tenant, s), controlSamples(where(tenant, s)));
        add(`${tenant}/${s}'s events`, eventSubject(tenant, s), eventSamples(where(tenant, s)));
      }
      add(`${tenant}'s plan trigger`, planTriggerSubject(tenant, plans[tenant].id), [planTriggerSample(where(tenant, 's1'))]);
      for (const c of channelIds(plans[tenant])) {
        // s1 sends on channels out of s1 and credits channels into it: those are its own.
        if (!own || ends(c).from !== ATTACKER.server) add(`${tenant} channel ${c}`, must(channelSubject(tenant, c)), envelopeSamples(c, 0, 1, UNUSED_CHECKPOINT_ID));
        if (!own || ends(c).to !== ATTACKER.server) add(`${tenant} credit of ${c}`, must(creditSubject(tenant, c)), [creditSample(c, 0, 1, 2)]);
      }
    }
    // A forgery may carry the very bytes of a rightful message (an envelope has no request id): only what arrives from now on counts.
    received.keys.clear();
    const refusedForgery: boolean[] = [];
    for (const f of forgeries) {
      const before = forgerRefusals.count;
      forger.publish(f.subject, f.bytes);
      refusedForgery.push(await refusedAfter(forger, forgerRefusals, before));
    }
    await sleep(DELIVERY_WAIT_MS);
    const viewAfter = await coordinatorView(system);
    const stateChanged = viewAfter !== viewBefore;
    if (stateChanged) log.error({ before: viewBefore, after: viewAfter }, 'the coordinator\'s view changed during the forgeries');
    // Negative control: a message the forger may send is seen as what it is, not refused and delivered.
    const ownEvent = sampleOf(eventSamples(where(ATTACKER.tenant, ATTACKER.server)), 'evt:heartbeat');
    const ownSubject = eventSubject(ATTACKER.tenant, ATTACKER.server);
    const beforeOwn = forgerRefusals.count;
    forger.publish(ownSubject, ownEvent);
    const ownRefused = await refusedAfter(forger, forgerRefusals, beforeOwn);
    await sleep(DELIVERY_WAIT_MS);
    if (ownRefused || !received.keys.has(keyOf(ownSubject, ownEvent))) throw new Error(`negative control: the forger's own event was ${ownRefused ? 'refused' : 'not delivered'}; the forgery figures would mean nothing`);
    let forgeriesAccepted = 0;
    forgeries.forEach((f, i) => {
      const refused = refusedForgery[i] === true;
      const delivered = received.keys.has(keyOf(f.subject, f.bytes));
      if (refused && !delivered) return;
      forgeriesAccepted += 1;
      note({ what: `forgery of ${f.what}`, subject: f.subject, refused, delivered });
    });
    log.info({ tried: forgeries.length, accepted: forgeriesAccepted, stateChanged }, 'forgery section done');

    // Reads: as acme's s1, on subjects that are not its own.
    const reader = await open(nats.agentCreds(ATTACKER.tenant, ATTACKER.server), 'reader', agentInboxPrefix(ATTACKER.tenant, ATTACKER.server));
    const other = TENANTS.find((t) => t !== ATTACKER.tenant) as Tenant;
    const neighbour = plans[ATTACKER.tenant].servers.find((s) => s !== ATTACKER.server) as string;
    const readSubjects = [
      '>',
      `snap.${other}.>`,
      ...plans[other].servers.flatMap((s) => [controlSubject(other, s), eventSubject(other, s)]),
      `snap.${other}.plan.*.trg`,
      ...channelIds(plans[other]).flatMap((c) => [must(channelSubject(other, c)), must(creditSubject(other, c))]),
      controlSubject(ATTACKER.tenant, neighbour),
      `snap.${ATTACKER.tenant}.evt.*`,
      `snap.${ATTACKER.tenant}.ch.*.*.${neighbour}.*`,
      `snap.${ATTACKER.tenant}.cr.${neighbour}.*.*.*`,
      `${agentInboxPrefix(ATTACKER.tenant, neighbour)}.>`,
      `_INBOX.${other}.>`,
    ];
    // The last is the negative control: the reader's own control subject, which it may read.
    const ownControl = controlSubject(ATTACKER.tenant, ATTACKER.server);
    const reads = [...readSubjects, ownControl].map((subject) => {
      const state = { refused: false, got: 0 };
      reader.subscribe(subject, {
        callback: (error) => {
          if (error === null) state.got += 1;
          else if (String(error.code ?? error.message).includes('PERMISSIONS_VIOLATION')) state.refused = true;
        },
      });
      return { subject, state };
    });
    await reader.flush();
    await sleep(REFUSAL_WAIT_MS);
    await sendRightful();
    const own = reads.pop();
    if (own === undefined || own.state.refused || own.state.got === 0) throw new Error("negative control: the reader's own control subject was refused or got nothing; the reads figures would mean nothing");
    let readsSucceeded = 0;
    for (const r of reads) {
      if (r.state.refused && r.state.got === 0) continue;
      readsSucceeded += 1;
      note({ what: 'subscription', subject: r.subject, refused: r.state.refused, delivered: r.state.got > 0 });
    }

    // The other tenant's state bucket: its own agent stores an object, the attacker tries to read it.
    const stored = await new JetStreamStateObjects(agent(other, 's1')).put(other, 'cp/1/s1/APP1/state', new TextEncoder().encode(`state of ${other}`));
    if (!stored.ok) throw new Error(`positive control: ${other}'s agent could not store its state: ${stored.error.message}`);
    const attacker = new JetStreamStateObjects(reader);
    const bucketReads = [
      { what: `get an object of ${other}'s state bucket`, read: async () => (await attacker.get(other, stored.value)).ok },
      { what: `list ${other}'s state bucket`, read: async () => (await attacker.list(other, 'cp/')).ok },
      {
        what: `look up ${other}'s state stream`,
        read: async () => {
          try {
            await (await reader.jetstreamManager()).streams.info(`OBJ_snap-state-${other}`);
            return true;
          } catch {
            return false;
          }
        },
      },
    ];
    for (const b of bucketReads) {
      if (!(await b.read())) continue;
      readsSucceeded += 1;
      note({ what: b.what, subject: `OBJ_snap-state-${other}`, refused: false, delivered: true });
    }
    const readsTried = reads.length + bucketReads.length;
    log.info({ tried: readsTried, succeeded: readsSucceeded }, 'reads section done');
    return { forgeriesTried: forgeries.length, forgeriesAccepted, readsTried, readsSucceeded, controlsSent: rightful.length, controlsDelivered, stateChanged, findings };
  } finally {
    for (const nc of connections) await nc.close().catch(() => undefined);
  }
}
