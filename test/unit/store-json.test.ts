/** coordinator/store/json.ts: large values are stored gzip-compressed and read back the same. */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeJsonObject, encodeJson, JSON_GZIP_ABOVE_BYTES } from '../../coordinator/store/json.js';

/** A record of `n` parts shaped like a checkpoint's: the same keys over and over. */
function record(n: number): Record<string, unknown> {
  return {
    id: 7,
    parts: Array.from({ length: n }, (_, i) => ({ server: `s${i}`, app: 'b', acked: true, ackedAtUnixMs: 1796596814590 + i, counts: { sent: { [`s${i}/b->s${i}/c`]: i * 31 }, received: {} }, startDelayMs: 1, alignmentMs: 0, syncMs: 0 })),
  };
}

describe('stored JSON values', () => {
  it('a small value is plain JSON text', () => {
    const bytes = encodeJson(record(3));
    expect(new TextDecoder().decode(bytes).startsWith('{"id":7')).toBe(true);
    expect(decodeJsonObject(bytes, 'k')).toEqual({ ok: true, value: record(3) });
  });

  it('a value above the threshold is gzip, far below 1 MiB for 3,000 parts, and reads back equal', () => {
    const big = record(3_000);
    expect(JSON.stringify(big).length).toBeGreaterThan(JSON_GZIP_ABOVE_BYTES);
    const bytes = encodeJson(big);
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
    expect(bytes.byteLength).toBeLessThan(64 * 1024);
    expect(decodeJsonObject(bytes, 'k')).toEqual({ ok: true, value: big });
  });

  it('broken compressed bytes are an INTERNAL error naming the key, never a throw', () => {
    const bytes = encodeJson(record(3_000));
    const r = decodeJsonObject(bytes.slice(0, 100), 'cp.0000000000000009');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ kind: 'internal', message: expect.stringContaining('cp.0000000000000009') });
    const notJson = decodeJsonObject(new Uint8Array(gzipSync(Buffer.from('not json'))), 'k');
    expect(notJson.ok).toBe(false);
  });
});
