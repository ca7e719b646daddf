/**
 * `npm run demo`: serves the playground with Vite on 127.0.0.1 and prints its address on a
 * line of its own (`Playground: http://127.0.0.1:PORT/`). `--port N` picks the port (default
 * 5173, the next free one when taken).
 */
import { createServer } from 'vite';

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 5173;

const server = await createServer({
  root: new URL('.', import.meta.url).pathname,
  configFile: false,
  logLevel: 'warn',
  server: { host: '127.0.0.1', port, strictPort: false },
  optimizeDeps: { exclude: ['outpost', '@sqlite.org/sqlite-wasm'] },
});
await server.listen();
const address = server.httpServer?.address();
if (!address || typeof address === 'string') throw new Error('the playground server did not bind');
console.log(`Playground: http://127.0.0.1:${address.port}/`);

const stop = async (): Promise<void> => {
  await server.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
