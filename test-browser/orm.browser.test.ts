/// <reference types="vite/client" />
/**
 * outpost/drizzle and outpost/kysely in Chromium, over a real worker, on OPFS and in memory. The
 * drizzle-kit folder reaches the page as data (the browser cannot read a folder), the way an
 * application bundles it with Vite.
 */
import { open } from '../src/index.js';
import type { MigrationFiles, MigrationJournal } from '../src/drizzle/index.js';
import { drizzleSuite } from '../test/shared/drizzle-suite.js';
import { kyselySuite } from '../test/shared/kysely-suite.js';

const journals = import.meta.glob<MigrationJournal>('../test/fixtures/drizzle/meta/_journal.json', { eager: true, import: 'default' });
const migrations: MigrationFiles = {
  journal: Object.values(journals)[0]!,
  // Keys are paths ending in /<tag>.sql, which migrate() accepts as they are.
  migrations: import.meta.glob<string>('../test/fixtures/drizzle/*.sql', { eager: true, query: '?raw', import: 'default' }),
};

const unique = (): string => `orm-${crypto.randomUUID()}`;

drizzleSuite('browser opfs', () => open(unique()), migrations);
drizzleSuite('browser memory', () => open(unique(), { storage: 'memory' }), migrations);
kyselySuite('browser opfs', () => open(unique()));
kyselySuite('browser memory', () => open(unique(), { storage: 'memory' }));
