/**
 * A large bootstrap in the browser (bench/sync.ts drives it through `window.benchBootstrap`):
 * the time of `open()` with sync on a fresh OPFS database, and, in a second pass, the memory of
 * the page and its workers sampled during it with `performance.measureUserAgentSpecificMemory`
 * (the page is cross-origin isolated; Chromium runs with ForceEagerMeasureMemory, so each
 * sample measures live memory at once).
 */
import { open } from '../../src/index.js';

export interface BrowserBootstrapResult {
  ms: number;
  /** Page and workers before anything opened. */
  idleBytes: number;
  /** What an empty database's worker adds (the engine loaded, nothing synced). */
  idleWorkerBytes: number;
  /** The highest sample during the bootstrap (0 when memory was not sampled). */
  peakBytes: number;
  samples: number;
}

/** `measureUserAgentSpecificMemory` is not in TypeScript's DOM library yet. */
async function memoryBytes(): Promise<number> {
  const perf = performance as unknown as { measureUserAgentSpecificMemory(): Promise<{ bytes: number }> };
  return (await perf.measureUserAgentSpecificMemory()).bytes;
}

async function benchBootstrap(url: string, name: string, sampleMemory: boolean): Promise<BrowserBootstrapResult> {
  if (sampleMemory && !crossOriginIsolated) throw new Error('memory sampling needs a cross-origin isolated page');
  const idleBytes = sampleMemory ? await memoryBytes() : 0;
  let idleWorkerBytes = 0;
  if (sampleMemory) {
    const empty = await open(`${name}-empty`);
    await empty.get('SELECT 1');
    idleWorkerBytes = (await memoryBytes()) - idleBytes;
    await empty.close();
  }
  let peakBytes = 0;
  let samples = 0;
  let done = false;
  const sampler = (async () => {
    while (sampleMemory && !done) {
      peakBytes = Math.max(peakBytes, await memoryBytes());
      samples++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  // `--profile`: the timed pass's page and worker (the worker starts inside open()).
  const profiled = !sampleMemory && window.benchStep !== undefined;
  if (profiled) await window.benchStep!(name, 'start');
  const t0 = performance.now();
  const db = await open(name, { sync: { url } });
  const ms = performance.now() - t0;
  if (profiled) await window.benchStep!(name, 'end');
  done = true;
  await sampler;
  if (sampleMemory) peakBytes = Math.max(peakBytes, await memoryBytes());
  const status = await db.syncStatus();
  await db.close();
  if (!status?.revision) throw new Error(`the bootstrap failed: ${JSON.stringify(status?.lastError)}`);
  return { ms, idleBytes, idleWorkerBytes, peakBytes, samples };
}

declare global {
  interface Window {
    benchBootstrap: typeof benchBootstrap;
  }
}

export { benchBootstrap };
