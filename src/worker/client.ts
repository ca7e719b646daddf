/**
 * The UI-thread side of the worker protocol: starts one module worker per open database and
 * turns its Comlink proxy into a `Driver` for `Database`.
 *
 * The worker is created with `new Worker(new URL('./worker.js', import.meta.url), { type:
 * 'module' })`, the form bundlers (Vite, webpack 5, Rollup plugins) recognise and bundle
 * without configuration. If the worker dies (a script that fails to load, an out-of-memory
 * crash), every pending and later call fails with `OutpostError('WORKER_FAILED')` instead of
 * hanging.
 */
import * as Comlink from 'comlink';
import type { Driver } from '../database.js';
import { OutpostError } from '../errors.js';
import { type OpenReply, type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer } from './protocol.js';

export interface WorkerConnection {
  driver: Driver;
  reply: OpenReply;
  terminate(): void;
}

export async function openInWorker(request: OpenRequest, callbacks: SyncCallbacks = {}): Promise<WorkerConnection> {
  installErrorTransfer();
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: `outpost:${request.name}` });
  let failWith: (e: Error) => void = () => {};
  const died = new Promise<never>((_, reject) => {
    failWith = reject;
  });
  // Keep the rejection from being reported as unhandled when nobody is waiting on it.
  died.catch(() => {});
  worker.addEventListener('error', (event) => {
    event.preventDefault();
    failWith(new OutpostError(`the database worker failed: ${event.message || 'it could not be loaded'}`, 'WORKER_FAILED'));
  });
  const remote = Comlink.wrap<WorkerApi>(worker);
  const call = <T>(p: Promise<T>): Promise<T> => Promise.race([p, died]);

  let reply: OpenReply;
  try {
    reply = await call(
      remote.open(
        request,
        callbacks.authToken ? Comlink.proxy(callbacks.authToken) : undefined,
        callbacks.transform ? Comlink.proxy(callbacks.transform) : undefined,
      ),
    );
  } catch (e) {
    worker.terminate();
    throw e;
  }
  let terminated = false;
  const terminate = (): void => {
    if (terminated) return;
    terminated = true;
    remote[Comlink.releaseProxy]();
    worker.terminate();
  };
  const driver: Driver = {
    exec: (sql) => call(remote.exec(sql)),
    query: (sql, params, maxRows) => call(remote.query(sql, params, maxRows)),
    run: (sql, params) => call(remote.run(sql, params)),
    batch: (statements) => call(remote.batch(statements)),
    execMany: (sql) => call(remote.execMany(sql)),
    rollbackQuietly: (sql) => call(remote.rollbackQuietly(sql)),
    export: () => call(remote.export()),
    import: (bytes) => call(remote.import(bytes)),
    syncFetchPull: (longPoll) => call(remote.syncFetchPull(longPoll)),
    syncApplyPull: (ticket) => call(remote.syncApplyPull(ticket)),
    syncPush: () => call(remote.syncPush()),
    syncStatus: () => call(remote.syncStatus()),
    syncPending: () => call(remote.syncPending()),
    syncDrop: (id) => call(remote.syncDrop(id)),
    syncRetry: (id) => call(remote.syncRetry(id)),
    close: async () => {
      try {
        await call(remote.close());
      } finally {
        terminate();
      }
    },
  };
  return { driver, reply, terminate };
}
