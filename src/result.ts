/**
 * The one result type of the project: an operating error or a refused input is a value, told apart
 * from success by `ok` (STYLE 6), never an exception. Every layer names its own error type `E`
 * (`WireError`, `CoordinatorError`, a list of messages, ...) but shares this shape, so helpers and
 * readers need to learn it once.
 */
export type Result<T, E> = Ok<T> | Err<E>;

export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Err<E> {
  readonly ok: false;
  readonly error: E;
}

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

export function err<E>(error: E): Err<E> {
  return { ok: false, error };
}
