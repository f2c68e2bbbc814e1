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
 */
import { AgentRegistry, trackAgents } from '../../coordinator/agents.js';
import { startGrpcServer } from '../../coordinator/grpc/server.js';
import { PlanRegistry } from '../../coordinator/plans.js';
import { ok } from '../../coordinator/errors.js';
import { agentlessPlan, demoPlan, startApiWorld } from './api-world.js';
import { silent } from './live-fixture.js';

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
  const server = await startGrpcServer({ api: { plans, checkpoints: world.service, agents: registry }, address: '127.0.0.1:0', logger: silent });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    untrack();
    await server.close();
    await world.stop();
    process.exit(0);
  };
  process.stdin.on('end', () => void stop());
  process.stdin.on('close', () => void stop());
  process.stdin.resume();
  process.on('SIGTERM', () => void stop());
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${server.port}`, plan: demoPlan.id, busy_plan: BUSY_PLAN, tenant: demoPlan.tenant, volumes: volumes.map((v) => ({ id: v.id, server: v.server })) })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`python-stack: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
