/**
 * docs/api.md's examples must run against the API as it is: every snapctl line it shows is a valid
 * snapctl command line (parsed by snapctl's own parser; test/integration/api-grpc.test.ts runs pin,
 * unpin, cancel, delete, list and show against a live coordinator), and each Python example is valid Python that
 * uses only messages, fields, enum values and RPCs that coordinator.proto defines
 * (clients/python/tests/test_docs_examples.py runs them against a live coordinator).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../coordinator/snapctl/args.js';
import { coordinatorDescriptor } from '../../src/wire/generated/coordinator-descriptor.js';

const root = join(import.meta.dirname, '..', '..');
const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');

function fencedBlocks(text: string, info: string): string[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === info).map((m) => m[2] as string);
}

interface Ns {
  nested?: Record<string, Ns & { fields?: Record<string, unknown>; values?: Record<string, number>; methods?: Record<string, unknown> }>;
}
const v1 = (coordinatorDescriptor as unknown as { nested: { snapshot: { nested: { v1: Ns } } } }).nested.snapshot.nested.v1.nested ?? {};
const messages = new Map(Object.entries(v1).filter(([, d]) => d.fields !== undefined).map(([n, d]) => [n, new Set(Object.keys(d.fields ?? {}))]));
const enumValues = new Set(Object.values(v1).flatMap((d) => Object.keys(d.values ?? {})));
const enums = new Set(Object.entries(v1).filter(([, d]) => d.values !== undefined).map(([n]) => n));
const rpcs = new Set(Object.keys(v1['Coordinator']?.methods ?? {}));

/** The keyword argument names of the call whose argument list starts at `from`, at its own depth only. */
function keywordArguments(code: string, from: number): string[] {
  const names: string[] = [];
  let depth = 0;
  for (let i = from; i < code.length && depth >= 0; i++) {
    const c = code[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0) {
      const kw = /^(\w+)=(?!=)/.exec(code.slice(i));
      if (kw && /[(,\s]/.test(code[i - 1] ?? '')) {
        names.push(kw[1] as string);
        i += kw[0].length - 1;
      }
    }
  }
  return names;
}

describe('docs/api.md examples', () => {
  it('every snapctl command line it shows parses as a snapctl command', () => {
    const lines = fencedBlocks(doc, 'sh')
      .flatMap((b) => b.split('\n'))
      .map((l) => l.replace(/\s+#.*$/, '').trim())
      .filter((l) => l.startsWith('snapctl '));
    expect(lines.length).toBeGreaterThan(8);
    for (const line of lines) {
      const parsed = parseCommandLine(line.split(/\s+/).slice(1), {});
      expect(parsed.ok ? parsed.command.kind : parsed.error, line).not.toMatch(/^(help$|.* )/);
    }
  });

  it('documents the new calls with snapctl: cancel, pin, delete with a key', () => {
    const shown = fencedBlocks(doc, 'sh').join('\n');
    for (const command of ['snapctl cancel', 'snapctl pin', 'snapctl delete']) expect(shown).toContain(command);
  });

  it.each(fencedBlocks(doc, 'python').map((code, i) => [i + 1, code]))('Python example %i uses only RPCs, messages, fields and enum values of coordinator.proto', (_i, code) => {
    for (const [, name] of code.matchAll(/stub\.(\w+)\(/g)) expect(rpcs, `rpc ${name}`).toContain(name);
    for (const [, name] of code.matchAll(/pb\.([A-Z][A-Z0-9_]+)\b/g)) expect(enumValues, `enum value ${name}`).toContain(name);
    for (const [, name] of code.matchAll(/pb\.([A-Z][a-z]\w*)\.Name\(/g)) expect(enums, `enum ${name}`).toContain(name);
    for (const m of code.matchAll(/pb\.([A-Z][a-z]\w*)\(/g)) {
      const fields = messages.get(m[1] as string);
      expect(fields, `message ${m[1]}`).toBeDefined();
      for (const field of keywordArguments(code, (m.index ?? 0) + m[0].length)) expect(fields, `${m[1]}.${field}`).toContain(field);
    }
  });

  it('the Python example is valid Python', () => {
    const [python] = fencedBlocks(doc, 'python');
    let available = true;
    try {
      execFileSync('python3', ['--version'], { stdio: 'ignore' });
    } catch {
      available = false;
    }
    if (!available) return;
    expect(() => execFileSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: python ?? '', stdio: ['pipe', 'ignore', 'pipe'] })).not.toThrow();
  });
});
