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
import { type Driver, forwardDriver } from '../driver.js';
import { OutpostError } from '../errors.js';
import { type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer } from './protocol.js';

export interface WorkerConnection {
  driver: Driver;
  terminate(): void;
  /** Hands the engine of a shared database to another tab (worker/tabs.ts); best effort. */
  stepDown(): Promise<void>;
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
  const call = <T>(start: () => Promise<T>): Promise<T> => Promise.race([start(), died]);

  try {
    await call(() =>
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
  // Comlink's proxy has every method with the Driver's signature (promisified already).
  const forwarded = forwardDriver(() => remote as unknown as Driver, call);
  const driver: Driver = {
    ...forwarded,
    // A function cannot be cloned: it crosses as a proxy, called back from the worker.
    onTablesChanged: (listener) => call(() => remote.onTablesChanged(listener ? Comlink.proxy(listener) : null)),
    close: async () => {
      try {
        await forwarded.close();
      } finally {
        terminate();
      }
    },
  };
  return { driver, terminate, stepDown: () => call(() => remote.stepDown()) };
}
