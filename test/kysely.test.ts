/** outpost/kysely in Node, on a file and in memory. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../src/node/index.js';
import { kyselySuite } from './shared/kysely-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-kysely-'));
let n = 0;
kyselySuite('node file', () => open(join(dir, `db${++n}.sqlite`)));
kyselySuite('node memory', () => open(':memory:', { storage: 'memory' }));
