/**
 * docs/configuration.md is generated from the schemas: this test fails when someone changed a
 * schema (a key, a default, a unit) without running `npm run gen:config-docs`, or edited the file
 * by hand.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../agent/config.js';
import { CONFIGURATION_DOC_PATH, renderConfigurationDoc } from '../../scripts/config-docs.js';

describe('docs/configuration.md', () => {
  it('is what the schemas generate (run npm run gen:config-docs after changing one)', () => {
    const onDisk = readFileSync(join(import.meta.dirname, '..', '..', CONFIGURATION_DOC_PATH), 'utf8');
    expect(onDisk, 'docs/configuration.md is stale: run npm run gen:config-docs').toBe(renderConfigurationDoc());
  });

  it('names every key of both schemas with its default', () => {
    const doc = renderConfigurationDoc();
    for (const key of ['`natsUrl`', '`metrics.port`', '`metrics.host`', '`nats.servers`', '`freeze.hookTimeoutMs`', '`apps[].name`', '`channels.creditWindowMessages`']) expect(doc).toContain(`| ${key} |`);
    expect(doc).toMatch(/\| `freeze\.hookTimeoutMs` \| integer >= 1 \| `30000` \| ms \|/);
  });

  it('the example agent configuration it shows is valid, and is the file it names', () => {
    const example = readFileSync(join(import.meta.dirname, '..', '..', 'packaging', 'agent.example.json'), 'utf8');
    expect(parseAgentConfig(JSON.parse(example)).ok).toBe(true);
    expect(renderConfigurationDoc()).toContain(example.trim());
  });
});
