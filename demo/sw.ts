/**
 * The playground's service worker (built by vite-plugin-pwa in injectManifest mode, see
 * demo/vite.config.ts). Two jobs:
 *
 * 1. The app shell offline: Workbox precaches every file of the build, sqlite3.wasm and the
 *    database worker's bundle included, and answers navigations with index.html, so a reload
 *    with no network opens the playground and its database (which lives in OPFS, not here).
 *
 * 2. Background push. Outpost's engine runs in the page's dedicated worker; this worker cannot
 *    open the database (no OPFS sync access handles in a service worker, and it cannot start a
 *    worker that could). So it never builds a push: it keeps one the engine built. With
 *    `sync.backgroundPush`, a push that cannot reach the server still sends its batch; that
 *    fetch passes through here, fails, and the batch (a self-gated Hrana request: see
 *    `isReplayablePush`) goes into a Workbox background-sync `Queue` in IndexedDB. It is sent
 *    again on the `outpost-push` sync event (Chromium fires it when the network returns, even
 *    with no tab open), and, where Background Sync is missing (Firefox, Safari), whenever this
 *    worker starts or a tab of the playground starts (demo/pwa.ts posts `outpost-replay`).
 *
 *    Why intercept the fetch rather than have the page post the batch: the request queued is
 *    byte for byte the one the engine sent, no new path crosses the worker boundary, and the
 *    engine needs no idea whether a service worker exists.
 *
 *    Exactly once: each batch fails by itself on the server when the server's
 *    turso_sync_last_change_id for its client already reaches its first change, so a replay
 *    after the tab pushed, or two replays, apply nothing twice. The queue keeps one batch per
 *    client and database, the newest: every batch the engine offers starts at its first pending
 *    change, so the newest carries everything an older one does.
 *
 *    Tokens: a queued request is stored without its Authorization header. The replay adds the
 *    token the page stored with idb-keyval under `tokenKey(url)` (demo/pwa.ts
 *    `storeTokenForServiceWorker`, an explicit opt-in); with none stored, it is sent without one.
 */
import { get } from 'idb-keyval';
import { Queue } from 'workbox-background-sync';
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching';
import { NavigationRoute, registerRoute } from 'workbox-routing';
import { isReplayablePush } from '../src/protocol/turso-tables.js';
import { QUEUE_NAME, REPLAY_MESSAGE, SYNC_TAG, tokenKey } from './pwa-keys.js';

/** What this file uses of a service worker's global scope (the DOM lib the demo compiles with has none of it). */
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
  __WB_MANIFEST: (string | { url: string; revision: string | null })[];
  registration: { sync?: { register(tag: string): Promise<void> } };
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void;
  addEventListener(type: 'sync', listener: (event: SyncEvent) => void): void;
  addEventListener(type: 'message', listener: (event: ExtendableEvent & { data: unknown }) => void): void;
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void;
}
// The global scope of a service worker, which the DOM lib types as a window.
declare const self: ServiceWorkerScope;

// 1. The app shell.
precacheAndRoute(self.__WB_MANIFEST);
cleanupOutdatedCaches();
// `?db=name` and `#sql=` links open the same page.
registerRoute(new NavigationRoute(createHandlerBoundToURL('index.html')));
// A new version takes over at once, and the first visit's page and worker are controlled
// without a reload, so their pushes pass through here.
self.addEventListener('install', () => void self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// 2. Background push.
/** Metadata kept with a queued batch: which client and database it pushes for. */
interface BatchMetadata {
  url: string;
  clientId: string;
}

const queue = new Queue(QUEUE_NAME, {
  // The sync event this worker answers is `outpost-push` (below), not Workbox's own tag; Workbox's
  // fallback replays the queue each time the worker starts, which is what Firefox and Safari get.
  forceSyncFallback: true,
  onSync: () => replay(),
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'POST' || !new URL(request.url).pathname.endsWith('/v2/pipeline')) return;
  event.respondWith(forward(request));
});

self.addEventListener('sync', (event) => {
  if (event.tag === SYNC_TAG) event.waitUntil(replay());
});

self.addEventListener('message', (event) => {
  if (event.data === REPLAY_MESSAGE) event.waitUntil(replay().catch(() => undefined));
});

/** Sends a pipeline request on; when the network fails and it is a push batch, keeps it for later. */
async function forward(request: Request): Promise<Response> {
  const copy = request.clone();
  try {
    return await fetch(request);
  } catch (error) {
    await keep(copy).catch(() => undefined);
    throw error;
  }
}

/** Queues a push batch in place of the older ones of its client and database. */
async function keep(request: Request): Promise<void> {
  const body = await request.text();
  const metadata = batchMetadata(request.url, body);
  if (!metadata) return;
  const older: Awaited<ReturnType<Queue['shiftRequest']>>[] = [];
  for (let entry = await queue.shiftRequest(); entry; entry = await queue.shiftRequest()) older.push(entry);
  for (const entry of older) {
    const m = entry?.metadata as BatchMetadata | undefined;
    if (entry && !(m?.url === metadata.url && m.clientId === metadata.clientId)) await queue.pushRequest(entry);
  }
  const headers = new Headers(request.headers);
  // Never stored: the replay asks for the token the page chose to store, if any.
  headers.delete('authorization');
  await queue.pushRequest({ request: new Request(request.url, { method: 'POST', headers, body }), metadata: { ...metadata } });
  await self.registration.sync?.register(SYNC_TAG).catch(() => undefined);
}

/** The client and database of a replayable push batch; null for any other request. */
function batchMetadata(url: string, body: string): BatchMetadata | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (!isReplayablePush(parsed)) return null;
  // isReplayablePush checked the shape: one batch request whose steps include the acknowledgement.
  const steps = (parsed as { requests: [{ batch: { steps: { stmt: { sql: string; args?: { value?: unknown }[] } }[] } }] }).requests[0].batch.steps;
  const ack = steps.find((s) => /^INSERT INTO turso_sync_last_change_id/.test(s.stmt.sql));
  const clientId = ack?.stmt.args?.[0]?.value;
  return typeof clientId === 'string' ? { url, clientId } : null;
}

let replaying: Promise<void> | null = null;

/** Sends the queued batches, one replay at a time (a sync event, a start and a tab may ask together). */
function replay(): Promise<void> {
  const run = (replaying ?? Promise.resolve()).catch(() => undefined).then(replayQueue);
  replaying = run.finally(() => {
    if (replaying === run) replaying = null;
  });
  return run;
}

/**
 * Sends each queued batch. A network failure or a server that is busy or failing puts it back
 * and throws (the browser retries the sync event later). A 401 or 403 puts it back and stops:
 * the page may store a token later. Any other answer ends its life: applied, already applied
 * (its gate), or refused, which the tab's next push finds out and reports.
 */
async function replayQueue(): Promise<void> {
  for (let entry = await queue.shiftRequest(); entry; entry = await queue.shiftRequest()) {
    const token = await get<string>(tokenKey(entry.request.url)).catch(() => undefined);
    const headers = new Headers(entry.request.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    let response: Response;
    try {
      response = await fetch(new Request(entry.request, { headers }));
    } catch (error) {
      await queue.unshiftRequest(entry);
      throw error;
    }
    if (response.status === 429 || response.status >= 500) {
      await queue.unshiftRequest(entry);
      throw new Error(`the sync server answered ${response.status}; the push stays queued`);
    }
    if (response.status === 401 || response.status === 403) {
      await queue.unshiftRequest(entry);
      return;
    }
  }
}
