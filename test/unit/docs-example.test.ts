/** docs/core.md promises its worked example runs as written and prints these lines. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('docs/core.md worked example', () => {
  it('runs and prints the consistent cut the page shows', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/two-process.ts'], { cwd: root, encoding: 'utf8' });
    const doc = readFileSync(join(root, 'docs/core.md'), 'utf8');
    for (const line of ["a's state at the cut: [], b's: [m1]", 'channel state of b->a: [n1]', 'the cut is consistent']) {
      expect(out).toContain(line);
      expect(doc).toContain(line);
    }
  });
});
