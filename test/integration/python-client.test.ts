/**
 * The Python client's tests (clients/python/tests, Python's unittest) against a live coordinator
 * they start themselves (test/support/python-stack.ts), one vitest test per Python test case.
 */
import { join } from 'node:path';
import { pythonSuite } from '../support/python-suite.js';

pythonSuite('the Python client (clients/python) against a live coordinator', join(import.meta.dirname, '..', '..', 'clients', 'python', 'tests'));
