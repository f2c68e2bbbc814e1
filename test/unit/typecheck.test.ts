/**
 * The whole project type-checks (`npm run typecheck`): vitest runs TypeScript through esbuild,
 * which strips types without checking them, so without this a type error lands unseen.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');

it('tsc --noEmit finds no type error', () => {
  const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(REPO, 'tsconfig.json'), '--noEmit'], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  expect(r.error).toBeUndefined();
  expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
  expect(r.status).toBe(0);
}, 300_000);
