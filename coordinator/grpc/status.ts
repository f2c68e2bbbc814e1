/**
 * The one place where the coordinator's typed errors become gRPC status codes. Handlers never pick
 * a code themselves; a new error kind fails to compile here until it is given one.
 */
import { status as GrpcStatus, type ServiceError, Metadata } from '@grpc/grpc-js';
import type { CoordinatorError, CoordinatorErrorKind } from '../errors.js';

const CODES: { readonly [K in CoordinatorErrorKind]: GrpcStatus } = {
  'invalid-argument': GrpcStatus.INVALID_ARGUMENT,
  'not-found': GrpcStatus.NOT_FOUND,
  'failed-precondition': GrpcStatus.FAILED_PRECONDITION,
  'already-exists': GrpcStatus.ALREADY_EXISTS,
  'deadline-exceeded': GrpcStatus.DEADLINE_EXCEEDED,
  unavailable: GrpcStatus.UNAVAILABLE,
  aborted: GrpcStatus.ABORTED,
  internal: GrpcStatus.INTERNAL,
};

export function grpcCode(kind: CoordinatorErrorKind): GrpcStatus {
  return CODES[kind];
}

/** The error a handler passes to its callback (or emits on a stream). */
export function toServiceError(error: CoordinatorError): Partial<ServiceError> {
  return { code: grpcCode(error.kind), details: error.message, metadata: new Metadata() };
}
