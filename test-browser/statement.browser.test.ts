/** The statement suite through the public API, in a real module worker: OPFS (shared between tabs) and memory. */
import { open } from '../src/index.js';
import { statementSuite } from '../test/shared/statement-suite.js';

const unique = (): string => `stmt-${crypto.randomUUID()}`;

// The test page is not cross-origin isolated: a signal reaches a running statement through the
// abort file (worker/abort-file.ts), which Chromium can share between contexts.
statementSuite('browser opfs', (options) => open(unique(), options), { signalStopsRunning: true });
statementSuite('browser memory', (options) => open(unique(), { ...options, storage: 'memory' }), { signalStopsRunning: true });
