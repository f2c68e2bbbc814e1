/**
 * The 503 window of a NATS cluster: while JetStream elects a stream's leader (about 4.6 s on
 * nats-server 2.9.10 after the leader's node is killed, measured with examples/nats-cluster.ts) or a
 * client reconnects to another node, every KV call fails at once with code 503 ("no responders" or
 * "JetStream not ready"). No server handled such a request, so it is safe to send it again, even a
 * create or a compare-and-set update. `retryingKv` sends each call again until it succeeds, fails
 * otherwise, or its budget is spent; the last 503 then goes to the caller (the stores turn it into
 * UNAVAILABLE). A request can also go unanswered in that window (a stream with no leader yet, or a
 * client moving to another node): a read that timed out is sent again too, within the budget, but a
 * write that timed out is not, since it may have landed.
 */
import type { KV } from 'nats';

export interface NotReadyRetry {
  /** How long one call keeps retrying 503 answers, from its first attempt. 0: no retry. */
  readonly notReadyRetryMs: number;
  /** Pause between attempts. */
  readonly notReadyPauseMs: number;
}

export const notReadyRetryDefault: NotReadyRetry = { notReadyRetryMs: 20_000, notReadyPauseMs: 100 };

export function validateNotReadyRetry(r: NotReadyRetry): string | undefined {
  if (!Number.isInteger(r.notReadyRetryMs) || r.notReadyRetryMs < 0) return `notReadyRetryMs must be a non-negative integer, got ${r.notReadyRetryMs}`;
  if (!Number.isInteger(r.notReadyPauseMs) || r.notReadyPauseMs < 1) return `notReadyPauseMs must be a positive integer, got ${r.notReadyPauseMs}`;
  return undefined;
}

/** True for the answers no server acted on: no responders, or JetStream (or the stream's leader) not ready. */
export function isNotReady(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; api_error?: { code?: unknown } };
  return e.code === '503' || e.api_error?.code === 503;
}

/** The KV calls that change nothing: safe to send again after a timeout. */
const READS: ReadonlySet<string | symbol> = new Set(['get', 'keys', 'history', 'status']);

function isTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'TIMEOUT';
}

/**
 * Runs `call` until it succeeds, fails with something other than 503 (or, for a `read`, a
 * timeout), or `retry.notReadyRetryMs` is spent.
 */
export async function retryNotReady<T>(retry: NotReadyRetry, call: () => Promise<T>, read = false): Promise<T> {
  const deadline = performance.now() + retry.notReadyRetryMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const left = deadline - performance.now();
      if (!(isNotReady(error) || (read && isTimeout(error))) || left <= 0) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(retry.notReadyPauseMs, left)));
    }
  }
}

/** The bucket with every promise-returning method retried through the 503 window. */
export function retryingKv(kv: KV, retry: NotReadyRetry): KV {
  if (retry.notReadyRetryMs === 0) return kv;
  return new Proxy(kv, {
    get(target, property, receiver) {
      const v: unknown = Reflect.get(target, property, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        const first: unknown = Reflect.apply(v, target, args);
        if (!(first instanceof Promise)) return first;
        let used = false;
        // The first attempt is already under way; later ones call again.
        return retryNotReady(
          retry,
          () => {
            if (!used) {
              used = true;
              return first;
            }
            return Reflect.apply(v, target, args) as Promise<unknown>;
          },
          READS.has(property),
        );
      };
    },
  });
}
