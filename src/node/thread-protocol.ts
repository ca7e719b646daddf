/**
 * What the calling thread may ask `outpost/node`'s engine thread (node/engine-thread.ts), and
 * the Comlink endpoint over Node's message ports. Errors cross as in the browser
 * (worker/protocol.ts `installErrorTransfer`, installed on both sides).
 *
 * A function the engine thread calls back (a sync `authToken`, a listener) crosses as
 * `threadCallback(fn)`, not `Comlink.proxy(fn)`: Comlink's proxy listens on a message port of
 * the calling thread, and a Node port that listens keeps the process alive, so a script that
 * forgot `close()` never exited. Ours unrefs that port; the calls that make the engine call
 * back (and live sync) keep the process alive through the thread itself (node/thread.ts).
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import type { SyncOptions } from '../types.js';
import type { SyncCallbacks } from '../worker/protocol.js';

export interface NodeOpenRequest {
  /** The absolute file path, or the name of a private in-memory database. */
  path: string;
  memory: boolean;
  durability: 'normal' | 'full';
  intMode: 'number' | 'bigint';
  /** Four bytes the calling thread writes a call's abort id into to stop it (driver.ts `EngineLimits`). */
  abortFlag: SharedArrayBuffer;
  /** The port on which the engine thread serves this database's `Driver` (transferred). */
  port: MessagePort;
  /** Sync settings; the token and transform functions travel as separate (proxied) arguments, and a custom fetch cannot cross. */
  sync?: (Omit<SyncOptions, 'authToken' | 'transform' | 'fetch'> & { authToken?: string | undefined }) | undefined;
}

/** The engine thread's own API; each open database is served on the port of its request. */
export interface NodeEngineApi {
  open(request: NodeOpenRequest, authToken?: SyncCallbacks['authToken'], transform?: SyncCallbacks['transform']): Promise<void>;
}

/** What Comlink needs of a Node `MessagePort` or `Worker`: both are event emitters with `postMessage`. */
interface NodePort {
  postMessage(value: unknown, transferList?: readonly Transferable[]): void;
  on(event: 'message', listener: (data: unknown) => void): unknown;
  off(event: 'message', listener: (data: unknown) => void): unknown;
}

/** A Comlink endpoint over a Node port: Node delivers the message itself, the DOM an event holding it. */
export function portEndpoint(port: NodePort): Comlink.Endpoint {
  const listeners = new Map<EventListenerOrEventListenerObject, (data: unknown) => void>();
  return {
    // Comlink passes only ArrayBuffers and ports to transfer, which Node's postMessage takes.
    postMessage: (message: unknown, transfer?: Transferable[]) => port.postMessage(message, transfer),
    addEventListener: (_type: string, handler: EventListenerOrEventListenerObject) => {
      const listener = (data: unknown): void => {
        // Comlink reads only `data` of the event.
        const event = { data } as MessageEvent;
        if (typeof handler === 'function') handler(event);
        else handler.handleEvent(event);
      };
      listeners.set(handler, listener);
      port.on('message', listener);
    },
    removeEventListener: (_type: string, handler: EventListenerOrEventListenerObject) => {
      const listener = listeners.get(handler);
      if (!listener) return;
      listeners.delete(handler);
      port.off('message', listener);
    },
  };
}

const CALLBACK = Symbol('outpost.threadCallback');
/** The transfer handler's name, the same on both sides. */
const CALLBACK_HANDLER = 'outpost-thread-callback';

type Callback = ((...args: never[]) => unknown) & { [CALLBACK]: true };

/** Marks `fn` to cross to the engine thread as a callable proxy whose port does not keep the process alive. */
export function threadCallback<F extends (...args: never[]) => unknown>(fn: F): F {
  // A wrapper, not `fn` itself: the mark must not stick to the caller's own function.
  const wrapper = ((...args: Parameters<F>) => fn(...args)) as unknown as F & { [CALLBACK]: true };
  wrapper[CALLBACK] = true;
  return wrapper;
}

let callbacksInstalled = false;

/** Registers the transfer of `threadCallback` functions; both threads must, before the first call. */
export function installCallbackTransfer(): void {
  if (callbacksInstalled) return;
  callbacksInstalled = true;
  const handler: Comlink.TransferHandler<Callback, MessagePort> = {
    canHandle: (value): value is Callback => typeof value === 'function' && CALLBACK in value,
    serialize: (fn) => {
      const { port1, port2 } = new MessageChannel();
      Comlink.expose(fn, portEndpoint(port1));
      port1.unref();
      // Node's MessagePort is transferable; the DOM typing of Transferable does not name it.
      return [port2, [port2 as unknown as Transferable]];
    },
    deserialize: (port) => Comlink.wrap(portEndpoint(port)) as unknown as Callback,
  };
  Comlink.transferHandlers.set(CALLBACK_HANDLER, handler as Comlink.TransferHandler<unknown, unknown>);
}
