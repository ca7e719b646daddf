/**
 * The calling thread's side of `outpost/node`'s engine thread: starts one worker thread per
 * open database (node/engine-thread.ts) and turns its Comlink proxy into a `Driver`.
 *
 * - Stopping a running call: the abort flag is a SharedArrayBuffer the engine's progress
 *   handler reads (driver.ts `EngineLimits`); `interrupt` writes a call's abort id into it.
 * - The thread keeps the process alive only while a call is in flight (or with live sync,
 *   which works in the background), so a script that forgets `close()` still exits, as it
 *   does with the in-process engine.
 * - If the thread dies, every pending and later call fails with `OutpostError('WORKER_FAILED')`.
 * - Run from source (the tests, `tsx`), the entry is TypeScript and the thread loads it
 *   through tsx; the published build starts the compiled `.js`.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import type { Driver } from '../driver.js';
import { OutpostError } from '../errors.js';
import { type SyncCallbacks, installErrorTransfer } from '../worker/protocol.js';
import { remoteDriver } from '../worker/remote-driver.js';
import { type NodeEngineApi, type NodeOpenRequest, installCallbackTransfer, portEndpoint, threadCallback } from './thread-protocol.js';

export interface ThreadConnection {
  driver: Driver;
  /** Stops the running call with this abort id. */
  interrupt(abortId: number): void;
  terminate(): Promise<void>;
}

function startThread(name: string): Worker {
  // A thread inherits the process's flags, but `--input-type` (of `node -e`) is only valid for
  // a string entry, and the bootstrap below is CommonJS whatever the parent's input type.
  const options = { name: `outpost:${name}`, execArgv: process.execArgv.filter((arg) => !arg.startsWith('--input-type')) };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./engine-thread.js', import.meta.url), options);
  // From source: Node 20 applies no ESM loader hooks in a worker thread, so a small script
  // installs tsx's require hooks there and requires the TypeScript entry.
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs');
  const entry = fileURLToPath(new URL('./engine-thread.ts', import.meta.url));
  const bootstrap = `require(${JSON.stringify(tsx)}); require(${JSON.stringify(entry)});`;
  return new Worker(bootstrap, { ...options, eval: true });
}

export async function openInThread(request: Omit<NodeOpenRequest, 'abortFlag'>, callbacks: SyncCallbacks, keepAlive: boolean): Promise<ThreadConnection> {
  installErrorTransfer();
  installCallbackTransfer();
  const abortFlag = new SharedArrayBuffer(4);
  const flag = new Int32Array(abortFlag);
  const worker = startThread(request.path);
  let failWith: (e: Error) => void = () => {};
  const died = new Promise<never>((_, reject) => {
    failWith = reject;
  });
  // Keep the rejection from being reported as unhandled when nobody is waiting on it.
  died.catch(() => {});
  worker.on('error', (e) => failWith(new OutpostError(`the database engine thread failed: ${e.message}`, 'WORKER_FAILED')));
  worker.on('exit', (code) => failWith(new OutpostError(`the database engine thread exited (code ${code})`, 'WORKER_FAILED')));
  const remote = Comlink.wrap<NodeEngineApi>(portEndpoint(worker));
  let inFlight = 0;
  const call = async <T>(start: () => Promise<T>): Promise<T> => {
    if (inFlight++ === 0 && !keepAlive) worker.ref();
    try {
      return await Promise.race([start(), died]);
    } finally {
      if (--inFlight === 0 && !keepAlive) worker.unref();
    }
  };
  if (!keepAlive) worker.unref();

  const terminate = async (): Promise<void> => {
    remote[Comlink.releaseProxy]();
    await worker.terminate();
  };
  try {
    await call(() =>
      remote.open(
        { ...request, abortFlag },
        callbacks.authToken ? threadCallback(callbacks.authToken) : undefined,
        callbacks.transform ? threadCallback(callbacks.transform) : undefined,
      ),
    );
  } catch (e) {
    await terminate();
    throw e;
  }
  const driver = remoteDriver(remote, call, terminate, threadCallback);
  return { driver, interrupt: (abortId) => Atomics.store(flag, 0, abortId), terminate };
}
