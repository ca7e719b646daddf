import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../src/node/index.js';
import { databaseSuite } from './shared/database-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-db-'));
let n = 0;

databaseSuite('node file', (options) => open(join(dir, `db${++n}.sqlite`), options));
databaseSuite('node memory', (options) => open(':memory:', { ...options, storage: 'memory' }));
// The engine on the calling thread (`engine: 'inline'`) instead of its own thread (the default).
databaseSuite('node file inline', (options) => open(join(dir, `db${++n}.sqlite`), { ...options, engine: 'inline' }));
databaseSuite('node memory inline', (options) => open(':memory:', { ...options, storage: 'memory', engine: 'inline' }));
