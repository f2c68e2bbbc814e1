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
import { retryNotReady, type NotReadyRetry } from '../../adapters/not-ready-retry.js';

export { notReadyRetryDefault, retryNotReady, validateNotReadyRetry, type NotReadyRetry } from '../../adapters/not-ready-retry.js';

/** The KV calls that change nothing: safe to send again after a timeout. */
const READS: ReadonlySet<string | symbol> = new Set(['get', 'keys', 'history', 'status']);

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
