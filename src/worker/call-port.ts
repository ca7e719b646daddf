/**
 * The fast path of a database worker's `Driver` calls (issue 15): both ends of the line to the
 * worker (worker-link.ts: the worker's own channel, which is faster than a MessageChannel)
 * that carries every Driver call of a database opened without sharing, in order.
 *
 * Why not Comlink for these: Comlink gives each call a random string id, adds and removes a
 * message listener per call, and wraps every argument and result in wire values; for a call
 * such as `SELECT 1` that was a visible share of the round trip. Here each end keeps one
 * listener, a call is `[id, method, args]` with an integer id, and its answer `[id, ok, value]`,
 * with the result buffers transferred (packed-rows.ts `transferables`). Comlink still carries
 * the control plane (`open`, `stepDown`, the sync callbacks the worker calls back).
 *
 * A large `query()` result comes back in parts before its answer (`[id, null, part]`,
 * packed-rows.ts "Parts"): the caller's end makes each part's objects as it arrives, while the
 * engine steps on.
 *
 * The engine's events (`onTablesChanged`, `onSyncProgress`) come back on the same port with id
 * 0, so a subscription and the calls around it stay in one ordered stream and no function has
 * to cross as a proxy.
 *
 * Every call settles: `fail(error)` (the worker died, or the page terminated it) rejects every
 * pending call and every later one with that error.
 */
import type { Driver } from '../driver.js';
import { DRIVER_METHODS } from '../driver.js';
import { type PackedRows, RowParts, type QueryRows, transferables } from '../engine/packed-rows.js';
import type { SyncProgress } from '../types.js';
import { type SerializedError, deserializeError, serializeError } from './protocol.js';
import type { LinkPort } from './worker-link.js';

/** A call: its id (from 1), the Driver method, and its arguments (listeners as booleans). */
export type CallMessage = [id: number, method: string, args: unknown[]];

/** An answer to call `id`, or with id 0 an engine event. */
export type CallAnswer =
  | [id: number, ok: true, value: unknown]
  | [id: number, ok: false, error: SerializedError]
  /** A part of query `id`'s rows, before its answer. */
  | [id: number, ok: null, part: PackedRows]
  | [id: 0, event: 'tables', tables: string[]]
  | [id: 0, event: 'progress', progress: SyncProgress];

/** The buffers of a method's result to transfer rather than copy (none for a small result). */
export function resultTransferables(method: string, value: unknown): Transferable[] {
  if (method === 'query') return transferables(value as QueryRows);
  if (method === 'statementRows' || method === 'watchQuery') return transferables((value as { rows: PackedRows }).rows);
  if (method === 'export') return [(value as Uint8Array).buffer as ArrayBuffer];
  return [];
}

/**
 * The engine's end: serves each call on `port` with the same method of `opened()`, one after
 * another as they arrive (the engine runs them in order anyway), and answers on the port.
 * `close` is the worker's own (it also closes what the worker holds beside the engine).
 */
export function serveCalls(port: LinkPort, opened: () => Driver, close: () => Promise<void>): void {
  const post = (answer: CallAnswer, transfer: Transferable[] = []): void => port.postMessage(answer, transfer);
  port.onmessage = (event: MessageEvent<CallMessage>) => {
    const [id, method, args] = event.data;
    void answer(id, method, args).then(
      (value) => {
        try {
          post([id, true, value], resultTransferables(method, value));
        } catch (e) {
          // A result that cannot be cloned still settles its call.
          post([id, false, serializeError(e)]);
        }
      },
      (e: unknown) => post([id, false, serializeError(e)]),
    );
  };
  const answer = async (id: number, method: string, args: unknown[]): Promise<unknown> => {
    if (method === 'close') return close();
    const driver = opened();
    if (method === 'onTablesChanged') return driver.onTablesChanged(args[0] ? (tables) => post([0, 'tables', tables]) : null);
    if (method === 'onSyncProgress') return driver.onSyncProgress(args[0] ? (progress) => post([0, 'progress', progress]) : null);
    if (!(DRIVER_METHODS as readonly string[]).includes(method)) throw new Error(`unknown driver method ${method} (call ${id})`);
    if (method === 'query') {
      const [sql, params, maxRows, limits] = args as Parameters<Driver['query']>;
      return driver.query(sql, params, maxRows, limits, (part) => post([id, null, part], transferables(part)));
    }
    // The method and its arguments are typed by Driver at both ends; the name from the
    // message loses the pairing, so this one call site is untyped.
    const target = driver as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    return target[method]!(...args);
  };
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
  /** The parts of a query's rows so far, made into objects. */
  parts?: RowParts;
}

/** The caller's end: a `Driver` whose every call goes over `port` (see the header). */
export class CallPort {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  private tablesListener: ((tables: string[]) => void) | null = null;
  private progressListener: ((progress: SyncProgress) => void) | null = null;
  readonly driver: Driver;

  constructor(private readonly port: LinkPort) {
    port.onmessage = (event: MessageEvent<CallAnswer>) => this.answer(event.data);
    const entries = DRIVER_METHODS.map((name) => [name, (...args: unknown[]) => this.call(name, args)]);
    const driver = Object.fromEntries(entries) as unknown as Driver;
    // A listener cannot cross: the engine posts its events on this port instead.
    driver.onTablesChanged = (listener) => {
      this.tablesListener = listener;
      return this.call('onTablesChanged', [listener !== null]) as Promise<void>;
    };
    driver.onSyncProgress = (listener) => {
      this.progressListener = listener;
      return this.call('onSyncProgress', [listener !== null]) as Promise<void>;
    };
    this.driver = driver;
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.port.postMessage([id, method, args] satisfies CallMessage);
      } catch (e) {
        // An argument that cannot be cloned (a function among the parameters): nothing was sent.
        this.pending.delete(id);
        throw e;
      }
    });
  }

  private answer(message: CallAnswer): void {
    if (message[0] === 0) {
      // Id 0 is only ever an event (call ids start at 1); the tuple type cannot say so.
      const event = message as Extract<CallAnswer, [0, string, unknown]>;
      if (event[1] === 'tables') this.tablesListener?.(event[2]);
      else if (event[1] === 'progress') this.progressListener?.(event[2]);
      return;
    }
    const pending = this.pending.get(message[0]);
    if (!pending) return;
    if (message[1] === null) {
      (pending.parts ??= new RowParts()).add(message[2]);
      return;
    }
    this.pending.delete(message[0]);
    if (message[1]) pending.resolve(pending.parts ? pending.parts.finish(message[2] as QueryRows) : message[2]);
    else pending.reject(deserializeError(message[2]));
  }

  /** Rejects every pending and later call with `error`, and closes the port. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.tablesListener = null;
    this.progressListener = null;
    this.port.close();
  }
}
