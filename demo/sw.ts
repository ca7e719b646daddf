/**
 * The playground's service worker (built by vite-plugin-pwa in injectManifest mode, see
 * demo/vite.config.ts). Two jobs:
 *
 * 1. The app shell offline: Workbox precaches every file of the build, sqlite3.wasm and the
 *    database worker's bundle included, and answers navigations with index.html, so a reload
 *    with no network opens the playground and its database (which lives in OPFS, not here).
 *
 * 2. Background push, from `outpost/sw` (the README's recipe): with `sync.backgroundPush`, the
 *    push batches the engine could not send are queued here and sent on the `outpost-push` sync
 *    event, when this worker starts, or when a tab asks (demo/pwa.ts).
 */
import { backgroundPush } from 'outpost/sw';
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching';
import { NavigationRoute, registerRoute } from 'workbox-routing';

/** What this file uses of a service worker's global scope (the DOM lib the demo compiles with has none of it). */
interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface ServiceWorkerScope {
  __WB_MANIFEST: (string | { url: string; revision: string | null })[];
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
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
backgroundPush();
