/**
 * `outpost/sw`: background push in your own service worker. Call `backgroundPush()` once, at the
 * top level of the service worker script (its listeners must be added while the script first
 * runs). Needs the optional peers `workbox-background-sync` and `idb-keyval`.
 *
 * Why a service worker: Outpost's engine runs in the page's dedicated worker, and this worker
 * cannot open the database (no OPFS sync access handles in a service worker, and it cannot start
 * a worker that could). So it never builds a push: it keeps the ones the engine built. With
 * `sync.backgroundPush`, a push that cannot reach the server still sends all its batches; those
 * fetches pass through here, fail, and each batch (self-gated, queue.ts) goes into a Workbox
 * background-sync `QueueStore` in IndexedDB, one write per batch. They are sent again on the `outpost-push` sync event
 * (Chromium fires it when the network returns, even with no tab open), and, where Background
 * Sync is missing (Firefox, Safari), whenever this worker starts or a tab posts
 * `REPLAY_MESSAGE` (`replayBackgroundPush` in `outpost/sw/page`).
 *
 * Intercepting the fetch rather than having the page post the batches: the requests queued are
 * byte for byte the ones the engine sent, no new path crosses the worker boundary, and the
 * engine needs no idea whether a service worker exists.
 *
 * Tokens: a queued request is stored without its Authorization header. The replay sends the
 * token the page stored for its database with `storeTokenForServiceWorker` (an explicit opt-in,
 * `outpost/sw/page`), or the one your `token` option gives; with none, it is sent without one.
 *
 * May import: protocol/ only (it reads push batches, never SQLite), and the two peers.
 */
import { get } from 'idb-keyval';
import { Queue, QueueStore, StorableRequest } from 'workbox-background-sync';
import { type PushStore, PushQueue } from './queue.js';
import { QUEUE_NAME, REPLAY_MESSAGE, SYNC_TAG, tokenKey } from './keys.js';

export { QUEUE_NAME, REPLAY_MESSAGE, SYNC_TAG, tokenKey } from './keys.js';
export { PushQueue, type PushQueueOptions, type PushStore, type StoredPush, liveBatches } from './queue.js';

/** What this file uses of a service worker's global scope (the DOM lib Outpost compiles with has none of it). */
interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request;
  respondWith(response: Promise<Response>): void;
}
interface SyncEvent extends ExtendableEvent {
  readonly tag: string;
}
interface ServiceWorkerScope {
  registration: { sync?: { register(tag: string): Promise<void> } };
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void;
  addEventListener(type: 'sync', listener: (event: SyncEvent) => void): void;
  addEventListener(type: 'message', listener: (event: ExtendableEvent & { data: unknown }) => void): void;
}

export interface BackgroundPushOptions {
  /** The token to send with a replayed push to `url`; default: the one the page stored with `storeTokenForServiceWorker`. */
  token?: (url: string) => Promise<string | null | undefined>;
  /** Which requests to look at: default every POST to a `…/v2/pipeline` URL (only push batches are kept). */
  match?: (request: Request) => boolean;
}

export interface BackgroundPush {
  /** Sends the queued batches now (the sync event, a start and a tab's message already do). */
  replay(): Promise<void>;
}

/** Installs background push in this service worker (see the header). */
export function backgroundPush(options: BackgroundPushOptions = {}): BackgroundPush {
  // The global scope of a service worker, which the DOM lib types as a window.
  const scope = globalThis as unknown as ServiceWorkerScope;
  const token = options.token ?? ((url: string) => get<string>(tokenKey(url)));
  const match = options.match ?? ((request: Request) => request.method === 'POST' && new URL(request.url).pathname.endsWith('/v2/pipeline'));
  let pushes: PushQueue | null = null;
  const replay = (): Promise<void> => pushes?.replay() ?? Promise.resolve();
  // The Queue answers its start-up fallback; the batches live in its QueueStore, which PushQueue
  // reads and writes entry by entry (the Queue's shift-and-put-back would lose a batch to a kill).
  new Queue(QUEUE_NAME, {
    // The sync event answered is `outpost-push` (below), not Workbox's own tag; Workbox's fallback
    // replays the queue each time the worker starts, which is what Firefox and Safari get.
    forceSyncFallback: true,
    onSync: () => replay(),
  });
  pushes = new PushQueue(workboxStore(new QueueStore(QUEUE_NAME)), { token });

  scope.addEventListener('fetch', (event) => {
    if (match(event.request)) event.respondWith(forward(event.request));
  });
  scope.addEventListener('sync', (event) => {
    if (event.tag === SYNC_TAG) event.waitUntil(replay());
  });
  scope.addEventListener('message', (event) => {
    if (event.data === REPLAY_MESSAGE) event.waitUntil(replay().catch(() => undefined));
  });

  /** Sends a request on; when the network fails and it is a push batch, keeps it for later. */
  async function forward(request: Request): Promise<Response> {
    const copy = request.clone();
    try {
      return await fetch(request);
    } catch (error) {
      const kept = await pushes!.keep(copy).catch(() => false);
      if (kept) await scope.registration.sync?.register(SYNC_TAG).catch(() => undefined);
      throw error;
    }
  }

  return { replay };
}

/** PushQueue's store over Workbox's IndexedDB queue store: each call is one IndexedDB transaction. */
function workboxStore(store: QueueStore): PushStore {
  return {
    async add({ request, metadata }) {
      const requestData = (await StorableRequest.fromRequest(request)).toObject();
      await store.pushEntry({ requestData, timestamp: Date.now(), metadata });
    },
    async all() {
      return (await store.getAll()).map((e) => ({ id: e.id, request: new StorableRequest(e.requestData).toRequest(), ...(e.metadata ? { metadata: e.metadata } : {}) }));
    },
    remove: (id) => store.deleteEntry(id),
  };
}
