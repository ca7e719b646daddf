/** Live queries through the public API, in a real module worker, on OPFS and in memory, with pulls from the Outpost server. */
import { inject } from 'vitest';
import { open } from '../src/index.js';
import { liveSuite } from '../test/shared/live-suite.js';

const unique = (): string => `live-${crypto.randomUUID()}`;

liveSuite('browser opfs', (options) => open(unique(), options), () => `${inject('outpostServerUrl')}/db/${unique()}`);
liveSuite('browser memory', (options) => open(unique(), { ...options, storage: 'memory' }));
