/**
 * The stored form of an app's recorded channel state (wire.proto `ChannelState`). Stored objects can
 * be larger than a wire message, so the limit here is its own (`channelStateBytesMax`).
 */
import type { RecordedMessage } from '../core/types.js';
import type { ChannelId } from '../ids.js';
import { FieldReader, type Fields, plainBytes } from './fields.js';
import { channelStateType } from './schema.js';
import { plainView } from './codec.js';
import type { WireResult } from './types.js';

export type ChannelStates = Readonly<Record<ChannelId, readonly RecordedMessage<Uint8Array>[]>>;

/** 512 MiB: far above any sane in-flight window, low enough to refuse a corrupt length. */
export const CHANNEL_STATE_BYTES_MAX = 512 * 1024 * 1024;

function read(reader: FieldReader, message: Fields): Record<ChannelId, RecordedMessage<Uint8Array>[]> {
  const states: Record<ChannelId, RecordedMessage<Uint8Array>[]> = {};
  reader.list(message.messages, 'messages').forEach((m, i) => {
    const f = reader.message(m, `messages[${i}]`);
    const channel = reader.channel(f.channel, `messages[${i}].channel`);
    const seq = reader.positive(f.seq, `messages[${i}].seq`);
    const payload = plainBytes(reader.bytes(f.payload ?? new Uint8Array(0), `messages[${i}].payload`));
    (states[channel] ??= []).push({ seq, payload });
  });
  return states;
}

export function encodeChannelState(states: ChannelStates): WireResult<Uint8Array> {
  const messages: Fields[] = [];
  for (const [channel, list] of Object.entries(states)) {
    for (const m of list) messages.push({ channel, seq: m.seq, payload: m.payload });
  }
  const reader = FieldReader.wire();
  read(reader, { messages });
  if (reader.error !== undefined) return { ok: false, error: reader.error };
  const bytes = channelStateType.encode({ messages }).finish();
  if (bytes.byteLength > CHANNEL_STATE_BYTES_MAX) {
    return { ok: false, error: { kind: 'too-large', message: `channel state is ${bytes.byteLength} bytes; the maximum is ${CHANNEL_STATE_BYTES_MAX}` } };
  }
  return { ok: true, value: plainBytes(bytes) };
}

export function decodeChannelState(bytes: Uint8Array): WireResult<ChannelStates> {
  if (bytes.byteLength > CHANNEL_STATE_BYTES_MAX) {
    return { ok: false, error: { kind: 'too-large', message: `channel state is ${bytes.byteLength} bytes; the maximum is ${CHANNEL_STATE_BYTES_MAX}` } };
  }
  let message: Fields;
  try {
    message = channelStateType.decode(plainView(bytes)) as unknown as Fields;
  } catch (error) {
    return { ok: false, error: { kind: 'malformed', message: `not a valid ChannelState protobuf: ${error instanceof Error ? error.message : String(error)}` } };
  }
  const reader = FieldReader.wire();
  const value = read(reader, message);
  return reader.error === undefined ? { ok: true, value } : { ok: false, error: reader.error };
}
