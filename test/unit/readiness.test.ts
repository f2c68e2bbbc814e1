/**
 * The store side of honest health, with NATS connected: a store that stops answering its probe (or
 * answers too late) turns health NOT_SERVING, and SERVING again once it answers.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ServingStatus } from '../../coordinator/grpc/health.js';
import { watchReadiness } from '../../coordinator/grpc/readiness.js';

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('readiness: the store probe', () => {
  it('NOT_SERVING while the store fails or hangs, SERVING once it answers', async () => {
    let store: 'up' | 'failing' | 'hanging' = 'up';
    const statuses: ServingStatus[] = [];
    // A connection that never changes status: only the store moves here.
    const nc = { status: () => ({ async *[Symbol.asyncIterator]() {} }) as never, isClosed: () => false };
    const handle = watchReadiness({
      nc,
      probeStore: () => (store === 'up' ? Promise.resolve() : store === 'failing' ? Promise.reject(new Error('JetStream not available')) : new Promise<void>(() => undefined)),
      setStatus: (s) => statuses.push(s),
      logger: pino({ level: 'silent' }),
      probeIntervalMs: 20,
      probeTimeoutMs: 50,
    });
    try {
      await new Promise((r) => setTimeout(r, 100));
      expect(statuses).toEqual([]);
      store = 'failing';
      await until(() => statuses.length === 1);
      expect(handle.serving()).toBe(false);
      store = 'up';
      await until(() => statuses.length === 2);
      store = 'hanging';
      await until(() => statuses.length === 3);
      store = 'up';
      await until(() => statuses.length === 4);
      expect(statuses).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING', 'SERVING']);
    } finally {
      handle.stop();
    }
  });
});
