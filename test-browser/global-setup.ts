/**
 * Starts the sync servers the browser tests talk to, on 127.0.0.1: an Outpost server and the
 * reference `turso --sync-server`. Their URLs reach the tests through `inject()`.
 */
import type { TestProject } from 'vitest/node';
import { startServer, startTursoServer } from '../test/support/server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    outpostServerUrl: string;
    tursoServerUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const outpost = await startServer({ auth: false });
  const turso = await startTursoServer();
  project.provide('outpostServerUrl', outpost.url);
  project.provide('tursoServerUrl', turso.url);
  return async () => {
    await outpost.server.close();
    await turso.stop();
  };
}
