/** The agent's side of opaque apps: the `position` lines of a quiesce hook and the state packing. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packDir, parsePositions, unpackState } from '../../agent/opaque.js';

describe('opaque apps in the agent', () => {
  it('parses position lines and ignores other output', () => {
    expect(parsePositions('stopping\nposition s1/A->s2/B 42\n  position s1/A->s3/C 0  \ndone\n')).toEqual({ ok: true, positions: { 's1/A->s2/B': 42, 's1/A->s3/C': 0 } });
    expect(parsePositions('')).toEqual({ ok: true, positions: {} });
  });

  it.each([
    ['a missing count', 'position s1/A->s2/B'],
    ['a negative count', 'position s1/A->s2/B -1'],
    ['a bad channel id', 'position nope 3'],
    ['two different positions for one channel', 'position s1/A->s2/B 1\nposition s1/A->s2/B 2'],
  ])('refuses %s', (_, text) => {
    expect(parsePositions(text).ok).toBe(false);
  });

  it('packs a state directory deterministically and unpacks it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opaque-pack-'));
    try {
      writeFileSync(join(dir, 'b.json'), '{"n":1}');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'a.bin'), Buffer.from([0, 255]));
      const packed = await packDir(dir);
      expect(new TextDecoder().decode(packed)).toBe(JSON.stringify({ 'b.json': Buffer.from('{"n":1}').toString('base64'), 'sub/a.bin': 'AP8=' }));
      expect(await packDir(dir)).toEqual(packed);
      const files = unpackState(packed);
      expect(files['sub/a.bin']).toEqual(Buffer.from([0, 255]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
