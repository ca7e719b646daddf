/**
 * `npm run demo`: starts an Outpost sync server on 127.0.0.1 with its data in
 * `.outpost-demo-data/` (no auth: it only listens on loopback), then builds the playground as a
 * PWA (demo/vite.config.ts: Workbox service worker, manifest, precached app shell) into
 * `.outpost-demo-build/` and serves the build with Vite's preview server, and prints the
 * playground's address on a line of its own (`Playground: http://127.0.0.1:PORT/`).
 * `--port N` picks the playground's port (default 5173, the next free one when taken);
 * `--sync-port N` the server's (default 8080, any free one when taken); `--data DIR` the
 * server's folder; `--dev` serves the sources with Vite's dev server instead (no service
 * worker, edits reload at once).
 */
import { build, createServer, preview } from 'vite';
import { createServer as createSyncServer } from '../src/server/server.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const port = Number(arg('--port') ?? 5173);
const dataDir = arg('--data') ?? new URL('../.outpost-demo-data', import.meta.url).pathname;

let sync = createSyncServer({ dataDir, host: '127.0.0.1', port: Number(arg('--sync-port') ?? 8080), auth: false, log: () => {} });
let syncUrl: string;
try {
  ({ url: syncUrl } = await sync.listen());
} catch {
  // The port is taken: any free one will do.
  sync = createSyncServer({ dataDir, host: '127.0.0.1', port: 0, auth: false, log: () => {} });
  ({ url: syncUrl } = await sync.listen());
}
console.log(`Sync server: ${syncUrl} (data in ${dataDir})`);

const configFile = new URL('./vite.config.ts', import.meta.url).pathname;
const outDir = new URL('../.outpost-demo-build', import.meta.url).pathname;
const define = { 'import.meta.env.VITE_OUTPOST_SYNC_SERVER': JSON.stringify(syncUrl) };

let server: { close(): Promise<void>; httpServer: { address(): ReturnType<import('node:net').Server['address']> } | null };
if (process.argv.includes('--dev')) {
  const dev = await createServer({ configFile, logLevel: 'warn', server: { host: '127.0.0.1', port, strictPort: false }, define });
  await dev.listen();
  server = dev;
} else {
  await build({ configFile, logLevel: 'warn', build: { outDir }, define });
  server = await preview({ configFile, logLevel: 'warn', build: { outDir }, preview: { host: '127.0.0.1', port, strictPort: false } });
}
const address = server.httpServer?.address();
if (!address || typeof address === 'string') throw new Error('the playground server did not bind');
console.log(`Playground: http://127.0.0.1:${address.port}/`);

const stop = async (): Promise<void> => {
  await server.close();
  await sync.close().catch(() => undefined);
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
