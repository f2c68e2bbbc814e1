/**
 * The local API's messages (proto/snapshot/v1/local.proto) as TypeScript values, and their codec.
 * Shared by the server (agent/local-api/server.ts) and the SDK (agent/sdk/), so both ends enforce
 * the same rules.
 *
 * As in src/wire/codec.ts: every decoder takes any bytes a peer may send and returns a validated
 * value or a typed WireError, never throws; every encoder runs the same validation on what it is
 * about to write, so a message the peer would refuse is reported where it is made. Sizes of payloads
 * and states are deployment limits, not format rules: the server checks them (and answers
 * PAYLOAD_TOO_LARGE / STATE_TOO_LARGE) so that an oversized Send can still be answered by its id.
 *
 * gRPC carries the bytes; the service definitions here pass Buffers through untouched and leave
 * decoding to these functions, so that a message that does not decode is our outcome to handle (an
 * Error to the app, a log line, a counter) rather than grpc-js ending the call with INTERNAL.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs/light.js';
import type { AppSendErrorKind } from '../app.js';
import type { ChannelId, CheckpointId } from '../../src/ids.js';
import { type EnumTable, enumTable } from '../../src/wire/enum-table.js';
import { localDescriptor } from '../../src/wire/generated/local-descriptor.js';
import { FieldReader, type Fields, plainBytes, wireFormat } from '../../src/wire/fields.js';
import { oneofCase } from '../../src/wire/oneof.js';
import type { WireError, WireResult } from '../../src/wire/types.js';

// ------------------------------------------------------------------------------------------------
// Values
// ------------------------------------------------------------------------------------------------

/** Why the agent refused a Send: the AppSendError kinds, plus one only the local API can see. */
export type LocalSendErrorKind = AppSendErrorKind | 'discarded-by-restore';

/** AgentToApp.Error.ErrorKind; see local.proto for which of them end the stream. */
export type LocalErrorKind =
  | 'unknown-app'
  | 'already-attached'
  | 'protocol'
  | 'hello-timeout'
  | 'reply-timeout'
  | 'state-too-large'
  | 'shutting-down'
  | 'internal';

/** What the app writes. */
export type AppToAgent =
  | { readonly type: 'hello'; readonly app: string }
  | { readonly type: 'send'; readonly requestId: number; readonly channel: ChannelId; readonly payload: Uint8Array }
  | {
      readonly type: 'snapshot-reply';
      readonly requestId: number;
      readonly ok: boolean;
      readonly state: Uint8Array;
      readonly error: string;
      /** The last Send the app wrote before it captured `state` (0: none). */
      readonly lastSendRequestId: number;
    }
  | { readonly type: 'restore-done'; readonly requestId: number; readonly ok: boolean; readonly error: string }
  | { readonly type: 'deliver-done'; readonly requestId: number; readonly ok: boolean; readonly error: string };

/** What the agent writes. */
export type AgentToApp =
  | {
      readonly type: 'welcome';
      readonly app: string;
      readonly inputs: readonly ChannelId[];
      readonly outputs: readonly ChannelId[];
      readonly sendPayloadBytesMax: number;
      readonly stateBytesMax: number;
    }
  | { readonly type: 'deliver'; readonly requestId: number; readonly channel: ChannelId; readonly payload: Uint8Array }
  | { readonly type: 'snapshot-request'; readonly requestId: number; readonly checkpointId: CheckpointId }
  | {
      readonly type: 'restore-request';
      readonly requestId: number;
      readonly checkpointId: CheckpointId;
      readonly state: Uint8Array;
    }
  | { readonly type: 'paused' }
  | { readonly type: 'resumed' }
  | { readonly type: 'send-result'; readonly requestId: number; readonly ok: true }
  | {
      readonly type: 'send-result';
      readonly requestId: number;
      readonly ok: false;
      readonly errorKind: LocalSendErrorKind;
      readonly errorMessage: string;
    }
  | { readonly type: 'error'; readonly kind: LocalErrorKind; readonly message: string; readonly requestId: number };

/** Error kinds after which the agent ends the stream. */
export const streamEndingErrorKinds: ReadonlySet<LocalErrorKind> = new Set<LocalErrorKind>([
  'unknown-app',
  'already-attached',
  'hello-timeout',
  'shutting-down',
  'internal',
]);

/** A Send's channel id is checked by the agent against the app's outputs; this only bounds it. */
const channelCharsMax = 4 * wireFormat.nameCharsMax + 8;

// ------------------------------------------------------------------------------------------------
// Schema
// ------------------------------------------------------------------------------------------------

// The generated descriptor is a plain object literal; its inferred type is narrower than INamespace.
const root = protobuf.Root.fromJSON(localDescriptor as unknown as protobuf.INamespace);
const appToAgentType = root.lookupType('snapshot.v1.AppToAgent');
const agentToAppType = root.lookupType('snapshot.v1.AgentToApp');

function localEnum<T extends string>(enumName: string, prefix: string, names: Readonly<Record<T, true>>): EnumTable<T> {
  return enumTable('local API schema', enumName, root.lookupEnum(enumName).values, prefix, names);
}

const sendErrorKindTable = localEnum<LocalSendErrorKind>('snapshot.v1.AgentToApp.SendResult.SendErrorKind', 'SEND_ERROR_KIND', {
  'unknown-channel': true,
  'queue-full': true,
  'channel-failed': true,
  closed: true,
  'payload-too-large': true,
  'discarded-by-restore': true,
});

const errorKindTable = localEnum<LocalErrorKind>('snapshot.v1.AgentToApp.Error.ErrorKind', 'ERROR_KIND', {
  'unknown-app': true,
  'already-attached': true,
  protocol: true,
  'hello-timeout': true,
  'reply-timeout': true,
  'state-too-large': true,
  'shutting-down': true,
  internal: true,
});

const attachMethod = root.lookupService('snapshot.v1.AgentLocal').methods['Attach'];
if (attachMethod === undefined || attachMethod.requestStream !== true || attachMethod.responseStream !== true) {
  throw new Error('local API schema: AgentLocal.Attach must be a bidirectional stream');
}

/** The gRPC method path, as every language's generated client spells it. */
export const attachPath = '/snapshot.v1.AgentLocal/Attach';

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The AgentLocal service for grpc-js with raw bytes in both directions (see the module comment).
 * The server reads AppToAgent bytes and writes AgentToApp bytes; the SDK the other way round.
 */
export const agentLocalService: ServiceDefinition = {
  attach: {
    path: attachPath,
    requestStream: true,
    responseStream: true,
    requestSerialize: (value: Uint8Array) => toBuffer(value),
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: Uint8Array) => toBuffer(value),
    responseDeserialize: (bytes: Buffer) => bytes,
    originalName: 'Attach',
  },
};

// ------------------------------------------------------------------------------------------------
// Reading (decoded protobuf message or encoder's field object -> value)
// ------------------------------------------------------------------------------------------------

/** proto3 sends no empty bytes: an absent field (or protobufjs' prototype default) reads as empty. */
function bytesField(reader: FieldReader, message: Fields, name: string, field: string): Uint8Array {
  if (!Object.hasOwn(message, name) || message[name] === undefined || message[name] === null) return new Uint8Array(0);
  return plainBytes(reader.bytes(message[name], field));
}

function channelText(reader: FieldReader, value: unknown, field: string): string {
  const text = reader.text(value, field, channelCharsMax);
  if (text === '') reader.fail(field, 'is required');
  return text;
}

function readAppToAgent(reader: FieldReader, message: Fields): AppToAgent {
  const which = oneofCase(reader, message, 'msg', ['hello', 'send', 'snapshot_reply', 'restore_done', 'deliver_done'] as const);
  const placeholder: AppToAgent = { type: 'hello', app: '' };
  if (which === undefined) return placeholder;
  const body = reader.message(message[which], which);
  switch (which) {
    case 'hello':
      return { type: 'hello', app: reader.name(body.app, 'hello.app') };
    case 'send':
      return {
        type: 'send',
        requestId: reader.positive(body.request_id, 'send.request_id'),
        channel: channelText(reader, body.channel, 'send.channel'),
        payload: bytesField(reader, body, 'payload', 'send.payload'),
      };
    case 'snapshot_reply':
      return {
        type: 'snapshot-reply',
        requestId: reader.positive(body.request_id, 'snapshot_reply.request_id'),
        ok: reader.bool(body.ok, 'snapshot_reply.ok'),
        state: bytesField(reader, body, 'state', 'snapshot_reply.state'),
        error: reader.text(body.error, 'snapshot_reply.error', wireFormat.detailCharsMax),
        lastSendRequestId: reader.uint(body.last_send_request_id, 'snapshot_reply.last_send_request_id'),
      };
    case 'restore_done':
      return {
        type: 'restore-done',
        requestId: reader.positive(body.request_id, 'restore_done.request_id'),
        ok: reader.bool(body.ok, 'restore_done.ok'),
        error: reader.text(body.error, 'restore_done.error', wireFormat.detailCharsMax),
      };
    case 'deliver_done':
      return {
        type: 'deliver-done',
        requestId: reader.positive(body.request_id, 'deliver_done.request_id'),
        ok: reader.bool(body.ok, 'deliver_done.ok'),
        error: reader.text(body.error, 'deliver_done.error', wireFormat.detailCharsMax),
      };
  }
}

function readAgentToApp(reader: FieldReader, message: Fields): AgentToApp {
  const which = oneofCase(
    reader,
    message,
    'msg',
    ['welcome', 'deliver', 'snapshot_request', 'restore_request', 'paused', 'resumed', 'send_result', 'error'] as const,
  );
  const placeholder: AgentToApp = { type: 'paused' };
  if (which === undefined) return placeholder;
  const body = reader.message(message[which], which);
  switch (which) {
    case 'welcome': {
      const inputs = reader.list(body.inputs, 'welcome.inputs').map((c, i) => reader.channel(c, `welcome.inputs[${i}]`));
      const outputs = reader.list(body.outputs, 'welcome.outputs').map((c, i) => reader.channel(c, `welcome.outputs[${i}]`));
      reader.unique(inputs, 'welcome.inputs');
      reader.unique(outputs, 'welcome.outputs');
      return {
        type: 'welcome',
        app: reader.name(body.app, 'welcome.app'),
        inputs,
        outputs,
        sendPayloadBytesMax: reader.positive(body.send_payload_bytes_max, 'welcome.send_payload_bytes_max'),
        stateBytesMax: reader.positive(body.state_bytes_max, 'welcome.state_bytes_max'),
      };
    }
    case 'deliver':
      return {
        type: 'deliver',
        requestId: reader.positive(body.request_id, 'deliver.request_id'),
        channel: reader.channel(body.channel, 'deliver.channel'),
        payload: bytesField(reader, body, 'payload', 'deliver.payload'),
      };
    case 'snapshot_request':
      return {
        type: 'snapshot-request',
        requestId: reader.positive(body.request_id, 'snapshot_request.request_id'),
        checkpointId: reader.positive(body.checkpoint_id, 'snapshot_request.checkpoint_id'),
      };
    case 'restore_request':
      return {
        type: 'restore-request',
        requestId: reader.positive(body.request_id, 'restore_request.request_id'),
        checkpointId: reader.positive(body.checkpoint_id, 'restore_request.checkpoint_id'),
        state: bytesField(reader, body, 'state', 'restore_request.state'),
      };
    case 'paused':
      return { type: 'paused' };
    case 'resumed':
      return { type: 'resumed' };
    case 'send_result': {
      const requestId = reader.positive(body.request_id, 'send_result.request_id');
      if (reader.bool(body.ok, 'send_result.ok')) return { type: 'send-result', requestId, ok: true };
      return {
        type: 'send-result',
        requestId,
        ok: false,
        errorKind: reader.enumValue(body.error_kind, 'send_result.error_kind', sendErrorKindTable.byNumber) ?? 'closed',
        errorMessage: reader.text(body.error_message, 'send_result.error_message', wireFormat.detailCharsMax),
      };
    }
    case 'error':
      return {
        type: 'error',
        kind: reader.enumValue(body.kind, 'error.kind', errorKindTable.byNumber) ?? 'internal',
        message: reader.text(body.message, 'error.message', wireFormat.detailCharsMax),
        requestId: reader.uint(body.request_id, 'error.request_id'),
      };
  }
}

// ------------------------------------------------------------------------------------------------
// Writing (value -> proto field object)
// ------------------------------------------------------------------------------------------------

function appToAgentFields(message: AppToAgent): Fields {
  switch (message.type) {
    case 'hello':
      return { hello: { app: message.app } };
    case 'send':
      return { send: { request_id: message.requestId, channel: message.channel, payload: message.payload } };
    case 'snapshot-reply':
      return {
        snapshot_reply: {
          request_id: message.requestId,
          ok: message.ok,
          state: message.state,
          error: message.error,
          last_send_request_id: message.lastSendRequestId,
        },
      };
    case 'restore-done':
      return { restore_done: { request_id: message.requestId, ok: message.ok, error: message.error } };
    case 'deliver-done':
      return { deliver_done: { request_id: message.requestId, ok: message.ok, error: message.error } };
  }
}

function agentToAppFields(message: AgentToApp): Fields {
  switch (message.type) {
    case 'welcome':
      return {
        welcome: {
          app: message.app,
          inputs: [...message.inputs],
          outputs: [...message.outputs],
          send_payload_bytes_max: message.sendPayloadBytesMax,
          state_bytes_max: message.stateBytesMax,
        },
      };
    case 'deliver':
      return { deliver: { request_id: message.requestId, channel: message.channel, payload: message.payload } };
    case 'snapshot-request':
      return { snapshot_request: { request_id: message.requestId, checkpoint_id: message.checkpointId } };
    case 'restore-request':
      return { restore_request: { request_id: message.requestId, checkpoint_id: message.checkpointId, state: message.state } };
    case 'paused':
      return { paused: {} };
    case 'resumed':
      return { resumed: {} };
    case 'send-result':
      return message.ok
        ? { send_result: { request_id: message.requestId, ok: true } }
        : {
            send_result: {
              request_id: message.requestId,
              ok: false,
              error_kind: sendErrorKindTable.byName.get(message.errorKind),
              error_message: message.errorMessage,
            },
          };
    case 'error':
      return { error: { kind: errorKindTable.byName.get(message.kind), message: message.message, request_id: message.requestId } };
  }
}

// ------------------------------------------------------------------------------------------------
// Codec
// ------------------------------------------------------------------------------------------------

type Read<T> = (reader: FieldReader, message: Fields) => T;

function decodeWith<T>(type: protobuf.Type, bytes: Uint8Array, read: Read<T>): WireResult<T> {
  if (!(bytes instanceof Uint8Array)) return { ok: false, error: { kind: 'malformed', message: 'input is not bytes' } };
  let message: Fields;
  try {
    message = type.decode(bytes) as unknown as Fields;
  } catch (error) {
    // protobufjs throws on truncated input, bad wire types, over-long varints and deep nesting.
    const detail = error instanceof Error ? error.message : String(error);
    return { ok: false, error: { kind: 'malformed', message: `not a valid ${type.name} protobuf: ${detail}` } };
  }
  const reader = FieldReader.wire();
  const value = read(reader, message);
  return reader.error === undefined ? { ok: true, value } : { ok: false, error: reader.error };
}

function encodeWith(type: protobuf.Type, fields: Fields, read: Read<unknown>): WireResult<Uint8Array> {
  const reader = FieldReader.wire();
  read(reader, fields);
  if (reader.error !== undefined) return { ok: false, error: reader.error };
  return { ok: true, value: plainBytes(type.encode(fields).finish()) };
}

export function decodeAppToAgent(bytes: Uint8Array): WireResult<AppToAgent> {
  return decodeWith(appToAgentType, bytes, readAppToAgent);
}

export function encodeAppToAgent(message: AppToAgent): WireResult<Uint8Array> {
  return encodeWith(appToAgentType, appToAgentFields(message), readAppToAgent);
}

export function decodeAgentToApp(bytes: Uint8Array): WireResult<AgentToApp> {
  return decodeWith(agentToAppType, bytes, readAgentToApp);
}

export function encodeAgentToApp(message: AgentToApp): WireResult<Uint8Array> {
  return encodeWith(agentToAppType, agentToAppFields(message), readAgentToApp);
}

/** One line for a log or an Error message. */
export function describeWireError(error: WireError): string {
  return error.field === undefined ? `${error.kind}: ${error.message}` : `${error.kind}: ${error.field} ${error.message}`;
}
