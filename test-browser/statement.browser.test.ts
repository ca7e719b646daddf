/** The statement suite through the public API, in a real module worker: OPFS (shared between tabs) and memory. */
import { open } from '../src/index.js';
import { statementSuite } from '../test/shared/statement-suite.js';

const unique = (): string => `stmt-${crypto.randomUUID()}`;

statementSuite('browser opfs', (options) => open(unique(), options));
statementSuite('browser memory', (options) => open(unique(), { ...options, storage: 'memory' }));
