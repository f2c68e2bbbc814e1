/**
 * docs/apps.md shows examples/sdk-app.ts as its complete SDK example; the page must show the file as
 * it is (test/integration/local-api.test.ts runs the file against the local API).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('docs/apps.md SDK example', () => {
  it('is examples/sdk-app.ts verbatim, from its import to the end of startOrdersApp', () => {
    const file = readFileSync(join(root, 'examples', 'sdk-app.ts'), 'utf8');
    const start = file.indexOf('import { connectApp');
    const end = file.indexOf('if (import.meta.url');
    expect(start).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const shown = file.slice(start, end).trimEnd();
    const doc = readFileSync(join(root, 'docs', 'apps.md'), 'utf8');
    expect(doc, 'copy examples/sdk-app.ts into docs/apps.md again').toContain('```ts\n' + shown + '\n```');
  });
});
