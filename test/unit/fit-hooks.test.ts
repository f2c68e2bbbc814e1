/**
 * `fitHooks` (agent/agent.ts) keeps a frozen/thawed/decline event far below the wire's message
 * limit however chatty the hooks are: failed steps keep their stderr first, no result is dropped.
 */
import { describe, expect, it } from 'vitest';
import { fitHooks } from '../../agent/agent.js';
import type { HookResult } from '../../src/wire/index.js';

function result(hook: string, exitCode: number, stderr: string): HookResult {
  return { hook, action: 'freeze', exitCode, timedOut: false, durationMs: 1, stderr, attempts: 1 };
}

describe('fitHooks', () => {
  it('under the budget: unchanged', () => {
    const hooks = [result('a', 0, 'x'.repeat(10)), result('b', 1, 'y'.repeat(10))];
    expect(fitHooks(hooks, 100)).toEqual(hooks);
  });

  it('over the budget: the failed hook keeps its tail, the successful ones share the rest, every result stays', () => {
    const hooks = [result('ok1', 0, 'a'.repeat(50)), result('failed', 2, `${'b'.repeat(40)}THE-END`), result('ok2', 0, 'c'.repeat(50))];
    const fitted = fitHooks(hooks, 60);
    expect(fitted.map((h) => h.hook)).toEqual(['ok1', 'failed', 'ok2']);
    expect(fitted[1]?.stderr).toBe(`${'b'.repeat(40)}THE-END`);
    expect(fitted.reduce((n, h) => n + h.stderr.length, 0)).toBe(60);
    expect(fitted[0]?.stderr).toBe('a'.repeat(13));
    expect(fitted[2]?.stderr).toBe('');
  });
});
