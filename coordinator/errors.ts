/**
 * The coordinator's operating errors as typed values. Each kind maps to one gRPC status code, in one
 * place (grpc/status.ts); the message is written for the person who reads it.
 */
export type CoordinatorErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'failed-precondition'
  | 'already-exists'
  | 'deadline-exceeded'
  | 'unavailable'
  | 'aborted'
  | 'internal';

export interface CoordinatorError {
  readonly kind: CoordinatorErrorKind;
  readonly message: string;
}

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: CoordinatorError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(kind: CoordinatorErrorKind, message: string): Result<T> {
  return { ok: false, error: { kind, message } };
}
