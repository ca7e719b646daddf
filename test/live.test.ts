/** Live queries on Node: file and memory databases, and pulls from an Outpost server. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { OutpostServer } from '../src/server/server.js';
import { open } from '../src/node/index.js';
import { liveSuite } from './shared/live-suite.js';
import { startServer } from './support/server.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-live-'));
let n = 0;
let server: OutpostServer;
let base = '';

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(async () => {
  await server.close();
});

liveSuite('node file', (options) => open(join(dir, `db${++n}.sqlite`), options), () => `${base}/db/live${++n}`);
liveSuite('node memory', (options) => open(':memory:', { ...options, storage: 'memory' }));
liveSuite('node memory inline', (options) => open(':memory:', { ...options, storage: 'memory', engine: 'inline' }));
