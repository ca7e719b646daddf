/**
 * Waiting in the sync client: retries' backoff (engine.ts) and live sync's pauses (live.ts).
 * Its own file so that live.ts, which the Driver imports for every database, does not pull
 * in the sync engine: a database opened without sync never loads that (sync/open.ts).
 */

/**
 * Waits `delayMs` (forever when null); resolves false at once when one of `signals` aborts.
 * Leaves no timer and no listener behind.
 */
export function sleep(delayMs: number | null, ...signals: AbortSignal[]): Promise<boolean> {
  if (signals.some((s) => s.aborted)) return Promise.resolve(false);
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const end = (completed: boolean): void => {
      if (timer !== null) clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', aborted);
      resolve(completed);
    };
    const aborted = (): void => end(false);
    for (const s of signals) s.addEventListener('abort', aborted, { once: true });
    if (delayMs !== null) timer = setTimeout(() => end(true), delayMs);
  });
}
