/**
 * Crash-restart: the server runs as a child process and is killed with SIGKILL in the middle
 * of pushes, many times. After each restart every database passes integrity_check, every push
 * the server acknowledged is there, and an official client converges on it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { connect } from '@tursodatabase/sync';
import { expect, test } from 'vitest';
import { Connection } from '../../src/engine/connection.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import { batch, rawPipeline, tempDir } from '../support/server.js';

function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function startChild(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/cli.ts', 'serve', '--data', dataDir, '--port', String(port), '--no-auth'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`server exited early (${code}): ${out}`)));
  });
  return child;
}

/** Sends `signal` and resolves when the process has exited (even if it already had). */
function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  return exited;
}

test('killed mid-push many times, the server keeps every acknowledged push and stays consistent', async () => {
  const seed = Number(process.env.OUTPOST_SEED ?? Date.now() % 100000);
  console.log(`restart test seed=${seed}`);
  const random = seededRandom(seed);
  const dataDir = tempDir('outpost-restart-');
  const port = 21000 + Math.floor(random() * 20000);
  const url = `http://127.0.0.1:${port}/db/crashy`;
  let child = await startChild(dataDir, port);
  await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, payload TEXT)'));
  const acknowledged = new Set<number>();
  let nextId = 1;

  let onAck = (): void => {};
  for (let round = 0; round < 8; round++) {
    // Kill after a few acknowledged pushes of this round (an event, not a fixed time: a busy
    // machine acknowledges fewer per millisecond), at a random moment after that.
    const target = acknowledged.size + 3 + Math.floor(random() * 5);
    const enough = new Promise<void>((resolve) => {
      onAck = () => {
        if (acknowledged.size >= target) resolve();
      };
    });
    // Four writers push small transactions until the server is killed under them.
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (;;) {
        const id = nextId++;
        try {
          const res = await rawPipeline(url, {
            baton: null,
            requests: [
              {
                type: 'batch',
                batch: {
                  steps: [
                    { stmt: { sql: 'BEGIN IMMEDIATE' } },
                    { stmt: { sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [{ type: 'integer', value: String(id) }, { type: 'integer', value: String(w) }, { type: 'text', value: 'x'.repeat(200 + Math.floor(random() * 3000)) }] }, condition: { type: 'ok', step: 0 } },
                    { stmt: { sql: 'COMMIT' }, condition: { type: 'ok', step: 1 } },
                  ],
                },
              },
            ],
          });
          const errors = res.json.results?.[0]?.response?.result?.step_errors ?? [];
          if (res.status === 200 && errors.every((e: unknown) => e === null)) {
            acknowledged.add(id);
            onAck();
          }
        } catch {
          return; // the server is gone
        }
      }
    });
    await enough;
    await new Promise((r) => setTimeout(r, random() * 30));
    await stop(child, 'SIGKILL');
    await Promise.all(writers);
    child = await startChild(dataDir, port);
  }
  await stop(child, 'SIGTERM');

  expect(acknowledged.size).toBeGreaterThan(20);
  const conn = await Connection.open(new NodeDirectory(join(dataDir, 'crashy.db')), { durability: 'normal', intMode: 'number' });
  expect(conn.value('PRAGMA integrity_check')).toBe('ok');
  const present = new Set(conn.execute('SELECT id FROM t', undefined).rows.map((r) => r[0] as number));
  for (const id of acknowledged) expect(present.has(id), `acknowledged row ${id} is missing`).toBe(true);
  const total = present.size;
  await conn.close();

  // A client that synced before the crashes converges after them.
  child = await startChild(dataDir, port);
  try {
    const official = await connect({ path: join(tempDir('outpost-restart-client-'), 'c.db'), url, clientName: 'after' });
    const stmt = await official.prepare('SELECT count(*) AS n FROM t');
    expect(await stmt.all()).toEqual([{ n: total }]);
    await official.close();
  } finally {
    await stop(child, 'SIGTERM');
  }
}, 180_000);
