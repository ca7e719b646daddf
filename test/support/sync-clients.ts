/**
 * Node sync clients of one Outpost server that a test file starts for itself: the server
 * starts before the file's tests and stops after them, with every client it opened closed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { startServer, tempDir } from './server.js';

export interface SyncClients {
  /** A new client (its own file) of the server's database `db`. */
  client(db: string): Promise<Database>;
  /** The server's base URL, once the file's tests run. */
  readonly base: string;
}

/** Registers the file's server and returns how to open clients of it. */
export function syncClientsOfOneServer(prefix: string): SyncClients {
  let server: OutpostServer | null = null;
  let base = '';
  const dir = tempDir(prefix);
  const opened: Database[] = [];
  let n = 0;
  beforeAll(async () => {
    ({ server, url: base } = await startServer({ auth: false }));
  });
  afterAll(async () => {
    for (const db of opened) if (!db.closed) await db.close();
    await server?.close();
  });
  return {
    async client(db: string): Promise<Database> {
      const handle = await open(join(dir, `c${++n}.db`), { sync: { url: `${base}/db/${db}` } });
      opened.push(handle);
      return handle;
    },
    get base(): string {
      return base;
    },
  };
}
