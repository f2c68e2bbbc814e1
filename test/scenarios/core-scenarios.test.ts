/**
 * Runs every script in test/scenarios/core/. Set UPDATE_SCENARIOS=1 to rewrite the expected output
 * after a deliberate change, then read the diff: the scripts are the protocol's specification.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseScenarioFile, rewriteScenarioFile, ScenarioWorld } from './harness.js';

const dir = join(import.meta.dirname, 'core');
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('core scenarios', () => {
  it('there are scenario files to run', () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
  });

  for (const file of files) {
    it(file.replace(/\.txt$/, '').replace(/-/g, ' '), () => {
      const path = join(dir, file);
      const text = readFileSync(path, 'utf8');
      const blocks = parseScenarioFile(text);
      const world = new ScenarioWorld();
      const actual = blocks.map((b) => world.run(b.commands));
      if (process.env['UPDATE_SCENARIOS'] === '1') {
        writeFileSync(path, rewriteScenarioFile(text, actual));
        return;
      }
      blocks.forEach((b, i) => {
        expect(actual[i], `${file}:${b.line}: ${b.commands.join(' / ')}`).toBe(b.expected);
      });
    });
  }
});
