/**
 * Client B of the live-sync benchmark (bench/live.ts), in its own process so that its long
 * poll and apply never wait behind client A in one Node thread. Argv: the sync URL and the
 * database file. Over IPC it sends `ready` once the table exists, then `{ id, atMs }` each time
 * its `watch` callback sees a new largest id (`atMs` on the shared wall clock, high resolution),
 * and closes its database when the parent sends `close`.
 */
import { open } from '../src/node/index.js';

const [url, file] = process.argv.slice(2);
if (!url || !file || !process.send) throw new Error('usage: node --import tsx bench/live-client.ts <sync url> <file> (with an IPC channel)');
const send = process.send.bind(process);
const b = await open(file, { sync: { url, live: true } });
const stopReady = b.watch<{ n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE name = 't'", undefined, (rows) => {
  if (rows[0]?.n !== 1) return;
  stopReady();
  b.watch<{ id: number | null }>('SELECT max(id) AS id FROM t', undefined, (seen) => {
    const id = seen[0]?.id;
    if (typeof id === 'number') send({ id, atMs: performance.timeOrigin + performance.now() });
  }, { throttleMs: 0, onError: () => {} });
  send('ready');
}, { throttleMs: 0, onError: () => {} });
process.on('message', (message) => {
  if (message !== 'close') return;
  void b.close().then(() => process.exit(0));
});
