/**
 * The stored form of an app's recorded channel state (wire.proto `ChannelState`). Stored objects can
 * be larger than a wire message, so the limit here is its own (`channelStateBytesMax`).
 */
import type { LogRange, RecordedMessage } from '../core/types.js';
import type { ChannelId } from '../ids.js';
import { FieldReader, type Fields, plainBytes } from './fields.js';
import { channelStateType } from './schema.js';
import { plainView } from './codec.js';
import type { WireResult } from './types.js';

export type ChannelStates = Readonly<Record<ChannelId, readonly RecordedMessage<Uint8Array>[]>>;

/** A log input's range as stored: the core's `LogRange` and where in the stream message afterSeq is. */
export interface StoredLogRange extends LogRange {
  /** The stream sequence of message afterSeq; 0: the consumer starts at the stream's first message. */
  readonly afterOffset: number;
}

export type StoredLogRanges = Readonly<Record<ChannelId, StoredLogRange>>;

/** Everything an app's channel state object holds: recorded messages and log ranges. */
export interface StoredChannelState {
  readonly messages: ChannelStates;
  readonly logRanges: StoredLogRanges;
}

/** 512 MiB: far above any sane in-flight window, low enough to refuse a corrupt length. */
export const CHANNEL_STATE_BYTES_MAX = 512 * 1024 * 1024;

function read(reader: FieldReader, message: Fields): StoredChannelState {
  const states: Record<ChannelId, RecordedMessage<Uint8Array>[]> = {};
  const logRanges: Record<ChannelId, StoredLogRange> = {};
  reader.list(message.messages, 'messages').forEach((m, i) => {
    const f = reader.message(m, `messages[${i}]`);
    const channel = reader.channel(f.channel, `messages[${i}].channel`);
    const seq = reader.positive(f.seq, `messages[${i}].seq`);
    const payload = plainBytes(reader.bytes(f.payload ?? new Uint8Array(0), `messages[${i}].payload`));
    (states[channel] ??= []).push({ seq, payload });
  });
  reader.list(message.log_ranges, 'log_ranges').forEach((r, i) => {
    const f = reader.message(r, `log_ranges[${i}]`);
    const channel = reader.channel(f.channel, `log_ranges[${i}].channel`);
    const epochs = reader.list(f.epochs, `log_ranges[${i}].epochs`).map((e, j) => {
      const part = reader.message(e, `log_ranges[${i}].epochs[${j}]`);
      return { epoch: reader.uint(part.epoch, `log_ranges[${i}].epochs[${j}].epoch`), fromSeq: reader.positive(part.from_seq, `log_ranges[${i}].epochs[${j}].from_seq`) };
    });
    logRanges[channel] = {
      afterSeq: reader.uint(f.after_seq, `log_ranges[${i}].after_seq`),
      throughSeq: reader.uint(f.through_seq, `log_ranges[${i}].through_seq`),
      afterOffset: reader.uint(f.after_offset, `log_ranges[${i}].after_offset`),
      epochs,
    };
  });
  return { messages: states, logRanges };
}

export function encodeChannelState(states: ChannelStates, logRanges: StoredLogRanges = {}): WireResult<Uint8Array> {
  const messages: Fields[] = [];
  for (const [channel, list] of Object.entries(states)) {
    for (const m of list) messages.push({ channel, seq: m.seq, payload: m.payload });
  }
  const ranges: Fields[] = Object.entries(logRanges).map(([channel, r]) => ({
    channel,
    after_seq: r.afterSeq,
    through_seq: r.throughSeq,
    after_offset: r.afterOffset,
    epochs: r.epochs.map((e) => ({ epoch: e.epoch, from_seq: e.fromSeq })),
  }));
  const fields: Fields = ranges.length > 0 ? { messages, log_ranges: ranges } : { messages };
  const reader = FieldReader.wire();
  read(reader, fields);
  if (reader.error !== undefined) return { ok: false, error: reader.error };
  const bytes = channelStateType.encode(fields).finish();
  if (bytes.byteLength > CHANNEL_STATE_BYTES_MAX) {
    return { ok: false, error: { kind: 'too-large', message: `channel state is ${bytes.byteLength} bytes; the maximum is ${CHANNEL_STATE_BYTES_MAX}` } };
  }
  return { ok: true, value: plainBytes(bytes) };
}

/** The recorded messages of a channel state object (its log ranges: `decodeStoredChannelState`). */
export function decodeChannelState(bytes: Uint8Array): WireResult<ChannelStates> {
  const decoded = decodeStoredChannelState(bytes);
  return decoded.ok ? { ok: true, value: decoded.value.messages } : decoded;
}

export function decodeStoredChannelState(bytes: Uint8Array): WireResult<StoredChannelState> {
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
