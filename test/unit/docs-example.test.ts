/**
 * docs/core.md promises its worked example is `examples/two-process.ts` as written: the code it shows
 * is the example's code, the program prints exactly the output the page shows, and the step-by-step
 * walk-through names the effects in the order the program produces them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** The part of the page from `heading` up to the next heading of level 2. */
function section(doc: string, heading: string): string {
  const start = doc.indexOf(heading);
  expect(start, `docs/core.md has no "${heading}"`).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', start + heading.length);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** The fenced blocks of a text, by info string (`ts`, or '' for a plain block). */
function fencedBlocks(text: string, info: string): string[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === info).map((m) => m[2] as string);
}

/** A line of code without its trailing comment and indentation; '' for comments and blank lines. */
function codeOf(line: string): string {
  return line.replace(/\s+\/\/ .*$/, '').replace(/^\s*\/\/.*$/, '').trim();
}

describe('docs/core.md worked example', () => {
  let out = '';
  let worked = '';
  let example = '';

  beforeAll(() => {
    out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/two-process.ts'], { cwd: root, encoding: 'utf8' });
    worked = section(readFileSync(join(root, 'docs/core.md'), 'utf8'), '## A worked example');
    example = readFileSync(join(root, 'examples/two-process.ts'), 'utf8');
  });

  it('every line of code the page shows is a line of the example, so the snippet uses the real API', () => {
    const [snippet] = fencedBlocks(worked, 'ts');
    const exampleLines = new Set(example.split('\n').map(codeOf));
    const shown = (snippet ?? '').split('\n').map(codeOf).filter((l) => l !== '');
    expect(shown.length).toBeGreaterThan(5);
    expect(shown.filter((l) => !exampleLines.has(l))).toEqual([]);
  });

  it('the example prints exactly the output the page shows, trace and verdict', () => {
    const shownOutput = fencedBlocks(worked, '');
    expect(shownOutput).toHaveLength(1);
    expect(out).toBe(shownOutput[0]);
    expect(out).toContain('the cut is consistent\n');
  });

  it('the step-by-step walk-through names every effect of the trace, in order', () => {
    const steps = worked.slice(worked.indexOf('Step by step:'), worked.indexOf('It prints'));
    const named = [...steps.matchAll(/`([ab]: [^`]+)`/g)].map((m) => m[1]);
    const trace = out.split('\n').filter((l) => /^[ab]: /.test(l));
    expect(trace.length).toBeGreaterThan(5);
    expect(named).toEqual(trace);
  });
});
