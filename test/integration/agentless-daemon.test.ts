/**
 * snapcoord started with `--server-backend qemu` (and a directory volume backend) takes a
 * crash-level checkpoint of a plan mixing an agent server and a real QEMU machine, through the gRPC
 * API: the daemon's wiring of the server router and the server-aware volume backend. The plan is
 * registered over gRPC (Plan.agentless_servers).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { parseAgentConfig } from '../../agent/config.js';
import { TokenApp } from '../../agent/demo-apps/token-app.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { PlanInput } from '../../coordinator/model.js';
import { freezeMethodOf } from '../../coordinator/servers/backend.js';
import { agentConfigJson } from '../../examples/demo/plan.js';
import { silent } from '../support/live-fixture.js';
import { spawnTsx, value, waitUntil, type Child } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';
import { startQemu, type QemuHandle } from '../support/qemu.js';

let nats: NatsServerHandle;
let vm: QemuHandle;
let dir: string;
let coordinator: Child;
let client: CoordinatorClient;
let agent: Agent;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agentless-daemon-'));
  mkdirSync(join(dir, 'vol', 'a1'), { recursive: true });
  [nats, vm] = await Promise.all([
    startNatsServer(),
    startQemu([
      { id: 'sys', format: 'qcow2' },
      { id: 'data', format: 'qcow2' },
    ]),
  ]);
  coordinator = spawnTsx('coordinator', 'coordinator/main.ts', ['--nats', nats.url, '--listen', '127.0.0.1:0', '--log-level', 'warn', '--volume-backend', `directory:${join(dir, 'snaps')}`, '--server-backend', 'qemu']);
  const address = (await coordinator.waitForOutput(/listening on (\S+)/))[1] as string;
  client = new CoordinatorClient(address, { callTimeoutMs: 20_000 });
  const plan: PlanInput = {
    id: 'mixed',
    tenant: 'acme',
    servers: ['a1', 'vm1'],
    apps: [{ server: 'a1', app: 'A' }],
    channels: [],
    volumes: [
      { id: 'a1-data', server: 'a1', backendRef: join(dir, 'vol', 'a1') },
      { id: 'vm1-system', server: 'vm1', backendRef: 'sys' },
      { id: 'vm1-data', server: 'vm1', backendRef: 'data' },
    ],
    agentlessServers: [{ server: 'vm1', backendRef: vm.qmpSocket }],
  };
  const registered = value(await client.registerPlan(plan, 0), 'RegisterPlan');
  expect(registered.agentlessServers).toEqual(plan.agentlessServers);
  expect(value(await client.getPlan('mixed'), 'GetPlan').agentlessServers).toEqual(plan.agentlessServers);
  const config = parseAgentConfig(agentConfigJson(plan, 'a1', 'A', nats.url, { heartbeatIntervalMs: 500, triggerWaitMs: 500, stateDir: join(dir, 'state') }));
  if (!config.ok) throw new Error(config.problems.join('; '));
  agent = await Agent.start(config.config, silent);
  const app = new TokenApp({ initialTokens: 100, transferTokensMax: 1 });
  const attached = agent.attach('A', app);
  if (!attached.ok) throw new Error(attached.error.message);
  app.bind(attached.link);
  await agent.ready();
}, 90_000);

afterAll(async () => {
  client?.close();
  await agent?.stop();
  await coordinator?.stop();
  await nats?.stop();
  await vm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('snapcoord --server-backend qemu', () => {
  it('completes a crash-level checkpoint of an agent server and a QEMU machine over gRPC; the machine has cp-<id> on both disks', async () => {
    const taken = value(await client.takeSnapshot({ planId: 'mixed', level: 'crash', options: {} }), 'TakeSnapshot');
    const done = await waitUntil('the checkpoint to end', async () => {
      const c = await client.getCheckpoint(taken.id);
      return c.ok && (c.value.state === 'completed' || c.value.state === 'aborted') ? c.value : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    expect(done.failureDetail ?? done.state).toBe('completed');
    expect(Object.fromEntries(done.servers.map((s) => [s.server, freezeMethodOf(s)]))).toEqual({ a1: 'agent-freeze', vm1: 'hypervisor-pause' });
    expect(done.volumes.map((v) => v.snapshotRef).filter((r) => r.startsWith('qemu:')).sort()).toEqual([`qemu:${vm.qmpSocket}#data@cp-${done.id}`, `qemu:${vm.qmpSocket}#sys@cp-${done.id}`]);
    expect(vm.snapshotTags('sys')).toEqual([`cp-${done.id}`]);
    expect(vm.snapshotTags('data')).toEqual([`cp-${done.id}`]);
  }, 60_000);
});
