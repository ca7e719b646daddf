/**
 * The calling thread's side of `outpost/node`'s engine thread: starts one worker thread per
 * process (node/engine-thread.ts), shared by every database opened with `engine: 'thread'`,
 * and turns each database's Comlink proxy into a `Driver`.
 *
 * - Why one thread: starting a thread and compiling SQLite's WASM in it cost about 1.5 s per
 *   `open()` under load; the second open of a process now pays neither. The price: one
 *   database's long statement delays the calls of the others (each can still be stopped).
 * - Stopping a running call: each database has its own abort flag, a SharedArrayBuffer the
 *   engine's progress handler reads (driver.ts `EngineLimits`); `interrupt` writes a call's
 *   abort id into it.
 * - The thread keeps the process alive only while a call is in flight (or a database with live
 *   sync, which works in the background, is open), so a script that forgets `close()` still
 *   exits, as it does with the in-process engine; with no database open it stays, unref'd,
 *   for the next `open()`.
 * - If the thread dies, every pending and later call of its databases fails with
 *   `OutpostError('WORKER_FAILED')`; the next `open()` starts a new thread.
 * - Run from source (the tests, `tsx`), the entry is TypeScript and the thread loads it
 *   through tsx; the published build starts the compiled `.js`.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
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
}

/** The process's engine thread, while it runs. */
interface EngineThread {
  worker: Worker;
  remote: Comlink.Remote<NodeEngineApi>;
  /** Rejects once the thread has died. */
  died: Promise<never>;
  /** Calls in flight plus open live-sync databases: the thread is ref'd while any. */
  holds: number;
}

let current: EngineThread | null = null;

/** The running engine thread, started on first use and again after it died. */
function engineThread(): EngineThread {
  if (current) return current;
  const worker = startThread();
  let failWith: (e: Error) => void = () => {};
  const died = new Promise<never>((_, reject) => {
    failWith = reject;
  });
  // Keep the rejection from being reported as unhandled when nobody is waiting on it.
  died.catch(() => {});
  const thread: EngineThread = { worker, remote: Comlink.wrap<NodeEngineApi>(portEndpoint(worker)), died, holds: 0 };
  const fail = (e: OutpostError): void => {
    if (current === thread) current = null;
    failWith(e);
  };
  worker.on('error', (e) => fail(new OutpostError(`the database engine thread failed: ${e.message}`, 'WORKER_FAILED')));
  worker.on('exit', (code) => fail(new OutpostError(`the database engine thread exited (code ${code})`, 'WORKER_FAILED')));
  // Idle, the thread must not keep the process alive: a script that forgets close() exits.
  worker.unref();
  current = thread;
  return thread;
}

function hold(thread: EngineThread): void {
  if (thread.holds++ === 0) thread.worker.ref();
}

function unhold(thread: EngineThread): void {
  if (--thread.holds === 0) thread.worker.unref();
}

/** Flags (and the value after each) that shape how modules load, which a thread also needs. */
const LOADER_FLAGS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader', '--conditions', '-C']);

/**
 * The process's flags a thread may take. A thread inherits them, but Node refuses a thread
 * some of them (`--expose-gc`, heap sizes: ERR_WORKER_INVALID_EXEC_ARGV), so past that refusal
 * only the module-loading flags are kept. `--input-type` (of `node -e`) is dropped always: it is
 * only valid for a string entry, and the bootstrap below is CommonJS whatever the parent's type.
 */
function threadFlags(all: boolean): string[] {
  const argv = process.execArgv.filter((arg) => !arg.startsWith('--input-type'));
  if (all) return argv;
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.split('=')[0]!;
    if (LOADER_FLAGS.has(name)) {
      kept.push(arg);
      if (!arg.includes('=') && i + 1 < argv.length) kept.push(argv[++i]!);
    } else if (arg === '--enable-source-maps' || arg.startsWith('--experimental-') || arg.startsWith('--no-warnings')) {
      kept.push(arg);
    }
  }
  return kept;
}

function startThread(): Worker {
  try {
    return startThreadWith(threadFlags(true));
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return startThreadWith(threadFlags(false));
  }
}

function startThreadWith(execArgv: string[]): Worker {
  const options = { name: 'outpost:engine', execArgv };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./engine-thread.js', import.meta.url), options);
  // From source: Node 20 applies no ESM loader hooks in a worker thread, so a small script
  // installs tsx's require hooks there and requires the TypeScript entry.
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs');
  const entry = fileURLToPath(new URL('./engine-thread.ts', import.meta.url));
  const bootstrap = `require(${JSON.stringify(tsx)}); require(${JSON.stringify(entry)});`;
  return new Worker(bootstrap, { ...options, eval: true });
}

export async function openInThread(request: Omit<NodeOpenRequest, 'abortFlag' | 'port'>, callbacks: SyncCallbacks, keepAlive: boolean): Promise<ThreadConnection> {
  installErrorTransfer();
  installCallbackTransfer();
  const abortFlag = new SharedArrayBuffer(4);
  const flag = new Int32Array(abortFlag);
  const thread = engineThread();
  const call = async <T>(start: () => Promise<T>): Promise<T> => {
    hold(thread);
    try {
      return await Promise.race([start(), thread.died]);
    } finally {
      unhold(thread);
    }
  };
  // The database's own channel: its calls and answers never queue behind another's messages
  // on the calling side, and closing it ends the database's host in the thread.
  const { port1, port2 } = new MessageChannel();
  const remote = Comlink.wrap<Driver>(portEndpoint(port1));
  // A listening port keeps the process alive; `call` holds the thread instead, while it waits.
  port1.unref();
  let released = false;
  let held = false;
  const release = (): void => {
    if (released) return;
    released = true;
    remote[Comlink.releaseProxy]();
    port1.close();
    if (held) unhold(thread);
  };
  try {
    const openRequest: NodeOpenRequest = { ...request, abortFlag, port: port2 };
    await call(() =>
      thread.remote.open(
        // Node's MessagePort is transferable; the DOM typing of Transferable does not name it.
        Comlink.transfer(openRequest, [port2 as unknown as Transferable]),
        callbacks.authToken ? threadCallback(callbacks.authToken) : undefined,
        callbacks.transform ? threadCallback(callbacks.transform) : undefined,
      ),
    );
  } catch (e) {
    release();
    throw e;
  }
  // Live sync works in the background, between calls: the thread stays ref'd until close.
  if (keepAlive) {
    held = true;
    hold(thread);
  }
  const driver = remoteDriver(remote, call, release, threadCallback);
  return { driver, interrupt: (abortId) => Atomics.store(flag, 0, abortId) };
}
