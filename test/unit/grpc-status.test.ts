/**
 * The one mapping from the coordinator's error kinds to gRPC status codes.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { CoordinatorErrorKind } from '../../coordinator/errors.js';
import { grpcCode, toServiceError } from '../../coordinator/grpc/status.js';

const expected: Record<CoordinatorErrorKind, GrpcStatus> = {
  'invalid-argument': GrpcStatus.INVALID_ARGUMENT,
  'not-found': GrpcStatus.NOT_FOUND,
  'failed-precondition': GrpcStatus.FAILED_PRECONDITION,
  'already-exists': GrpcStatus.ALREADY_EXISTS,
  'deadline-exceeded': GrpcStatus.DEADLINE_EXCEEDED,
  unavailable: GrpcStatus.UNAVAILABLE,
  aborted: GrpcStatus.ABORTED,
  internal: GrpcStatus.INTERNAL,
};

describe('gRPC status mapping', () => {
  for (const [kind, code] of Object.entries(expected) as [CoordinatorErrorKind, GrpcStatus][]) {
    it(`${kind} maps to ${GrpcStatus[code]}`, () => {
      expect(grpcCode(kind)).toBe(code);
    });
  }

  it('no two kinds share a code, so a client can tell every kind apart', () => {
    const codes = Object.keys(expected).map((k) => grpcCode(k as CoordinatorErrorKind));
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('the service error carries the message unchanged as the status details', () => {
    expect(toServiceError({ kind: 'not-found', message: 'plan p1 does not exist' })).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
      details: 'plan p1 does not exist',
    });
  });
});
