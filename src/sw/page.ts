/**
 * `outpost/sw/page`: the page's side of background push (`outpost/sw` is the service worker's).
 * Needs the optional peer `idb-keyval`.
 */
import { del, set } from 'idb-keyval';
import { REPLAY_MESSAGE, tokenKey } from './keys.js';

export { QUEUE_NAME, REPLAY_MESSAGE, SYNC_TAG, tokenKey } from './keys.js';

/**
 * Opt-in: stores `token` where the service worker reads it to push to `url` (the database's
 * sync URL) with no tab open; null forgets it. The token then sits in this origin's IndexedDB,
 * readable by any script of the origin and kept after the tab closes: store a short-lived token
 * scoped to this database.
 */
export async function storeTokenForServiceWorker(url: string, token: string | null): Promise<void> {
  if (token === null) await del(tokenKey(url));
  else await set(tokenKey(url), token);
}

/**
 * Asks the active service worker to send its queued push batches now. Call it when a tab starts:
 * it is the only trigger Firefox and Safari have, which lack Background Sync.
 */
export async function replayBackgroundPush(container: ServiceWorkerContainer = navigator.serviceWorker): Promise<void> {
  const registration = await container.ready;
  registration.active?.postMessage(REPLAY_MESSAGE);
}
