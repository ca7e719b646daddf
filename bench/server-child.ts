/**
 * An Outpost server in its own process, so that its CPU time and memory are its own
 * (bench/identical-pulls.ts starts it): `tsx bench/server-child.ts <data dir> [Outpost source root]`.
 * Listens on a free loopback port without authentication, prints `{"url": ...}` on its own line,
 * and closes when its standard input ends.
 */
import { pathToFileURL } from 'node:url';

const [dataDir, root] = process.argv.slice(2);
if (!dataDir) throw new Error('usage: server-child.ts <data dir> [root]');

// Imported by path, so the same script runs an older checkout's server too.
const { createServer } = (await import(pathToFileURL(`${root ?? new URL('..', import.meta.url).pathname}/src/server/index.ts`).href)) as typeof import('../src/server/index.js');
const server = createServer({ dataDir, port: 0, auth: false, log: () => {} });
const { url } = await server.listen();
process.stdout.write(`${JSON.stringify({ url })}\n`);
process.stdin.resume();
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
