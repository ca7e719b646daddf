/**
 * The UI-thread side of the worker protocol: starts one module worker per open database, opens
 * it over Comlink (the control plane), and gives `Database` a `Driver` whose calls take the
 * worker's line (worker-link.ts, call-port.ts), not Comlink. A memory database is always opened
 * alone (browser/open.ts).
 *
 * The worker is created with `new Worker(new URL('./worker.js', import.meta.url), { type:
 * 'module' })`, the form bundlers (Vite, webpack 5, Rollup plugins) recognise and bundle
 * without configuration. Its first message is the SQLite module the page compiled already, or
 * says the page is compiling it (`startWorker`, `compileSqlite`): the page compiles the WASM
 * once, while its first worker's script loads (a worker compiles it only where the page could
 * not). A worker whose script could not be loaded is started once more, during `open()` only
 * (`openInWorker`). If the worker dies (a script that fails to load again, an out-of-memory
 * crash), every pending and later call fails with `OutpostError('WORKER_FAILED')` instead of
 * hanging. A database shared by the tabs (`shared`) gets the page's `SharedDriver` (tabs.ts)
 * as its Driver instead: the worker
 * only holds a seat (seat.ts), and calls go from this page straight to whichever worker runs
 * the engine.
 */
import * as Comlink from 'comlink';
import type { Driver } from '../driver.js';
import { fileAbortWriter } from './abort-page.js';
import { OutpostError } from '../errors.js';
import { type BootMessage, type BrokerPort, type CompiledMessage, type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer, isCompiledMessage } from './protocol.js';
import { CallPort } from './call-port.js';
import { linkToWorker } from './worker-link.js';
import { DEFAULT_TAB_TIMEOUT_MS } from '../options.js';
import { SharedDriver } from './tabs.js';
import { type BrokerMessage, type BrokerRequest, brokerWorkerName } from './tabs-protocol.js';

export interface WorkerConnection {
  driver: Driver;
  terminate(): void;
  /**
   * Stops the running call with this abort id: through the shared-memory flag where the page is
   * cross-origin isolated, and through the database's abort file (abort-file.ts), which also
   * reaches an engine in another tab and works without isolation in Chromium.
   */
  interrupt?: ((abortId: number) => void) | undefined;
  /** Hands the engine of a shared database to another tab (worker/tabs.ts); best effort. */
  stepDown(leaving?: boolean): Promise<void>;
}

/**
 * The abort flag: a SharedArrayBuffer the worker's progress handler reads while it runs a
 * statement. Browsers allow one only in a cross-origin isolated page (COOP and COEP headers);
 * elsewhere a running statement can stop only at its own `timeoutMs`.
 */
function abortFlag(): SharedArrayBuffer | undefined {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  return isolated && typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(4) : undefined;
}

/**
 * How long a page waits for its broker's first answer before it takes the BroadcastChannel
 * path. A broker answers as soon as its script runs; one that started but never answers (a
 * script a proxy or extension replaced, a SharedWorker stuck at start) would otherwise hold
 * `open()` forever. The bound is generous because a late broker only costs the faster path:
 * tabs on either path share one engine.
 */
export const BROKER_ANSWER_TIMEOUT_MS = 5_000;

/**
 * Starts (or joins) the broker of a shared database, a SharedWorker per database and origin
 * (broker.ts), and resolves with its port once it answers. Resolves undefined where
 * `SharedWorker` is missing (Android Chrome before 148, a dedicated worker), the script could
 * not start, or it did not answer within `BROKER_ANSWER_TIMEOUT_MS`: the tabs then reach the
 * engine over BroadcastChannel (tabs.ts).
 */
function connectBroker(name: string): Promise<BrokerPort | undefined> {
  if (typeof SharedWorker !== 'function') return Promise.resolve(undefined);
  let broker: SharedWorker;
  try {
    broker = new SharedWorker(new URL('./broker.js', import.meta.url), { type: 'module', name: brokerWorkerName(name) });
  } catch {
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    const port = broker.port;
    let settled = false;
    const settle = (result: BrokerPort | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      port.onmessage = null;
      // A port the page gave up on is closed, so a late answer finds nobody.
      if (!result) port.close();
      resolve(result);
    };
    const timer = setTimeout(() => settle(undefined), BROKER_ANSWER_TIMEOUT_MS);
    broker.addEventListener('error', () => settle(undefined));
    port.onmessage = (event: MessageEvent<BrokerMessage>) => {
      // Nothing else arrives before the port moves to the database worker: the broker only
      // answers what that worker sends.
      settle(event.data.type === 'broker' ? { port, brokerId: event.data.brokerId } : undefined);
    };
    port.postMessage({ type: 'hello', name } satisfies BrokerRequest);
  });
}

/**
 * SQLite's compiled WASM, kept for the page's life (the workers hold the same module while they
 * run): every database worker after the first instantiates it instead of fetching and
 * compiling the WASM again. A SharedWorker cannot take it (a module moves only within its
 * agent cluster), so each page compiles once.
 */
let compiledSqlite: WebAssembly.Module | null = null;
/** The page's own compile of SQLite's WASM (`compileSqlite`), started by the first open. */
let compilingSqlite: Promise<WebAssembly.Module | null> | null = null;

/**
 * Compiles SQLite's WASM in the page, from the same file the worker's loader would fetch (the
 * package's `sqlite3.wasm`, which bundlers emit once for both references). It starts as the
 * first worker is created and runs while that worker's script loads and compiles, instead of
 * after it: the two took about the same time, one after the other (issue 15). The streaming
 * compile runs off the page's thread. Resolves null where it fails (no bundler resolved the
 * address, a CSP without `wasm-unsafe-eval`, an offline page without the file): the worker
 * then loads SQLite itself, as before.
 */
function compileSqlite(): Promise<WebAssembly.Module | null> {
  compilingSqlite ??= (async () => {
    try {
      const url = new URL('@sqlite.org/sqlite-wasm/sqlite3.wasm', import.meta.url);
      const response = fetch(url, { credentials: 'same-origin' });
      const module = typeof WebAssembly.compileStreaming === 'function' ? await WebAssembly.compileStreaming(response) : await WebAssembly.compile(await (await response).arrayBuffer());
      compiledSqlite ??= module;
      return compiledSqlite;
    } catch {
      return null;
    }
  })();
  return compilingSqlite;
}

/**
 * Creates a database worker and boots it with the page's compiled SQLite. A page that has none
 * yet compiles it now, while the worker's script loads, and sends it when ready; a page whose
 * compile failed takes the module the worker compiles instead.
 */
function startWorker(name: string): Worker {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: `outpost:${name}` });
  worker.postMessage({ type: 'outpost:boot', wasm: compiledSqlite, compiling: !compiledSqlite } satisfies BootMessage);
  if (compiledSqlite) return worker;
  const keep = (event: MessageEvent<unknown>): void => {
    if (!isCompiledMessage(event.data)) return;
    worker.removeEventListener('message', keep);
    compiledSqlite ??= event.data.module;
  };
  void compileSqlite().then((module) => {
    if (!module) worker.addEventListener('message', keep);
    worker.postMessage({ type: 'outpost:wasm', module } satisfies CompiledMessage);
  });
  return worker;
}

/**
 * The errors of a database worker whose script never ran: fetching it or one of its imports
 * failed (a dropped connection, a server restarting or overloaded, a Vite dev server under
 * load). Browsers report this as a plain `Event` on the Worker, where an error the script threw
 * is an `ErrorEvent` with its message (HTML's "run a worker", step "if the algorithm
 * asynchronously completes with null").
 */
const scriptNotLoaded = new WeakSet<Error>();

/**
 * Opens the database in a new worker (`openOnce`), and once more in another when the first
 * worker's script could not be loaded: nothing of that worker ran, and no call of the caller's
 * was sent before `open()` resolves, so the second attempt starts from the same state. A
 * failure that lasts (a missing file, a wrong address) fails the second attempt too.
 */
export async function openInWorker(openRequest: OpenRequest, callbacks: SyncCallbacks = {}): Promise<WorkerConnection> {
  try {
    return await openOnce(openRequest, callbacks);
  } catch (e) {
    if (!(e instanceof Error && scriptNotLoaded.has(e))) throw e;
    try {
      return await openOnce(openRequest, callbacks);
    } catch (again) {
      if (!(again instanceof Error && scriptNotLoaded.has(again))) throw again;
      throw new OutpostError('the database worker failed: its script could not be loaded, twice (is the worker script served?)', 'WORKER_FAILED');
    }
  }
}

async function openOnce(openRequest: OpenRequest, callbacks: SyncCallbacks): Promise<WorkerConnection> {
  installErrorTransfer();
  const flag = abortFlag();
  // Sharing needs Web Locks (to elect the engine) and BroadcastChannel here; without them the
  // worker takes the database alone.
  const sharing = openRequest.shared === true && typeof navigator.locks?.request === 'function' && typeof BroadcastChannel === 'function';
  const brokerReady = sharing ? connectBroker(openRequest.name) : Promise.resolve(undefined);
  const worker = startWorker(openRequest.name);
  let failWith: (e: Error) => void = () => {};
  let shared: SharedDriver | null = null;
  // The page's line to this worker (worker-link.ts): a database opened alone takes its Driver
  // calls over it (call-port.ts), a shared one talks to its seat over it (tabs.ts, seat.ts).
  const link = linkToWorker(worker);
  const callPort = sharing ? null : new CallPort(link);
  const died = new Promise<never>((_, reject) => {
    failWith = (e) => {
      shared?.fail(e);
      callPort?.fail(e);
      reject(e);
    };
  });
  // Keep the rejection from being reported as unhandled when nobody is waiting on it.
  died.catch(() => {});
  worker.addEventListener('error', (event: Event) => {
    event.preventDefault();
    if (event instanceof ErrorEvent) {
      failWith(new OutpostError(`the database worker failed: ${event.message || 'an error without a message'}`, 'WORKER_FAILED'));
      return;
    }
    const error = new OutpostError('the database worker failed: its script could not be loaded', 'WORKER_FAILED');
    scriptNotLoaded.add(error);
    failWith(error);
  });
  const remote = Comlink.wrap<WorkerApi>(worker);
  const call = <T>(start: () => Promise<T>): Promise<T> => Promise.race([start(), died]);

  const openRemote = (request: OpenRequest, transfer: Transferable[]): Promise<void> =>
    call(() =>
      remote.open(
        Comlink.transfer(request, transfer),
        callbacks.authToken ? Comlink.proxy(callbacks.authToken) : undefined,
        callbacks.transform ? Comlink.proxy(callbacks.transform) : undefined,
      ),
    );
  try {
    if (sharing) {
      // This page calls the engine's worker directly (tabs.ts); its own worker only holds a seat.
      const timeoutMs = openRequest.tabTimeoutMs ?? DEFAULT_TAB_TIMEOUT_MS;
      shared = await SharedDriver.join(openRequest.name, timeoutMs, (seat) => openRemote({ ...openRequest, abortFlag: flag, seat }, []), (await brokerReady) ?? null, link);
    } else {
      await openRemote({ ...openRequest, abortFlag: flag, shared: false, calls: true }, []);
    }
  } catch (e) {
    callPort?.fail(e instanceof Error ? e : new Error(String(e)));
    worker.terminate();
    throw e;
  }
  const abortFile = fileAbortWriter(openRequest.name);
  let terminated = false;
  const terminate = (): void => {
    if (terminated) return;
    terminated = true;
    abortFile.release();
    callPort?.fail(new OutpostError(`database "${openRequest.name}" is closed`, 'DATABASE_CLOSED'));
    remote[Comlink.releaseProxy]();
    worker.terminate();
  };
  const flagView = flag ? new Int32Array(flag) : null;
  const interrupt = (abortId: number): void => {
    if (flagView) Atomics.store(flagView, 0, abortId);
    abortFile.interrupt(abortId);
  };
  const stepDown = (leaving?: boolean): Promise<void> => call(() => remote.stepDown(leaving));
  if (shared) {
    const page = shared;
    const sharedDriver: Driver = {
      ...page.driver,
      // The seat first: an engine running here closes in order and hands the database over.
      close: async () => {
        try {
          await call(() => remote.close());
        } finally {
          await page.close();
          terminate();
        }
      },
    };
    // The page's side goes with the worker: its lifetime lock, channels and watchdog.
    const terminateBoth = (): void => {
      void page.close();
      terminate();
    };
    return { driver: sharedDriver, terminate: terminateBoth, interrupt, stepDown };
  }
  const port = callPort!;
  const driver: Driver = {
    ...port.driver,
    close: async () => {
      try {
        await port.driver.close();
      } finally {
        terminate();
      }
    },
  };
  return { driver, terminate, interrupt, stepDown };
}
