/**
 * Both ends of a `Driver` that runs in another thread over Comlink: `outpost/node`'s engine
 * thread (node/engine-thread.ts, node/thread.ts) uses both; the browser's database worker
 * (worker.ts) still exposes `hostMethods` on its Comlink API, but the page sends its calls over
 * call-port.ts (a database opened alone) or tabs.ts (a shared one) instead.
 *
 * - The engine's end (`hostMethods`) adds what a plain forward lacks: result buffers are
 *   transferred, not copied, and the listeners, which arrive as proxies of the caller's thread,
 *   are called without waiting for them.
 * - The caller's end (`remoteDriver`) turns a listener into a proxy (a function cannot be
 *   cloned), races every call through `call` (the worker's death), and releases the remote
 *   after `close`.
 */
import * as Comlink from 'comlink';
import { type Driver, forwardDriver } from '../driver.js';
import { transferables } from '../engine/packed-rows.js';

type HostMethods = Pick<Driver, 'query' | 'statementRows' | 'watchQuery' | 'onTablesChanged' | 'onSyncProgress' | 'export'>;

/** The methods an engine's host overrides of `forwardDriver(opened)`; spread after it. */
export function hostMethods(opened: () => Driver): HostMethods {
  return {
    async query(sql, params, maxRows, limits) {
      const rows = await opened().query(sql, params, maxRows, limits);
      return Comlink.transfer(rows, transferables(rows));
    },
    async statementRows(handle, sql, params, step, limits) {
      const result = await opened().statementRows(handle, sql, params, step, limits);
      return Comlink.transfer(result, transferables(result.rows));
    },
    async watchQuery(sql, params) {
      const result = await opened().watchQuery(sql, params);
      return Comlink.transfer(result, transferables(result.rows));
    },
    async onTablesChanged(listener) {
      // The listener is a Comlink proxy of the caller's thread: each call posts a message and
      // returns a promise, which rejects once that side is gone; nothing here waits for it.
      await opened().onTablesChanged(listener ? (tables) => void Promise.resolve(listener(tables)).catch(() => {}) : null);
    },
    async onSyncProgress(listener) {
      await opened().onSyncProgress(listener ? (progress) => void Promise.resolve(listener(progress)).catch(() => {}) : null);
    },
    async export() {
      const bytes = await opened().export();
      return Comlink.transfer(bytes, [bytes.buffer]);
    },
  };
}

/** Marks a function to cross as a callable proxy (Comlink.proxy, or a variant of it). */
export type ProxyFunction = <F extends (...args: never[]) => unknown>(fn: F) => F;

/**
 * The caller's `Driver` over `remote`: every call goes through `call`, listeners cross as
 * `proxy(listener)`, and `release` runs after `close` whether or not the close succeeded.
 */
export function remoteDriver(
  remote: Comlink.Remote<Driver>,
  call: <T>(start: () => Promise<T>) => Promise<T>,
  release: () => void | Promise<void>,
  proxy: ProxyFunction = Comlink.proxy,
): Driver {
  // Comlink's proxy has every method with the Driver's signature (promisified already).
  const forwarded = forwardDriver(() => remote as unknown as Driver, call);
  return {
    ...forwarded,
    onTablesChanged: (listener) => call(() => remote.onTablesChanged(listener ? proxy(listener) : null)),
    onSyncProgress: (listener) => call(() => remote.onSyncProgress(listener ? proxy(listener) : null)),
    close: async () => {
      try {
        await forwarded.close();
      } finally {
        await release();
      }
    },
  };
}
