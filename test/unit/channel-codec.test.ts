/**
 * The per-channel codec (src/wire/channel-codec.ts) against the general codec: the same bytes out
 * for any message, run or barrier envelope, and the same answer in for any bytes at all (valid,
 * mutated, truncated, another channel's, a barrier), so the fast path can never accept what the
 * general decoder refuses or read a field differently.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChannelCodec, decodeEnvelope, encodeEnvelope, SlabAllocator, type Envelope, type WireLimits } from '../../src/wire/index.js';

const CHANNEL = 'srv1/APP1->srv2/APP2';
const OTHER = 'srv1/APP1->srv2/APP3';
const limits: WireLimits = { wireMessageBytesMax: 4096 };

const safeUint = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 32 + 5 }), fc.constantFrom(0, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER));
const positive = safeUint.filter((n) => n > 0);
const payload = fc.uint8Array({ maxLength: 600 });

function value<T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function general(envelope: Envelope): Uint8Array {
  const r = encodeEnvelope(envelope, limits);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('ChannelCodec', () => {
  const codec = new ChannelCodec(CHANNEL, limits);

  it('writes the same bytes as the general codec for any message envelope', () => {
    fc.assert(
      fc.property(safeUint, positive, payload, (epoch, seq, p) => {
        const fast = codec.encodeMessage(epoch, seq, p);
        expect(fast.ok).toBe(true);
        if (fast.ok) expect(fast.value).toEqual(general({ type: 'message', channel: CHANNEL, epoch, seq, payload: p }));
      }),
    );
  });

  it('writes the same bytes as the general codec for any run, and a run of one as a message', () => {
    fc.assert(
      fc.property(safeUint, fc.integer({ min: 1, max: 2 ** 40 }), fc.array(payload.map((p) => p.subarray(0, 40)), { minLength: 1, maxLength: 8 }), (epoch, firstSeq, payloads) => {
        const fast = codec.encodeRun(epoch, firstSeq, payloads);
        expect(fast.ok).toBe(true);
        const expected: Envelope =
          payloads.length === 1
            ? { type: 'message', channel: CHANNEL, epoch, seq: firstSeq, payload: payloads[0] as Uint8Array }
            : { type: 'run', channel: CHANNEL, epoch, firstSeq, payloads };
        if (fast.ok) {
          expect(fast.value).toEqual(general(expected));
          expect(codec.readFast(fast.value)).toEqual(expected);
        }
      }),
    );
  });

  it('decodes what it wrote to the envelope it came from, the payload as a view of the bytes', () => {
    fc.assert(
      fc.property(safeUint, positive, payload, (epoch, seq, p) => {
        const bytes = codec.encodeMessage(epoch, seq, p);
        if (!bytes.ok) throw new Error(bytes.error.message);
        // By the fast path, not by falling back to the general decoder.
        expect(codec.readFast(bytes.value)).toBeDefined();
        const back = codec.decode(bytes.value);
        expect(back).toEqual({ ok: true, value: { type: 'message', channel: CHANNEL, epoch, seq, payload: p } });
        if (back.ok && back.value.type === 'message' && p.byteLength > 0) expect(back.value.payload.buffer).toBe(bytes.value.buffer);
      }),
    );
  });

  it('writes the same bytes as the general codec for any barrier, and reads them back by the fast path', () => {
    fc.assert(
      fc.property(safeUint, safeUint, positive, fc.boolean(), (epoch, afterSeq, checkpointId, overtaking) => {
        const fast = codec.encodeBarrier(epoch, afterSeq, checkpointId, overtaking);
        const expected: Envelope = overtaking ? { type: 'barrier', channel: CHANNEL, epoch, afterSeq, checkpointId, overtaking: true } : { type: 'barrier', channel: CHANNEL, epoch, afterSeq, checkpointId };
        expect(fast.ok).toBe(true);
        if (!fast.ok) return;
        expect(fast.value).toEqual(general(expected));
        expect(codec.readFast(fast.value)).toEqual(expected);
        expect(codec.decode(fast.value)).toEqual(decodeEnvelope(fast.value, limits));
      }),
    );
  });

  it('leaves a barrier flag written as 0 or 2 (not how protobufjs writes it) to the general decoder, which reads it as false and true', () => {
    for (const flag of [0, 2]) {
      const bytes = value(codec.encodeBarrier(3, 7, 9, true));
      bytes[bytes.byteLength - 1] = flag;
      expect(codec.readFast(bytes)).toBeUndefined();
      expect(codec.decode(bytes)).toEqual(decodeEnvelope(bytes, limits));
      expect(codec.decode(bytes)).toMatchObject({ ok: true, value: { type: 'barrier', checkpointId: 9 } });
      expect(value(codec.decode(bytes)).type === 'barrier' && 'overtaking' in value(codec.decode(bytes))).toBe(flag === 2);
    }
  });

  it('refuses a barrier the general encoder refuses', () => {
    expect(codec.encodeBarrier(1, 0, 0, false)).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'barrier.checkpoint_id' } });
    expect(codec.encodeBarrier(-1, 0, 1, false)).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'epoch' } });
    expect(codec.encodeBarrier(1, 2 ** 53, 1, false)).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'seq' } });
    expect(new ChannelCodec(CHANNEL, { wireMessageBytesMax: 16 }).encodeBarrier(1, 1, 1, false)).toMatchObject({ ok: false, error: { kind: 'too-large' } });
  });

  it('gives the general decoder\'s answer for any bytes: mutated, cut, extended, random, barriers, other channels', () => {
    const sample = fc.oneof(
      fc.tuple(safeUint, positive, payload, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([epoch, seq, p, at, value]) => {
        const b = general({ type: 'message', channel: CHANNEL, epoch, seq, payload: p });
        b[at % b.byteLength] = value;
        return b;
      }),
      fc.tuple(safeUint, positive, payload, fc.nat()).map(([epoch, seq, p, cut]) => {
        const b = general({ type: 'message', channel: CHANNEL, epoch, seq, payload: p });
        return b.subarray(0, cut % (b.byteLength + 1));
      }),
      fc.tuple(safeUint, positive, payload, fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([epoch, seq, p, tail]) => {
        const b = general({ type: 'message', channel: CHANNEL, epoch, seq, payload: p });
        const out = new Uint8Array(b.byteLength + tail.byteLength);
        out.set(b);
        out.set(tail, b.byteLength);
        return out;
      }),
      fc.tuple(safeUint, positive, payload).map(([epoch, seq, p]) => general({ type: 'message', channel: OTHER, epoch, seq, payload: p })),
      fc.tuple(safeUint, safeUint, positive, fc.boolean(), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([epoch, afterSeq, checkpointId, overtaking, at, value]) => {
        const b = general(overtaking ? { type: 'barrier', channel: CHANNEL, epoch, afterSeq, checkpointId, overtaking: true } : { type: 'barrier', channel: CHANNEL, epoch, afterSeq, checkpointId });
        // Mutated half the time: a barrier whose two epochs differ, a flag of 2, a cut varint...
        if (at % 2 === 0) b[at % b.byteLength] = value;
        return b;
      }),
      fc.tuple(safeUint, safeUint, positive).map(([epoch, afterSeq, checkpointId]) => general({ type: 'barrier', channel: OTHER, epoch, afterSeq, checkpointId })),
      fc.tuple(safeUint, positive, fc.array(fc.uint8Array({ maxLength: 12 }), { minLength: 2, maxLength: 5 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([epoch, firstSeq, payloads, at, value]) => {
        const b = general({ type: 'run', channel: CHANNEL, epoch, firstSeq: Math.min(firstSeq, 2 ** 50), payloads });
        // Mutated half the time, so valid runs and broken ones both come through.
        if (at % 2 === 0) b[at % b.byteLength] = value;
        return b;
      }),
      fc.uint8Array({ maxLength: 64 }),
    );
    fc.assert(
      fc.property(sample, (bytes) => {
        expect(codec.decode(bytes)).toEqual(decodeEnvelope(bytes, limits));
      }),
      { numRuns: 4_000 },
    );
  });

  it('reads a Node Buffer (what nats.js delivers) as the general decoder does', () => {
    const bytes = general({ type: 'message', channel: CHANNEL, epoch: 3, seq: 9, payload: new Uint8Array([1, 2, 3]) });
    const buffer = Buffer.concat([Buffer.from([0xff]), Buffer.from(bytes)]).subarray(1);
    const fast = codec.decode(buffer);
    expect(fast).toEqual(decodeEnvelope(buffer, limits));
    if (fast.ok && fast.value.type === 'message') expect(fast.value.payload.constructor).toBe(Uint8Array);
  });

  it('writes every byte of the memory it is given: an allocator that hands out dirty memory changes nothing', () => {
    const dirty = new ChannelCodec(CHANNEL, limits, (size) => new Uint8Array(size).fill(0xee));
    fc.assert(
      fc.property(safeUint, fc.integer({ min: 1, max: 2 ** 40 }), fc.array(payload.map((p) => p.subarray(0, 40)), { minLength: 1, maxLength: 8 }), (epoch, firstSeq, payloads) => {
        expect(dirty.encodeRun(epoch, firstSeq, payloads)).toEqual(codec.encodeRun(epoch, firstSeq, payloads));
        expect(dirty.encodeMessage(epoch, firstSeq, payloads[0] as Uint8Array)).toEqual(codec.encodeMessage(epoch, firstSeq, payloads[0] as Uint8Array));
      }),
    );
  });

  it('refuses an empty run, and a run past the largest seq', () => {
    expect(codec.encodeRun(1, 1, [])).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'run.payloads' } });
    expect(codec.encodeRun(1, Number.MAX_SAFE_INTEGER, [new Uint8Array(1), new Uint8Array(1)])).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'seq' } });
  });

  it('refuses what the general encoder refuses, with the same kind of error', () => {
    const big = new Uint8Array(limits.wireMessageBytesMax);
    expect(codec.encodeMessage(1, 1, big)).toMatchObject({ ok: false, error: { kind: 'too-large' } });
    expect(encodeEnvelope({ type: 'message', channel: CHANNEL, epoch: 1, seq: 1, payload: big }, limits)).toMatchObject({ ok: false, error: { kind: 'too-large' } });
    expect(codec.encodeMessage(1, 0, new Uint8Array(1))).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'seq' } });
    expect(codec.encodeMessage(-1, 1, new Uint8Array(1))).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'epoch' } });
    expect(codec.encodeMessage(1, 2 ** 53, new Uint8Array(1))).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'seq' } });
  });

  it('is made only for a valid channel id', () => {
    expect(() => new ChannelCodec('not a channel')).toThrow(RangeError);
  });
});

describe('SlabAllocator', () => {
  it('cuts arrays that do not overlap from slabs of the size asked when one is made; a large array gets its own buffer', () => {
    const asked: number[] = [];
    const sizes = [16, 32];
    const slabs = new SlabAllocator(() => {
      const size = sizes[asked.length] ?? 64;
      asked.push(size);
      return size;
    }, 8);
    const a = slabs.allocate(6);
    const b = slabs.allocate(6);
    expect(a.buffer).toBe(b.buffer);
    expect(b.byteOffset).toBe(a.byteOffset + 6);
    expect(a.buffer.byteLength).toBe(16);
    const c = slabs.allocate(8); // 12 + 8 > 16: a new slab, of the size asked now
    expect(c.buffer).not.toBe(a.buffer);
    expect(c.buffer.byteLength).toBe(32);
    const big = slabs.allocate(9);
    expect(big.byteLength).toBe(9);
    expect(big.buffer.byteLength).toBe(9);
    expect(asked).toEqual([16, 32]);
    // Writing through one array never shows in another.
    a.fill(1);
    b.fill(2);
    c.fill(3);
    expect([...a, ...b, ...c]).toEqual([...Array(6).fill(1), ...Array(6).fill(2), ...Array(8).fill(3)]);
  });
});
