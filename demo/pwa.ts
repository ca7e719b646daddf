/**
 * The playground's side of the PWA: registers the service worker (demo/sw.ts) in the built
 * playground, asks it to replay its queue of push batches when the tab starts (the only
 * trigger Firefox and Safari have, which lack Background Sync; `outpost/sw/page`), and asks
 * for persistent storage on the first write, showing the answer. (A token for the service
 * worker is stored only on opt-in, with `storeTokenForServiceWorker`; the playground's local
 * server needs none.)
 */
import type { Database } from 'outpost';
import { replayBackgroundPush } from 'outpost/sw/page';

/** Registers the service worker; `document.body.dataset.sw` becomes `controlled` once it controls the page. */
export async function startServiceWorker(): Promise<void> {
  // Vite's dev server serves no service worker: only the build (npm run demo) is a PWA.
  if (!('serviceWorker' in navigator) || !(import.meta as unknown as { env: { OUTPOST_PWA?: boolean } }).env.OUTPOST_PWA) return;
  const container = navigator.serviceWorker;
  const controlled = (): void => {
    if (container.controller) document.body.dataset.sw = 'controlled';
  };
  container.addEventListener('controllerchange', controlled);
  controlled();
  await container.register('./sw.js', { scope: './' });
  await replayBackgroundPush(container);
}

/**
 * Asks for persistent storage once, after the first run that wrote to the database, and shows
 * the browser's answer in `badge`. Without it the browser may evict OPFS under storage pressure,
 * and Safari deletes it after seven days without a visit whatever the answer (README).
 */
export class PersistentStorage {
  private asked = false;

  constructor(private readonly badge: HTMLElement) {}

  /** Shows whether storage is already persistent. */
  async show(): Promise<void> {
    if (!navigator.storage?.persisted) return this.render('unavailable');
    this.render((await navigator.storage.persisted()) ? 'granted' : 'not asked');
  }

  /** After a run: the first time the database has been written to, asks for persistence. */
  async afterRun(db: Database): Promise<void> {
    if (this.asked || !navigator.storage?.persist) return;
    const written = await db.get<{ n: number }>('SELECT total_changes() AS n');
    if (!written || written.n === 0) return;
    this.asked = true;
    this.render((await navigator.storage.persist()) ? 'granted' : 'denied');
  }

  private render(answer: 'granted' | 'denied' | 'not asked' | 'unavailable'): void {
    this.badge.textContent = `persistent storage: ${answer}`;
    this.badge.dataset.persist = answer;
    this.badge.title =
      answer === 'granted'
        ? 'The browser will not evict this database under storage pressure (Safari still deletes it after 7 days without a visit).'
        : 'The browser may evict this database under storage pressure; Safari deletes it after 7 days without a visit.';
  }
}
