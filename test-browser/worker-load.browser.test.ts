/**
 * A database worker whose script cannot be loaded (a dropped connection, a server restarting or
 * overloaded): `open()` starts another worker once, on both the shared and the exclusive path,
 * and fails with WORKER_FAILED, saying so, when the script cannot be loaded again. The failed
 * loads are made by giving the first workers' constructor an address that does not exist.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { type Database, OutpostError, open } from '../src/index.js';

const databases: Database[] = [];
afterEach(async () => {
  vi.unstubAllGlobals();
  for (const db of databases.splice(0)) await db.close().catch(() => {});
});

/** Makes the next `failures` workers of database `name` load a script that is not there. */
function failWorkerLoads(name: string, failures: number): { started: () => number } {
  const RealWorker = Worker;
  let started = 0;
  let left = failures;
  class FlakyWorker extends RealWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      const database = options?.name === `outpost:${name}`;
      if (database) started++;
      const fail = database && left-- > 0;
      super(fail ? new URL(`./missing-${crypto.randomUUID()}.js`, import.meta.url) : url, options);
    }
  }
  vi.stubGlobal('Worker', FlakyWorker);
  return { started: () => started };
}

describe.each([
  { path: 'shared', lockTimeoutMs: undefined },
  { path: 'alone', lockTimeoutMs: 5_000 },
])('database worker script not loaded: $path', ({ lockTimeoutMs }) => {
  test('one failed load: open starts another worker and the database works', async () => {
    const name = `worker-load-${crypto.randomUUID()}`;
    const workers = failWorkerLoads(name, 1);
    const db = await open(name, lockTimeoutMs === undefined ? {} : { lockTimeoutMs });
    databases.push(db);
    await db.exec('CREATE TABLE t(x)');
    await db.run('INSERT INTO t VALUES (1)');
    expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 1 });
    expect(workers.started()).toBe(2);
  });

  test('two failed loads: open fails with WORKER_FAILED saying the script could not be loaded', async () => {
    const name = `worker-load-${crypto.randomUUID()}`;
    const workers = failWorkerLoads(name, 2);
    const opening = open(name, lockTimeoutMs === undefined ? {} : { lockTimeoutMs });
    const error = await opening.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OutpostError);
    expect((error as OutpostError).code).toBe('WORKER_FAILED');
    expect((error as OutpostError).message).toMatch(/script could not be loaded, twice/);
    expect(workers.started()).toBe(2);
  });
});
