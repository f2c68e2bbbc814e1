/**
 * Bytes <-> wire messages. Every decoder takes any bytes a peer may send and returns either a
 * validated value or a typed `WireError`; it never throws, so nothing that arrives on a NATS
 * subject can crash a process (the shell logs and counts the error, then drops the message).
 *
 * Encoders run the same validation on what they are about to write and return a `WireError` too:
 * a message the peer would reject (an id out of format, a payload over the size limit) is reported
 * where it is made, not discovered on the far side.
 */
import type protobuf from 'protobufjs/light.js';
import { agentEventFields, readAgentEvent } from './event.js';
import { controlEncodeProblem, controlFields, readControl } from './control.js';
import { creditFields, envelopeFields, readCredit, readEnvelope } from './channel.js';
import { FieldReader, type Fields, plainBytes } from './fields.js';
import { planTriggerEncodeProblem, planTriggerFields, readPlanTrigger } from './plan-trigger.js';
import { agentEventType, controlType, creditType, envelopeType, planTriggerType } from './schema.js';
import type { AgentEvent, Control, Credit, Envelope, PlanTrigger, WireError, WireLimits, WireResult } from './types.js';

/** 1 MiB, the NATS server's default max_payload: a larger message would not be delivered anyway. */
export const wireLimitsDefault: WireLimits = { wireMessageBytesMax: 1024 * 1024 };

/** Validates limits once, where they are configured, so a bad setting fails at start-up. */
export function checkWireLimits(limits: WireLimits): WireResult<WireLimits> {
  const max = limits.wireMessageBytesMax;
  if (!Number.isSafeInteger(max) || max <= 0) {
    return invalid('wireMessageBytesMax', `must be a positive integer number of bytes, got ${String(max)}`);
  }
  return { ok: true, value: limits };
}

function failure<T>(error: WireError): WireResult<T> {
  return { ok: false, error };
}

function invalid<T>(field: string, message: string): WireResult<T> {
  return failure({ kind: 'invalid', field, message });
}

function tooLarge<T>(sizeBytes: number, limits: WireLimits): WireResult<T> {
  return failure(tooLargeError(sizeBytes, limits));
}

export function tooLargeError(sizeBytes: number, limits: WireLimits): WireError {
  return { kind: 'too-large', message: `message is ${sizeBytes} bytes; wireMessageBytesMax is ${limits.wireMessageBytesMax}` };
}

type Read<T> = (reader: FieldReader, message: Fields) => T;

function decodeWith<T>(type: protobuf.Type, bytes: Uint8Array, limits: WireLimits, read: Read<T>): WireResult<T> {
  if (!(bytes instanceof Uint8Array)) return failure({ kind: 'malformed', message: 'input is not a Uint8Array' });
  // Before decoding: an oversized message costs nothing but this comparison.
  if (bytes.byteLength > limits.wireMessageBytesMax) return tooLarge(bytes.byteLength, limits);
  let message: Fields;
  try {
    message = type.decode(plainView(bytes)) as unknown as Fields;
  } catch (error) {
    // protobufjs throws on truncated input, bad wire types, over-long varints and deep nesting.
    const detail = error instanceof Error ? error.message : String(error);
    return failure({ kind: 'malformed', message: `not a valid ${type.name} protobuf: ${detail}` });
  }
  const reader = FieldReader.wire();
  const value = read(reader, message);
  return reader.error === undefined ? { ok: true, value } : failure(reader.error);
}

function encodeWith(type: protobuf.Type, fields: Fields, limits: WireLimits, read: Read<unknown>): WireResult<Uint8Array> {
  const reader = FieldReader.wire();
  read(reader, fields);
  if (reader.error !== undefined) return failure(reader.error);
  const bytes = type.encode(fields).finish();
  if (bytes.byteLength > limits.wireMessageBytesMax) return tooLarge(bytes.byteLength, limits);
  return { ok: true, value: plainBytes(bytes) };
}

export function decodeControl(bytes: Uint8Array, limits: WireLimits = wireLimitsDefault): WireResult<Control> {
  return decodeWith(controlType, bytes, limits, readControl);
}

export function encodeControl(control: Control, limits: WireLimits = wireLimitsDefault): WireResult<Uint8Array> {
  const problem = controlEncodeProblem(control);
  if (problem !== undefined) return invalid(problem.field, problem.message);
  return encodeWith(controlType, controlFields(control), limits, readControl);
}

export function decodePlanTrigger(bytes: Uint8Array, limits: WireLimits = wireLimitsDefault): WireResult<PlanTrigger> {
  return decodeWith(planTriggerType, bytes, limits, readPlanTrigger);
}

export function encodePlanTrigger(trigger: PlanTrigger, limits: WireLimits = wireLimitsDefault): WireResult<Uint8Array> {
  const problem = planTriggerEncodeProblem(trigger);
  if (problem !== undefined) return invalid(problem.field, problem.message);
  return encodeWith(planTriggerType, planTriggerFields(trigger), limits, readPlanTrigger);
}

export function decodeEvent(bytes: Uint8Array, limits: WireLimits = wireLimitsDefault): WireResult<AgentEvent> {
  return decodeWith(agentEventType, bytes, limits, readAgentEvent);
}

export function encodeEvent(event: AgentEvent, limits: WireLimits = wireLimitsDefault): WireResult<Uint8Array> {
  return encodeWith(agentEventType, agentEventFields(event), limits, readAgentEvent);
}

/**
 * `encodeEvent` without the decoder's checks, for the hot path of events a process builds from its
 * own typed values (an agent's acks, progress and heartbeats: once per app and checkpoint). The
 * checks cost more than the encoding; the size limit still holds. test/unit/wire-codec.test.ts holds
 * that it writes exactly `encodeEvent`'s bytes for every valid event.
 */
export function encodeEventTrusted(event: AgentEvent, limits: WireLimits = wireLimitsDefault): WireResult<Uint8Array> {
  const bytes = agentEventType.encode(agentEventFields(event)).finish();
  if (bytes.byteLength > limits.wireMessageBytesMax) return tooLarge(bytes.byteLength, limits);
  return { ok: true, value: plainBytes(bytes) };
}

export function decodeEnvelope(bytes: Uint8Array, limits: WireLimits = wireLimitsDefault): WireResult<Envelope> {
  return decodeWith(envelopeType, bytes, limits, readEnvelope);
}

export function encodeEnvelope(envelope: Envelope, limits: WireLimits = wireLimitsDefault): WireResult<Uint8Array> {
  return encodeWith(envelopeType, envelopeFields(envelope), limits, readEnvelope);
}

export function decodeCredit(bytes: Uint8Array, limits: WireLimits = wireLimitsDefault): WireResult<Credit> {
  return decodeWith(creditType, bytes, limits, readCredit);
}

export function encodeCredit(credit: Credit, limits: WireLimits = wireLimitsDefault): WireResult<Uint8Array> {
  return encodeWith(creditType, creditFields(credit), limits, readCredit);
}

/**
 * protobufjs reads a Node Buffer (what nats.js delivers) with a reader that clips a truncated string
 * to the end of the data instead of failing; a plain Uint8Array view of the same bytes is read
 * strictly, so a truncated message is malformed whatever the caller passes.
 */
export function plainView(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
