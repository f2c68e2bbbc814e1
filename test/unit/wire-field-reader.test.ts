/**
 * The one field reader (src/wire/fields.ts), and the coordinator's gRPC adapter over it
 * (coordinator/grpc/fields.ts): 64-bit integers in every form they arrive in, read exactly or
 * refused, and the first error kept while later fields read as placeholders.
 */
import { describe, expect, it } from 'vitest';
import { ProtoReader } from '../../coordinator/grpc/fields.js';
import { FieldReader } from '../../src/wire/fields.js';

const safeMax = Number.MAX_SAFE_INTEGER;

/** A Long as protobufjs hands it over (low and high 32-bit words), without depending on `long`. */
function long(value: bigint, unsigned: boolean): { low: number; high: number; unsigned: boolean } {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffff_ffffn) | 0, high: Number(bits >> 32n) | 0, unsigned };
}

describe('field reader', () => {
  it('a uint64 up to 2^53 - 1 reads exactly as a number, a decimal string, a bigint or a Long', () => {
    const reader = FieldReader.wire();
    for (const value of [safeMax, String(safeMax), BigInt(safeMax), long(BigInt(safeMax), true)]) expect(reader.uint(value, 'id')).toBe(safeMax);
    expect(reader.error).toBeUndefined();
  });

  it.each([
    ['a decimal string', '9007199254740992'],
    ['a bigint', 2n ** 53n],
    ['a Long', long(2n ** 64n - 1n, true)],
  ])('a uint64 beyond 2^53 - 1 as %s is refused, not rounded', (_, value) => {
    const reader = FieldReader.wire();
    expect(reader.uint(value, 'id')).toBe(0);
    expect(reader.error).toEqual({ kind: 'invalid', field: 'id', message: expect.stringMatching(/is beyond the largest integer handled exactly \(9007199254740991\)$/) });
  });

  it('a signed Long reads negative in int and is refused by uint', () => {
    const minusOne = long(-1n, false);
    expect(FieldReader.wire().int(minusOne, 'delta')).toBe(-1);
    const reader = FieldReader.wire();
    reader.uint(minusOne, 'id');
    expect(reader.error?.message).toBe(`must be an integer from 0 to ${safeMax}, got -1`);
  });

  it('32-bit fields are bounded: uint32 to 2^32 - 1, int32 to -2^31 .. 2^31 - 1', () => {
    const reader = FieldReader.wire();
    expect(reader.uint32(0xffff_ffff, 'a')).toBe(0xffff_ffff);
    expect(reader.int32(-0x8000_0000, 'b')).toBe(-0x8000_0000);
    expect(reader.error).toBeUndefined();
    expect(reader.int32(0x8000_0000, 'c')).toBe(0);
    expect(reader.error).toEqual({ kind: 'invalid', field: 'c', message: 'must be an integer from -2147483648 to 2147483647, got 2147483648' });
  });

  it('the first error wins; later bad fields read as placeholders without replacing it', () => {
    const reader = FieldReader.wire();
    expect(reader.uint(1.5, 'first')).toBe(0);
    expect(reader.name('a.b', 'second')).toBe('');
    expect(reader.text(7, 'third', 10)).toBe('');
    expect(reader.error).toEqual({ kind: 'invalid', field: 'first', message: 'must be an integer, got 1.5' });
  });

  it('the error is the caller\'s type, made from the field path and the message', () => {
    const reader = new FieldReader((field, message) => `${field}: ${message}`);
    reader.list('x', 'items');
    expect(reader.error).toBe('items: must be a list, got "x"');
  });
});

describe('gRPC adapter', () => {
  it('nested readers share one first error, named by the full path and the coordinator error kind', () => {
    const r = ProtoReader.of({ plan: { apps: [{ revision: '1' }, { revision: 'x' }] }, count: -1 }, '', 'internal');
    const apps = r.required('plan').messages('apps');
    expect(apps.map((a) => a.u64('revision'))).toEqual([1, 0]);
    expect(r.i32('count')).toBe(-1);
    expect(r.u32('count')).toBe(0);
    expect(r.error).toEqual({ kind: 'internal', message: 'plan.apps[1].revision: must be an integer, got "x"' });
  });

  it('a longs-as-strings uint64 beyond 2^53 - 1 is INVALID_ARGUMENT naming the field', () => {
    const r = ProtoReader.of({ checkpoint: { id: '18446744073709551615' } }, 'request');
    expect(r.required('checkpoint').u64('id')).toBe(0);
    expect(r.error).toEqual({
      kind: 'invalid-argument',
      field: 'request.checkpoint.id',
      message: 'request.checkpoint.id: 18446744073709551615 is beyond the largest integer handled exactly (9007199254740991)',
    });
  });

  it('a missing required message is named by its path', () => {
    const r = ProtoReader.of({}, 'plan');
    r.required('options').bool('flag');
    expect(r.error).toEqual({ kind: 'invalid-argument', field: 'plan.options', message: 'plan.options is required' });
  });
});
