/**
 * Reading decoded protobuf messages (as @grpc/proto-loader hands them over, see descriptor.ts)
 * field by field, with the field's path in every error. Like src/wire's FieldReader, a reader keeps
 * the first error and returns a harmless placeholder for a bad field, so conversion code reads top
 * to bottom; the caller checks `error` once and never lets a value built from placeholders escape.
 *
 * 64-bit integers arrive as decimal strings (`longs: String`): exact, so a value beyond 2^53 - 1
 * is rejected rather than silently rounded. Numbers and Long objects are accepted too, so the same
 * reader works on objects a test or a client builds by hand.
 */
import type { CoordinatorError, CoordinatorErrorKind } from '../errors.js';
import type { EnumTable } from '../../src/wire/enum-table.js';

type Obj = Readonly<Record<string, unknown>>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isLongLike(value: unknown): value is { low: number; high: number; unsigned?: boolean; toString(): string } {
  return isObj(value) && typeof value.low === 'number' && typeof value.high === 'number';
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export class ProtoReader {
  /** Shared by a reader and every reader it hands out for nested messages. */
  private readonly state: { error: CoordinatorError | undefined };

  constructor(
    private readonly obj: Obj,
    private readonly path: string,
    /** invalid-argument for requests; internal for responses a client reads from the coordinator. */
    private readonly kind: CoordinatorErrorKind,
    state?: { error: CoordinatorError | undefined },
  ) {
    this.state = state ?? { error: undefined };
  }

  static of(value: unknown, path: string, kind: CoordinatorErrorKind = 'invalid-argument'): ProtoReader {
    const reader = new ProtoReader(isObj(value) ? value : {}, path, kind);
    if (!isObj(value)) reader.fail('', `${path === '' ? 'the message' : path} is missing or not a message`);
    return reader;
  }

  get error(): CoordinatorError | undefined {
    return this.state.error;
  }

  /** The field's path for messages: `plan.apps[2].server`. */
  at(field: string): string {
    if (field === '') return this.path;
    return this.path === '' ? field : `${this.path}.${field}`;
  }

  fail(field: string, message: string): void {
    if (this.state.error === undefined) {
      const where = this.at(field);
      this.state.error = { kind: this.kind, message: where === '' || message.startsWith(where) ? message : `${where}: ${message}` };
    }
  }

  has(field: string): boolean {
    const v = this.obj[field];
    return v !== undefined && v !== null;
  }

  string(field: string): string {
    const v = this.obj[field];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') {
      this.fail(field, 'must be a string');
      return '';
    }
    return v;
  }

  bool(field: string): boolean {
    const v = this.obj[field];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') {
      this.fail(field, 'must be a boolean');
      return false;
    }
    return v;
  }

  u32(field: string): number {
    const v = this.obj[field];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
      this.fail(field, `must be an unsigned 32-bit integer, got ${String(v)}`);
      return 0;
    }
    return v;
  }

  i32(field: string): number {
    const v = this.obj[field];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) {
      this.fail(field, `must be a signed 32-bit integer, got ${String(v)}`);
      return 0;
    }
    return v;
  }

  /** uint64 as a number; above Number.MAX_SAFE_INTEGER is an error, not a rounding. */
  u64(field: string): number {
    return this.int64(field, false);
  }

  i64(field: string): number {
    return this.int64(field, true);
  }

  private int64(field: string, signed: boolean): number {
    const v = this.obj[field];
    if (v === undefined || v === null) return 0;
    let big: bigint | undefined;
    if (typeof v === 'number' && Number.isInteger(v)) big = BigInt(v);
    else if (typeof v === 'string' && /^-?[0-9]{1,20}$/.test(v)) big = BigInt(v);
    else if (typeof v === 'bigint') big = v;
    else if (isLongLike(v)) big = BigInt(v.toString());
    if (big === undefined) {
      this.fail(field, `must be an integer, got ${String(v).slice(0, 40)}`);
      return 0;
    }
    if (!signed && big < 0n) {
      this.fail(field, `must not be negative, got ${big}`);
      return 0;
    }
    if (big > MAX_SAFE || big < -MAX_SAFE) {
      this.fail(field, `${big} is beyond the largest integer this coordinator handles exactly (${Number.MAX_SAFE_INTEGER})`);
      return 0;
    }
    return Number(big);
  }

  /** A nested message, or undefined when absent. */
  message(field: string): ProtoReader | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) {
      this.fail(field, 'must be a message');
      return undefined;
    }
    return new ProtoReader(v, this.at(field), this.kind, this.state);
  }

  /** A required nested message: an absent one is an error naming the field. */
  required(field: string): ProtoReader {
    const m = this.message(field);
    if (m !== undefined) return m;
    this.fail(field, `${this.at(field)} is required`);
    return new ProtoReader({}, this.at(field), this.kind, this.state);
  }

  list(field: string): unknown[] {
    const v = this.obj[field];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(field, 'must be a list');
      return [];
    }
    return v;
  }

  /** Readers over a repeated message field, each with its index in its path. */
  messages(field: string): ProtoReader[] {
    return this.list(field).map((item, i) => {
      const path = `${this.at(field)}[${i}]`;
      if (!isObj(item)) {
        this.fail('', `${path} must be a message`);
        return new ProtoReader({}, path, this.kind, this.state);
      }
      return new ProtoReader(item, path, this.kind, this.state);
    });
  }

  /**
   * An enum field. UNSPECIFIED (or absent) gives undefined, or an error when `required` names what
   * the caller must choose; an unknown value is always an error listing the accepted names.
   */
  enumValue<M extends string>(field: string, table: EnumTable<M>, required: boolean): M | undefined {
    return this.enumOf(this.obj[field], field, table, required);
  }

  enumOf<M extends string>(v: unknown, field: string, table: EnumTable<M>, required: boolean): M | undefined {
    const unspecified = v === undefined || v === null || v === 0 || v === table.unspecified;
    if (unspecified) {
      if (required) this.fail(field, `${this.at(field)} is required: one of ${table.protoNames.join(', ')}`);
      return undefined;
    }
    const m = typeof v === 'string' || typeof v === 'number' ? table.fromProto(v) : undefined;
    if (m === undefined) this.fail(field, `unknown ${table.name} value ${String(v)}; expected one of ${table.protoNames.join(', ')}`);
    return m;
  }
}
