/**
 * The one enum table builder (src/wire/enum-table.ts) that wire.proto, local.proto and
 * coordinator.proto share: a TypeScript union and a proto enum must cover each other, or the module
 * that builds the table fails to load.
 */
import { describe, expect, it } from 'vitest';
import { enumTable } from '../../src/wire/enum-table.js';

type Colour = 'red' | 'light-blue';

const colourValues = { COLOUR_UNSPECIFIED: 0, COLOUR_LIGHT_BLUE: 1, COLOUR_RED: 2 };

describe('enum table', () => {
  it('a union and an enum that cover each other: names and numbers map both ways, in proto number order', () => {
    const table = enumTable<Colour>('test schema', 'Colour', colourValues, 'COLOUR', { red: true, 'light-blue': true });
    expect(table.values).toEqual(['light-blue', 'red']);
    expect(table.protoNames).toEqual(['COLOUR_LIGHT_BLUE', 'COLOUR_RED']);
    expect(table.unspecified).toBe('COLOUR_UNSPECIFIED');
    expect(table.toProto('light-blue')).toBe('COLOUR_LIGHT_BLUE');
    expect(table.byName.get('red')).toBe(2);
    expect(table.byNumber.get(1)).toBe('light-blue');
    expect(table.fromProto('COLOUR_RED')).toBe('red');
    expect(table.fromProto(2)).toBe('red');
  });

  it('UNSPECIFIED and unknown values read as no value, by name and by number', () => {
    const table = enumTable<Colour>('test schema', 'Colour', colourValues, 'COLOUR', { red: true, 'light-blue': true });
    for (const value of ['COLOUR_UNSPECIFIED', 0, 'COLOUR_GREEN', 7, 'red']) expect(table.fromProto(value)).toBeUndefined();
  });

  it('a TypeScript name without a proto value fails at load, naming the value it looked for', () => {
    const values = { COLOUR_UNSPECIFIED: 0, COLOUR_RED: 2 };
    expect(() => enumTable<Colour>('test schema', 'Colour', values, 'COLOUR', { red: true, 'light-blue': true })).toThrow(
      "test schema: Colour has no value COLOUR_LIGHT_BLUE for 'light-blue'",
    );
  });

  it('a proto value without a TypeScript name fails at load', () => {
    expect(() => enumTable<'red'>('test schema', 'Colour', colourValues, 'COLOUR', { red: true })).toThrow(
      'test schema: Colour.COLOUR_LIGHT_BLUE has no TypeScript name',
    );
  });

  it('a TypeScript name on UNSPECIFIED, or an enum without UNSPECIFIED = 0, fails at load', () => {
    expect(() => enumTable<'unspecified'>('test schema', 'Colour', { COLOUR_UNSPECIFIED: 0 }, 'COLOUR', { unspecified: true })).toThrow(
      'has no value COLOUR_UNSPECIFIED',
    );
    expect(() => enumTable<'red'>('test schema', 'Colour', { COLOUR_RED: 1 }, 'COLOUR', { red: true })).toThrow('Colour has no COLOUR_UNSPECIFIED = 0');
  });
});
