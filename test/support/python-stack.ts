/**
 * A live coordinator for the Python tests (clients/python/tests, examples/karbor/tests): a real
 * nats-server, the checkpoint service with the demo plan's three agents and their token apps (in
 * this process), the gRPC server on a free port, and an agentless plan whose checkpoints stay in
 * flight (so a second take of it is busy). The demo plan gets a volume per server, snapshotted by
 * the caller in staged checkpoints (no volume backend here).
 *
 * Prints one JSON line on stdout once it serves ({"address", "plan", "busy_plan", "tenant",
 * "volumes"}), then runs until its stdin closes or it gets SIGTERM. The Python tests start it with
 * `npx tsx test/support/python-stack.ts`.
 *
 * With `--secure` the gRPC API is authenticated (docs/security.md): `address` serves TLS with
 * tokens, `mtls_address` mTLS, and the line adds `ca`, `client_cert`, `client_key` (PEM files of
 * this run) and `tokens` ({admin, viewer, foreign, expired}: the demo tenant's admin and viewer, an
 * admin of another tenant, and an expired one); the client certificate authenticates as an admin of
 * every tenant.
 */
import { AgentRegistry, trackAgents } from '../../coordinator/agents.js';
import { startGrpcServer } from '../../coordinator/grpc/server.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { ok } from '../../coordinator/errors.js';
import { jetStreamAudit } from '../../coordinator/audit.js';
import { tokensFileAuthenticator } from '../../coordinator/grpc/auth.js';
import { serverCredentialsFrom } from '../../coordinator/grpc/tls.js';
import type { GrpcServerOptions } from '../../coordinator/grpc/server.js';
import { testPki } from './test-pki.js';
import { agentlessPlan, demoPlan, startApiWorld } from './api-world.js';
import { silent } from './live-fixture.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BUSY_PLAN = 'busy';

async function main(): Promise<void> {
  const world = await startApiWorld();
  const plan = await world.store.plans.get(demoPlan.id);
  if (!plan.ok) throw new Error(plan.error.message);
  const volumes = demoPlan.servers.map((s) => ({ id: `vol-${s}`, server: s, backendRef: `pool/${s}` }));
  const updated = await world.store.plans.update({ ...plan.value, volumes }, plan.value.revision);
  if (!updated.ok) throw new Error(updated.error.message);
  await world.addPlan(agentlessPlan(BUSY_PLAN));
  const registry = new AgentRegistry({ logger: silent });
  const untrack = trackAgents(world.bus, registry);
  const plans = new PlanRegistry({ store: world.store.plans, logger: silent, hasCheckpoints: async () => ok(false), deleteCheckpoints: async () => ok(undefined) });
  const api = { plans, checkpoints: world.service, agents: registry };
  const secured = process.argv.includes('--secure') ? await securedServers(api, world.nc, demoPlan.tenant) : undefined;
  const server = secured?.tls ?? (await startGrpcServer({ api, address: '127.0.0.1:0', logger: silent }));
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    untrack();
    await server.close();
    await secured?.mtls.close();
    await world.stop();
    if (secured !== undefined) rmSync(secured.dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.stdin.on('end', () => void stop());
  process.stdin.on('close', () => void stop());
  process.stdin.resume();
  process.on('SIGTERM', () => void stop());
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${server.port}`, plan: demoPlan.id, busy_plan: BUSY_PLAN, tenant: demoPlan.tenant, volumes: volumes.map((v) => ({ id: v.id, server: v.server })), ...secured?.info })}\n`);
}

const TOKENS = {
  admin: 'py-admin-token-0123456789abcdef',
  viewer: 'py-viewer-token-0123456789abcdef',
  foreign: 'py-foreign-token-0123456789abcdef',
  expired: 'py-expired-token-0123456789abcdef',
} as const;

/** A TLS server taking tokens and an mTLS one, on certificates and a tokens file made for this run. */
async function securedServers(api: GrpcServerOptions['api'], nc: Parameters<typeof jetStreamAudit>[0], tenant: string) {
  const dir = mkdtempSync(join(tmpdir(), 'python-stack-'));
  const pki = testPki(dir);
  pki.ca('ca');
  pki.cert('ca', 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
  pki.cert('ca', 'client', 'protection-service');
  writeFileSync(
    pki.file('tokens.json'),
    JSON.stringify([
      { token: TOKENS.admin, identity: 'py-admin', tenant, role: 'admin' },
      { token: TOKENS.viewer, identity: 'py-viewer', tenant, role: 'viewer' },
      { token: TOKENS.foreign, identity: 'py-foreign', tenant: `not-${tenant}`, role: 'admin' },
      { token: TOKENS.expired, identity: 'py-expired', tenant, role: 'admin', expires: '2020-01-01T00:00:00Z' },
      { certificateCn: 'protection-service', identity: 'py-mtls', tenant: '*', role: 'admin' },
    ]),
  );
  const authenticator = tokensFileAuthenticator(pki.file('tokens.json'));
  if (!authenticator.ok) throw new Error(authenticator.error.message);
  const auth = { authenticator: authenticator.value, audit: await jetStreamAudit(nc, { replicas: 1, logger: silent }) };
  const tls = serverCredentialsFrom({ certFile: pki.file('server.pem'), keyFile: pki.file('server.key') });
  const mtlsCredentials = serverCredentialsFrom({ certFile: pki.file('server.pem'), keyFile: pki.file('server.key'), clientCaFile: pki.file('ca.pem') });
  if (!tls.ok || !mtlsCredentials.ok) throw new Error('TLS files refused');
  const tlsServer = await startGrpcServer({ api, address: '127.0.0.1:0', logger: silent, credentials: tls.value, auth });
  const mtls = await startGrpcServer({ api, address: '127.0.0.1:0', logger: silent, credentials: mtlsCredentials.value, auth });
  return {
    dir,
    tls: tlsServer,
    mtls,
    info: { mtls_address: `127.0.0.1:${mtls.port}`, ca: pki.file('ca.pem'), client_cert: pki.file('client.pem'), client_key: pki.file('client.key'), tokens: TOKENS },
  };
}

main().catch((error: unknown) => {
  process.stderr.write(`python-stack: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
