/**
 * The Coordinator service loaded from the generated JSON descriptor (src/wire/generated), the same
 * way by the server, snapctl and the tests, so all three agree on the options below.
 *
 * - `longs: String`: uint64/int64 arrive as exact decimal strings; fields.ts turns them into
 *   numbers and rejects anything above 2^53 - 1 instead of rounding it (`longs: Number` would
 *   round first and leave nothing to check).
 * - `enums: String`: enum names, which read well in logs and errors; an unknown number stays a
 *   number and is rejected by fields.ts.
 * - `defaults: true`: absent scalars read as their proto3 default, so '' and 0 mean "not set" the
 *   way they do for a Python caller.
 */
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { fromJSON, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { coordinatorDescriptor } from '../../src/wire/generated/coordinator-descriptor.js';

export const protoLoaderOptions: Options = {
  longs: String,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

export const COORDINATOR_SERVICE_NAME = 'snapshot.v1.Coordinator';

export interface CoordinatorGrpc {
  readonly service: ServiceDefinition;
  /** A grpc-js client constructor: `new Client(address, credentials)`. */
  readonly Client: ServiceClientConstructor;
}

let loaded: CoordinatorGrpc | undefined;
let definition: PackageDefinition | undefined;

/** The package definition (with its file descriptors, which server reflection serves). */
export function coordinatorPackageDefinition(): PackageDefinition {
  return (definition ??= fromJSON(coordinatorDescriptor as unknown as Parameters<typeof fromJSON>[0], protoLoaderOptions));
}

export function coordinatorGrpc(): CoordinatorGrpc {
  if (loaded === undefined) {
    const definition = coordinatorPackageDefinition();
    const pkg = loadPackageDefinition(definition) as unknown as { snapshot: { v1: GrpcObject } };
    const Client = pkg.snapshot.v1['Coordinator'] as ServiceClientConstructor;
    loaded = { service: Client.service, Client };
  }
  return loaded;
}
