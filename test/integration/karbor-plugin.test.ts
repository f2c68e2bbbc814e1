/**
 * The Karbor consistency-group plugin's tests (examples/karbor/tests, Python's unittest), driven by
 * the stand-in of Karbor's flow engine against a live coordinator they start themselves, one vitest
 * test per Python test case.
 */
import { join } from 'node:path';
import { pythonSuite } from '../support/python-suite.js';

pythonSuite('the Karbor consistency-group plugin (examples/karbor) against a live coordinator', join(import.meta.dirname, '..', '..', 'examples', 'karbor', 'tests'));
