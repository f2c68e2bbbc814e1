/**
 * The coordinator's operating errors as typed values. Each kind maps to one gRPC status code, in one
 * place (grpc/status.ts); the message is written for the person who reads it.
 */
import { err, type Result as CoreResult } from '../src/result.js';

export type CoordinatorErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'failed-precondition'
  | 'already-exists'
  | 'deadline-exceeded'
  | 'unavailable'
  | 'aborted'
  | 'resource-exhausted'
  | 'internal'
  /** No valid credentials (missing, unknown, expired, malformed): the caller is not known. */
  | 'unauthenticated'
  /** A known caller whose role does not allow the call. */
  | 'permission-denied';

export interface CoordinatorError {
  readonly kind: CoordinatorErrorKind;
  readonly message: string;
  /**
   * A fixed, machine-readable token for callers that act on the cause rather than the code (e.g.
   * PLAN_BUSY: the same request succeeds once a checkpoint in flight ended). It travels as a
   * google.rpc.ErrorInfo reason and as trailing metadata (grpc/status.ts), and starts the message.
   */
  readonly reason?: ErrorReason;
  /** ErrorInfo metadata: the values behind the reason (plan id, checkpoint ids, ...). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** INVALID_ARGUMENT: the request field at fault, as the .proto spells its path (a google.rpc.BadRequest field violation). */
  readonly field?: string;
}

/** The reasons docs/api.md documents; a caller may switch on them. */
export type ErrorReason =
  | 'PLAN_BUSY'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'APP_IN_ANOTHER_PLAN'
  /** Staged checkpoints (BeginCheckpoint, FinishCheckpoint). */
  | 'NOT_STAGED'
  | 'NOT_HELD'
  | 'HOLD_EXPIRED'
  | 'ALREADY_FINISHED'
  | 'CHECKPOINT_ABORTED'
  /** A standby coordinator: the call changes something, and only the leader does that (docs/ha.md). */
  | 'NOT_LEADER';

/** src/result.ts's Result, with the coordinator's error. */
export type Result<T> = CoreResult<T, CoordinatorError>;

export { ok } from '../src/result.js';

export function fail<T = never>(kind: CoordinatorErrorKind, message: string): Result<T> {
  return err({ kind, message });
}

/** INVALID_ARGUMENT naming the request field at fault (`options.timeout`, `volumes[1].server`). */
export function failField<T = never>(field: string, message: string): Result<T> {
  return err({ kind: 'invalid-argument', message, field });
}

/** A failure with a machine-readable reason; the message starts with the reason token. */
export function failWith<T = never>(kind: CoordinatorErrorKind, reason: ErrorReason, message: string, metadata: Readonly<Record<string, string>> = {}): Result<T> {
  return err({ kind, reason, message: `${reason}: ${message}`, metadata });
}
