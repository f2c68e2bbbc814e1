/**
 * The one field reader of the project, for every decoded protobuf message and for the plain objects
 * the encoders build alike (so encode and decode enforce exactly the same rules). The wire codecs
 * and the local API use it directly; the coordinator's gRPC conversion wraps it in a thin adapter
 * (coordinator/grpc/fields.ts) that adds only what proto-loader objects need.
 *
 * A `FieldReader` keeps the first error and hands back a harmless placeholder for a bad field, so
 * mapping code reads top to bottom without an early return after every field; the caller checks
 * `reader.error` once at the end and never lets a value built from placeholders escape. The error's
 * type is the caller's (`WireError` here, `CoordinatorError` in the coordinator): a reader is made
 * with the function that turns a field path and a message into it.
 */
import { parseChannelId } from '../ids.js';
import type { AppState, ObjectRef, WireError } from './types.js';

/** Format limits that are part of the protocol rather than of a deployment. */
export const wireFormat = {
  /** Tenant, server and app names. */
  nameCharsMax: 64,
  requestIdCharsMax: 128,
  versionCharsMax: 64,
  objectNameCharsMax: 256,
  digestCharsMax: 256,
  /** Free text: abort reasons, decline details (a hook's stderr is cut to this by the agent). */
  detailCharsMax: 4096,
} as const;

const namePattern = /^[A-Za-z0-9_-]{1,64}$/;
const requestIdPattern = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Printable ASCII without spaces. */
const versionPattern = /^[!-~]{1,64}$/;
/** `ALGORITHM=value`, value in base64 or base64url with optional padding. */
const digestPattern = /^[A-Za-z0-9-]{1,32}=[A-Za-z0-9+/_-]{1,220}={0,2}$/;
/** Anything but control characters, which would garble logs and subjects. */
const objectNamePattern = /^[^\u0000-\u001f\u007f]{1,256}$/;

const safeMax = BigInt(Number.MAX_SAFE_INTEGER);
const uint32Max = 0xffff_ffffn;
const int32Min = -0x8000_0000n;
const int32Max = 0x7fff_ffffn;

export function isName(value: string): boolean {
  return namePattern.test(value);
}

/**
 * A log channel's subject in its stream: dot-separated tokens of [A-Za-z0-9_-], no wildcard, at most
 * 255 characters. Wildcards would let one channel's consumer take another's messages.
 */
export function isLogSubject(value: string): boolean {
  return value.length <= 255 && /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(value);
}

/** A process id is an app endpoint `server/app`, or a bare name (the simulator's processes). */
export function isProcessId(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash === -1) return isName(value);
  return isName(value.slice(0, slash)) && isName(value.slice(slash + 1));
}

export function isChannelId(value: string): boolean {
  const ends = parseChannelId(value);
  return ends !== undefined && isProcessId(ends.from) && isProcessId(ends.to);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 80 ? `"${value.slice(0, 80)}..."` : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

function isLongLike(value: unknown): value is { low: number; high: number; unsigned?: boolean } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { low?: unknown }).low === 'number' &&
    typeof (value as { high?: unknown }).high === 'number'
  );
}

/**
 * The exact integer of a 64-bit field, in any form a reader meets: protobufjs hands over a `Long`
 * when the `long` package is present and a number otherwise, @grpc/proto-loader a decimal string
 * (`longs: String`), and an encoder's or a test's plain object a number. Kept as a bigint until the
 * bounds are checked, so a value beyond 2^53 - 1 is refused rather than silently rounded. A Long
 * without an `unsigned` flag reads as unsigned, the way uint64 fields arrive.
 */
function integerOf(value: unknown): bigint | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : undefined;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'string') return /^-?[0-9]{1,20}$/.test(value) ? BigInt(value) : undefined;
  if (isLongLike(value)) {
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return value.unsigned === false ? BigInt.asIntN(64, bits) : bits;
  }
  return undefined;
}

/** `value` as a number when it is a safe integer or a Long whose high word is 0; else undefined. */
function smallIntegerOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value || 0 : undefined;
  if (typeof value === 'object' && value !== null) {
    // High word 0: the 64 bits are the low word read unsigned, whether the Long is signed or not.
    const long = value as { low?: unknown; high?: unknown };
    if (long.high === 0 && typeof long.low === 'number') return long.low >>> 0;
  }
  return undefined;
}

export type Fields = Readonly<Record<string, unknown>>;

/**
 * Own properties only: a decoded message inherits defaults (an empty buffer) for unset fields. A
 * function of the module, not a closure in appState: once per ack, and under tsx every closure made
 * is also named by a call (esbuild's keepNames).
 */
function isSet(message: Fields, name: string): boolean {
  return Object.hasOwn(message, name) && message[name] !== undefined && message[name] !== null;
}

/**
 * The same bytes as a plain Uint8Array view (no copy). protobufjs hands out Node Buffers; keeping
 * Buffer out of the codec's results keeps them the same in Node, a browser and a test's toEqual.
 */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Makes a reader's error from the path of the failing field and what is wrong with it. */
export type FieldErrorOf<E> = (field: string, message: string) => E;

const invalidWireField: FieldErrorOf<WireError> = (field, message) => ({ kind: 'invalid', field, message });

export class FieldReader<E = WireError> {
  private first: E | undefined;

  constructor(private readonly errorOf: FieldErrorOf<E>) {}

  /** A reader for the wire codecs: every error is an `invalid` WireError naming the field. */
  static wire(): FieldReader {
    return new FieldReader(invalidWireField);
  }

  get error(): E | undefined {
    return this.first;
  }

  fail(field: string, message: string): void {
    this.first ??= this.errorOf(field, message);
  }

  /** An integer from `min` to `max`; absent reads as 0. */
  private integer(value: unknown, field: string, min: bigint, max: bigint): number {
    if (value === undefined || value === null) return 0;
    // The usual forms, a safe number or a Long below 2^32, without a BigInt: every message has
    // several of these fields, and a BigInt each showed in the profiles of the ack path.
    const small = smallIntegerOf(value);
    if (small !== undefined && small >= Number(min) && small <= Number(max)) return small;
    const n = integerOf(value);
    if (n === undefined) this.fail(field, `must be an integer, got ${describe(value)}`);
    else if (n >= min && n <= max) return Number(n);
    else if (max === safeMax && n > safeMax) this.fail(field, `${n} is beyond the largest integer handled exactly (${Number.MAX_SAFE_INTEGER})`);
    else this.fail(field, `must be an integer from ${min} to ${max}, got ${n}`);
    return 0;
  }

  /** An unsigned integer no larger than Number.MAX_SAFE_INTEGER (uint64 fields); absent reads as 0. */
  uint(value: unknown, field: string): number {
    return this.integer(value, field, 0n, safeMax);
  }

  /** A signed integer within +-Number.MAX_SAFE_INTEGER (int64 fields); absent reads as 0. */
  int(value: unknown, field: string): number {
    return this.integer(value, field, -safeMax, safeMax);
  }

  uint32(value: unknown, field: string): number {
    return this.integer(value, field, 0n, uint32Max);
  }

  int32(value: unknown, field: string): number {
    return this.integer(value, field, int32Min, int32Max);
  }

  /** A uint (or uint32) that must not be 0: ids, sequence numbers, timeouts. */
  positive(value: unknown, field: string, bits: 32 | 64 = 64): number {
    const n = bits === 32 ? this.uint32(value, field) : this.uint(value, field);
    if (n === 0 && this.first === undefined) this.fail(field, 'is required and must be positive');
    return n;
  }

  /** Absent reads as false, as proto3 sends no default values. */
  bool(value: unknown, field: string): boolean {
    if (value === undefined || value === null) return false;
    if (typeof value === 'boolean') return value;
    this.fail(field, `must be a boolean, got ${describe(value)}`);
    return false;
  }

  /** Any string up to `charsMax` characters; absent reads as ''. */
  text(value: unknown, field: string, charsMax: number): string {
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') {
      this.fail(field, `must be a string, got ${describe(value)}`);
      return '';
    }
    if (value.length <= charsMax) return value;
    this.fail(field, `must be at most ${charsMax} characters, got ${value.length}`);
    return '';
  }

  /** A required string matching `pattern`; `what` says what the pattern allows, for the message. */
  private matching(value: unknown, field: string, pattern: RegExp, what: string): string {
    const text = this.text(value, field, Number.MAX_SAFE_INTEGER);
    if (text === '') {
      if (this.first === undefined) this.fail(field, 'is required');
      return '';
    }
    if (pattern.test(text)) return text;
    this.fail(field, `must be ${what}, got ${describe(text)}`);
    return '';
  }

  name(value: unknown, field: string): string {
    return this.matching(value, field, namePattern, `1 to ${wireFormat.nameCharsMax} of [A-Za-z0-9_-]`);
  }

  /** A name, or nothing at all (''), read as undefined. */
  optionalName(value: unknown, field: string): string | undefined {
    if (value === undefined || value === null || value === '') return undefined;
    return this.name(value, field);
  }

  requestId(value: unknown, field: string): string {
    return this.matching(value, field, requestIdPattern, `1 to ${wireFormat.requestIdCharsMax} of [A-Za-z0-9_.:-]`);
  }

  optionalRequestId(value: unknown, field: string): string | undefined {
    if (value === undefined || value === null || value === '') return undefined;
    return this.requestId(value, field);
  }

  version(value: unknown, field: string): string {
    return this.matching(value, field, versionPattern, `1 to ${wireFormat.versionCharsMax} printable ASCII characters without spaces`);
  }

  channel(value: unknown, field: string): string {
    const text = this.text(value, field, Number.MAX_SAFE_INTEGER);
    if (text === '') {
      if (this.first === undefined) this.fail(field, 'is required');
      return '';
    }
    if (isChannelId(text)) return text;
    this.fail(field, `must be a channel id "<process>-><process>" with processes "server/app" or "name", got ${describe(text)}`);
    return '';
  }

  /** A nested message that must be present. */
  message(value: unknown, field: string): Fields {
    const fields = this.optionalMessage(value, field);
    if (fields !== undefined) return fields;
    if (this.first === undefined) this.fail(field, 'is required');
    return {};
  }

  optionalMessage(value: unknown, field: string): Fields | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)) return value as Fields;
    this.fail(field, `must be a message, got ${describe(value)}`);
    return undefined;
  }

  /** A repeated field; absent reads as empty. */
  list(value: unknown, field: string): readonly unknown[] {
    if (value === undefined || value === null) return [];
    if (Array.isArray(value)) return value;
    this.fail(field, `must be a list, got ${describe(value)}`);
    return [];
  }

  /** A repeated list of names, each at most once. */
  names(value: unknown, field: string): string[] {
    const names = this.list(value, field).map((item, i) => this.name(item, `${field}[${i}]`));
    this.unique(names, field);
    return names;
  }

  /** Fails on the first value seen twice; '' (a placeholder for an already-reported error) is skipped. */
  unique(values: readonly string[], field: string): void {
    const seen = new Set<string>();
    values.forEach((value, i) => {
      if (value === '') return;
      if (seen.has(value)) this.fail(`${field}[${i}]`, `repeats ${describe(value)}`);
      seen.add(value);
    });
  }

  bytes(value: unknown, field: string): Uint8Array {
    if (value instanceof Uint8Array) return value;
    this.fail(field, 'must be bytes');
    return new Uint8Array(0);
  }

  /** An enum number that is known and not UNSPECIFIED (0), looked up in `table`. */
  enumValue<T>(value: unknown, field: string, table: ReadonlyMap<number, T>): T | undefined {
    if (typeof value === 'number') {
      const known = table.get(value);
      if (known !== undefined) return known;
      this.fail(field, value === 0 ? 'is required (UNSPECIFIED is not a valid choice)' : `has no value ${value}`);
      return undefined;
    }
    this.fail(field, value === undefined || value === null ? 'is required (UNSPECIFIED is not a valid choice)' : `must be an enum number, got ${describe(value)}`);
    return undefined;
  }

  /** The `app_state` oneof of `message` (Ack, AppRestore): exactly one of state and inline_state. */
  appState(message: Fields, field: string): AppState {
    if (isSet(message, 'inline_state')) {
      if (isSet(message, 'state')) this.fail(`${field}.app_state`, 'has both state and inline_state set; exactly one is allowed');
      return { kind: 'inline', bytes: plainBytes(this.bytes(message.inline_state, `${field}.inline_state`)) };
    }
    if (!isSet(message, 'state')) this.fail(`${field}.app_state`, 'is required: one of state, inline_state');
    return { kind: 'object', ref: this.objectRef(message.state, `${field}.state`) };
  }

  objectRef(value: unknown, field: string): ObjectRef {
    const ref = this.message(value, field);
    return {
      name: this.matching(ref.name, `${field}.name`, objectNamePattern, `1 to ${wireFormat.objectNameCharsMax} characters without control characters`),
      digest: this.matching(ref.digest, `${field}.digest`, digestPattern, '"ALGORITHM=value" (e.g. SHA-256=<base64url>)'),
      sizeBytes: this.uint(ref.size_bytes, `${field}.size_bytes`),
    };
  }

  /**
   * A repeated ChannelCount as a record keyed by channel id, each channel at most once. A channel id
   * always contains `->`, so no key can collide with an Object.prototype member.
   */
  channelCounts(value: unknown, field: string): Record<string, number> {
    const counts: Record<string, number> = {};
    const items = this.list(value, field);
    for (let i = 0; i < items.length; i++) {
      // A valid entry is taken without building its field paths, which only an error message needs
      // (every ack carries one entry per channel of its app); any other goes the checked way.
      const item = items[i] as { readonly channel?: unknown; readonly count?: unknown } | null | undefined;
      const channel = typeof item === 'object' && item !== null && !Array.isArray(item) && !(item instanceof Uint8Array) ? item.channel : undefined;
      const count = channel === undefined ? undefined : item?.count === undefined || item.count === null ? 0 : smallIntegerOf(item.count);
      if (typeof channel === 'string' && count !== undefined && count >= 0 && isChannelId(channel) && !Object.hasOwn(counts, channel)) counts[channel] = count;
      else this.channelCount(counts, items[i], `${field}[${i}]`);
    }
    return counts;
  }

  private channelCount(counts: Record<string, number>, item: unknown, field: string): void {
    const entry = this.message(item, field);
    const channel = this.channel(entry.channel, `${field}.channel`);
    const count = this.uint(entry.count, `${field}.count`);
    if (channel === '') return;
    if (Object.hasOwn(counts, channel)) this.fail(`${field}.channel`, `repeats ${describe(channel)}`);
    counts[channel] = count;
  }
}

// ------------------------------------------------------------------------------------------------
// The other direction: shared pieces of the proto field objects the encoders build.
// ------------------------------------------------------------------------------------------------

export function objectRefFields(ref: ObjectRef): Fields {
  return { name: ref.name, digest: ref.digest, size_bytes: ref.sizeBytes };
}

/** The `app_state` oneof of Ack and AppRestore. */
export function appStateFields(state: AppState): Fields {
  return state.kind === 'object' ? { state: objectRefFields(state.ref) } : { inline_state: state.bytes };
}

/** Record -> repeated ChannelCount, in the record's key order. */
export function channelCountFields(counts: Readonly<Record<string, number>>): Fields[] {
  return Object.entries(counts).map(([channel, count]) => ({ channel, count }));
}
