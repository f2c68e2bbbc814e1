/**
 * How a coordinator takes on a server backend: its control bus becomes the server router (freeze
 * and thaw of servers without an agent carried out by the backend) and its volume backend the
 * server-aware one (their disks snapshotted by the backend, the rest by `volumes` if any).
 */
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { CoordinatorStore } from '../store/index.js';
import type { VolumeBackend } from '../volumes/backend.js';
import type { ServerBackend } from './backend.js';
import { planOfCheckpoint, ServerRoutingBus } from './router.js';
import { ServerAwareVolumes } from './volumes.js';

export { createServerBackend, type ServerBackend } from './backend.js';

export function withServerBackend(nc: NatsConnection, log: Logger, servers: ServerBackend, store: CoordinatorStore, volumes: VolumeBackend | undefined): { bus: ServerRoutingBus; volumes: VolumeBackend } {
  const bus = new ServerRoutingBus(nc, log, servers, store.plans);
  return { bus, volumes: new ServerAwareVolumes(volumes, servers, planOfCheckpoint(bus, store.checkpoints, store.plans)) };
}
