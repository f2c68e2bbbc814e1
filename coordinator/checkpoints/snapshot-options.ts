/**
 * A TakeSnapshot request's options: defaults filled in, every duration checked against its range
 * (out of range is INVALID_ARGUMENT and nothing starts), and the comparison a retried keyed request
 * is held to: the same key with other arguments is refused, naming both.
 */
import type { TakeSnapshotRequest } from '../api.js';
import { failField, failWith, ok, type Result } from '../errors.js';
import type { CheckpointRecord, SnapshotOptions } from '../model.js';

export interface OptionLimits {
  readonly defaults: SnapshotOptions;
  readonly timeoutMsMax: number;
  readonly freezeDeadlineMsMax: number;
  readonly maxConcurrentMax: number;
}

function definedOnly<T extends object>(o: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The options in force for a request, or INVALID_ARGUMENT naming the field as the .proto spells it. */
export function snapshotOptions(limits: OptionLimits, requested: Partial<SnapshotOptions>): Result<SnapshotOptions> {
  const o: SnapshotOptions = { ...limits.defaults, ...definedOnly(requested) };
  const range = (field: string, v: number, min: number, max: number, unit = ' ms'): [string, string] | undefined =>
    Number.isSafeInteger(v) && v >= min && v <= max ? undefined : [field, `${field} ${v}${unit} is out of range: from ${min} to ${max}${unit}`];
  const problem =
    range('options.timeout', o.timeoutMs, 1, limits.timeoutMsMax) ??
    range('options.freeze_deadline', o.freezeDeadlineMs, 1, limits.freezeDeadlineMsMax) ??
    // An alignment timeout at or past the checkpoint's own timeout would never fire.
    range('options.alignment_timeout', o.alignmentTimeoutMs, 0, Math.max(0, o.timeoutMs - 1)) ??
    range('options.max_concurrent', o.maxConcurrent ?? 1, 1, limits.maxConcurrentMax, '');
  return problem === undefined ? ok(o) : failField(problem[0], problem[1]);
}

/** A take in words, for the message that names both uses of a key. */
function describe(planId: string, level: string, o: SnapshotOptions): string {
  return `plan ${planId}, level ${level}, timeout ${o.timeoutMs} ms, alignment_mode ${o.alignmentMode}, alignment_timeout ${o.alignmentTimeoutMs} ms, fallback_policy ${o.fallbackPolicy}, freeze_deadline ${o.freezeDeadlineMs} ms, max_concurrent ${o.maxConcurrent ?? 1}`;
}

/**
 * The answer to a keyed request whose key already has a checkpoint: that checkpoint when the
 * arguments are the same, INVALID_ARGUMENT naming both when they are not.
 */
export function sameTake(existing: CheckpointRecord, request: TakeSnapshotRequest, options: SnapshotOptions): Result<CheckpointRecord> {
  const first = describe(existing.planId, existing.levelRequested, existing.options);
  const again = describe(request.planId, request.level, options);
  if (first === again) return ok(existing);
  return failWith(
    'invalid-argument',
    'IDEMPOTENCY_KEY_REUSED',
    `idempotency_key ${JSON.stringify(request.idempotencyKey ?? '')} was first used for checkpoint ${existing.id} (${first}); this call asks for (${again}): use a new key for a different request`,
    { idempotency_key: request.idempotencyKey ?? '', checkpoint_id: String(existing.id) },
  );
}
