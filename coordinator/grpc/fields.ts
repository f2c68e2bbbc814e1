/**
 * Reading decoded protobuf messages (as @grpc/proto-loader hands them over, see descriptor.ts) field
 * by field: a thin adapter over src/wire's FieldReader, which does the reading, the bounds and the
 * first-error rule. What the adapter adds is only what gRPC conversion needs: fields addressed by
 * name on the message at hand, nested readers that extend the path and share one first error, that
 * error as a CoordinatorError whose message starts with the field's path, and enums that arrive as
 * proto names (`enums: String`) as well as numbers. 64-bit integers arrive as decimal strings
 * (`longs: String`); the shared reader takes them exactly, so a value beyond 2^53 - 1 is refused.
 */
import { FieldReader, type Fields } from '../../src/wire/fields.js';
import type { EnumTable } from '../../src/wire/enum-table.js';
import type { CoordinatorError, CoordinatorErrorKind } from '../errors.js';

function isObj(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class ProtoReader {
  private constructor(
    private readonly obj: Fields,
    private readonly path: string,
    /** Shared by a reader and every reader it hands out for nested messages. */
    private readonly fields: FieldReader<CoordinatorError>,
  ) {}

  /** `kind`: invalid-argument for requests; internal for responses a client reads from the coordinator. */
  static of(value: unknown, path: string, kind: CoordinatorErrorKind = 'invalid-argument'): ProtoReader {
    // Conversion code writes messages that start with the path ("plan.apps[2].server is required");
    // the shared reader's do not ("must be a string"), so they get the path in front.
    const fields = new FieldReader<CoordinatorError>((where, message) => ({
      kind,
      message: where === '' || message.startsWith(where) ? message : `${where}: ${message}`,
      ...(where !== '' && kind === 'invalid-argument' ? { field: where } : {}),
    }));
    const reader = new ProtoReader(isObj(value) ? value : {}, path, fields);
    if (!isObj(value)) reader.fail('', `${path === '' ? 'the message' : path} is missing or not a message`);
    return reader;
  }

  get error(): CoordinatorError | undefined {
    return this.fields.error;
  }

  /** The field's path for messages: `plan.apps[2].server`. */
  at(field: string): string {
    if (field === '') return this.path;
    return this.path === '' ? field : `${this.path}.${field}`;
  }

  fail(field: string, message: string): void {
    this.fields.fail(this.at(field), message);
  }

  has(field: string): boolean {
    const v = this.obj[field];
    return v !== undefined && v !== null;
  }

  string(field: string): string {
    return this.fields.text(this.obj[field], this.at(field), Number.MAX_SAFE_INTEGER);
  }

  bool(field: string): boolean {
    return this.fields.bool(this.obj[field], this.at(field));
  }

  u32(field: string): number {
    return this.fields.uint32(this.obj[field], this.at(field));
  }

  i32(field: string): number {
    return this.fields.int32(this.obj[field], this.at(field));
  }

  u64(field: string): number {
    return this.fields.uint(this.obj[field], this.at(field));
  }

  i64(field: string): number {
    return this.fields.int(this.obj[field], this.at(field));
  }

  /** A nested message, or undefined when absent. */
  message(field: string): ProtoReader | undefined {
    const nested = this.fields.optionalMessage(this.obj[field], this.at(field));
    return nested === undefined ? undefined : new ProtoReader(nested, this.at(field), this.fields);
  }

  /** A required nested message: an absent one is an error naming the field. */
  required(field: string): ProtoReader {
    const nested = this.message(field);
    if (nested !== undefined) return nested;
    this.fail(field, `${this.at(field)} is required`);
    return new ProtoReader({}, this.at(field), this.fields);
  }

  list(field: string): readonly unknown[] {
    return this.fields.list(this.obj[field], this.at(field));
  }

  /** Readers over a repeated message field, each with its index in its path. */
  messages(field: string): ProtoReader[] {
    return this.list(field).map((item, i) => {
      const path = `${this.at(field)}[${i}]`;
      if (!isObj(item)) this.fail('', `${path} must be a message`);
      return new ProtoReader(isObj(item) ? item : {}, path, this.fields);
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
