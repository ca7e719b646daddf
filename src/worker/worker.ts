/**
 * The database worker's entry. It exposes `WorkerApi` with Comlink synchronously, before
 * anything is awaited: a message posted to a module worker while a top-level `await` is pending
 * is lost, and Vite builds workers as IIFE by default, which rejects top-level `await`. The
 * WASM module starts loading at the same time, without being awaited (the end of this file),
 * and `open` awaits that same load.
 *
 * After `open`, every call goes to `connectionDriver` (../driver.ts), the same adapter Node
 * uses: the page's calls arrive on the worker's line (worker-link.ts, call-port.ts `serveCalls`, which
 * transfers result buffers and posts the engine's events on that line); the Comlink API keeps
 * remote-driver.ts `hostMethods` for anything that still calls through it. An OPFS database opened with `shared` (every `open()`
 * without an explicit `lockTimeoutMs`) gets a seat instead (seat.ts): this worker runs the
 * engine while it holds the database lock, and the page (tabs.ts) sends its calls straight to
 * whichever worker runs it; `open` then resolves at once. Every worker opens the database's
 * abort file (abort-file.ts) at `open`, seat or not, so the engine it may run later reads it.
 *
 * Layer worker/ (this file, the page's client.ts and tabs.ts, the broker, the abort writer).
 * May import: database.ts, driver.ts, statement.ts (api), engine/, sync/, opfs-vfs/storage/,
 * options.ts, types.ts, errors.ts; never browser/ or node/, which import it.
 */
import * as Comlink from 'comlink';
import { unpackRows } from '../engine/packed-rows.js';
import { type AbortFlag, type Driver, connectionDriver, forwardDriver, sharedAbortFlag } from '../driver.js';
import { type AbortFileHandle, eitherAbortFlag, fileAbortFlag, openAbortFile } from './abort-file.js';
import { OutpostError } from '../errors.js';
import { publicStorageError } from '../options.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { OpfsDirectory } from '../opfs-vfs/storage/opfs.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { openDatabase } from '../sync/open.js';
import { loadRuntime } from '../engine/runtime.js';
import { CallLog } from './call-log.js';
import { hostMethods } from './remote-driver.js';
import { serveCalls } from './call-port.js';
import { type WorkerScope, acceptLink } from './worker-link.js';
import { type CompiledMessage, type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer, isBootMessage, isCompiledMessage } from './protocol.js';
import { EngineSeat, type OpenEngine } from './seat.js';

let driver: Driver | null = null;
/**
 * Where a running call's abort shows (driver.ts `AbortFlag`): the page's shared memory when the
 * page is cross-origin isolated, and the database's abort file (abort-file.ts) once it is open.
 */
let abortFlag: AbortFlag | null = null;
let abortFile: AbortFileHandle | null = null;
/** The abort file's opening, which a seat does not wait for before it asks for the lock; `close` waits for it. */
let abortFileOpening: Promise<void> | null = null;
let seat: EngineSeat | null = null;

/**
 * Opens an engine like `req`'s on a throwaway memory directory, writes, reads and closes it:
 * a waiting seat's warm-up (seat.ts).
 */
async function warmUp(req: OpenRequest): Promise<void> {
  const engine = await openEngine({ ...req, sync: undefined }, {}, new MemoryDirectory(`warm-up:${req.name}`));
  try {
    const d = engine.driver;
    await d.exec('CREATE TABLE warm(id INTEGER PRIMARY KEY, v TEXT)');
    await d.run('INSERT INTO warm(v) VALUES (?)', ['warm']);
    await d.query('SELECT * FROM warm', undefined);
    await engine.tables();
  } finally {
    await engine.driver.close();
  }
}

/**
 * A shared database's seat: the engine opens on `dir` when this worker wins the lock, and not
 * before `fileReady` (the abort file) settles.
 */
function takeSeat(req: OpenRequest, callbacks: SyncCallbacks, joined: NonNullable<OpenRequest['seat']>, fileReady: Promise<void>): EngineSeat {
  const dirOptions = { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota };
  return new EngineSeat(
    req.name,
    link,
    joined.clientId,
    async (release) => {
      try {
        // The file before the engine: a statement started before it opened could never see it.
        await fileReady;
        return await openEngine(req, callbacks, await OpfsDirectory.locked(req.name, dirOptions, release));
      } catch (e) {
        // Also when this worker takes over later: the page's callers see the public error.
        throw publicStorageError(e, req.name);
      }
    },
    joined.brokerId,
    () => warmUp(req),
  );
}

function opened(): Driver {
  if (!driver) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return driver;
}

/** Opens the engine on `dir`: the Driver, and what the shared mode needs of its connection. */
async function openEngine(req: OpenRequest, callbacks: SyncCallbacks, dir: StorageDirectory): ReturnType<OpenEngine> {
  const options = { durability: req.durability, intMode: req.intMode };
  const sync = req.sync
    ? {
        ...req.sync,
        authToken: callbacks.authToken ?? req.sync.authToken,
        ...(callbacks.transform ? { transform: callbacks.transform } : {}),
      }
    : undefined;
  const { conn, engine } = await openDatabase(dir, options, sync);
  return {
    driver: connectionDriver(conn, engine, abortFlag),
    inTransaction: () => conn.inTransaction,
    calls: new CallLog(conn),
    leaving: () => conn.skipCheckpointOnClose(),
    tables: async () => unpackRows<{ name: string }>(conn.query("SELECT name FROM sqlite_master WHERE type = 'table'", undefined)).map((r) => r.name),
  };
}

async function openDriver(req: OpenRequest, callbacks: SyncCallbacks): Promise<Driver> {
  if (req.storage === 'memory') return (await openEngine(req, callbacks, new MemoryDirectory(`memory:${req.name}`))).driver;
  const dirOptions = { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota };
  try {
    return (await openEngine(req, callbacks, await OpfsDirectory.lock(req.name, dirOptions))).driver;
  } catch (e) {
    throw publicStorageError(e, req.name);
  }
}

const api: WorkerApi = {
  ...forwardDriver(opened),
  ...hostMethods(opened),
  async open(req, authToken, transform) {
    if (driver || seat) throw new OutpostError('this worker already has a database open', 'INVALID_ARGUMENT');
    // The file opens beside the database and before the first call: a statement started
    // before it opened could never see it (nothing resolves while the worker is busy).
    let file: AbortFlag | null = null;
    abortFlag = eitherAbortFlag(req.abortFlag ? sharedAbortFlag(new Int32Array(req.abortFlag)) : null, () => file);
    if (req.seat) {
      // The seat asks for the lock while the file opens (on a first open this worker is busy
      // loading SQLite, and both wait for it); its engine opens only once the file has.
      abortFileOpening = openAbortFile(req.name).then((handle) => {
        abortFile = handle;
        file = handle && fileAbortFlag(handle);
      });
      seat = takeSeat(req, { authToken, transform }, req.seat, abortFileOpening);
      return;
    }
    const [engineDriver, handle] = await Promise.all([openDriver(req, { authToken, transform }), openAbortFile(req.name)]);
    abortFile = handle;
    file = handle && fileAbortFlag(handle);
    driver = engineDriver;
    if (req.calls) serveCalls(link, opened, () => api.close());
  },
  async stepDown(leaving) {
    await seat?.stepDown(leaving);
  },
  async close() {
    const s = seat;
    seat = null;
    await s?.close();
    // A file still opening is closed with the rest.
    await abortFileOpening;
    const d = driver;
    driver = null;
    abortFile?.close();
    abortFile = null;
    await d?.close();
  },
};

/**
 * Every worker runs an engine or a seat, and both need SQLite: loading it starts at the page's
 * first message (client.ts posts it as it creates the worker, so it is delivered as soon as
 * this script has run), while the page is still taking its locks and sending `open`, instead
 * of after that message and the abort file (measured: most of an open's time was this load).
 * The message brings the compiled module the page kept, or says that the page is compiling it
 * and sends it next (`CompiledMessage`); a worker that compiles it itself (the page had none
 * and could not compile it) sends it to the page for the next one. `open` meanwhile takes the
 * lock and opens the files, and awaits this same load for the engine. A failure shows at
 * `open`, which loads the same promise again (and without the message, loads SQLite itself).
 * Both messages stop here: Comlink would answer them as calls.
 */
function boot(event: MessageEvent<unknown>): void {
  if (!isBootMessage(event.data)) return;
  event.stopImmediatePropagation();
  removeEventListener('message', boot);
  const keep = (module: WebAssembly.Module): void => {
    try {
      postMessage({ type: 'outpost:wasm', module } satisfies CompiledMessage);
    } catch {
      // A page that cannot take the module (another agent cluster) compiles again next time.
    }
  };
  const module = event.data.wasm ?? (event.data.compiling ? afterQueued(fromPage) : undefined);
  void loadRuntime({ module, compiled: keep }).catch(() => {});
}

/**
 * `value`, one task after it settles. SQLite's init, once it has the module, holds this thread
 * for tens of milliseconds; the page's `open` is often queued behind the module the page
 * compiled (both come at about the same time), and given this task it first asks for the lock
 * and the abort file, which the browser grants meanwhile. A module in the boot message itself
 * is not delayed: `open` comes after the page's lock handshake, well after it.
 */
function afterQueued<T>(value: Promise<T>): Promise<T> {
  return value.then((ready) => new Promise<T>((resolve) => setTimeout(() => resolve(ready), 0)));
}

installErrorTransfer();
// Before Comlink's listener: the line's messages stop at its own (worker-link.ts).
// The project's DOM typings see `self` as a Window; here it is a dedicated worker's scope.
const link = acceptLink(self as unknown as WorkerScope);
addEventListener('message', boot);
/** The module the page sends after a `compiling` boot (null if its compile failed). */
const fromPage = new Promise<WebAssembly.Module | null>((resolve) => {
  const receive = (event: MessageEvent<unknown>): void => {
    if (!isCompiledMessage(event.data)) return;
    event.stopImmediatePropagation();
    removeEventListener('message', receive);
    resolve(event.data.module);
  };
  addEventListener('message', receive);
});
Comlink.expose(api);
