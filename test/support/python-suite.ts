/**
 * Python unittest suites in the vitest run, one vitest test per Python test case, so that CI's
 * `N passed, N failed` counts them (clients/python/tests/run_json.py lists and runs them). They
 * need a python3 with grpcio and grpc_tools (Debian: python3-grpcio, python3-grpc-tools; .ci/run
 * installs them): without one, a single test fails saying so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');

/** Runs a folder of Python unittest suites once; each case is then one vitest test. */
export function pythonSuite(title: string, folder: string): void {
  const python = pythonWithGrpc();
  const runner = join(REPO, 'clients', 'python', 'tests', 'run_json.py');
  const ids = python === undefined ? [] : (JSON.parse(execFileSync(python, [runner, '--list', folder], { encoding: 'utf8' })) as string[]);
  describe(title, () => {
    if (python === undefined) {
      it('needs a python3 with grpcio and grpc_tools (apt-get install python3-grpcio python3-grpc-tools)', () => {
        expect.fail('no python3 here imports grpc and grpc_tools');
      });
      return;
    }
    let outcomes: Record<string, { outcome: string; message: string }> = {};
    let output = '';
    const dir = mkdtempSync(join(tmpdir(), 'python-tests-'));
    beforeAll(() => {
      const out = join(dir, 'results.json');
      const r = spawnSync(python, [runner, '--run', folder, out], { encoding: 'utf8', timeout: 240_000, cwd: REPO });
      output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
      try {
        outcomes = JSON.parse(readFileSync(out, 'utf8')) as typeof outcomes;
      } catch {
        outcomes = {};
      }
    }, 250_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    it('found its Python test cases', () => {
      expect(ids.length).toBeGreaterThan(0);
    });
    it.each(ids.map((id) => [id]))('%s', (id) => {
      const r = outcomes[id];
      if (r === undefined) expect.fail(`${id} did not report; the run said:\n${output.slice(-4000)}`);
      if (r.outcome !== 'passed') expect.fail(`${id} ${r.outcome}:\n${r.message}`);
    });
  });
}

/** A python3 that imports grpc and grpc_tools: the one on PATH, else Debian's. */
function pythonWithGrpc(): string | undefined {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(candidate, ['-c', 'import grpc, grpc_tools'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

