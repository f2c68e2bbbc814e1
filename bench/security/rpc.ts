/**
 * Every RPC of the Coordinator service, taken from its descriptor (so a new RPC is attacked without
 * a change here), a request for each built from the request type's fields, and one raw call that
 * reports the status a caller gets whatever the method's shape (unary or streaming).
 */
import { Client, Metadata, status as GrpcStatus, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { planInputToProto } from '../../coordinator/grpc/convert.js';
import { COORDINATOR_SERVICE_NAME, coordinatorPackageDefinition } from '../../coordinator/grpc/descriptor.js';
import type { PlanInput } from '../../coordinator/model.js';

interface FieldDescriptor {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly typeName: string;
}

interface TypeDescriptor {
  readonly field?: readonly FieldDescriptor[];
  readonly value?: readonly { readonly name: string }[];
}

interface MethodDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestSerialize: (value: unknown) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => unknown;
  readonly requestType: { readonly type: TypeDescriptor & { readonly name: string } };
}

export interface Rpc {
  /** As in the .proto file, e.g. `TakeSnapshot`. */
  readonly name: string;
  readonly definition: MethodDefinition;
  /** Its request names a plan or checkpoint by id (plan_id, checkpoint_id, or a whole Plan). */
  readonly namesItem: boolean;
  /** Its request carries a Plan to register: another tenant's is refused as such, not hidden. */
  readonly carriesPlan: boolean;
  /** Its request has a top-level `tenant` filter: a listing. */
  readonly listsTenant: boolean;
}

const PACKAGE = COORDINATOR_SERVICE_NAME.slice(0, COORDINATOR_SERVICE_NAME.lastIndexOf('.'));

function typeOf(name: string): TypeDescriptor | undefined {
  const definition = coordinatorPackageDefinition()[name.includes('.') ? name : `${PACKAGE}.${name}`] as { type?: TypeDescriptor } | undefined;
  return definition?.type;
}

const ID_FIELDS = new Set(['plan_id', 'checkpoint_id']);

/** Whether a message, or one it holds (a few levels down), has a field named like `names`. */
function holds(type: TypeDescriptor | undefined, test: (f: FieldDescriptor) => boolean, depth = 0): boolean {
  if (type === undefined || depth > 3) return false;
  return (type.field ?? []).some((f) => test(f) || (f.type === 'TYPE_MESSAGE' && holds(typeOf(f.typeName), test, depth + 1)));
}

export function coordinatorRpcs(): Rpc[] {
  const service = coordinatorPackageDefinition()[COORDINATOR_SERVICE_NAME] as unknown as Record<string, MethodDefinition>;
  return Object.entries(service).map(([name, definition]) => {
    const type = definition.requestType.type;
    const carriesPlan = holds(type, (f) => f.type === 'TYPE_MESSAGE' && f.typeName === 'Plan');
    return {
      name,
      definition,
      carriesPlan,
      namesItem: carriesPlan || holds(type, (f) => ID_FIELDS.has(f.name)),
      listsTenant: (type.field ?? []).some((f) => f.name === 'tenant' && f.type === 'TYPE_STRING'),
    };
  });
}

/** What a request is about: a tenant's plan and one of its checkpoints. */
export interface RequestTarget {
  readonly tenant: string;
  readonly plan: PlanInput;
  readonly checkpointId: number;
}

/**
 * A request a caller of `target.tenant` could make: every plan_id and checkpoint_id (also inside
 * a message such as a policy) names the target's, a Plan is the target's plan, a tenant filter is
 * the target's tenant, a list of server mappings (a restore's) one entry from the plan's first
 * server to one no plan has, and an enum its last value. Everything else keeps its default; messages that name
 * nothing are left out.
 */
export function requestFor(rpc: Rpc, target: RequestTarget): Record<string, unknown> {
  return fill(rpc.definition.requestType.type, target, 0, true);
}

const isServerField = (f: FieldDescriptor): boolean => f.type === 'TYPE_STRING' && /(^|_)server$/.test(f.name);
/** A server no plan has: where a restore's mapping sends the source. */
const ELSEWHERE = 'security-suite-target';

function fill(type: TypeDescriptor, target: RequestTarget, depth: number, top: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of type.field ?? []) {
    const sub = f.type === 'TYPE_MESSAGE' && depth < 3 ? typeOf(f.typeName) : undefined;
    if (f.label === 'LABEL_REPEATED') {
      // A mapping of servers (a restore's): one entry, so the request is not refused as empty.
      if (sub !== undefined && (sub.field ?? []).length > 0 && (sub.field ?? []).every(isServerField)) out[f.name] = [fill(sub, target, depth + 1, false)];
    } else if (f.name === 'plan_id') out[f.name] = target.plan.id;
    else if (f.name === 'checkpoint_id') out[f.name] = String(target.checkpointId);
    else if (top && f.name === 'tenant') out[f.name] = target.tenant;
    // A site no coordinator of the suite has (CopyCheckpoint, ListCheckpointCopies): the call gets past its required arguments.
    else if (top && f.name === 'site' && f.type === 'TYPE_STRING') out[f.name] = 'security-suite-site';
    else if (isServerField(f)) out[f.name] = f.name.startsWith('target') ? ELSEWHERE : target.plan.servers[0];
    else if (f.type === 'TYPE_ENUM') {
      // The last value: the fullest (a consistency level's is APP, which every call accepts).
      const value = typeOf(f.typeName)?.value?.at(-1)?.name;
      if (value !== undefined) out[f.name] = value;
    } else if (f.type === 'TYPE_MESSAGE' && f.typeName === 'Plan') out[f.name] = planInputToProto(target.plan);
    else if (sub !== undefined && holds(sub, (g) => ID_FIELDS.has(g.name))) out[f.name] = fill(sub, target, depth + 1, false);
  }
  return out;
}

export interface CallOutcome {
  readonly code: GrpcStatus;
  readonly message: string;
  /** The responses received (a stream's, up to the first few). */
  readonly responses: readonly unknown[];
}

const STREAM_RESPONSES_MAX = 3;

/**
 * One call with whatever `authorization` header (none when undefined). A stream that was served
 * is cancelled after its first responses: being served is what the suite wanted to know.
 */
export function callRpc(address: string, tls: ChannelCredentials, rpc: Rpc, request: unknown, authorization: string | undefined, timeoutMs: number): Promise<CallOutcome> {
  const client = new Client(address, tls);
  const metadata = new Metadata();
  if (authorization !== undefined) metadata.set('authorization', authorization);
  const { path, requestSerialize, responseDeserialize, requestStream, responseStream } = rpc.definition;
  const options = { deadline: new Date(Date.now() + timeoutMs) };
  return new Promise<CallOutcome>((resolve) => {
    const responses: unknown[] = [];
    let settled = false;
    const end = (error: Partial<ServiceError> | null): void => {
      if (settled) return;
      settled = true;
      client.close();
      resolve(error === null ? { code: GrpcStatus.OK, message: '', responses } : { code: error.code ?? GrpcStatus.UNKNOWN, message: error.details ?? error.message ?? '', responses });
    };
    const callback = (error: ServiceError | null, response?: unknown): void => {
      if (response !== undefined) responses.push(response);
      end(error);
    };
    if (!requestStream && !responseStream) {
      client.makeUnaryRequest(path, requestSerialize, responseDeserialize, request, metadata, options, callback);
      return;
    }
    if (requestStream && !responseStream) {
      const call = client.makeClientStreamRequest(path, requestSerialize, responseDeserialize, metadata, options, callback);
      call.write(request);
      call.end();
      return;
    }
    let stream;
    if (requestStream) {
      const bidi = client.makeBidiStreamRequest(path, requestSerialize, responseDeserialize, metadata, options);
      bidi.write(request);
      bidi.end();
      stream = bidi;
    } else stream = client.makeServerStreamRequest(path, requestSerialize, responseDeserialize, request, metadata, options);
    stream.on('data', (response: unknown) => {
      responses.push(response);
      if (responses.length >= STREAM_RESPONSES_MAX) {
        stream.cancel();
        end(null);
      }
    });
    // The status, not 'end' or 'error', is the call's outcome; an 'error' left unheard would throw.
    stream.on('error', () => undefined);
    stream.on('status', (s: { code: GrpcStatus; details: string }) => end(s.code === GrpcStatus.OK ? null : { code: s.code, details: s.details }));
  });
}
