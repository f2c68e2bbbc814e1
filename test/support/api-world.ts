/**
 * The checkpoint service over a real nats-server for the API tests (admission, cancel, pin,
 * retention, restart): the demo plan with its three agents and token apps, plus plans whose servers
 * have no agent (their checkpoints stay in flight until their timeout, which is what admission
 * tests need), and optionally (`withVolumes`) a directory volume backend. `startService` builds another service
 * over the same store and bus: a second coordinator, or one started after the first died.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { Agent } from '../../agent/agent.js';
import { JetStreamStateObjects } from '../../adapters/state-store.js';
import { ControlBus } from '../../coordinator/bus.js';
import { CHECKPOINT_SERVICE_DEFAULTS, CheckpointService, type CheckpointServiceOptions } from '../../coordinator/checkpoints/service.js';
import type { PlanInput } from '../../coordinator/model.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { DirectoryBackend } from '../../coordinator/volumes/directory.js';
import type { VolumeBackend } from '../../coordinator/volumes/backend.js';
import { TokenApp } from '../../agent/demo-apps/token-app.js';
import { agentConfig, demoPlan, silent, TENANT } from './live-fixture.js';
import { startNatsServer, type NatsServerHandle } from './nats-server.js';

export { demoPlan, TENANT };

export interface ApiWorld {
  readonly nats: NatsServerHandle;
  readonly nc: NatsConnection;
  readonly store: CoordinatorStore;
  readonly objects: JetStreamStateObjects;
  readonly bus: ControlBus;
  readonly service: CheckpointService;
  readonly volumes: VolumeBackend | undefined;
  /** The directory the volume backend keeps its volumes and snapshots in, when it has one. */
  readonly volumeDir: string | undefined;
  /** Stores a plan directly (no registry rules): e.g. one whose servers have no agent. */
  addPlan(plan: PlanInput): Promise<void>;
  /** Another checkpoint service over the same store and NATS (a second or restarted coordinator). */
  startService(options?: Partial<CheckpointServiceOptions>): CheckpointService;
  stop(): Promise<void>;
}

/** A plan of `servers` servers with one app each and no agent behind them. */
export function agentlessPlan(id: string, servers = 2): PlanInput {
  const names = Array.from({ length: servers }, (_, i) => `${id}-srv${i + 1}`);
  return {
    id,
    tenant: TENANT,
    servers: names,
    apps: names.map((server) => ({ server, app: 'APP' })),
    channels: names.slice(1).map((server, i) => ({ from: { server: names[i] as string, app: 'APP' }, to: { server, app: 'APP' }, kind: 'in-band' as const })),
    volumes: [],
  };
}

export async function startApiWorld(options: Partial<Omit<CheckpointServiceOptions, 'volumes'>> & { withVolumes?: boolean; agents?: boolean } = {}): Promise<ApiWorld> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const store = await openCoordinatorStore(nc);
  const objects = new JetStreamStateObjects(nc);
  const bus = new ControlBus(nc, silent);
  await bus.start();
  const volumeDir = options.withVolumes ? mkdtempSync(join(tmpdir(), 'api-world-')) : undefined;
  const volumes = volumeDir !== undefined ? new DirectoryBackend(join(volumeDir, 'snapshots'), silent) : undefined;
  const { withVolumes: _v, agents: withAgents = true, ...serviceOptions } = options;
  const startService = (more: Partial<CheckpointServiceOptions> = {}): CheckpointService =>
    new CheckpointService(store, objects, bus, silent, {
      ...CHECKPOINT_SERVICE_DEFAULTS,
      defaults: { ...CHECKPOINT_SERVICE_DEFAULTS.defaults, timeoutMs: 10_000 },
      restoreTimeoutMs: 10_000,
      ...(volumes ? { volumes } : {}),
      ...serviceOptions,
      ...more,
    });
  const service = startService();
  const addPlan = async (plan: PlanInput): Promise<void> => {
    const created = await store.plans.create({ ...plan, createdAtUnixMs: Date.now(), updatedAtUnixMs: Date.now() });
    if (!created.ok) throw new Error(created.error.message);
  };
  await addPlan(demoPlan);
  const agents: Agent[] = [];
  if (withAgents) {
    for (const a of demoPlan.apps) {
      const agent = await Agent.start(agentConfig(a.server, a.app, nats.url), silent);
      const app = new TokenApp({ initialTokens: 1_000, transferTokensMax: 10 });
      const attached = agent.attach(a.app, app);
      if (!attached.ok) throw new Error(attached.error.message);
      app.bind(attached.link);
      agents.push(agent);
    }
    for (const agent of agents) await agent.ready();
  }
  return {
    nats,
    nc,
    store,
    objects,
    bus,
    service,
    volumes,
    volumeDir,
    addPlan,
    startService,
    async stop() {
      for (const agent of agents) await agent.stop();
      bus.stop();
      await nc.drain().catch(() => undefined);
      await nats.stop();
      if (volumeDir !== undefined) rmSync(volumeDir, { recursive: true, force: true });
    },
  };
}
