/** Names a page and its service worker share for background push (`outpost/sw`, `outpost/sw/page`). */

/** The Background Sync tag the service worker registers and answers: push the queued batches. */
export const SYNC_TAG = 'outpost-push';
/** The Workbox queue (an IndexedDB store) that holds the push batches. */
export const QUEUE_NAME = 'outpost-push-queue';
/** The message a tab posts to the service worker when it starts: replay the queue now. */
export const REPLAY_MESSAGE = 'outpost-replay';

/**
 * The idb-keyval key of the token the service worker sends with pushes to a database: `url` is
 * its sync URL, or the URL of a request to it (`…/v2/pipeline`).
 */
export function tokenKey(url: string): string {
  return `outpost-sw-token:${url.replace(/\/v2\/pipeline$/, '').replace(/\/+$/, '')}`;
}
