/** Writes docs/configuration.md from the daemons' schemas (see scripts/config-docs.ts). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIGURATION_DOC_PATH, renderConfigurationDoc } from './config-docs.js';

const path = join(import.meta.dirname, '..', CONFIGURATION_DOC_PATH);
writeFileSync(path, renderConfigurationDoc());
console.log(`wrote ${CONFIGURATION_DOC_PATH}`);
