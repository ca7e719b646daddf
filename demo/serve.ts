/**
 * `npm run demo`: starts an Outpost sync server on 127.0.0.1 with its data in
 * `.outpost-demo-data/` (no auth: it only listens on loopback), then serves the playground with
 * Vite, and prints the playground's address on a line of its own
 * (`Playground: http://127.0.0.1:PORT/`). `--port N` picks the playground's port (default 5173,
 * the next free one when taken); `--sync-port N` the server's (default 8080, any free one when
 * taken); `--data DIR` the server's folder.
 */
import { createServer } from 'vite';
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

const server = await createServer({
  root: new URL('.', import.meta.url).pathname,
  configFile: false,
  logLevel: 'warn',
  server: { host: '127.0.0.1', port, strictPort: false },
  optimizeDeps: { exclude: ['outpost', '@sqlite.org/sqlite-wasm'] },
  define: { 'import.meta.env.VITE_OUTPOST_SYNC_SERVER': JSON.stringify(syncUrl) },
});
await server.listen();
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
