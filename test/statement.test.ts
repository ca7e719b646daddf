import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../src/node/index.js';
import { statementSuite } from './shared/statement-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-stmt-'));
let n = 0;

statementSuite('node file', (options) => open(join(dir, `db${++n}.sqlite`), options), { signalStopsRunning: true });
statementSuite('node memory', (options) => open(':memory:', { ...options, storage: 'memory' }), { signalStopsRunning: true });
// The engine on the calling thread (`engine: 'inline'`) instead of its own thread (the default).
statementSuite('node file inline', (options) => open(join(dir, `db${++n}.sqlite`), { ...options, engine: 'inline' }));
statementSuite('node memory inline', (options) => open(':memory:', { ...options, storage: 'memory', engine: 'inline' }));
