/**
 * The worker protocol: what the UI thread may ask the database worker (`WorkerApi`, exposed
 * with Comlink), and how errors cross the boundary.
 *
 * One worker serves one open database. `open` must be the first call and succeed before any
 * other; `close` ends the database, after which the client terminates the worker.
 *
 * Errors: Comlink's default `throw` handler keeps only `name`, `message` and `stack`. The
 * handler installed by `installErrorTransfer()` (on both sides) sends every own field
 * (`code`, `resultCode`, `sql`, `database`, ...) and its `cause`, and rebuilds `SqliteError`,
 * `AbortError`, `DatabaseLockedError`, `OutpostError` and `SyncError` by name, so `instanceof`
 * and `code` work on the UI thread.
 */
import * as Comlink from 'comlink';
import type { Driver } from '../driver.js';
import { AbortError, DatabaseLockedError, OutpostError, type OutpostErrorCode, SqliteError, SyncError, type SyncErrorCode, withCause } from '../errors.js';
import type { SimulatedQuota } from '../opfs-vfs/storage/simulated-quota.js';
import type { Mutation, MutationResult, SyncOptions } from '../types.js';

export interface OpenRequest {
  name: string;
  storage: 'opfs' | 'memory';
  durability: 'normal' | 'full';
  intMode: 'number' | 'bigint';
  lockTimeoutMs: number;
  /**
   * Share the database with the other tabs and workers of the origin (one of them runs the
   * engine, the others forward to it: worker/tabs.ts). Without it the worker takes the database
   * for itself and fails with `DatabaseLockedError` after `lockTimeoutMs`.
   */
  shared?: boolean | undefined;
  /**
   * Four bytes the page writes a call's abort id into to stop it while the worker is busy
   * running it (driver.ts `EngineLimits`); only where the page is cross-origin isolated.
   */
  abortFlag?: SharedArrayBuffer | undefined;
  /**
   * Shared, where the page has Web Locks and BroadcastChannel: this worker's seat (seat.ts),
   * which talks to the page's side (tabs.ts) over the worker's line (worker-link.ts).
   * `clientId` is the page's, `brokerId` the broker the page joined (broker.ts), if any.
   * Without it a shared request takes the database alone.
   */
  seat?: { clientId: string; brokerId: string | null } | undefined;
  /** Not shared: the page sends its Driver calls over the worker's line (call-port.ts, worker-link.ts). */
  calls?: boolean | undefined;
  /** Shared: how long calls wait on a silent engine (tabs.ts). */
  tabTimeoutMs?: number | undefined;
  /** Tests only: make the OPFS files fail like a browser at quota past this many bytes. */
  simulatedQuota?: SimulatedQuota | undefined;
  /** Sync settings; the token and transform functions travel as separate (proxied) arguments. */
  sync?: (Omit<SyncOptions, 'authToken' | 'transform'> & { authToken?: string | undefined }) | undefined;
}

/**
 * The page's first message to a new database worker, posted as soon as it is created (before
 * `open`): the compiled SQLite module the page kept from an earlier worker, or null. With
 * `compiling`, the page is compiling it itself and sends it (or null, if that failed) in a
 * `CompiledMessage` next; the worker then waits for it instead of fetching its own. Otherwise
 * the worker starts loading SQLite when this arrives, right after its script ran.
 */
export interface BootMessage {
  type: 'outpost:boot';
  wasm: WebAssembly.Module | null;
  compiling?: boolean | undefined;
}

/**
 * SQLite's compiled module, from the page to a worker it booted with `compiling` (null: the
 * page's compile failed), or from a worker that compiled it itself to its page, for the next
 * worker (never null that way).
 */
export interface CompiledMessage {
  type: 'outpost:wasm';
  module: WebAssembly.Module | null;
}

export function isBootMessage(data: unknown): data is BootMessage {
  return typeof data === 'object' && data !== null && (data as { type?: unknown }).type === 'outpost:boot';
}

export function isCompiledMessage(data: unknown): data is CompiledMessage {
  if (typeof data !== 'object' || data === null || (data as { type?: unknown }).type !== 'outpost:wasm') return false;
  const module = (data as { module?: unknown }).module;
  return module === null || module instanceof WebAssembly.Module;
}

/** The functions of the sync options, called back on the UI thread. */
export interface SyncCallbacks {
  authToken?: ((options: { refresh: boolean }) => Promise<string | undefined>) | undefined;
  transform?: ((mutations: Mutation[]) => Promise<MutationResult[]>) | undefined;
}

/** The worker serves exactly the `Driver` a `Database` needs, plus `open`. */
export interface WorkerApi extends Driver {
  open(request: OpenRequest, authToken?: SyncCallbacks['authToken'], transform?: SyncCallbacks['transform']): Promise<void>;
  /** A shared database: hand the engine to another tab if this one runs it (tabs.ts). */
  stepDown(leaving?: boolean): Promise<void>;
}

/** The page's connection to a database's broker (broker.ts), as it hands it to the database worker. */
export interface BrokerPort {
  port: MessagePort;
  brokerId: string;
}

export interface SerializedError {
  name: string;
  message: string;
  stack?: string | undefined;
  fields: Record<string, unknown>;
  /** The error's `cause`, when it is an error too (a SyncError NETWORK keeps fetch's). */
  cause?: SerializedError | undefined;
}

export function serializeError(value: unknown): SerializedError {
  if (value instanceof Error) {
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k !== 'name' && k !== 'message' && k !== 'stack' && (v === undefined || typeof v !== 'object' || v === null)) fields[k] = v;
    }
    const cause = value.cause === undefined ? undefined : serializeError(value.cause);
    return { name: value.name, message: value.message, stack: value.stack, fields, cause };
  }
  return { name: 'Error', message: String(value), fields: {} };
}

export function deserializeError(s: SerializedError): Error {
  let e: Error;
  const f = s.fields;
  switch (s.name) {
    case 'SqliteError':
      e = new SqliteError(s.message, String(f.code), Number(f.resultCode), f.sql === undefined ? undefined : String(f.sql));
      if (typeof f.statementIndex === 'number') (e as SqliteError).statementIndex = f.statementIndex;
      break;
    case 'AbortError':
      e = new AbortError(s.message);
      break;
    case 'DatabaseLockedError':
      e = new DatabaseLockedError(String(f.database), s.message);
      break;
    case 'OutpostError':
      e = new OutpostError(s.message, f.code as OutpostErrorCode);
      break;
    case 'SyncError':
      e = new SyncError(s.message, f.code as SyncErrorCode, f.status as number | undefined, f.changeId as number | undefined, f.table as string | undefined);
      break;
    default:
      e = new Error(s.message);
      e.name = s.name;
  }
  if (s.stack) e.stack = s.stack;
  if (s.cause) withCause(e, deserializeError(s.cause));
  return e;
}

let installed = false;

/** Replaces Comlink's `throw` handler with one that keeps Outpost's error fields. */
export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  const base = Comlink.transferHandlers.get('throw');
  if (!base) throw new Error('Comlink has no throw handler to replace');
  const handler: Comlink.TransferHandler<{ value: unknown }, SerializedError> = {
    canHandle: (v): v is { value: unknown } => base.canHandle(v),
    serialize: ({ value }) => [serializeError(value), []],
    deserialize: (s) => {
      throw deserializeError(s);
    },
  };
  Comlink.transferHandlers.set('throw', handler);
}
