/**
 * The 503 window of a NATS cluster, for every JetStream client of the project (the coordinator's KV
 * store, coordinator/store/retry.ts; the agents' Object Store, adapters/state-store.ts): while
 * JetStream elects a stream's leader (about 4.6 s on nats-server 2.9.10 after the leader's node is
 * killed) or a client moves to another node, calls fail at once with code 503 ("no responders" or
 * "JetStream not ready"). No server handled such a request, so it is safe to send it again.
 * A request can also go unanswered in that window: a read that timed out is sent again too, a write
 * that timed out is not, since it may have landed.
 */
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

/** JetStream's error code for "no suitable peers for placement": a cluster whose peers are not all known yet. */
const NO_SUITABLE_PEERS = 10005;

/**
 * True for the answers no server acted on: no responders, JetStream (or the stream's leader) not
 * ready, or, on a cluster still forming, no peers yet to place a stream's replicas on.
 */
function isNotReady(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; api_error?: { code?: unknown; err_code?: unknown } };
  return e.code === '503' || e.api_error?.code === 503 || e.api_error?.err_code === NO_SUITABLE_PEERS;
}

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
