/**
 * The one mapping from the coordinator's error kinds to gRPC status codes.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { CoordinatorErrorKind } from '../../coordinator/errors.js';
import { errorInfoOf, ERROR_DOMAIN, grpcCode, REASON_TRAILER, toServiceError } from '../../coordinator/grpc/status.js';

const expected: Record<CoordinatorErrorKind, GrpcStatus> = {
  'invalid-argument': GrpcStatus.INVALID_ARGUMENT,
  'not-found': GrpcStatus.NOT_FOUND,
  'failed-precondition': GrpcStatus.FAILED_PRECONDITION,
  'already-exists': GrpcStatus.ALREADY_EXISTS,
  'deadline-exceeded': GrpcStatus.DEADLINE_EXCEEDED,
  unavailable: GrpcStatus.UNAVAILABLE,
  aborted: GrpcStatus.ABORTED,
  'resource-exhausted': GrpcStatus.RESOURCE_EXHAUSTED,
  internal: GrpcStatus.INTERNAL,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  'permission-denied': GrpcStatus.PERMISSION_DENIED,
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

  it('an error with a reason carries it as a google.rpc.ErrorInfo detail and as a plain trailer', () => {
    const e = toServiceError({ kind: 'resource-exhausted', reason: 'PLAN_BUSY', message: 'PLAN_BUSY: checkpoint 7 of plan demo is in flight', metadata: { plan_id: 'demo', in_flight: '7' } });
    expect(e.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(errorInfoOf(e.metadata)).toEqual({ reason: 'PLAN_BUSY', domain: ERROR_DOMAIN, metadata: { plan_id: 'demo', in_flight: '7' } });
    expect(e.metadata?.get(REASON_TRAILER)).toEqual(['PLAN_BUSY']);
    expect(e.metadata?.get('snapshot-error-plan-id')).toEqual(['demo']);
  });

  it('an error without a reason carries no details trailer', () => {
    expect(errorInfoOf(toServiceError({ kind: 'not-found', message: 'x' }).metadata)).toBeUndefined();
  });
});
