/**
 * The simulator commands a page of the docs shows: every `npm run sim -- ...` line of its `sh` code
 * blocks, as the argv the CLI gets (a trailing `# comment` dropped).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');

export function simDocCommands(file: string): string[][] {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((line) => /^npm run(?: -s)? sim -- (.*?)(?:\s+#.*)?$/.exec(line.trim())?.[1])
    .filter((args): args is string => args !== undefined)
    .map((args) => args.split(/\s+/));
}
