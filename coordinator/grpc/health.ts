/**
 * The standard gRPC health service (grpc.health.v1.Health), so load balancers, Kubernetes probes
 * and `grpc_health_probe` can ask whether the coordinator serves.
 *
 * Implemented here rather than with the `grpc-health-check` package: that package pins its own
 * @grpc/proto-loader 0.7 (a second copy beside ours), and the service is two small handlers.
 * The .proto text below is the upstream grpc/health/v1/health.proto (options and comments left
 * out), parsed at start-up so the message layout is the standard one byte for byte; the same file
 * ships as proto/grpc/health/v1/health.proto for clients (a test holds the two equal).
 */
import { loadPackageDefinition, status as GrpcStatus, type GrpcObject, type Server, type ServerUnaryCall, type ServerWritableStream, type ServiceClientConstructor, type ServiceDefinition, type sendUnaryData } from '@grpc/grpc-js';
import { fromJSON, type PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { protoLoaderOptions } from './descriptor.js';

export const HEALTH_PROTO = `
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
`;

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

let healthClient: ServiceClientConstructor | undefined;
let healthDefinition: PackageDefinition | undefined;

/** The package definition (with its file descriptors, which server reflection serves). */
export function healthPackageDefinition(): PackageDefinition {
  if (healthDefinition === undefined) {
    const root = protobuf.parse(HEALTH_PROTO, { keepCase: true }).root;
    healthDefinition = fromJSON(root.toJSON() as Parameters<typeof fromJSON>[0], protoLoaderOptions);
  }
  return healthDefinition;
}

/** The Health service definition and a client constructor for it (tests, probes). */
export function healthGrpc(): { service: ServiceDefinition; Client: ServiceClientConstructor } {
  if (healthClient === undefined) {
    const pkg = loadPackageDefinition(healthPackageDefinition()) as unknown as { grpc: { health: { v1: GrpcObject } } };
    healthClient = pkg.grpc.health.v1['Health'] as ServiceClientConstructor;
  }
  return { service: healthClient.service, Client: healthClient };
}

/**
 * Serving status per service name ('' is the whole server). Watchers get the current status at
 * once and every change after; `shutdown` ends their streams so the server can stop.
 */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; call: ServerWritableStream<unknown, unknown> }>();
  private down = false;

  constructor(services: readonly string[]) {
    for (const s of ['', ...services]) this.statuses.set(s, 'SERVING');
  }

  /** Ignored once shut down: a server that is stopping never says SERVING again. */
  setStatus(service: string, status: ServingStatus): void {
    if (this.down) return;
    this.statuses.set(service, status);
    for (const w of this.watchers) if (w.service === service) w.call.write({ status });
  }

  /** Every known service at once (the whole server is or is not able to work). */
  setAll(status: ServingStatus): void {
    for (const service of this.statuses.keys()) this.setStatus(service, status);
  }

  /** Every known service NOT_SERVING, then every watch stream ended. */
  shutdown(): void {
    this.setAll('NOT_SERVING');
    this.down = true;
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  addTo(server: Server): void {
    server.addService(healthGrpc().service, {
      Check: (call: ServerUnaryCall<{ service?: string }, unknown>, callback: sendUnaryData<unknown>) => {
        const status = this.statuses.get(call.request?.service ?? '');
        if (status === undefined) callback({ code: GrpcStatus.NOT_FOUND, details: `unknown service ${call.request?.service ?? ''}` });
        else callback(null, { status });
      },
      Watch: (call: ServerWritableStream<{ service?: string }, unknown>) => {
        const service = call.request?.service ?? '';
        const watcher = { service, call: call as ServerWritableStream<unknown, unknown> };
        this.watchers.add(watcher);
        call.on('cancelled', () => this.watchers.delete(watcher));
        call.write({ status: this.statuses.get(service) ?? 'SERVICE_UNKNOWN' });
      },
    });
  }
}
