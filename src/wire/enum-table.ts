/**
 * The one way a proto enum is paired with a TypeScript string union, for every .proto of the project
 * (wire.proto, local.proto, coordinator.proto). A proto value is the TypeScript name upper-cased, `-`
 * as `_`, behind the enum's prefix: `hook-failed` with prefix `DECLINE_REASON` is
 * `DECLINE_REASON_HOOK_FAILED`.
 *
 * The numbers are read from the generated descriptor rather than written out again, so the .proto
 * stays the single source of truth. `names` is a record over the whole union, so the compiler checks
 * that no TypeScript name is forgotten; building the table checks the proto side, so a value added
 * on one side only fails at module load, in every test at once.
 */

export interface EnumTable<T extends string> {
  /** The proto enum's name as the caller gave it, e.g. `ConsistencyLevel`. */
  readonly name: string;
  /** `<PREFIX>_UNSPECIFIED`, the proto3 default (0) that never stands for a TypeScript name. */
  readonly unspecified: string;
  /** Every TypeScript name, in proto number order. */
  readonly values: readonly T[];
  readonly byNumber: ReadonlyMap<number, T>;
  readonly byName: ReadonlyMap<T, number>;
  toProto(value: T): string;
  /** The TypeScript name of a proto value name or number; undefined for UNSPECIFIED and unknown values. */
  fromProto(value: string | number): T | undefined;
  /** Proto names a person may type or read in an error message, UNSPECIFIED left out. */
  readonly protoNames: readonly string[];
}

/**
 * `source` names the schema in load-time errors (`wire schema`); `values` is the enum's `{NAME:
 * number}` record from a descriptor or a protobufjs Root; `prefix` has no trailing `_`.
 */
export function enumTable<T extends string>(
  source: string,
  enumName: string,
  values: Readonly<Record<string, number>>,
  prefix: string,
  names: Readonly<Record<T, true>>,
): EnumTable<T> {
  const toProto = (name: T): string => `${prefix}_${name.toUpperCase().replaceAll('-', '_')}`;
  const unspecified = `${prefix}_UNSPECIFIED`;
  if (values[unspecified] !== 0) throw new Error(`${source}: ${enumName} has no ${unspecified} = 0`);
  const byNumber = new Map<number, T>();
  const byName = new Map<T, number>();
  const byProtoName = new Map<string, T>();
  for (const name of Object.keys(names) as T[]) {
    const number = values[toProto(name)];
    if (number === undefined || number === 0) throw new Error(`${source}: ${enumName} has no value ${toProto(name)} for '${name}'`);
    byNumber.set(number, name);
    byName.set(name, number);
    byProtoName.set(toProto(name), name);
  }
  for (const [valueName, number] of Object.entries(values)) {
    if (number !== 0 && !byNumber.has(number)) throw new Error(`${source}: ${enumName}.${valueName} has no TypeScript name`);
  }
  const ordered = [...byNumber.entries()].sort(([a], [b]) => a - b).map(([, name]) => name);
  return {
    name: enumName,
    unspecified,
    values: ordered,
    byNumber,
    byName,
    toProto,
    fromProto: (value) => (typeof value === 'number' ? byNumber.get(value) : byProtoName.get(value)),
    protoNames: ordered.map(toProto),
  };
}
