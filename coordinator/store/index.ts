/**
 * The coordinator's durable state on NATS JetStream: plans, checkpoint records and their id
 * sequence, per-plan epochs, per-plan admission slots, and rollback/restore operations.
 * `openCoordinatorStore` opens (or creates) the buckets and returns the stores;
 * everything else talks to the interfaces, so a test or the simulator can supply its own.
 */
import type { NatsConnection } from 'nats';
import { JetStreamCheckpointStore, type CheckpointStore, type CheckpointStoreLimits } from './checkpoints.js';
import { casRetryDefault, validateCasRetry } from './counter.js';
import { JetStreamEpochStore, type EpochStore } from './epochs.js';
import { bucketOptionsDefault, openBuckets, validateBucketOptions, type BucketOptions, type CoordinatorBuckets } from './kv.js';
import { JetStreamPlanStore, type PlanStore } from './plans.js';
import { JetStreamSlotStore, type SlotStore } from './slots.js';
import { JetStreamKeyedCallStore, type KeyedCallStore } from './keyed.js';
import { JetStreamOperationStore, type OperationStore } from './operations.js';
import { CachedEpochStore, CachedPlanStore } from './cached.js';

export type { CheckpointFilter, CheckpointStore, CheckpointStoreLimits, CreateOutcome, IdempotencyClaim, StoredCheckpoint } from './checkpoints.js';
export { checkpointKey, CHECKPOINT_ID_COUNTER_KEY, JetStreamCheckpointStore } from './checkpoints.js';
export type { CasRetry } from './counter.js';
export type { EpochStore } from './epochs.js';
export { epochKey, JetStreamEpochStore } from './epochs.js';
export type { BucketOptions, CoordinatorBuckets } from './kv.js';
export { BUCKET_CHECKPOINTS, BUCKET_LEADER, BUCKET_META, BUCKET_PLANS, openBuckets, openLeaderBucket } from './kv.js';
export type { PlanFilter, PlanStore, PlanValue } from './plans.js';
export { JetStreamPlanStore, planKey } from './plans.js';
export type { SlotStep, SlotStore } from './slots.js';
export type { KeyedCall, KeyedCallKind, KeyedCallStore, KeyedClaim } from './keyed.js';
export { JetStreamKeyedCallStore, keyedCallKey } from './keyed.js';
export { JetStreamSlotStore, slotsKey } from './slots.js';

export interface CoordinatorStoreOptions extends BucketOptions, CheckpointStoreLimits {}

export const coordinatorStoreOptionsDefault: CoordinatorStoreOptions = {
  ...bucketOptionsDefault,
  ...casRetryDefault,
  pageSizeMax: 1_000,
  idempotencyClaimStaleMs: 60_000,
};

export interface CoordinatorStore {
  readonly plans: PlanStore;
  readonly checkpoints: CheckpointStore;
  readonly epochs: EpochStore;
  /** Each plan's admission slots: its checkpoints in flight. */
  readonly slots: SlotStore;
  /** Idempotency keys of DeleteCheckpoint, CancelCheckpoint, PinCheckpoint and UnpinCheckpoint. */
  readonly keyed: KeyedCallStore;
  /** Rollback and restore operations (coordinator/store/operations.ts). */
  readonly operations: OperationStore;
  readonly buckets: CoordinatorBuckets;
}

/** Validates the options (throwing at start-up on a bad one), opens the buckets, builds the stores. */
export async function openCoordinatorStore(
  nc: NatsConnection,
  overrides: Partial<CoordinatorStoreOptions> = {},
): Promise<CoordinatorStore> {
  const options: CoordinatorStoreOptions = { ...coordinatorStoreOptionsDefault, ...overrides };
  const invalid = validateBucketOptions(options) ?? validateCasRetry(options);
  if (invalid !== undefined) throw new Error(`invalid coordinator store options: ${invalid}`);
  const buckets = await openBuckets(nc, options);
  return {
    // Read on every checkpoint: from memory, kept current by KV watches (cached.ts).
    plans: new CachedPlanStore(new JetStreamPlanStore(buckets.plans, options.pageSizeMax), buckets.plans, undefined),
    checkpoints: new JetStreamCheckpointStore(buckets.checkpoints, buckets.meta, options),
    epochs: new CachedEpochStore(new JetStreamEpochStore(buckets.meta, options), buckets.meta, undefined),
    slots: new JetStreamSlotStore(buckets.meta, options),
    keyed: new JetStreamKeyedCallStore(buckets.checkpoints, options.idempotencyClaimStaleMs),
    operations: new JetStreamOperationStore(buckets.meta),
    buckets,
  };
}
