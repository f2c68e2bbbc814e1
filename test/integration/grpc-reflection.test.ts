/**
 * Server reflection as grpcurl uses it: the v1 reflection service lists the Coordinator and Health
 * services and serves the file that describes the Coordinator, so a tool needs no .proto file.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type ClientDuplexStream, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/test-coordinator.js';

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_message: string };
}

function ask(client: Client, request: object): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as { ServerReflectionInfo(): ClientDuplexStream<object, ReflectionResponse> }).ServerReflectionInfo();
    call.once('data', (d: ReflectionResponse) => {
      resolve(d);
      call.end();
    });
    call.once('error', reject);
    call.write(request);
  });
}

describe('gRPC server reflection', () => {
  let coordinator: TestCoordinator;
  let client: Client;

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    const pkg = loadPackageDefinition(loadSync(REFLECTION_PROTO, { keepCase: true })) as unknown as { grpc: { reflection: { v1: GrpcObject } } };
    const Reflection = pkg.grpc.reflection.v1['ServerReflection'] as ServiceClientConstructor;
    client = new Reflection(coordinator.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await coordinator?.stop();
  });

  it('lists the Coordinator and Health services', async () => {
    const answer = await ask(client, { list_services: '' });
    const names = answer.list_services_response?.service.map((s) => s.name) ?? [];
    expect(names).toEqual(expect.arrayContaining(['snapshot.v1.Coordinator', 'grpc.health.v1.Health']));
  });

  it('serves the descriptor of the file that holds a symbol', async () => {
    const answer = await ask(client, { file_containing_symbol: 'snapshot.v1.Coordinator' });
    const files = answer.file_descriptor_response?.file_descriptor_proto ?? [];
    expect(files.length).toBeGreaterThan(0);
    // The serialized FileDescriptorProto names the service and its methods.
    const text = Buffer.concat(files).toString('latin1');
    expect(text).toContain('TakeSnapshot');
    expect(text).toContain('snapshot.v1');
  });
});
