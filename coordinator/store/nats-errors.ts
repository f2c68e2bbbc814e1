/**
 * NATS and JetStream failures turned into the coordinator's typed errors, in one place, so every
 * store answers "the store is down" (UNAVAILABLE: worth a retry) apart from "this is a bug"
 * (INTERNAL) the same way.
 */
import type { CoordinatorError } from '../errors.js';

/** JetStream's API error code for a failed expected-last-subject-sequence check: the CAS lost. */
const WRONG_LAST_SEQUENCE_ERR_CODE = 10071;

/** nats.js error codes that mean the server could not be reached or did not answer in time. */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'TIMEOUT',
  '503',
  '408',
  'CONNECTION_CLOSED',
  'CONNECTION_DRAINING',
  'CONNECTION_REFUSED',
  'CONNECTION_TIMEOUT',
  'DISCONNECT',
]);

interface NatsLikeError {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly api_error?: { readonly err_code?: unknown; readonly code?: unknown; readonly description?: unknown };
}

function asNatsError(error: unknown): NatsLikeError {
  return typeof error === 'object' && error !== null ? (error as NatsLikeError) : {};
}

/** True when a KV write with an expected revision failed because the key moved on (or exists). */
export function isWrongLastSequence(error: unknown): boolean {
  return asNatsError(error).api_error?.err_code === WRONG_LAST_SEQUENCE_ERR_CODE;
}

export function errorText(error: unknown): string {
  const e = asNatsError(error);
  if (typeof e.message === 'string' && e.message !== '') return e.message;
  return String(error);
}

/** `what` says what the store was doing, e.g. `reading plan p1`. */
export function storeError(error: unknown, what: string): CoordinatorError {
  const e = asNatsError(error);
  const code = typeof e.code === 'string' ? e.code : '';
  if (UNAVAILABLE_CODES.has(code)) {
    return { kind: 'unavailable', message: `the store (NATS JetStream) is unavailable while ${what}: ${errorText(error)}` };
  }
  return { kind: 'internal', message: `store error while ${what}: ${errorText(error)}` };
}
