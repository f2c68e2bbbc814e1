/**
 * `src/` is the protocol, free of I/O, clocks, timers and randomness, so the simulator's verdicts hold
 * for what runs in production. This test fails on any forbidden import or call in `src/`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const srcDir = join(root, 'src');

/** The only bare modules `src/` may use: protobufjs's runtimes, a pure codec. */
const ALLOWED_PACKAGES = ['protobufjs/minimal.js', 'protobufjs/minimal', 'protobufjs/light.js', 'protobufjs/light'];

const FORBIDDEN_CALLS: [RegExp, string][] = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew Date\s*\(/, 'new Date()'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\bset(Timeout|Interval|Immediate)\s*\(/, 'timers'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bprocess\.(env|hrtime|nextTick|exit)\b/, 'process'],
  [/\brequire\s*\(/, 'require()'],
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : /\.(ts|js|mjs|cjs)$/.test(name) ? [path] : [];
  });
}

export function importViolations(file: string, text: string): string[] {
  const problems: string[] = [];
  const specifiers = [...text.matchAll(/(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g)];
  for (const m of specifiers) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    if (spec.startsWith('.')) continue;
    if (!ALLOWED_PACKAGES.includes(spec)) problems.push(`${file} imports '${spec}'`);
  }
  for (const [pattern, what] of FORBIDDEN_CALLS) {
    if (pattern.test(text)) problems.push(`${file} uses ${what}`);
  }
  return problems;
}

describe('src/ is pure', () => {
  it('no file in src/ imports I/O, clocks, timers or randomness', () => {
    const all = files(srcDir);
    expect(all.length).toBeGreaterThan(10);
    const problems = all.flatMap((f) => importViolations(relative(root, f), readFileSync(f, 'utf8')));
    expect(problems).toEqual([]);
  });

  it('the guard catches a forbidden import and a clock read', () => {
    expect(importViolations('x.ts', `import { connect } from 'nats';\nconst t = Date.now();`)).toEqual([
      `x.ts imports 'nats'`,
      'x.ts uses Date.now()',
    ]);
    expect(importViolations('y.ts', `import { readFileSync } from 'node:fs';`)).toEqual([`y.ts imports 'node:fs'`]);
    expect(importViolations('z.ts', `import type { A } from './a.js';`)).toEqual([]);
  });
});
