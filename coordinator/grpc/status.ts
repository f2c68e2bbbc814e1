/**
 * The one place where the coordinator's typed errors become gRPC status codes. Handlers never pick
 * a code themselves; a new error kind fails to compile here until it is given one.
 *
 * An INVALID_ARGUMENT that names its field carries a `google.rpc.BadRequest` field violation in the
 * same trailer (the field's path as the .proto spells it, the message as its description).
 *
 * An error with a machine-readable reason (PLAN_BUSY, ...) carries it twice, for every kind of
 * client: as a `google.rpc.Status` with a `google.rpc.ErrorInfo` detail in the standard
 * `grpc-status-details-bin` trailer (Python: `grpc_status.rpc_status.from_call(call)`), and as the
 * plain trailer `snapshot-error-reason` (any client that reads trailing metadata), with the
 * ErrorInfo metadata as `snapshot-error-<key>` trailers.
 */
import { status as GrpcStatus, type ServiceError, Metadata } from '@grpc/grpc-js';
import protobuf from 'protobufjs/light.js';
import type { CoordinatorError, CoordinatorErrorKind } from '../errors.js';

const CODES: { readonly [K in CoordinatorErrorKind]: GrpcStatus } = {
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

/** The ErrorInfo domain of every reason this coordinator sends. */
export const ERROR_DOMAIN = 'snapshot.v1.Coordinator';
export const REASON_TRAILER = 'snapshot-error-reason';
const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

// google/rpc/status.proto, google/rpc/error_details.proto (ErrorInfo) and google/protobuf/any.proto,
// the fields this file needs, as protobufjs descriptors: the well-known wire format, no .proto files.
// A map field (ErrorInfo.metadata) is valid JSON for fromJSON but not in its INamespace typing.
const rpc = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        rpc: {
          nested: {
            Status: { fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 } } },
            ErrorInfo: { fields: { reason: { type: 'string', id: 1 }, domain: { type: 'string', id: 2 }, metadata: { keyType: 'string', type: 'string', id: 3 } } },
            BadRequest: {
              fields: { field_violations: { rule: 'repeated', type: 'FieldViolation', id: 1 } },
              nested: { FieldViolation: { fields: { field: { type: 'string', id: 1 }, description: { type: 'string', id: 2 } } } },
            },
          },
        },
        protobuf: { nested: { Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } } } },
      },
    },
  },
} as unknown as protobuf.INamespace);
const StatusType = rpc.lookupType('google.rpc.Status');
const ErrorInfoType = rpc.lookupType('google.rpc.ErrorInfo');
const BadRequestType = rpc.lookupType('google.rpc.BadRequest');

export function grpcCode(kind: CoordinatorErrorKind): GrpcStatus {
  return CODES[kind];
}

/** The error a handler passes to its callback (or emits on a stream). */
export function toServiceError(error: CoordinatorError): Partial<ServiceError> {
  const code = grpcCode(error.kind);
  const metadata = new Metadata();
  const details: { type_url: string; value: Uint8Array }[] = [];
  if (error.reason !== undefined) {
    const info = ErrorInfoType.encode(ErrorInfoType.fromObject({ reason: error.reason, domain: ERROR_DOMAIN, metadata: error.metadata ?? {} })).finish();
    details.push({ type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: info });
    metadata.set(REASON_TRAILER, error.reason);
    for (const [k, v] of Object.entries(error.metadata ?? {})) metadata.set(`snapshot-error-${k.replace(/_/g, '-')}`, v);
  }
  if (error.field !== undefined && error.kind === 'invalid-argument') {
    const bad = BadRequestType.encode(BadRequestType.fromObject({ field_violations: [{ field: error.field, description: error.message }] })).finish();
    details.push({ type_url: 'type.googleapis.com/google.rpc.BadRequest', value: bad });
  }
  if (details.length > 0) metadata.set(STATUS_DETAILS_TRAILER, Buffer.from(StatusType.encode(StatusType.fromObject({ code, message: error.message, details })).finish()));
  return { code, details: error.message, metadata };
}

/** The BadRequest field violations of a status (client side, and tests); empty when it carries none. */
export function fieldViolationsOf(metadata: Metadata | undefined): { field: string; description: string }[] {
  const raw = metadata?.get(STATUS_DETAILS_TRAILER)[0];
  if (raw === undefined || typeof raw === 'string') return [];
  const status = StatusType.toObject(StatusType.decode(raw), { defaults: true }) as { details: { type_url: string; value: Uint8Array }[] };
  const detail = status.details.find((d) => d.type_url.endsWith('/google.rpc.BadRequest'));
  if (detail === undefined) return [];
  return (BadRequestType.toObject(BadRequestType.decode(detail.value), { defaults: true }) as { field_violations: { field: string; description: string }[] }).field_violations;
}

/** The ErrorInfo of a status (client side, and tests); undefined when it carries none. */
export function errorInfoOf(metadata: Metadata | undefined): { reason: string; domain: string; metadata: Record<string, string> } | undefined {
  const raw = metadata?.get(STATUS_DETAILS_TRAILER)[0];
  if (raw === undefined || typeof raw === 'string') return undefined;
  const status = StatusType.toObject(StatusType.decode(raw), { defaults: true }) as { details: { type_url: string; value: Uint8Array }[] };
  const detail = status.details.find((d) => d.type_url.endsWith('/google.rpc.ErrorInfo'));
  if (detail === undefined) return undefined;
  return ErrorInfoType.toObject(ErrorInfoType.decode(detail.value), { defaults: true }) as { reason: string; domain: string; metadata: Record<string, string> };
}
