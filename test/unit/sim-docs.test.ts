/**
 * The simulator commands the docs show (README.md, docs/simulator.md and docs/experiments.md) are
 * commands the CLI accepts: each `npm run sim -- ...` line of a code block parses without a usage
 * error.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../simulations/cli-args.js';
import { simDocCommands } from '../support/sim-doc-commands.js';

describe.each(['README.md', 'docs/simulator.md', 'docs/experiments.md'])('the sim commands of %s', (file) => {
  const commands = simDocCommands(file);

  it('are there', () => {
    expect(commands.length).toBeGreaterThan(2);
  });

  it.each(commands.map((argv) => [argv.join(' '), argv] as const))('%s parses', (_text, argv) => {
    const parsed = parseCommandLine(argv);
    expect(parsed.ok ? '' : parsed.error).toBe('');
  });
});
