/**
 * Copies of checkpoints at another site (docs/sites.md), against two real nats-servers: the
 * primary site (its coordinator service, agents and token apps) and the DR site. A checkpoint
 * copied to the DR site is restored there into new agents while the primary's nats-server is
 * stopped; a copy refused for a digest mismatch at the target, or cut off by a site that stops
 * answering mid-copy, is never listed as a copy.
 */
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { decodeTokens, TokenApp } from '../../agent/demo-apps/token-app.js';
import { JetStreamStateObjects, type StateObjects } from '../../adapters/state-store.js';
import { ControlBus } from '../../coordinator/bus.js';
import { readPartState } from '../../coordinator/checkpoints/part-state.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService } from '../../coordinator/checkpoints/service.js';
import type { CheckpointRecord, PlanInput } from '../../coordinator/model.js';
import { SiteLinks } from '../../coordinator/sites/links.js';
import { SiteCopies, type SiteDirectory } from '../../coordinator/sites/service.js';
import { startSites, type Sites } from '../../coordinator/sites/index.js';
import { openCoordinatorStore } from '../../coordinator/store/index.js';
import { decodeChannelState } from '../../src/wire/index.js';
import { agentConfig, demoPlan, INITIAL_TOKENS, silent, startLiveWorld, TENANT, type LiveWorld } from '../support/live-fixture.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const SERVERS: Record<string, string> = { s1: 't1', s2: 't2', s3: 't3' };
const FAST_RETRY = { attemptsMax: 2, retryDelayMs: 100 };

/** The demo plan on the DR site's new instances t1..t3. */
const drPlan: PlanInput = {
  ...demoPlan,
  id: 'demo-dr',
  servers: demoPlan.servers.map((s) => SERVERS[s] ?? s),
  apps: demoPlan.apps.map((a) => ({ ...a, server: SERVERS[a.server] ?? a.server })),
  channels: demoPlan.channels.map((c) => ({ ...c, from: { ...c.from, server: SERVERS[c.from.server] ?? c.from.server }, to: { ...c.to, server: SERVERS[c.to.server] ?? c.to.server } })),
};

let primary: LiveWorld;
let dr: NatsServerHandle;
let links: SiteLinks;

beforeAll(async () => {
  // Every app state stored as an object: the copies under test move objects, and with inline states a
  // checkpoint has some only when it recorded a channel state, which depends on timing.
  [primary, dr] = await Promise.all([startLiveWorld({ inlineStateBytesMax: 0 }), startNatsServer()]);
  links = new SiteLinks([{ name: 'dr', natsUrl: dr.url, replicas: 1 }], silent, { connectTimeoutMs: 2_000, requestTimeoutMs: 1_000 });
}, 30_000);

afterAll(async () => {
  await links?.close();
  await primary?.stop();
  await dr?.stop();
});

function primaryCopies(sites: SiteDirectory = links, autoRetryDelaysMs: readonly number[] = []): SiteCopies {
  return new SiteCopies({ store: primary.store, objects: primary.objects, sites, siteName: 'primary', restore: (r) => primary.service.restore(r), logger: silent, retry: FAST_RETRY, autoRetryDelaysMs });
}

/** The sites as the coordinator daemon runs them (coordinator/main.ts): automatic copies, and copies deleted with their checkpoint. */
function primarySites(): Sites {
  return startSites({
    siteName: 'primary',
    sites: [{ name: 'dr', natsUrl: dr.url, replicas: 1 }],
    store: primary.store,
    objects: primary.objects,
    restore: (r) => primary.service.restore(r),
    onEnded: (l) => primary.service.onEnded(l),
    onDeleted: (l) => primary.service.onDeleted(l),
    logger: silent,
  });
}

async function completedCheckpoint(): Promise<CheckpointRecord> {
  const stop = primary.traffic(2);
  try {
    const taken = await primary.service.take({ planId: 'demo', level: 'app', options: {} });
    if (!taken.ok) throw new Error(taken.error.message);
    const record = await primary.service.waitFor(taken.value.id);
    expect(record.state, record.failureDetail).toBe('completed');
    return record;
  } finally {
    stop();
  }
}

/** Sets the demo plan's copy_to_sites. */
async function setCopySites(copyToSites: string[]): Promise<void> {
  const plan = await primary.store.plans.get('demo');
  if (!plan.ok) throw new Error(plan.error.message);
  const { revision, ...rest } = plan.value;
  const updated = await primary.store.plans.update({ ...rest, copyToSites }, revision);
  if (!updated.ok) throw new Error(updated.error.message);
}

/** What the DR site holds of the primary's checkpoint `id`: its copy record, and its objects. */
async function atSite(id: number): Promise<{ copy: () => Promise<boolean>; objects: () => Promise<string[]> }> {
  const site = await links.endpoint('dr');
  if (!site.ok) throw new Error(site.error.message);
  return {
    copy: async () => {
      const got = await site.value.copies.get('primary', id);
      if (!got.ok) throw new Error(got.error.message);
      return got.value !== undefined;
    },
    objects: async () => {
      const names = await site.value.objects.list(TENANT, `copy/primary/${id}/`);
      if (!names.ok) throw new Error(names.error.message);
      return names.value;
    },
  };
}

/** Each app's tokens once restored: its state plus the recorded messages on its inputs, which it is given again. */
async function tokensAfterRestore(record: CheckpointRecord, objects: StateObjects): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of record.parts) {
    const state = await readPartState(TENANT, p, objects);
    if (!state.ok) throw new Error(state.message);
    let n = decodeTokens(state.value);
    if (p.channelState) {
      const bytes = await objects.get(TENANT, p.channelState);
      if (!bytes.ok) throw new Error(bytes.error.message);
      const decoded = decodeChannelState(bytes.value);
      if (!decoded.ok) throw new Error(decoded.error.message);
      for (const msgs of Object.values(decoded.value)) for (const m of msgs) n += decodeTokens(m.payload);
    }
    out[p.app] = n;
  }
  return out;
}

/** A site that cannot be reached the first `times` it is asked for, as a site down would answer. */
function unreachableSite(times: number): SiteDirectory {
  let asked = 0;
  return siteWhere(async (name) => (++asked <= times ? { ok: false, error: { kind: 'unavailable', message: `site ${name} is not reachable (test)` } } : links.endpoint(name)));
}

/** A site whose object writes store other bytes than they were given: a target that corrupts data. */
function corruptingSite(): SiteDirectory {
  return siteWhere(async (name) => {
    const e = await links.endpoint(name);
    if (!e.ok) return e;
    const objects = e.value.objects;
    return { ok: true, value: { ...e.value, objects: { ...bind(objects), put: (tenant, n, bytes) => objects.put(tenant, n, bytes.map((b, i) => (i === 0 ? b ^ 0xff : b))) } } };
  });
}

/** A site that stops answering (its nats-server SIGSTOPped) right after the copy's first object is written. */
function stoppingSite(onStopped: () => void): SiteDirectory {
  return siteWhere(async (name) => {
    const e = await links.endpoint(name);
    if (!e.ok) return e;
    const objects = e.value.objects;
    let puts = 0;
    const put: StateObjects['put'] = async (tenant, n, bytes) => {
      const r = await objects.put(tenant, n, bytes);
      if (++puts === 1) {
        process.kill(dr.pid, 'SIGSTOP');
        onStopped();
      }
      return r;
    };
    return { ok: true, value: { ...e.value, objects: { ...bind(objects), put } } };
  });
}

/** The configured sites, each reached through `endpoint` instead of the real link. */
function siteWhere(endpoint: SiteDirectory['endpoint']): SiteDirectory {
  return { has: (name) => links.has(name), names: () => links.names(), endpoint };
}

function bind(o: StateObjects): StateObjects {
  return { put: o.put.bind(o), get: o.get.bind(o), info: o.info.bind(o), list: o.list.bind(o), delete: o.delete.bind(o) };
}

describe('copies of checkpoints at another site', () => {
  it('an unknown site is NOT_FOUND naming the configured ones; a checkpoint in flight or missing is refused before anything is copied', async () => {
    const copies = primaryCopies();
    const unknown = await copies.copy(1, 'mars');
    expect(unknown.ok ? 'copied' : unknown.error).toEqual({ kind: 'not-found', message: expect.stringMatching(/site mars is not configured; the configured sites are dr/) });
    const missing = await copies.copy(999_999, 'dr');
    expect(missing.ok ? 'copied' : missing.error.kind).toBe('not-found');
    const taken = await primary.service.take({ planId: 'demo', level: 'app', options: {} });
    if (!taken.ok) throw new Error(taken.error.message);
    const running = await copies.copy(taken.value.id, 'dr');
    expect(running.ok ? 'copied' : running.error).toEqual({ kind: 'failed-precondition', message: expect.stringMatching(/only a completed checkpoint is copied/) });
    await primary.service.waitFor(taken.value.id);
  }, 30_000);

  it('a digest mismatch at the target is refused: no copy is listed, and the source record says the copy failed', async () => {
    const record = await completedCheckpoint();
    const refused = await primaryCopies(corruptingSite()).copy(record.id, 'dr');
    expect(refused.ok ? 'copied' : refused.error).toEqual({ kind: 'failed-precondition', message: expect.stringMatching(/digest .* not SHA-256=.*the copy is refused/) });
    const listed = await primaryCopies().listCopies('dr', {});
    expect(listed.ok && listed.value.filter((c) => c.sourceCheckpointId === record.id)).toEqual([]);
    const after = await primary.service.get(record.id);
    expect(after.ok && after.value.copies).toEqual([{ site: 'dr', state: 'failed', failedAtUnixMs: expect.any(Number), detail: expect.stringMatching(/the copy is refused/) }]);
  }, 30_000);

  it('a site that stops answering mid-copy: the copy fails after its retries, nothing is listed, and the copy made again once the site is back is complete', async () => {
    const record = await completedCheckpoint();
    let stopped = false;
    const started = Date.now();
    let failed: Awaited<ReturnType<SiteCopies['copy']>>;
    try {
      failed = await primaryCopies(stoppingSite(() => (stopped = true))).copy(record.id, 'dr');
    } finally {
      if (stopped) process.kill(dr.pid, 'SIGCONT');
    }
    expect(stopped).toBe(true);
    expect(failed.ok ? 'copied' : failed.error.kind).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(20_000);
    const after = await primary.service.get(record.id);
    expect(after.ok && after.value.copies?.map((c) => c.state)).toEqual(['failed']);
    // Only a copy whose every object was verified at the site is listed.
    const copies = primaryCopies();
    let listed = await copies.listCopies('dr', {});
    for (let i = 0; !listed.ok && i < 20; i++) {
      await new Promise((r) => setTimeout(r, 500));
      listed = await copies.listCopies('dr', {});
    }
    expect(listed.ok && listed.value.filter((c) => c.sourceCheckpointId === record.id)).toEqual([]);
    const again = await copies.copy(record.id, 'dr');
    expect(again.ok ? again.value.state : again.error.message).toBe('copied');
    const relisted = await copies.listCopies('dr', {});
    expect(relisted.ok && relisted.value.filter((c) => c.sourceCheckpointId === record.id).map((c) => c.sourceSite)).toEqual(['primary']);
  }, 60_000);

  it('a plan with copy_to_sites has each completed checkpoint copied there on its own; the record shows the copy and its lag', async () => {
    const sites = primarySites();
    try {
      await setCopySites(['dr']);
      const record = await completedCheckpoint();
      let copies = record.copies;
      for (let i = 0; copies === undefined && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const got = await primary.service.get(record.id);
        copies = got.ok ? got.value.copies : undefined;
      }
      expect(copies).toEqual([{ site: 'dr', state: 'copied', copiedAtUnixMs: expect.any(Number), lagMs: expect.any(Number) }]);
      const lagMs = copies?.[0]?.state === 'copied' ? copies[0].lagMs : -1;
      expect(lagMs).toBeGreaterThanOrEqual(0);
      expect(lagMs).toBeLessThan(10_000);
      const listed = await sites.copies.listCopies('dr', { planId: 'demo' });
      expect(listed.ok && listed.value.some((c) => c.sourceSite === 'primary' && c.sourceCheckpointId === record.id)).toBe(true);
    } finally {
      await setCopySites([]);
      await sites.close();
    }
  }, 60_000);

  it('an automatic copy the site refused as unavailable is made again after a pause; one closed meanwhile is not', async () => {
    const record = await completedCheckpoint();
    // Twice unreachable, then back: the third try makes it.
    await primaryCopies(unreachableSite(2), [50, 50, 50]).copyCompleted(record, ['dr']);
    const got = await primary.service.get(record.id);
    expect(got.ok && got.value.copies).toEqual([{ site: 'dr', state: 'copied', copiedAtUnixMs: expect.any(Number), lagMs: expect.any(Number) }]);
    // The control: with no pause left, the same site fails it and the record says so.
    const other = await completedCheckpoint();
    await primaryCopies(unreachableSite(2), [50]).copyCompleted(other, ['dr']);
    const failed = await primary.service.get(other.id);
    expect(failed.ok && failed.value.copies?.map((c) => c.state)).toEqual(['failed']);
    // Closed while it waits: no further try.
    const third = await completedCheckpoint();
    const closing = primaryCopies(unreachableSite(1), [60_000]);
    const waiting = closing.copyCompleted(third, ['dr']);
    await new Promise((r) => setTimeout(r, 200));
    closing.close();
    await waiting;
    const notMade = await primary.service.get(third.id);
    expect(notMade.ok && notMade.value.copies?.map((c) => c.state)).toEqual(['failed']);
  }, 60_000);

  it('a catch-up makes the automatic copy the newest checkpoint lacks (its coordinator stopped before it); a second finds none missing', async () => {
    await setCopySites(['dr']);
    // Completed while no sites were wired: as if its coordinator stopped before the automatic copy.
    const record = await completedCheckpoint();
    expect(record.copies ?? []).toEqual([]);
    const sites = primarySites();
    try {
      const made = await sites.catchUp();
      expect(made.ok && made.value).toBe(1);
      const got = await primary.service.get(record.id);
      expect(got.ok && got.value.copies).toEqual([{ site: 'dr', state: 'copied', copiedAtUnixMs: expect.any(Number), lagMs: expect.any(Number) }]);
      const again = await sites.catchUp();
      expect(again.ok && again.value).toBe(0);
    } finally {
      await setCopySites([]);
      await sites.close();
    }
  }, 60_000);

  it('a closed Sites starts no automatic copy of a checkpoint completed after it closed', async () => {
    await setCopySites(['dr']);
    const sites = primarySites();
    await sites.close();
    try {
      const record = await completedCheckpoint();
      // Long enough for an automatic copy of a few small objects to have begun and noted itself.
      await new Promise((r) => setTimeout(r, 1_000));
      const got = await primary.service.get(record.id);
      expect(got.ok && (got.value.copies ?? [])).toEqual([]);
      const { copy: copyAtSite } = await atSite(record.id);
      expect(await copyAtSite()).toBe(false);
    } finally {
      await setCopySites([]);
    }
  }, 30_000);

  it('a checkpoint deleted here takes its copy at the site with it: record and objects', async () => {
    const sites = primarySites();
    try {
      const record = await completedCheckpoint();
      const copied = await sites.copies.copy(record.id, 'dr');
      expect(copied.ok && copied.value.state, copied.ok ? '' : copied.error.message).toBe('copied');
      const { copy: copyAtSite, objects: objectsAtSite } = await atSite(record.id);
      // The control: the copy is there, with its objects.
      expect(await copyAtSite()).toBe(true);
      expect((await objectsAtSite()).length).toBeGreaterThan(0);

      const deleted = await primary.service.delete(record.id);
      expect(deleted.ok, deleted.ok ? '' : deleted.error.message).toBe(true);
      for (let i = 0; ((await copyAtSite()) || (await objectsAtSite()).length > 0) && i < 100; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await copyAtSite()).toBe(false);
      expect(await objectsAtSite()).toEqual([]);
      const listed = await sites.copies.listCopies('dr', { planId: 'demo' });
      expect(listed.ok && listed.value.some((c) => c.sourceCheckpointId === record.id)).toBe(false);
    } finally {
      await sites.close();
    }
  }, 60_000);

  it('a delete a stopped coordinator left, finished by the next one at start-up, takes the copy at the site too', async () => {
    const sites = primarySites();
    try {
      const record = await completedCheckpoint();
      const copied = await sites.copies.copy(record.id, 'dr');
      expect(copied.ok && copied.value.state, copied.ok ? '' : copied.error.message).toBe('copied');
      const { copy: copyAtSite, objects: objectsAtSite } = await atSite(record.id);
      // A coordinator that marked the record and stopped before deleting anything.
      const stored = await primary.store.checkpoints.get(record.id);
      if (!stored.ok) throw new Error(stored.error.message);
      const marked = await primary.store.checkpoints.update(record.id, (r) => ({ ...r, deleting: true }), stored.value);
      expect(marked.ok).toBe(true);
      expect(await copyAtSite()).toBe(true);

      const recovered = await primary.service.recover();
      expect(recovered.ok && recovered.value.deleted).toEqual([record.id]);
      for (let i = 0; ((await copyAtSite()) || (await objectsAtSite()).length > 0) && i < 100; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await copyAtSite()).toBe(false);
      expect(await objectsAtSite()).toEqual([]);
    } finally {
      await sites.close();
    }
  }, 60_000);

  it('a checkpoint copied to the DR site is restored there into new agents with the primary site stopped', async () => {
    const record = await completedCheckpoint();
    const expected = await tokensAfterRestore(record, primary.objects);
    expect(Object.values(expected).reduce((a, b) => a + b, 0)).toBe(3 * INITIAL_TOKENS);

    const copied = await primaryCopies().copy(record.id, 'dr');
    expect(copied.ok ? copied.value : copied.error.message).toEqual({ site: 'dr', state: 'copied', copiedAtUnixMs: expect.any(Number), lagMs: expect.any(Number) });
    const noted = await primary.service.get(record.id);
    expect(noted.ok && noted.value.copies?.map((c) => [c.site, c.state])).toEqual([['dr', 'copied']]);
    const listed = await primaryCopies().listCopies('dr', { planId: 'demo' });
    const mine = listed.ok ? listed.value.filter((c) => c.sourceCheckpointId === record.id) : [];
    expect(mine.map((c) => [c.sourceSite, c.record.state, c.record.planId])).toEqual([['primary', 'completed', 'demo']]);
    expect(mine[0]?.objects).toBeGreaterThan(0);

    // The primary site goes away: its agents, its coordinator's store and its nats-server.
    await primary.stop();

    // The DR site: its own coordinator service on its own store, and new agents t1..t3 with empty apps.
    const nc: NatsConnection = await connect({ servers: dr.url });
    const store = await openCoordinatorStore(nc);
    const objects = new JetStreamStateObjects(nc);
    const bus = new ControlBus(nc, silent);
    await bus.start();
    const service = new CheckpointService(store, objects, bus, silent, { ...CHECKPOINT_SERVICE_DEFAULTS, restoreTimeoutMs: 10_000 });
    const agents: { agent: Agent; app: TokenApp; name: string }[] = [];
    try {
      const created = await store.plans.create({ ...drPlan, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
      if (!created.ok) throw new Error(created.error.message);
      for (const a of drPlan.apps) {
        const agent = await Agent.start(agentConfig(a.server, a.app, dr.url, drPlan), silent);
        const app = new TokenApp({ initialTokens: 0, transferTokensMax: 10 });
        const attached = agent.attach(a.app, app);
        if (!attached.ok) throw new Error(attached.error.message);
        app.bind(attached.link);
        agents.push({ agent, app, name: a.app });
      }
      for (const { agent } of agents) await agent.ready();

      const drLinks = new SiteLinks([{ name: 'dr', natsUrl: dr.url, replicas: 1 }], silent);
      try {
        const drCopies = new SiteCopies({ store, objects, sites: drLinks, siteName: 'dr', restore: (r) => service.restore(r), logger: silent });
        const unknownSource = await drCopies.restoreFrom({ checkpointId: record.id, servers: SERVERS, apps: [] }, { site: 'dr', sourceSite: 'elsewhere' });
        expect(unknownSource.ok ? 'restored' : unknownSource.error).toEqual({ kind: 'not-found', message: expect.stringMatching(/site dr holds no copy of checkpoint \d+ from site elsewhere/) });

        const restored = await drCopies.restoreFrom({ checkpointId: record.id, servers: SERVERS, apps: [] }, { site: 'dr', sourceSite: '' });
        if (!restored.ok) throw new Error(restored.error.message);
        expect(restored.value.epoch).toBeGreaterThan(0);
        const imported = await service.get(restored.value.checkpointId);
        expect(imported.ok && imported.value.importedFrom).toEqual({ site: 'dr', sourceSite: 'primary', sourceCheckpointId: record.id, copiedAtUnixMs: expect.any(Number) });
        expect(imported.ok && imported.value.pinned).toBe(true);

        // Each new app holds its checkpoint state plus the in-flight messages it was given again.
        const deadline = Date.now() + 10_000;
        const held = (): Record<string, number> => Object.fromEntries(agents.map(({ app, name }) => [name, app.tokens]));
        while (Date.now() < deadline && JSON.stringify(held()) !== JSON.stringify(expected)) await new Promise((r) => setTimeout(r, 100));
        expect(held()).toEqual(expected);

        // A retry of the same restore reuses the imported checkpoint instead of importing again.
        const again = await drCopies.restoreFrom({ checkpointId: record.id, servers: SERVERS, apps: [] }, { site: 'dr', sourceSite: 'primary' });
        expect(again.ok ? again.value.checkpointId : again.error.message).toBe(restored.value.checkpointId);

        // The restored plan takes its own checkpoints at the DR site, tokens conserved.
        const next = await service.take({ planId: drPlan.id, level: 'app', options: {} });
        if (!next.ok) throw new Error(next.error.message);
        const done = await service.waitFor(next.value.id);
        expect(done.state, done.failureDetail).toBe('completed');
        const total = Object.values(await tokensAfterRestore(done, objects)).reduce((a, b) => a + b, 0);
        expect(total).toBe(3 * INITIAL_TOKENS);
      } finally {
        await drLinks.close();
      }
    } finally {
      for (const { agent } of agents) await agent.stop();
      bus.stop();
      await nc.drain().catch(() => undefined);
    }
  }, 90_000);
});
