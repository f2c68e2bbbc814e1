/**
 * The gRPC API with TLS, mTLS, tokens, roles, tenant scoping and the audit stream (issue 10 items
 * 3-4; docs/security.md): a real gRPC server over the real plan and policy registries on a real
 * nats-server (the checkpoint side is FakeCheckpoints, whose records are all of tenant acme),
 * certificates made by openssl for this run, and snapctl run as a process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status as GrpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../coordinator/agents.js';
import { jetStreamAudit, readAudit, type AuditEntry } from '../../coordinator/audit.js';
import { METHOD_ROLES, ROLES, sha256Hex, tokensFileAuthenticator, type Role } from '../../coordinator/grpc/auth.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import { coordinatorGrpc } from '../../coordinator/grpc/descriptor.js';
import { startGrpcServer, type GrpcServerHandle } from '../../coordinator/grpc/server.js';
import { serverCredentialsFrom } from '../../coordinator/grpc/tls.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { PolicyRegistry } from '../../coordinator/policies/registry.js';
import { JetStreamPolicyStore } from '../../coordinator/store/policies.js';
import { openCoordinatorStore } from '../../coordinator/store/index.js';
import { runSnapctl } from '../../coordinator/snapctl/main.js';
import { planInput } from '../support/coordinator-fixtures.js';
import { FakeCheckpoints } from '../support/fake-checkpoints.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';
import { testPki } from '../support/test-pki.js';

const TOKENS = {
  acmeViewer: 'acme-viewer-token-0123456789',
  acmeOperator: 'acme-operator-token-0123456789',
  acmeAdmin: 'acme-admin-token-0123456789',
  globexViewer: 'globex-viewer-token-0123456789',
  globexAdmin: 'globex-admin-token-0123456789',
  service: 'service-token-0123456789abcdef',
  expired: 'expired-token-0123456789abcdef',
} as const;

const ROLE_TOKEN: Readonly<Record<Role, string>> = { viewer: TOKENS.acmeViewer, operator: TOKENS.acmeOperator, admin: TOKENS.acmeAdmin };

let dir: string;
let nats: NatsServerHandle;
let nc: NatsConnection;
let tlsServer: GrpcServerHandle;
let mtlsServer: GrpcServerHandle;
let checkpoints: FakeCheckpoints;
const logLines: string[] = [];

const file = (name: string): string => join(dir, name);
const pem = (name: string): Buffer => execFileSync('cat', [file(name)]);

beforeAll(async () => {
  execFileSync('openssl', ['version'], { stdio: 'pipe' });
  dir = mkdtempSync(join(tmpdir(), 'api-auth-'));
  const pki = testPki(dir);
  pki.ca('ca');
  pki.ca('rogue-ca');
  pki.cert('ca', 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
  pki.cert('ca', 'protection', 'protection-service');
  pki.cert('ca', 'stranger', 'stranger');
  pki.cert('rogue-ca', 'rogue', 'protection-service');
  writeFileSync(
    file('tokens.json'),
    JSON.stringify([
      { token: TOKENS.acmeViewer, identity: 'alice', tenant: 'acme', role: 'viewer' },
      { token: TOKENS.acmeOperator, identity: 'oscar', tenant: 'acme', role: 'operator' },
      { tokenSha256: sha256Hex(TOKENS.acmeAdmin), identity: 'ada', tenant: 'acme', role: 'admin' },
      { token: TOKENS.globexViewer, identity: 'gus', tenant: 'globex', role: 'viewer' },
      { token: TOKENS.globexAdmin, identity: 'gina', tenant: 'globex', role: 'admin' },
      { token: TOKENS.service, identity: 'karbor', tenant: '*', role: 'admin' },
      { token: TOKENS.expired, identity: 'old', tenant: 'acme', role: 'admin', expires: '2020-01-01T00:00:00Z' },
      { certificateCn: 'protection-service', identity: 'karbor-mtls', tenant: '*', role: 'admin' },
    ]),
  );

  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const store = await openCoordinatorStore(nc);
  checkpoints = new FakeCheckpoints();
  const plans = new PlanRegistry({ store: store.plans, hasCheckpoints: checkpoints.hasCheckpoints, deleteCheckpoints: checkpoints.deleteCheckpoints, logger });
  const agents = new AgentRegistry({ logger });
  agents.observe({ type: 'register', requestId: 'r1', tenant: 'acme', server: 'srv1', epoch: 0, apps: ['APP1'], version: '0.1.0' });
  agents.observe({ type: 'register', requestId: 'r2', tenant: 'globex', server: 'gsrv1', epoch: 0, apps: ['G1'], version: '0.1.0' });
  const policies = new PolicyRegistry({
    store: new JetStreamPolicyStore(store.buckets.plans, 1_000),
    plans: store.plans,
    logger,
    take: (r) => checkpoints.take(r),
    waitFor: async () => {
      throw new Error('no schedules here');
    },
  });
  const api = { plans, checkpoints, agents, policies };
  const authenticator = tokensFileAuthenticator(file('tokens.json'));
  if (!authenticator.ok) throw new Error(authenticator.error.message);
  const auth = { authenticator: authenticator.value, audit: await jetStreamAudit(nc, { replicas: 1, logger }) };
  const tls = serverCredentialsFrom({ certFile: file('server.pem'), keyFile: file('server.key') });
  const mtls = serverCredentialsFrom({ certFile: file('server.pem'), keyFile: file('server.key'), clientCaFile: file('ca.pem') });
  if (!tls.ok || !mtls.ok) throw new Error('TLS files refused');
  tlsServer = await startGrpcServer({ api, address: '127.0.0.1:0', logger, credentials: tls.value, auth });
  mtlsServer = await startGrpcServer({ api, address: '127.0.0.1:0', logger, credentials: mtls.value, auth });

  const admin = tokenClient(TOKENS.service);
  for (const p of [planInput({ id: 'a-plan', tenant: 'acme' }), planInput({ id: 'g-plan', tenant: 'globex' })]) {
    const r = await admin.registerPlan(p, 0);
    if (!r.ok) throw new Error(r.error.message);
  }
  admin.close();
}, 60_000);

afterAll(async () => {
  await tlsServer?.close();
  await mtlsServer?.close();
  await nc?.close();
  await nats?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const tlsAddress = (): string => `127.0.0.1:${tlsServer.port}`;

function tokenClient(token: string | undefined): CoordinatorClient {
  return new CoordinatorClient(tlsAddress(), { credentials: credentials.createSsl(pem('ca.pem')), ...(token !== undefined ? { token } : {}), callTimeoutMs: 5_000 });
}

function certClient(ca: string, cert: string | undefined): CoordinatorClient {
  const creds = cert === undefined ? credentials.createSsl(pem(`${ca}.pem`)) : credentials.createSsl(pem(`${ca}.pem`), pem(`${cert}.key`), pem(`${cert}.pem`));
  return new CoordinatorClient(`127.0.0.1:${mtlsServer.port}`, { credentials: creds, callTimeoutMs: 5_000 });
}

/** A raw unary call with any metadata, for requests and headers the typed client never sends. */
function raw(method: string, request: unknown, authorization: string | undefined): Promise<{ code: number; message: string }> {
  const { Client: Ctor } = coordinatorGrpc();
  const client: Client = new Ctor(tlsAddress(), credentials.createSsl(pem('ca.pem')));
  const metadata = new Metadata();
  if (authorization !== undefined) metadata.set('authorization', authorization);
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, (r: unknown, m: Metadata, o: object, cb: (e: ServiceError | null) => void) => void>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(client, request, metadata, { deadline: new Date(Date.now() + 5_000) }, (error) => {
      client.close();
      resolve(error === null ? { code: GrpcStatus.OK, message: '' } : { code: error.code, message: error.details });
    });
  });
}

function codeOf(r: { ok: true } | { ok: false; error: { code: number } }): number {
  return r.ok ? GrpcStatus.OK : r.error.code;
}

const STREAMS = new Set(['WatchCheckpoint', 'TakeSnapshotAndWait']);

describe('authentication', () => {
  it('no credentials, an unknown token, an expired one and a malformed header are UNAUTHENTICATED', async () => {
    expect((await raw('ListPlans', {}, undefined)).code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect((await raw('ListPlans', {}, 'Bearer not-a-known-token-at-all')).code).toBe(GrpcStatus.UNAUTHENTICATED);
    const expired = await raw('ListPlans', {}, `Bearer ${TOKENS.expired}`);
    expect(expired).toMatchObject({ code: GrpcStatus.UNAUTHENTICATED, message: expect.stringContaining('expired') });
    expect((await raw('ListPlans', {}, `Basic ${TOKENS.acmeAdmin}`)).code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect((await raw('TakeSnapshot', { plan_id: 'a-plan', level: 1 }, undefined)).code).toBe(GrpcStatus.UNAUTHENTICATED);
    // A stored hash authenticates the token it is the hash of.
    expect((await raw('ListPlans', {}, `Bearer ${TOKENS.acmeAdmin}`)).code).toBe(GrpcStatus.OK);
  });

  it('no log line carries a token', () => {
    const text = logLines.join('\n');
    for (const token of Object.values(TOKENS)) expect(text).not.toContain(token);
    expect(text).toContain('request refused');
  });
});

describe('roles', () => {
  // Each unary method with an empty request, by each role: a role below the method's gets
  // PERMISSION_DENIED before the request is even read; one at or above it gets past the check
  // (to whatever the empty request deserves).
  for (const [method, needed] of Object.entries(METHOD_ROLES).filter(([m]) => !STREAMS.has(m))) {
    it(`${method} needs ${needed}`, async () => {
      for (const role of ROLES) {
        const r = await raw(method, {}, `Bearer ${ROLE_TOKEN[role]}`);
        const allowed = ROLES.indexOf(role) >= ROLES.indexOf(needed);
        if (allowed) expect([GrpcStatus.PERMISSION_DENIED, GrpcStatus.UNAUTHENTICATED], `${role} on ${method}: ${r.message}`).not.toContain(r.code);
        else expect(r, `${role} on ${method}`).toMatchObject({ code: GrpcStatus.PERMISSION_DENIED, message: expect.stringContaining(`needs the ${needed} role`) });
      }
    });
  }

  it('streams: a viewer watches but may not TakeSnapshotAndWait; an operator may', async () => {
    const viewer = tokenClient(TOKENS.acmeViewer);
    const operator = tokenClient(TOKENS.acmeOperator);
    const denied = await viewer.takeSnapshotAndWait({ planId: 'a-plan', level: 'app', options: {} }, () => undefined).done;
    expect(codeOf(denied)).toBe(GrpcStatus.PERMISSION_DENIED);
    const taken = await operator.takeSnapshotAndWait({ planId: 'a-plan', level: 'app', options: {} }, () => undefined).done;
    expect(codeOf(taken)).toBe(GrpcStatus.OK);
    const id = [...checkpoints.records.keys()].at(-1) ?? 0;
    expect(codeOf(await viewer.watchCheckpoint(id, () => undefined).done)).toBe(GrpcStatus.OK);
    viewer.close();
    operator.close();
  });

  it('an operator takes and cancels; rollback, delete and plans need an admin', async () => {
    const operator = tokenClient(TOKENS.acmeOperator);
    const admin = tokenClient(TOKENS.acmeAdmin);
    // Its own apps: an app belongs to one plan.
    const aTwo = planInput({ id: 'a-two', tenant: 'acme', servers: ['x1'], apps: [{ server: 'x1', app: 'X1' }], channels: [], volumes: [] });
    const taken = await operator.takeSnapshot({ planId: 'a-plan', level: 'app', options: {} });
    expect(codeOf(taken)).toBe(GrpcStatus.OK);
    const id = taken.ok ? taken.value.id : 0;
    expect(codeOf(await operator.cancelCheckpoint(id))).toBe(GrpcStatus.OK);
    expect(codeOf(await operator.rollback(id, true))).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(codeOf(await operator.deleteCheckpoint(id))).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(codeOf(await operator.registerPlan(aTwo, 0))).toBe(GrpcStatus.PERMISSION_DENIED);
    const registered = await admin.registerPlan(aTwo, 0);
    expect(codeOf(registered), registered.ok ? '' : registered.error.message).toBe(GrpcStatus.OK);
    expect(codeOf(await admin.deletePlan('a-two', false))).toBe(GrpcStatus.OK);
    operator.close();
    admin.close();
  });
});

describe('tenant scoping', () => {
  it("a viewer of globex lists only globex's plans, agents and checkpoints, and gets NOT_FOUND for acme's as for a missing one", async () => {
    const gus = tokenClient(TOKENS.globexViewer);
    const service = tokenClient(TOKENS.service);
    const acmeCheckpoint = await service.takeSnapshot({ planId: 'a-plan', level: 'app', options: {} });
    if (!acmeCheckpoint.ok) throw new Error(acmeCheckpoint.error.message);
    const id = acmeCheckpoint.value.id;

    const plans = await gus.listPlans(undefined, 100, '');
    expect(plans.ok && plans.value.items.map((p) => p.id)).toEqual(['g-plan']);
    const asked = await gus.listPlans('acme', 100, '');
    expect(asked.ok && asked.value.items).toEqual([]);
    const all = await service.listPlans(undefined, 100, '');
    expect(all.ok && all.value.items.map((p) => p.id).sort()).toEqual(['a-plan', 'g-plan']);
    const agents = await gus.listAgents(undefined);
    expect(agents.ok && agents.value.map((a) => a.server)).toEqual(['gsrv1']);
    const listed = await gus.listCheckpoints({ filter: {}, pageSize: 100, pageToken: '' });
    expect(listed.ok && listed.value.items).toEqual([]);

    const foreignPlan = await gus.getPlan('a-plan');
    const missingPlan = await gus.getPlan('no-such-plan');
    expect(codeOf(foreignPlan)).toBe(GrpcStatus.NOT_FOUND);
    expect(!foreignPlan.ok && !missingPlan.ok && foreignPlan.error.message.replace('a-plan', 'X')).toBe(!missingPlan.ok && missingPlan.error.message.replace('no-such-plan', 'X'));
    const foreign = await gus.getCheckpoint(id);
    const missing = await gus.getCheckpoint(999_999);
    expect(codeOf(foreign)).toBe(GrpcStatus.NOT_FOUND);
    expect(!foreign.ok && !missing.ok && foreign.error.message.replace(String(id), 'X')).toBe(!missing.ok && missing.error.message.replace('999999', 'X'));
    expect(codeOf(await gus.verify(id))).toBe(GrpcStatus.NOT_FOUND);
    expect(codeOf(await gus.getPolicy('a-plan'))).toBe(GrpcStatus.NOT_FOUND);
    gus.close();
    service.close();
  });

  it("an admin of globex cannot touch acme's checkpoints or plans, nor register a plan of acme", async () => {
    const gina = tokenClient(TOKENS.globexAdmin);
    const id = [...checkpoints.records.values()].find((r) => r.tenant === 'acme')?.id ?? 0;
    expect(codeOf(await gina.deleteCheckpoint(id))).toBe(GrpcStatus.NOT_FOUND);
    expect(codeOf(await gina.rollback(id, true))).toBe(GrpcStatus.NOT_FOUND);
    expect(codeOf(await gina.takeSnapshot({ planId: 'a-plan', level: 'app', options: {} }))).toBe(GrpcStatus.NOT_FOUND);
    expect(codeOf(await gina.deletePlan('a-plan', true))).toBe(GrpcStatus.NOT_FOUND);
    expect(codeOf(await gina.registerPlan(planInput({ id: 'sneaky', tenant: 'acme' }), 0))).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(checkpoints.records.has(id)).toBe(true);
    gina.close();
  });
});

describe('mTLS', () => {
  it("a client certificate's common name is an identity; an unknown name is UNAUTHENTICATED", async () => {
    const karbor = certClient('ca', 'protection');
    const all = await karbor.listPlans(undefined, 100, '');
    expect(all.ok && all.value.items.length).toBe(2);
    const stranger = certClient('ca', 'stranger');
    expect(codeOf(await stranger.listPlans(undefined, 100, ''))).toBe(GrpcStatus.UNAUTHENTICATED);
    karbor.close();
    stranger.close();
  });

  it('a certificate of another CA, or none, does not get through the handshake', async () => {
    const rogue = certClient('ca', 'rogue');
    const none = certClient('ca', undefined);
    expect(codeOf(await rogue.listPlans(undefined, 100, ''))).toBe(GrpcStatus.UNAVAILABLE);
    expect(codeOf(await none.listPlans(undefined, 100, ''))).toBe(GrpcStatus.UNAVAILABLE);
    rogue.close();
    none.close();
  });

  it('TLS files that do not fit are refused at start, naming the file and not its content', () => {
    const mismatched = serverCredentialsFrom({ certFile: file('server.pem'), keyFile: file('stranger.key') });
    expect(!mismatched.ok && mismatched.error.message).toContain('is not the key of the certificate');
    const missing = serverCredentialsFrom({ certFile: file('server.pem'), keyFile: file('nope.key') });
    expect(!missing.ok && missing.error.message).toBe(`cannot read the TLS key ${file('nope.key')}: ENOENT`);
    const notCa = serverCredentialsFrom({ certFile: file('server.pem'), keyFile: file('server.key'), clientCaFile: file('server.key') });
    expect(!notCa.ok && notCa.error.message).toContain('is not a PEM certificate');
  });
});

describe('audit', () => {
  it('mutating calls, allowed or refused, are on snap-audit with who, tenant, method, arguments and code; reads are not', async () => {
    const oscar = tokenClient(TOKENS.acmeOperator);
    const alice = tokenClient(TOKENS.acmeViewer);
    const since = Date.now();
    expect(codeOf(await oscar.takeSnapshot({ planId: 'a-plan', level: 'app', options: {}, idempotencyKey: 'audit-key' }))).toBe(GrpcStatus.OK);
    expect(codeOf(await alice.takeSnapshot({ planId: 'a-plan', level: 'app', options: {} }))).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(codeOf(await alice.listPlans(undefined, 10, ''))).toBe(GrpcStatus.OK);
    expect(codeOf(await alice.getPlan('a-plan'))).toBe(GrpcStatus.OK);
    let entries: AuditEntry[] = [];
    const deadline = Date.now() + 5_000;
    while (entries.length < 2 && Date.now() < deadline) {
      entries = await readAudit(nc, { sinceMs: since - 1 });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(entries.map((e) => [e.identity, e.tenant, e.method, e.code])).toEqual([
      ['oscar', 'acme', 'TakeSnapshot', 'OK'],
      ['alice', 'acme', 'TakeSnapshot', 'PERMISSION_DENIED'],
    ]);
    expect(entries[0]?.arguments).toContain('audit-key');
    expect(Date.parse(entries[0]?.time ?? '')).toBeGreaterThanOrEqual(since - 1_000);
    const all = await readAudit(nc, {});
    expect(all.every((e) => !['ListPlans', 'GetPlan', 'GetCheckpoint', 'WatchCheckpoint'].includes(e.method))).toBe(true);
    expect(JSON.stringify(all)).not.toContain(TOKENS.acmeOperator);
    expect((await readAudit(nc, { tenant: 'globex' })).every((e) => e.tenant === 'globex')).toBe(true);
    oscar.close();
    alice.close();
  });
});

describe('snapctl', () => {
  // Not spawnSync: the server answering snapctl runs in this process's event loop.
  const snapctl = (args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), ['coordinator/snapctl.ts', ...args], { env: { ...process.env, ...env }, timeout: 30_000 });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });

  it('--token with --ca lists the caller tenant plans; SNAPCTL_TOKEN works the same; no token is UNAUTHENTICATED', async () => {
    const byFlag = await snapctl(['plans', 'list', '--address', tlsAddress(), '--ca', file('ca.pem'), '--token', TOKENS.globexViewer, '-o', 'json']);
    expect(byFlag.status, byFlag.stderr).toBe(0);
    expect((JSON.parse(byFlag.stdout) as { plans: { id: string }[] }).plans.map((p) => p.id)).toEqual(['g-plan']);
    const byEnv = await snapctl(['plans', 'list', '--address', tlsAddress(), '-o', 'json'], { SNAPCTL_TOKEN: TOKENS.service, SNAPCTL_CA: file('ca.pem') });
    expect(byEnv.status, byEnv.stderr).toBe(0);
    expect((JSON.parse(byEnv.stdout) as { plans: unknown[] }).plans).toHaveLength(2);
    const none = await snapctl(['plans', 'list', '--address', tlsAddress(), '--ca', file('ca.pem')]);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('UNAUTHENTICATED');
  }, 60_000);

  it('--tls-server-name: a name the certificate carries gets through (without Node\'s IP server-name warning); one it does not carry fails the handshake', async () => {
    const named = await snapctl(['plans', 'list', '--address', tlsAddress(), '--ca', file('ca.pem'), '--tls-server-name', 'localhost', '--token', TOKENS.globexViewer, '-o', 'json']);
    expect(named.status, named.stderr).toBe(0);
    expect((JSON.parse(named.stdout) as { plans: { id: string }[] }).plans.map((p) => p.id)).toEqual(['g-plan']);
    expect(named.stderr).not.toContain('DEP0123');
    const wrong = await snapctl(['plans', 'list', '--address', tlsAddress(), '--ca', file('ca.pem'), '--tls-server-name', 'elsewhere.example', '--token', TOKENS.globexViewer]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('cannot reach the coordinator');
  }, 60_000);

  it('--cert and --key over mTLS; audit --tenant reads the trail', async () => {
    const r = await snapctl(['plans', 'list', '--address', `127.0.0.1:${mtlsServer.port}`, '--ca', file('ca.pem'), '--cert', file('protection.pem'), '--key', file('protection.key'), '-o', 'json']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { plans: unknown[] }).plans).toHaveLength(2);
    const audit = await snapctl(['audit', '--nats', nats.url, '--tenant', 'acme', '--since', '1h', '-o', 'json']);
    expect(audit.status, audit.stderr).toBe(0);
    const entries = (JSON.parse(audit.stdout) as { entries: AuditEntry[] }).entries;
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.tenant === 'acme')).toBe(true);
  }, 60_000);

  it('a token in plaintext goes only to this machine unless --insecure, which says so', async () => {
    const io = (stderr: string[]) => ({ stdout: () => undefined, stderr: (t: string) => void stderr.push(t), stdoutIsTTY: false, readFile: () => '', now: Date.now, onInterrupt: () => () => undefined });
    const connected: string[] = [];
    const fake = (address: string) => {
      connected.push(address);
      return { listPlans: async () => ({ ok: true as const, value: { items: [], nextPageToken: '' } }), close: () => undefined } as unknown as ReturnType<Parameters<typeof runSnapctl>[3]>;
    };
    const refused: string[] = [];
    expect(await runSnapctl(['plans', 'list', '--address', 'coord.example:50051', '--token', TOKENS.acmeViewer], {}, io(refused), fake)).toBe(2);
    expect(refused.join('')).toContain('refusing to send a token in plaintext');
    expect(connected).toEqual([]);
    const warned: string[] = [];
    expect(await runSnapctl(['plans', 'list', '--address', 'coord.example:50051', '--token', TOKENS.acmeViewer, '--insecure'], {}, io(warned), fake)).toBe(0);
    expect(warned.join('')).toContain('WARNING: --insecure');
    expect(warned.join('')).not.toContain(TOKENS.acmeViewer);
    expect(await runSnapctl(['plans', 'list', '--address', '127.0.0.1:50051', '--token', TOKENS.acmeViewer], {}, io([]), fake)).toBe(0);
  });
});

describe('snapcoord start-up', () => {
  const snapcoord = (args: string[]): Promise<{ status: number | null; output: string }> =>
    new Promise((resolve) => {
      const child = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), ['coordinator/main.ts', '--nats', nats.url, '--listen', '127.0.0.1:0', ...args], { timeout: 30_000 });
      let output = '';
      const take = (d: Buffer): void => {
        output += d.toString();
        // Up and serving: what it said at start is all this test reads.
        if (output.includes('listening on')) child.kill('SIGTERM');
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.on('close', (status) => resolve({ status, output }));
    });

  it('without auth it warns that the API is unauthenticated; a bad tokens file stops it with exit 2, quoting no token', async () => {
    const open = await snapcoord([]);
    expect(open.output).toContain('the gRPC API is UNAUTHENTICATED');
    const secret = 'short-secret';
    writeFileSync(file('bad-tokens.json'), JSON.stringify([{ token: secret, identity: 'x', tenant: 'acme', role: 'viewer' }]));
    const bad = await snapcoord(['--auth-tokens', file('bad-tokens.json')]);
    expect(bad.status).toBe(2);
    expect(bad.output).toContain('a token must have at least 16 characters');
    expect(bad.output).not.toContain(secret);
    const noKey = await snapcoord(['--tls-cert', file('server.pem'), '--tls-key', file('missing.key')]);
    expect(noKey.status).toBe(2);
    expect(noKey.output).toContain(`cannot read the TLS key ${file('missing.key')}`);
  }, 60_000);
});
