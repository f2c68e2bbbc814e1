import { describe, expect, it } from 'vitest';
import { decodeChannelState, encodeChannelState } from '../../src/wire/index.js';

describe('stored channel state', () => {
  it('round-trips messages of several channels in order', () => {
    const states = {
      's1/a->s2/b': [
        { seq: 3, payload: new Uint8Array([1, 2]) },
        { seq: 4, payload: new Uint8Array([]) },
      ],
      's3/c->s2/b': [{ seq: 9, payload: new Uint8Array([7]) }],
    };
    const bytes = encodeChannelState(states);
    expect(bytes.ok).toBe(true);
    if (!bytes.ok) return;
    const back = decodeChannelState(bytes.value);
    expect(back.ok && Object.fromEntries(Object.entries(back.value).map(([c, m]) => [c, m.map((x) => [x.seq, [...x.payload]])]))).toEqual({
      's1/a->s2/b': [
        [3, [1, 2]],
        [4, []],
      ],
      's3/c->s2/b': [[9, [7]]],
    });
  });

  it('garbage and invalid content are typed errors, not exceptions', () => {
    expect(decodeChannelState(new Uint8Array([0xff, 0xff, 0xff])).ok).toBe(false);
    const bad = encodeChannelState({ 'not a channel': [{ seq: 1, payload: new Uint8Array() }] });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.field).toBe('messages[0].channel');
  });
});
