/**
 * What the calling thread may ask `outpost/node`'s engine thread (node/engine-thread.ts), and
 * the Comlink endpoint over Node's message ports. Errors cross as in the browser
 * (worker/protocol.ts `installErrorTransfer`, installed on both sides).
 */
import type * as Comlink from 'comlink';
import type { Driver } from '../driver.js';
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
  /** Sync settings; the token and transform functions travel as separate (proxied) arguments, and a custom fetch cannot cross. */
  sync?: (Omit<SyncOptions, 'authToken' | 'transform' | 'fetch'> & { authToken?: string | undefined }) | undefined;
}

export interface NodeEngineApi extends Driver {
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
