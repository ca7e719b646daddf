/**
 * Scale-out: three server processes behind HAProxy (Debian's package), routed by database name
 * with consistent hashing (src/server/haproxy.ts). Real sync clients write and read 100
 * databases through HAProxy; each database's file must exist in exactly one process's data
 * directory, and every client must see what the others wrote. Runs the built CLI (`npm test`
 * builds dist first; alone, run `npm run build` before).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { haproxyConfig } from '../../src/server/haproxy.js';
import { int, rng, testSeed } from '../support/generate.js';
import { spawnGroup, stopGroup } from '../support/processes.js';
import { freePort, tempDir } from '../support/server.js';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));
const DATABASES = 100;

const children: ChildProcess[] = [];
const nodes: { name: string; port: number; data: string }[] = [];
let front = '';


/** Starts one server process on a port it picks, resolving with that port once it listens. */
async function startNode(data: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawnGroup(process.execPath, [join(process.cwd(), 'dist/server/cli.js'), 'serve', '--data', data, '--port', String(port), '--no-auth', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return await new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('listening on')) resolve({ child, port });
    });
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening: ${out}`)));
  });
}

/** Waits until HAProxy answers through to a server; it prints nothing when it is ready. */
async function waitForProxy(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error('haproxy did not start within 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  if (!HAPROXY) throw new Error('haproxy is not installed: apt-get install haproxy (.ci/run installs it)');
  for (let i = 0; i < 3; i++) {
    const data = tempDir(`outpost-scale-${i}-`);
    const { port } = await startNode(data);
    nodes.push({ name: `node${i}`, port, data });
  }
  const port = await freePort();
  const dir = tempDir('outpost-haproxy-');
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig({ bind: { host: '127.0.0.1', port }, servers: nodes.map((n) => ({ name: n.name, host: '127.0.0.1', port: n.port })) }));
  // -db: stay in the foreground, so stopping the child stops HAProxy.
  const proxy = spawnGroup(HAPROXY, ['-db', '-f', config], { stdio: 'ignore' });
  children.push(proxy);
  front = `http://127.0.0.1:${port}`;
  await waitForProxy(front, proxy);
}, 120_000);

afterAll(async () => {
  for (const child of children.splice(0)) await stopGroup(child);
});

test('100 databases through HAProxy: each lives in exactly one process, and clients converge', async () => {
  const seed = testSeed();
  console.log(`scale-out seed ${seed} (OUTPOST_SEED replays it)`);
  const random = rng(seed);
  const dir = tempDir('outpost-scale-clients-');
  const names = Array.from({ length: DATABASES }, (_, i) => `tenant-${i}-${int(random, 0, 1e6)}`);
    // Four databases at a time: a writer pushes, a second client pulls what it wrote.
  for (let at = 0; at < names.length; at += 4) {
    await Promise.all(
      names.slice(at, at + 4).map(async (name) => {
        const rows = int(random, 1, 5);
        // 200 clients that never cancel: the inline engine spares each open a thread start.
        const writer = await open(join(dir, `${name}-w.db`), { engine: 'inline', sync: { url: `${front}/db/${name}` } });
        const reader = await open(join(dir, `${name}-r.db`), { engine: 'inline', sync: { url: `${front}/db/${name}` } });
        try {
          await writer.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)');
          for (let r = 0; r < rows; r++) await writer.run('INSERT INTO notes(body) VALUES (?)', [`${name} ${r}`]);
          await writer.push();
          await reader.pull();
          expect(await reader.query('SELECT count(*) AS n FROM notes')).toEqual([{ n: rows }]);
        } finally {
          await writer.close();
          await reader.close();
        }
      }),
    );
  }
  const homes = names.map((name) => nodes.filter((n) => existsSync(join(n.data, `${name}.db`))).map((n) => n.name));
  const misplaced = names.filter((_, i) => homes[i]!.length !== 1);
  expect(misplaced, `databases not in exactly one process: ${misplaced.map((n, i) => `${n} in [${homes[i]}]`).join(', ')}`).toEqual([]);
  // Consistent hashing spreads them: every process serves some.
  for (const node of nodes) expect(homes.filter((h) => h[0] === node.name).length, node.name).toBeGreaterThan(0);
}, 600_000);
