/**
 * A copied replica gets its own client id before it pushes, and loses nothing: a replica's
 * files copied to another place (or to the same name on another storage), both then write
 * offline and sync, in both orders: every write of both reaches the server exactly once. The
 * copy is found on open (it lives somewhere else than its sync state says) or, at the same
 * place, at push or pull time (the server acknowledged an id this replica never sent).
 */
import { cpSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import type { StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { DATABASE_FILES, NODE_SUFFIXES } from '../../src/opfs-vfs/storage/files.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import { openSynced } from '../../src/sync/open.js';
import { int, rng, testSeed } from '../support/generate.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';

const network = inProcessNetwork(scratchDataDir('outpost-copied-'));
let server: Endpoint;
let databases = 0;
const seed = testSeed();

beforeAll(() => console.log(`copied replica seed ${seed} (OUTPOST_SEED=${seed} replays it)`));

async function openAt(directory: StorageDirectory, url: string, endpoint: Endpoint): Promise<Database> {
  const { conn, engine } = await openSynced(directory, { durability: 'normal', intMode: 'number' }, { url, clientName: 'copy', retries: 0 }, endpoint.client());
  return new Database(directory.label, connectionDriver(conn, engine));
}

async function copyMemory(from: MemoryDirectory, to: MemoryDirectory): Promise<void> {
  for (const name of DATABASE_FILES) {
    const src = await from.open(name);
    const bytes = new Uint8Array(src.size());
    src.read(bytes, 0);
    const dst = await to.open(name);
    dst.truncate(0);
    dst.write(bytes, 0);
  }
}

type Kind = 'memory, another name' | 'memory, the same name' | 'node, another path';

/** Two directories holding the same replica: the original, and its copy made by `copy()`. */
function places(kind: Kind): { original: StorageDirectory; copy: () => Promise<StorageDirectory> } {
  if (kind === 'node, another path') {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-copied-'));
    const original = new NodeDirectory(join(dir, 'a.db'));
    return {
      original,
      copy: async () => {
        for (const suffix of NODE_SUFFIXES) if (existsSync(join(dir, `a.db${suffix}`))) cpSync(join(dir, `a.db${suffix}`), join(dir, `b.db${suffix}`));
        return new NodeDirectory(join(dir, 'b.db'));
      },
    };
  }
  const original = new MemoryDirectory('a');
  return {
    original,
    copy: async () => {
      const copy = new MemoryDirectory(kind === 'memory, the same name' ? 'a' : 'b');
      await copyMemory(original, copy);
      return copy;
    },
  };
}

async function serverIds(endpoint: Endpoint, table: string): Promise<string[]> {
  const r = (await endpoint.admin.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql: `SELECT id FROM ${table} ORDER BY id`, want_rows: true } }] })).results[0];
  if (r?.type !== 'ok' || r.response.type !== 'execute') throw new Error('query failed');
  return r.response.result.rows.map((row) => (row[0]?.type === 'text' ? row[0].value : '?'));
}

const kinds: Kind[] = ['memory, another name', 'memory, the same name', 'node, another path'];
for (const kind of kinds) {
  for (const copyFirst of [false, true]) {
    test(`${kind}: both write offline and sync (${copyFirst ? 'the copy' : 'the original'} first); every write arrives once`, async () => {
      const random = rng(seed + databases);
      server = await network.open(`copied${++databases}`);
      // Every insert the server applies, counted: a write applied twice shows up twice here.
      await server.execTrusted('CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER); CREATE TABLE applied(id TEXT)');
      await server.execTrusted('CREATE TEMP TRIGGER count_applied AFTER INSERT ON main.t BEGIN INSERT INTO main.applied VALUES (NEW.id); END');
      const where = places(kind);
      let a = await openAt(where.original, server.url, server);
      await a.pull();
      for (let i = 0; i < int(random, 1, 5); i++) await a.run('INSERT INTO t VALUES (?, ?)', [`before-${i}`, i]);
      await a.sync();
      await a.close();
      const copy = await where.copy();
      a = await openAt(where.original, server.url, server);
      const b = await openAt(copy, server.url, server);
      const writes: string[] = [];
      for (const [db, who] of [[a, 'a'], [b, 'b']] as const) {
        for (let i = 0; i < int(random, 1, 20); i++) {
          await db.run('INSERT INTO t VALUES (?, ?)', [`${who}-${i}`, i]);
          writes.push(`${who}-${i}`);
        }
      }
      const order = copyFirst ? [b, a] : [a, b];
      for (const db of order) await db.sync();
      for (const db of order) await db.sync();
      const ids = await serverIds(server, 't');
      for (const w of writes) expect(ids, `${w} (seed ${seed})`).toContain(w);
      const applied = await serverIds(server, 'applied');
      expect(applied.length, `each insert applied once (seed ${seed})`).toBe(new Set(applied).size);
      expect((await a.syncStatus())?.clientId).not.toBe((await b.syncStatus())?.clientId);
      for (const db of [a, b]) {
        expect(await db.pendingChanges()).toEqual([]);
        expect((await db.query<{ id: string }>('SELECT id FROM t ORDER BY id')).map((r) => r.id)).toEqual(ids);
      }
      await a.close();
      await b.close();
      await server.close();
    }, 120_000);
  }
}
