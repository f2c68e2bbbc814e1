/**
 * The coordinator creates each tenant's state bucket when the tenant's first agent registers (and
 * `snapctl tenant create` does at once): with NATS accounts, an agent may store objects in its
 * tenant's bucket but not create it (docs/security.md). Once per tenant per process; a failure is
 * logged and tried again at the next register.
 */
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { ensureStateBucket, stateBucketName, type StateObjectsOptions } from '../../adapters/state-store.js';
import type { ControlBus } from '../bus.js';

export function createStateBuckets(bus: Pick<ControlBus, 'onEvents'>, connectionFor: (tenant: string) => Promise<NatsConnection>, options: Pick<StateObjectsOptions, 'replicas' | 'bucketBytesMax'>, log: Logger): () => void {
  const done = new Set<string>();
  return bus.onEvents((e) => {
    if (e.type !== 'register' || done.has(e.tenant)) return;
    done.add(e.tenant);
    void connectionFor(e.tenant)
      .then((nc) => ensureStateBucket(nc, e.tenant, options))
      .catch((error: unknown) => {
        done.delete(e.tenant);
        log.error({ tenant: e.tenant, bucket: stateBucketName(e.tenant), err: error instanceof Error ? error.message : String(error) }, 'state bucket not created');
      });
  });
}
