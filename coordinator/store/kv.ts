/**
 * The coordinator's JetStream KV buckets, opened (or created on first use) in one place so every
 * component agrees on names and history:
 *
 * - `snap-plans`: one key per plan, `plan.<id>`; history 5 so an operator can see what a plan
 *   looked like before the last few replacements (`nats kv history snap-plans plan.<id>`).
 * - `snap-checkpoints`: one key per checkpoint record, `cp.<zero-padded id>`, plus idempotency-key
 *   claims; history 1 because records change on every ack and old versions have no use.
 * - `snap-meta`: counters (the checkpoint id sequence, per-plan epochs); history 1.
 * - `snap-leader`: the coordinators' leader lease (coordinator/lease.ts); history 1.
 *
 * Each bucket has `replicas` copies: 3 on a 3-node NATS cluster (a majority survives the loss of a
 * node), 1 on a single server. Every call retries the 503 window of a leader election (retry.ts).
 */
import type { KV, NatsConnection } from 'nats';
import { notReadyRetryDefault, retryingKv, retryNotReady, validateNotReadyRetry, type NotReadyRetry } from './retry.js';

export const BUCKET_PLANS = 'snap-plans';
export const BUCKET_CHECKPOINTS = 'snap-checkpoints';
export const BUCKET_META = 'snap-meta';
export const BUCKET_LEADER = 'snap-leader';

const HISTORY = { plans: 5, checkpoints: 1, meta: 1, leader: 1 } as const;
/** JetStream allows at most this many values per key. */
const KV_HISTORY_MAX = 64;

export interface BucketOptions extends NotReadyRetry {
  /** Copies of each bucket in a NATS cluster; 1 on a single server. */
  readonly replicas: number;
  /** How long one JetStream API call may take before it fails as unavailable. */
  readonly requestTimeoutMs: number;
}

export const bucketOptionsDefault: BucketOptions = { replicas: 1, requestTimeoutMs: 5_000, ...notReadyRetryDefault };

export interface CoordinatorBuckets {
  readonly plans: KV;
  readonly checkpoints: KV;
  readonly meta: KV;
}

export function validateBucketOptions(options: BucketOptions): string | undefined {
  if (!Number.isInteger(options.replicas) || options.replicas < 1 || options.replicas > 5) {
    return `replicas must be an integer from 1 to 5, got ${options.replicas}`;
  }
  if (!Number.isInteger(options.requestTimeoutMs) || options.requestTimeoutMs < 1) {
    return `requestTimeoutMs must be a positive integer, got ${options.requestTimeoutMs}`;
  }
  return validateNotReadyRetry(options);
}

export function opener(nc: NatsConnection, options: BucketOptions): (name: string, history: number) => Promise<KV> {
  const invalid = validateBucketOptions(options);
  if (invalid !== undefined) throw new Error(`invalid bucket options: ${invalid}`);
  const js = nc.jetstream({ timeout: options.requestTimeoutMs });
  return async (name, history) => {
    if (history < 1 || history > KV_HISTORY_MAX) throw new Error(`history ${history} of ${name} is out of range`);
    // allow_direct false: a read goes to the stream's leader. A direct get may be answered by any
    // replica, and on nats-server 2.9.10 a replica that rejoined after a node's SIGKILL answered
    // "not found" for records it had not caught up on: the chaos run saw 13 completed checkpoints
    // read as missing (docs/RELIABILITY.md, F6). The coordinator must read its own writes.
    // Opening reads the stream's info, or creates it: sent again on a timeout too (read: true), since
    // a create that landed is found by the next attempt's read. A coordinator started while one node
    // of three was away exited with TIMEOUT otherwise (docs/RELIABILITY.md, F2).
    const kv = await retryNotReady(options, () => js.views.kv(name, { history, replicas: options.replicas, timeout: options.requestTimeoutMs, allow_direct: false }), true);
    return retryingKv(kv, options);
  };
}

/** Opens the three buckets, creating any that is missing. Throws on invalid options (a bug at start-up). */
export async function openBuckets(nc: NatsConnection, options: BucketOptions = bucketOptionsDefault): Promise<CoordinatorBuckets> {
  const open = opener(nc, options);
  const [plans, checkpoints, meta] = await Promise.all([
    open(BUCKET_PLANS, HISTORY.plans),
    open(BUCKET_CHECKPOINTS, HISTORY.checkpoints),
    open(BUCKET_META, HISTORY.meta),
  ]);
  return { plans, checkpoints, meta };
}

/** Opens (or creates) the leader lease's bucket. Throws on invalid options (a bug at start-up). */
export function openLeaderBucket(nc: NatsConnection, options: BucketOptions = bucketOptionsDefault): Promise<KV> {
  return opener(nc, options)(BUCKET_LEADER, HISTORY.leader);
}
