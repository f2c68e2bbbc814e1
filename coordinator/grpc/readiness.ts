/**
 * Honest health: the coordinator answers SERVING only while it can do its work, that is while its
 * NATS connection is up and its store (JetStream KV) answers. A disconnect turns health NOT_SERVING
 * at once (and is logged at warn); the reconnect is logged at info, and health turns SERVING again
 * once the store answers a probe. The store is also probed now and then while connected: a
 * JetStream that stopped answering (a full disk, a lost cluster quorum) is unreachable too.
 */
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { CoordinatorBuckets } from '../store/index.js';
import type { ServingStatus } from './health.js';

export interface ReadinessOptions {
  readonly nc: Pick<NatsConnection, 'status' | 'isClosed'>;
  /** Resolves when the store answered; rejects (or times out) when it did not. */
  readonly probeStore: () => Promise<void>;
  readonly setStatus: (status: ServingStatus) => void;
  readonly logger: Logger;
  /** Time between store probes while connected. */
  readonly probeIntervalMs?: number;
  /** A probe that has not answered by then counts as failed. */
  readonly probeTimeoutMs?: number;
}

export interface ReadinessHandle {
  /** Whether health says SERVING now. */
  serving(): boolean;
  stop(): void;
}

export const READINESS_DEFAULTS = { probeIntervalMs: 5_000, probeTimeoutMs: 3_000 } as const;

/** A probe of the store: the meta bucket's stream info, one JetStream API round trip. */
export function storeProbe(buckets: Pick<CoordinatorBuckets, 'meta'>): () => Promise<void> {
  return async () => {
    await buckets.meta.status();
  };
}

export function watchReadiness(options: ReadinessOptions): ReadinessHandle {
  const log = options.logger.child({ component: 'readiness' });
  const probeIntervalMs = options.probeIntervalMs ?? READINESS_DEFAULTS.probeIntervalMs;
  const probeTimeoutMs = options.probeTimeoutMs ?? READINESS_DEFAULTS.probeTimeoutMs;
  let connected = true;
  let storeUp = true;
  let stopped = false;
  let serving = true;
  let probing = false;

  const update = (): void => {
    const now = connected && storeUp;
    if (now === serving || stopped) return;
    serving = now;
    options.setStatus(now ? 'SERVING' : 'NOT_SERVING');
    if (now) log.info('health SERVING: NATS connected and the store answers');
    else log.warn({ natsConnected: connected, storeReachable: storeUp }, 'health NOT_SERVING: the coordinator cannot do its work until NATS and its store are back');
  };

  const probe = async (): Promise<void> => {
    if (probing || stopped) return;
    probing = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        options.probeStore(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${probeTimeoutMs} ms`)), probeTimeoutMs);
        }),
      ]);
      if (!storeUp) log.info('the store (JetStream) answers again');
      storeUp = true;
    } catch (error) {
      if (storeUp) log.warn({ error: error instanceof Error ? error.message : String(error) }, 'the store (JetStream) does not answer');
      storeUp = false;
    } finally {
      clearTimeout(timer);
      probing = false;
    }
    update();
  };

  const timer = setInterval(() => {
    // While disconnected a probe would only wait for its timeout: the reconnect starts one.
    if (connected) void probe();
  }, probeIntervalMs);
  timer.unref();

  void (async () => {
    for await (const s of options.nc.status()) {
      if (stopped) break;
      const server = typeof s.data === 'string' ? s.data : undefined;
      switch (s.type) {
        case 'disconnect':
          connected = false;
          log.warn({ server }, 'NATS disconnected; reconnecting');
          update();
          break;
        case 'reconnect':
          connected = true;
          log.info({ server }, 'NATS reconnected');
          void probe();
          break;
        case 'error':
          log.warn({ error: String(s.data) }, 'NATS connection error');
          break;
        case 'staleConnection':
          log.warn({ server }, 'NATS connection stale (no pong); reconnecting');
          break;
        default:
          log.debug({ type: s.type, data: s.data }, 'NATS connection status');
      }
    }
    if (!stopped && options.nc.isClosed()) {
      connected = false;
      log.error('NATS connection closed for good');
      update();
    }
  })();

  return {
    serving: () => serving,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
