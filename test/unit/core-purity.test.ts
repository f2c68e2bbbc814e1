/**
 * `src/` is the protocol, free of I/O, clocks, timers and randomness, so the simulator's verdicts hold
 * for what runs in production. This test fails on any forbidden import or call in `src/`, including a
 * relative import that leaves `src/`: `../../agent/...` would bring the shells' I/O in by the back door.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
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

/** True when a relative specifier, resolved from `file` (a path from the repository root), stays in src/. */
function staysInSrc(file: string, spec: string): boolean {
  const fromSrc = relative(srcDir, join(root, dirname(file), spec));
  return fromSrc !== '' && !fromSrc.startsWith('..') && !isAbsolute(fromSrc);
}

/** Problems of one file of src/; `file` is its path from the repository root (it places relative imports). */
export function importViolations(file: string, text: string): string[] {
  const problems: string[] = [];
  const specifiers = [...text.matchAll(/(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g)];
  for (const m of specifiers) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    if (spec.startsWith('.')) {
      if (!staysInSrc(file, spec)) problems.push(`${file} imports '${spec}', outside src/`);
    } else if (!ALLOWED_PACKAGES.includes(spec)) {
      problems.push(`${file} imports '${spec}'`);
    }
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
    expect(importViolations('src/x.ts', `import { connect } from 'nats';\nconst t = Date.now();`)).toEqual([
      `src/x.ts imports 'nats'`,
      'src/x.ts uses Date.now()',
    ]);
    expect(importViolations('src/y.ts', `import { readFileSync } from 'node:fs';`)).toEqual([`src/y.ts imports 'node:fs'`]);
  });

  it('the guard catches every form of relative import that leaves src/', () => {
    const file = 'src/core/x.ts';
    expect(importViolations(file, `import { Endpoint } from '../../agent/endpoint.js';`)).toEqual([
      `${file} imports '../../agent/endpoint.js', outside src/`,
    ]);
    expect(importViolations(file, `export * from '../../simulations/engine.js';`)).toEqual([
      `${file} imports '../../simulations/engine.js', outside src/`,
    ]);
    expect(importViolations(file, `const m = await import('../../coordinator/main.js');`)).toEqual([
      `${file} imports '../../coordinator/main.js', outside src/`,
    ]);
    expect(importViolations(file, `import '../../agent/side-effect.js';`)).toEqual([`${file} imports '../../agent/side-effect.js', outside src/`]);
    // A sibling whose name starts with "src" is outside too; a prefix test on the path would let it in.
    expect(importViolations(file, `import { x } from '../../src-extra/x.js';`)).toEqual([`${file} imports '../../src-extra/x.js', outside src/`]);
    expect(importViolations(file, `import { y } from '../..';`)).toEqual([`${file} imports '../..', outside src/`]);
  });

  it('relative imports within src/ pass, however far they climb inside it', () => {
    expect(importViolations('src/core/x.ts', `import type { A } from './a.js';\nimport { ids } from '../ids.js';`)).toEqual([]);
    expect(importViolations('src/core/deep/x.ts', `import { checkCut } from '../../checker/index.js';`)).toEqual([]);
    expect(importViolations('src/x.ts', `export { b } from '../src/b.js';`)).toEqual([]);
  });
});
