/** The shared API suite through the public API, in a real module worker, on OPFS and in memory. */
import { open } from '../src/index.js';
import { databaseSuite } from '../test/shared/database-suite.js';

const unique = (): string => `suite-${crypto.randomUUID()}`;

databaseSuite('browser opfs', (options) => open(unique(), options));
databaseSuite('browser memory', (options) => open(unique(), { ...options, storage: 'memory' }));
