/**
 * A failing simulated run must be reproducible from what it prints: the replay command a property
 * failure prints (generated-scenarios.ts: `reproduction`) must load its scenario file through the
 * simulator's CLI and run it. A generated scenario with `"alignmentTimeoutMs": 0` once printed a
 * command the CLI refused ("alignmentTimeoutMs must be a number > 0, got 0").
 */
import { readFileSync, rmSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../simulations/cli-main.js';
import { runSimulation } from '../../simulations/engine.js';
import { reproduction, scenarioArb } from './generated-scenarios.js';

/** Splits a command the CLI printed into argv, as a POSIX shell does: blanks, '...' and a backslash. */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string;
    if (c === ' ') {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed quote in ${command}`);
      word = (word ?? '') + command.slice(i + 1, end);
      i = end;
    } else if (c === '\\') {
      i += 1;
      word = (word ?? '') + (command[i] ?? '');
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** Runs a printed `npm run sim -- ...` command in memory with the real engine and file system. */
function replay(command: string): { code: number; stdout: string; stderr: string } {
  const words = shellWords(command);
  expect(words.slice(0, 4)).toEqual(['npm', 'run', 'sim', '--']);
  let stdout = '';
  let stderr = '';
  const code = runCli(
    words.slice(4),
    {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      color: false,
      stderrIsTTY: false,
      readFile: (path) => readFileSync(path, 'utf8'),
      writeFile: () => {
        throw new Error('a replay writes nothing');
      },
    },
    runSimulation,
  );
  return { code, stdout, stderr };
}

describe('the replay command a failing property run prints', () => {
  it('splits the way a POSIX shell does', () => {
    expect(shellWords(`npm run sim -- run --scenario '/a b/it'\\''s.json' --seed 3`)).toEqual(['npm', 'run', 'sim', '--', 'run', '--scenario', "/a b/it's.json", '--seed', '3']);
  });

  for (const faults of [false, true]) {
    it(`loads its scenario file through the CLI and reruns the same run (${faults ? 'with' : 'without'} a crash)`, () => {
      fc.assert(
        fc.property(scenarioArb({ faults }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom('chandy-lamport', 'abs', 'abs-timeout', 'sync' as const), (scenario, seed, algorithm) => {
          const { file, command } = reproduction(scenario, algorithm, seed);
          try {
            const out = replay(command);
            expect(out.stderr).toBe('');
            expect([EXIT.ok, EXIT.violations]).toContain(out.code);
            expect(out.stdout).toContain(`seed: ${seed}\n`);
            // The same run: the CLI's report counts what the in-memory run counted.
            const r = runSimulation(scenario, { algorithm, seed });
            expect(out.stdout).toContain(`checkpoints: ${r.metrics.checkpointsTriggered} triggered, ${r.metrics.checkpointsCompleted} completed`);
          } finally {
            rmSync(file, { force: true });
          }
        }),
        { numRuns: 40 },
      );
    });
  }
});
