/**
 * The simulator commands the docs show (README.md and docs/simulator.md) are commands the CLI
 * accepts: each `npm run sim -- ...` line of a code block parses without a usage error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../simulations/cli-args.js';

const root = join(import.meta.dirname, '..', '..');

function simCommands(file: string): string[][] {
  const text = readFileSync(join(root, file), 'utf8');
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((line) => /^npm run(?: -s)? sim -- (.*?)(?:\s+#.*)?$/.exec(line.trim())?.[1])
    .filter((args): args is string => args !== undefined)
    .map((args) => args.split(/\s+/));
}

describe.each(['README.md', 'docs/simulator.md'])('the sim commands of %s', (file) => {
  const commands = simCommands(file);

  it('are there', () => {
    expect(commands.length).toBeGreaterThan(2);
  });

  it.each(commands.map((argv) => [argv.join(' '), argv] as const))('%s parses', (_text, argv) => {
    const parsed = parseCommandLine(argv);
    expect(parsed.ok ? '' : parsed.error).toBe('');
  });
});
