/**
 * The envelopes of one channel (messages, runs and barriers), encoded and decoded without protobufjs. A channel carries one
 * envelope per app message, and on a 1 KiB message the general codec spent more than the NATS
 * client did: a reflective encode, a copy, a check of the channel id on every message (a regular
 * expression), and on the way in a string decoded and checked again. Here the channel id is checked
 * once, when the channel opens, and its field is kept encoded.
 *
 * The bytes are exactly what protobufjs writes for the same envelope (test/unit/channel-codec.test.ts
 * holds that for any envelope), so the two ends need not agree on which codec they use. Decoding
 * takes the fast path only for the layout this encoder writes; anything else (a barrier, another
 * field order, an unknown field, a value out of range) goes to the general decoder, which has the
 * last word on what is malformed. Barriers took the general codec until a pipeline's profile showed
 * their decoding at a quarter of a hop's work on the receiving side (the checks of the channel id
 * again, a reflective decode of two nested messages).
 */
import { decodeEnvelope, tooLargeError, wireLimitsDefault } from './codec.js';
import type { ChannelId } from '../ids.js';
import { isChannelId } from './fields.js';
import type { Envelope, WireLimits, WireResult } from './types.js';

/** Field 1 (channel), 2 (epoch), 3 (seq), 4 (payload) with their wire types (length, varint, varint, length). */
const TAG_CHANNEL = 0x0a;
const TAG_EPOCH = 0x10;
const TAG_SEQ = 0x18;
const TAG_PAYLOAD = 0x22;
/** Field 6 (run), length-delimited; inside it field 1 (payloads), each length-delimited. */
const TAG_RUN = 0x32;
const TAG_RUN_PAYLOAD = 0x0a;
/** Field 5 (barrier), length-delimited; inside it field 1 (checkpoint_id), 2 (epoch), 3 (overtaking), all varints. */
const TAG_BARRIER = 0x2a;
const TAG_BARRIER_CHECKPOINT = 0x08;
const TAG_BARRIER_EPOCH = 0x10;
const TAG_BARRIER_OVERTAKING = 0x18;

/** 7 bits a byte: 8 bytes hold 56 bits, more than any safe integer; a longer varint is not ours. */
const VARINT_BYTES_MAX = 8;

/**
 * Cuts small byte arrays from slabs: a typed array of more than 64 bytes gets a buffer of its own
 * outside V8's heap, which on a 1 KiB message cost more than the rest of the encoding (Node's
 * Buffer.allocUnsafe pools 8 KiB for the same reason). A slab lives as long as any array cut from it.
 * The next slab's size is up to the caller (`nextSlabBytes`, asked each time one fills).
 */
export class SlabAllocator {
  private slab: Uint8Array = new Uint8Array(0);
  private used = 0;

  constructor(
    /** The size of the next slab, asked when one is made (at least `cutBytesMax`). */
    private readonly nextSlabBytes: () => number,
    /** Larger arrays get their own buffer: they would waste much of a slab. */
    private readonly cutBytesMax: number,
    /** Makes a slab, or an array too large to cut from one (every byte is written by the caller). */
    private readonly fresh: (size: number) => Uint8Array = (size) => new Uint8Array(size),
  ) {}

  readonly allocate = (size: number): Uint8Array => {
    if (size > this.cutBytesMax) return this.fresh(size);
    if (this.used + size > this.slab.byteLength) {
      this.slab = this.fresh(Math.max(this.nextSlabBytes(), this.cutBytesMax));
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + size);
    this.used += size;
    return out;
  };
}

/** A codec's own slabs, unless it is given an allocator. */
const SLAB_BYTES = 64 * 1024;

export class ChannelCodec {
  readonly channel: ChannelId;
  private readonly channelField: Uint8Array;
  private readonly allocate: (size: number) => Uint8Array;

  /**
   * Throws RangeError for a channel id that is not one: callers check ids where they are configured.
   * `allocate` gives the memory of each envelope (every byte is written); by default, slabs.
   */
  constructor(
    channel: ChannelId,
    private readonly limits: WireLimits = wireLimitsDefault,
    allocate?: (size: number) => Uint8Array,
  ) {
    this.allocate = allocate ?? new SlabAllocator(() => SLAB_BYTES, SLAB_BYTES / 8).allocate;
    if (!isChannelId(channel)) throw new RangeError(`not a channel id: ${JSON.stringify(channel)}`);
    this.channel = channel;
    const text = new TextEncoder().encode(channel);
    this.channelField = new Uint8Array(1 + varintSize(text.byteLength) + text.byteLength);
    this.channelField[0] = TAG_CHANNEL;
    this.channelField.set(text, writeVarint(this.channelField, 1, text.byteLength));
  }

  /** The size of the envelope of one message with a payload of `payloadBytes`. */
  messageSize(epoch: number, seq: number, payloadBytes: number): number {
    return this.headerSize(epoch, seq) + 1 + varintSize(payloadBytes) + payloadBytes;
  }

  /** What a payload of `payloadBytes` adds to a run. */
  runItemSize(payloadBytes: number): number {
    return 1 + varintSize(payloadBytes) + payloadBytes;
  }

  /** The size of the envelope of a run whose items add up to `itemsBytes` (see runItemSize). */
  runSize(epoch: number, firstSeq: number, itemsBytes: number): number {
    return this.headerSize(epoch, firstSeq) + 1 + varintSize(itemsBytes) + itemsBytes;
  }

  /**
   * The envelope of app message `seq` of `epoch` on this channel. Seq and epoch come from the core,
   * so a value out of range is a bug there: it is reported as `invalid` all the same.
   */
  encodeMessage(epoch: number, seq: number, payload: Uint8Array): WireResult<Uint8Array> {
    const problem = this.problem(epoch, seq, 1);
    if (problem) return problem;
    const size = this.messageSize(epoch, seq, payload.byteLength);
    if (size > this.limits.wireMessageBytesMax) return { ok: false, error: tooLargeError(size, this.limits) };
    const out = this.allocate(size);
    let at = this.writeHeader(out, epoch, seq);
    out[at++] = TAG_PAYLOAD;
    at = writeVarint(out, at, payload.byteLength);
    out.set(payload, at);
    return { ok: true, value: out };
  }

  /** The envelope of messages firstSeq, firstSeq + 1, ...: a run of `payloads`, or a message if only one. */
  encodeRun(epoch: number, firstSeq: number, payloads: readonly Uint8Array[]): WireResult<Uint8Array> {
    if (payloads.length === 1) return this.encodeMessage(epoch, firstSeq, payloads[0] as Uint8Array);
    if (payloads.length === 0) return invalid('run.payloads', 'must hold at least two messages, got 0');
    const problem = this.problem(epoch, firstSeq, payloads.length);
    if (problem) return problem;
    let itemsBytes = 0;
    for (const p of payloads) itemsBytes += this.runItemSize(p.byteLength);
    const size = this.runSize(epoch, firstSeq, itemsBytes);
    if (size > this.limits.wireMessageBytesMax) return { ok: false, error: tooLargeError(size, this.limits) };
    const out = this.allocate(size);
    let at = this.writeHeader(out, epoch, firstSeq);
    out[at++] = TAG_RUN;
    at = writeVarint(out, at, itemsBytes);
    for (const p of payloads) {
      out[at++] = TAG_RUN_PAYLOAD;
      at = writeVarint(out, at, p.byteLength);
      out.set(p, at);
      at += p.byteLength;
    }
    return { ok: true, value: out };
  }

  /**
   * The envelope of a barrier: checkpoint `checkpointId` of `epoch`, after message `afterSeq` (0 if
   * none), flagged `overtaking` when it goes out ahead of queued messages.
   */
  encodeBarrier(epoch: number, afterSeq: number, checkpointId: number, overtaking: boolean): WireResult<Uint8Array> {
    if (!Number.isSafeInteger(epoch) || epoch < 0) return invalid('epoch', `must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${epoch}`);
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) return invalid('seq', `must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${afterSeq}`);
    if (!Number.isSafeInteger(checkpointId) || checkpointId <= 0) return invalid('barrier.checkpoint_id', `must be a positive integer, got ${checkpointId}`);
    const body = 1 + varintSize(checkpointId) + (epoch === 0 ? 0 : 1 + varintSize(epoch)) + (overtaking ? 2 : 0);
    const size = this.headerSize(epoch, afterSeq) + 1 + varintSize(body) + body;
    if (size > this.limits.wireMessageBytesMax) return { ok: false, error: tooLargeError(size, this.limits) };
    const out = this.allocate(size);
    let at = this.writeHeader(out, epoch, afterSeq);
    out[at++] = TAG_BARRIER;
    at = writeVarint(out, at, body);
    out[at++] = TAG_BARRIER_CHECKPOINT;
    at = writeVarint(out, at, checkpointId);
    if (epoch !== 0) {
      out[at++] = TAG_BARRIER_EPOCH;
      at = writeVarint(out, at, epoch);
    }
    if (overtaking) {
      out[at++] = TAG_BARRIER_OVERTAKING;
      out[at++] = 1;
    }
    return { ok: true, value: out };
  }

  private problem(epoch: number, seq: number, count: number): WireResult<Uint8Array> | undefined {
    if (!Number.isSafeInteger(epoch) || epoch < 0) return invalid('epoch', `must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${epoch}`);
    if (!Number.isSafeInteger(seq) || seq <= 0) return invalid('seq', `must be a positive integer, got ${seq}`);
    if (count - 1 > Number.MAX_SAFE_INTEGER - seq) return invalid('seq', `a run of ${count} from ${seq} goes past ${Number.MAX_SAFE_INTEGER}`);
    return undefined;
  }

  /** proto3 leaves zero scalars out, as protobufjs does: epoch 0, and a barrier's seq before any message. */
  private headerSize(epoch: number, seq: number): number {
    return this.channelField.byteLength + (epoch === 0 ? 0 : 1 + varintSize(epoch)) + (seq === 0 ? 0 : 1 + varintSize(seq));
  }

  /** Channel, epoch and seq; returns where the body goes. */
  private writeHeader(out: Uint8Array, epoch: number, seq: number): number {
    out.set(this.channelField, 0);
    let at = this.channelField.byteLength;
    if (epoch !== 0) {
      out[at++] = TAG_EPOCH;
      at = writeVarint(out, at, epoch);
    }
    if (seq !== 0) {
      out[at++] = TAG_SEQ;
      at = writeVarint(out, at, seq);
    }
    return at;
  }

  /**
   * Any bytes from the channel's subject, as `decodeEnvelope` would return them. A message's payload
   * is a view into `bytes`.
   */
  decode(bytes: Uint8Array): WireResult<Envelope> {
    const read = this.readFast(bytes);
    return read !== undefined ? { ok: true, value: read } : decodeEnvelope(bytes, this.limits);
  }

  /** The fast path alone: an envelope of this channel in this encoder's layout; undefined for anything else. */
  readFast(bytes: Uint8Array): Envelope | undefined {
    if (!(bytes instanceof Uint8Array) || bytes.byteLength > this.limits.wireMessageBytesMax) return undefined;
    const field = this.channelField;
    const end = bytes.byteLength;
    if (end < field.byteLength) return undefined;
    for (let i = 0; i < field.byteLength; i++) if (bytes[i] !== field[i]) return undefined;
    const cursor = { at: field.byteLength };
    const epoch = optionalVarint(bytes, cursor, TAG_EPOCH);
    if (epoch === undefined) return undefined;
    const seq = optionalVarint(bytes, cursor, TAG_SEQ);
    if (seq === undefined) return undefined;
    const tag = bytes[cursor.at];
    if (tag !== TAG_PAYLOAD && tag !== TAG_RUN && tag !== TAG_BARRIER) return undefined;
    cursor.at += 1;
    const length = readVarint(bytes, cursor);
    if (length === undefined || cursor.at + length !== end) return undefined;
    if (tag === TAG_BARRIER) return this.readBarrier(bytes, cursor, epoch, seq);
    if (seq === 0) return undefined;
    if (tag === TAG_PAYLOAD) return { type: 'message', channel: this.channel, epoch, seq, payload: view(bytes, cursor.at, end) };
    const payloads: Uint8Array[] = [];
    while (cursor.at < end) {
      if (bytes[cursor.at] !== TAG_RUN_PAYLOAD) return undefined;
      cursor.at += 1;
      const n = readVarint(bytes, cursor);
      if (n === undefined || cursor.at + n > end) return undefined;
      payloads.push(view(bytes, cursor.at, cursor.at + n));
      cursor.at += n;
    }
    if (payloads.length < 2 || payloads.length - 1 > Number.MAX_SAFE_INTEGER - seq) return undefined;
    return { type: 'run', channel: this.channel, epoch, firstSeq: seq, payloads };
  }

  /** A barrier's body as encodeBarrier writes it, to the end of `bytes`; undefined for anything else. */
  private readBarrier(bytes: Uint8Array, cursor: { at: number }, epoch: number, afterSeq: number): Envelope | undefined {
    const end = bytes.byteLength;
    if (bytes[cursor.at] !== TAG_BARRIER_CHECKPOINT) return undefined;
    cursor.at += 1;
    const checkpointId = readVarint(bytes, cursor);
    if (checkpointId === undefined || checkpointId === 0) return undefined;
    // The barrier repeats the envelope's epoch; one that differs is the general decoder's to refuse.
    if (epoch !== 0) {
      if (bytes[cursor.at] !== TAG_BARRIER_EPOCH) return undefined;
      cursor.at += 1;
      if (readVarint(bytes, cursor) !== epoch) return undefined;
    }
    const barrier: Envelope = { type: 'barrier', channel: this.channel, epoch, afterSeq, checkpointId };
    if (cursor.at === end) return barrier;
    if (cursor.at + 2 !== end || bytes[cursor.at] !== TAG_BARRIER_OVERTAKING || bytes[cursor.at + 1] !== 1) return undefined;
    return Object.assign(barrier, { overtaking: true as const });
  }
}

/** One view, a plain Uint8Array even when nats.js hands over a Buffer (as the general decoder gives). */
function view(bytes: Uint8Array, from: number, to: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + from, to - from);
}

function invalid<T>(field: string, message: string): WireResult<T> {
  return { ok: false, error: { kind: 'invalid', field, message } };
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size += 1;
  }
  return size;
}

/** Writes `n` (a safe non-negative integer) at `at`; returns where the next byte goes. */
function writeVarint(out: Uint8Array, at: number, n: number): number {
  // Arithmetic, not bit operators: those work on 32 bits and seq and epoch go up to 2^53.
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/**
 * A field that protobufjs leaves out when zero: 0 when absent, its value when present and not zero;
 * undefined for a zero written out or a bad varint (not this encoder's layout).
 */
function optionalVarint(bytes: Uint8Array, cursor: { at: number }, tag: number): number | undefined {
  if (bytes[cursor.at] !== tag) return 0;
  cursor.at += 1;
  const n = readVarint(bytes, cursor);
  return n === 0 ? undefined : n;
}

/** A varint of at most VARINT_BYTES_MAX bytes that is a safe integer; undefined otherwise. */
function readVarint(bytes: Uint8Array, cursor: { at: number }): number | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < VARINT_BYTES_MAX; i++) {
    const b = bytes[cursor.at + i];
    if (b === undefined) return undefined;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      cursor.at += i + 1;
      return Number.isSafeInteger(value) ? value : undefined;
    }
    scale *= 0x80;
  }
  return undefined;
}
