/**
 * One bootstrap in its own process, so that its memory is its own (bench/sync.ts starts it):
 * `tsx bench/bootstrap-child.ts <outpost|official> <url> <database path> [Outpost checkout root]`.
 * Prints one JSON line: the time, and the peak RSS and JS memory (heap + external) above the
 * process's idle level (measured after the client's code and engine are loaded, before the
 * bootstrap). Outpost runs from a checkout's build (`builtNodeEntry`), as users run it; the
 * checkout root lets the bench run an older Outpost beside this one.
 */
import { type ChildSample, builtNodeEntry, measure } from './child-sample.js';

export interface BootstrapSample extends ChildSample {
  idleRssBytes: number;
}

const [client, url, path, root] = process.argv.slice(2);
if (!client || !url || !path) throw new Error('usage: bootstrap-child.ts <outpost|official> <url> <path> [root]');

let bootstrap: () => Promise<() => Promise<void>>;
if (client === 'outpost') {
  // Imported by path, so the same script runs an older checkout's build too.
  const { open } = (await import(builtNodeEntry(root ?? new URL('..', import.meta.url).pathname))) as typeof import('../src/node/index.js');
  // Loads the engine (WASM) before the idle level is taken.
  const warm = await open(':memory:');
  await warm.close();
  bootstrap = async () => {
    const db = await open(path, { sync: { url } });
    const status = await db.syncStatus();
    if (!status?.revision) throw new Error(`the bootstrap failed: ${JSON.stringify(status?.lastError)}`);
    return () => db.close();
  };
} else {
  const { connect } = await import('@tursodatabase/sync');
  bootstrap = async () => {
    const db = await connect({ path, url, clientName: 'bench' });
    return () => db.close();
  };
}

const { sample, result: close, idleRssBytes } = await measure(bootstrap, 'lifetime');
await close();
const result: BootstrapSample = { ...sample, idleRssBytes };
process.stdout.write(`${JSON.stringify(result)}\n`);
