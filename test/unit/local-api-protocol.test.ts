/**
 * The local API's codec (agent/local-api/protocol.ts) and limit validation: every message survives
 * a round trip through the bytes, anything a peer could write that is not a valid message is a
 * typed error rather than an exception, and the encoders refuse what the decoders would refuse.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeAgentToApp,
  decodeAppToAgent,
  encodeAgentToApp,
  encodeAppToAgent,
  streamEndingErrorKinds,
  type AgentToApp,
  type AppToAgent,
} from '../../agent/local-api/protocol.js';
import { checkLocalApiLimits, LOCAL_API_LIMITS_DEFAULT } from '../../agent/local-api/server.js';

function mustEncode(result: { ok: true; value: Uint8Array } | { ok: false; error: { message: string } }): Uint8Array {
  if (!result.ok) throw new Error(result.error.message);
  return result.value;
}

const payload = new Uint8Array([0, 1, 2, 255]);

const appMessages: AppToAgent[] = [
  { type: 'hello', app: 'orders' },
  { type: 'send', requestId: 1, channel: 'srv1/orders->srv2/billing', payload },
  { type: 'send', requestId: Number.MAX_SAFE_INTEGER, channel: 'a->b', payload: new Uint8Array(0) },
  { type: 'snapshot-reply', requestId: 2, ok: true, state: payload, error: '', lastSendRequestId: 7 },
  { type: 'snapshot-reply', requestId: 3, ok: false, state: new Uint8Array(0), error: 'disk full', lastSendRequestId: 0 },
  { type: 'restore-done', requestId: 4, ok: true, error: '' },
  { type: 'restore-done', requestId: 5, ok: false, error: 'corrupt' },
  { type: 'deliver-done', requestId: 6, ok: true, error: '' },
];

const agentMessages: AgentToApp[] = [
  {
    type: 'welcome',
    app: 'orders',
    inputs: ['srv1/web->srv1/orders'],
    outputs: ['srv1/orders->srv2/billing', 'srv1/orders->srv3/audit'],
    sendPayloadBytesMax: 1024,
    stateBytesMax: 4096,
  },
  { type: 'welcome', app: 'lonely', inputs: [], outputs: [], sendPayloadBytesMax: 1, stateBytesMax: 1 },
  { type: 'deliver', requestId: 1, channel: 'srv1/web->srv1/orders', payload },
  { type: 'snapshot-request', requestId: 2, checkpointId: 42 },
  { type: 'restore-request', requestId: 3, checkpointId: 42, state: payload },
  { type: 'paused' },
  { type: 'resumed' },
  { type: 'send-result', requestId: 4, ok: true },
  { type: 'send-result', requestId: 5, ok: false, errorKind: 'queue-full', errorMessage: 'slow down' },
  { type: 'send-result', requestId: 6, ok: false, errorKind: 'discarded-by-restore', errorMessage: '' },
  { type: 'error', kind: 'reply-timeout', message: 'no answer', requestId: 3 },
  { type: 'error', kind: 'protocol', message: 'bad', requestId: 0 },
];

describe('local API codec: round trips', () => {
  it.each(appMessages.map((m) => [`${m.type} ${JSON.stringify(m).slice(0, 60)}`, m] as const))('app -> agent: %s', (_, message) => {
    expect(decodeAppToAgent(mustEncode(encodeAppToAgent(message)))).toEqual({ ok: true, value: message });
  });

  it.each(agentMessages.map((m) => [`${m.type} ${JSON.stringify(m).slice(0, 60)}`, m] as const))('agent -> app: %s', (_, message) => {
    expect(decodeAgentToApp(mustEncode(encodeAgentToApp(message)))).toEqual({ ok: true, value: message });
  });
});

describe('local API codec: what a peer may write that is refused', () => {
  it('bytes that are not protobuf: malformed, not an exception', () => {
    const result = decodeAppToAgent(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.kind).toBe('malformed');
    expect(decodeAgentToApp(new Uint8Array([0x0a, 0x05, 0x01])).ok).toBe(false);
  });

  it('an empty message (no member of the oneof): invalid, naming the oneof', () => {
    const result = decodeAppToAgent(new Uint8Array(0));
    expect(result).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'msg' } });
  });

  it('two members of the oneof at once (two messages concatenated): invalid, so one cannot hide behind the other', () => {
    const hello = mustEncode(encodeAppToAgent({ type: 'hello', app: 'orders' }));
    const done = mustEncode(encodeAppToAgent({ type: 'deliver-done', requestId: 1, ok: true, error: '' }));
    const both = new Uint8Array([...hello, ...done]);
    expect(decodeAppToAgent(both)).toMatchObject({ ok: false, error: { field: 'msg' } });
  });

  it('a request id of 0 is refused (proto3 default: the peer forgot it)', () => {
    expect(encodeAppToAgent({ type: 'send', requestId: 0, channel: 'a->b', payload })).toMatchObject({
      ok: false,
      error: { field: 'send.request_id' },
    });
    // The same bytes written by a peer that does not validate: field 1 (send) holding only a channel.
    const raw = new Uint8Array([0x12, 0x06, 0x12, 0x04, 0x61, 0x2d, 0x3e, 0x62]);
    expect(decodeAppToAgent(raw)).toMatchObject({ ok: false, error: { field: 'send.request_id' } });
  });

  it('a request id at or above 2^53 is refused rather than rounded', () => {
    // AppToAgent.send { request_id = 2^53 } written by hand: 2^53 as a varint is 0x80 x7, 0x10.
    const varint = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
    const send = [0x08, ...varint, 0x12, 0x04, 0x61, 0x2d, 0x3e, 0x62];
    const raw = new Uint8Array([0x12, send.length, ...send]);
    expect(decodeAppToAgent(raw)).toMatchObject({ ok: false, error: { field: 'send.request_id' } });
  });

  it('a Hello whose app name is not [A-Za-z0-9_-]{1,64} is refused', () => {
    for (const app of ['', 'has space', 'x'.repeat(65), 'slash/ed']) {
      expect(encodeAppToAgent({ type: 'hello', app }).ok, JSON.stringify(app)).toBe(false);
    }
  });

  it('a Send without a channel is refused; its channel format is left to the agent (which answers unknown-channel)', () => {
    expect(encodeAppToAgent({ type: 'send', requestId: 1, channel: '', payload }).ok).toBe(false);
    expect(encodeAppToAgent({ type: 'send', requestId: 1, channel: 'not a channel', payload }).ok).toBe(true);
  });

  it('the agent cannot write a Welcome or Deliver with a malformed channel id, or a SendResult failure without a kind', () => {
    expect(
      encodeAgentToApp({ type: 'welcome', app: 'a', inputs: ['nope'], outputs: [], sendPayloadBytesMax: 1, stateBytesMax: 1 }).ok,
    ).toBe(false);
    expect(
      encodeAgentToApp({ type: 'welcome', app: 'a', inputs: ['x->y', 'x->y'], outputs: [], sendPayloadBytesMax: 1, stateBytesMax: 1 }).ok,
    ).toBe(false);
    expect(encodeAgentToApp({ type: 'deliver', requestId: 1, channel: 'nope', payload }).ok).toBe(false);
    // AgentToApp.send_result { request_id: 1, ok: false } with error_kind left UNSPECIFIED.
    const raw = new Uint8Array([0x3a, 0x02, 0x08, 0x01]);
    expect(decodeAgentToApp(raw)).toMatchObject({ ok: false, error: { field: 'send_result.error_kind' } });
  });

  it('an unknown enum number is refused', () => {
    // AgentToApp.error { kind: 99 }
    const raw = new Uint8Array([0x42, 0x02, 0x08, 99]);
    expect(decodeAgentToApp(raw)).toMatchObject({ ok: false, error: { field: 'error.kind' } });
  });

  it('the stream-ending error kinds are the ones local.proto says end the stream', () => {
    expect([...streamEndingErrorKinds].sort()).toEqual(['already-attached', 'hello-timeout', 'internal', 'shutting-down', 'unknown-app']);
  });
});

describe('local API limits', () => {
  it('no limits given: the defaults', () => {
    expect(checkLocalApiLimits()).toEqual({ ok: true, value: LOCAL_API_LIMITS_DEFAULT });
  });

  it('a partial override keeps the other defaults', () => {
    const checked = checkLocalApiLimits({ snapshotReplyTimeoutMs: 500 });
    expect(checked).toEqual({ ok: true, value: { ...LOCAL_API_LIMITS_DEFAULT, snapshotReplyTimeoutMs: 500 } });
  });

  it('every bad limit is named: zero, negative, fractional, too long for a timer, too large for gRPC, unknown', () => {
    const checked = checkLocalApiLimits({
      deliverAckTimeoutMs: 0,
      restoreReplyTimeoutMs: -1,
      helloTimeoutMs: 1.5,
      snapshotReplyTimeoutMs: 2 ** 31,
      stateBytesMax: 2 ** 31,
      ...({ bogusLimitMs: 1 } as object),
    });
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    const all = checked.problems.join('\n');
    for (const name of ['deliverAckTimeoutMs', 'restoreReplyTimeoutMs', 'helloTimeoutMs', 'snapshotReplyTimeoutMs', 'stateBytesMax', 'bogusLimitMs']) {
      expect(all).toContain(name);
    }
  });
});
