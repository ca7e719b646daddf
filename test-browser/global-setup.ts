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
    /** A database on the Outpost server whose table t counts the server's own inserts (see below). */
    countingDatabase: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const outpost = await startServer({ auth: false });
  const turso = await startTursoServer();
  project.provide('outpostServerUrl', outpost.url);
  // A TEMP trigger lives only in the server's connection, so it counts the server's own
  // applications of each insert; tenants may not create TEMP objects, so it is installed here,
  // as the server, before the browser test runs.
  const counting = 'killed-pull';
  await outpost.server.execTrusted(
    counting,
    'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE applied(n INTEGER PRIMARY KEY, id INTEGER); CREATE TEMP TRIGGER count_applied AFTER INSERT ON main.t BEGIN INSERT INTO applied(id) VALUES (new.id); END',
  );
  project.provide('countingDatabase', counting);
  project.provide('tursoServerUrl', turso.url);
  return async () => {
    await outpost.server.close();
    await turso.stop();
  };
}
