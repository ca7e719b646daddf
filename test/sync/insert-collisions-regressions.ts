/**
 * Named regression cases of insert collisions (src/sync/conflicts.ts), as a suite that runs
 * against any server: `collisionRegressions(endpoint)` registers the tests, each on a fresh
 * database from `endpoint()`.
 */
import { expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { SeededFaults } from '../../src/server/in-process-transport.js';
import type { Database, Mutation, MutationResult, SyncOptions } from '../../src/types.js';
import { CrashDisk } from '../support/crash-disk.js';
import type { Endpoint } from '../support/networks.js';
import { COLLISION_SCHEMA, firstValue, openCollisionClient, serverRows } from './insert-collisions.js';

interface Peer {
  db: Database;
  faults: SeededFaults;
}

export function collisionRegressions(endpoint: () => Promise<Endpoint>): void {
  let n = 0;
  /** A client of `server`, bootstrapped, then offline. */
  async function peer(server: Endpoint, sync: Omit<SyncOptions, 'url'> = {}): Promise<Peer> {
    const faults = new SeededFaults(++n);
    const db = await openCollisionClient(server, { name: `p${n}`, disk: new CrashDisk(), faults }, sync);
    await db.pull();
    faults.offline = true;
    return { db, faults };
  }
  async function withServer(body: (server: Endpoint, open: (sync?: Omit<SyncOptions, 'url'>) => Promise<Peer>) => Promise<void>): Promise<void> {
    const server = await endpoint();
    const peers: Peer[] = [];
    try {
      await serverRows(server, ...COLLISION_SCHEMA);
      await body(server, async (sync) => {
        const p = await peer(server, sync);
        peers.push(p);
        return p;
      });
    } finally {
      for (const p of peers) await p.db.close().catch(() => {});
      await server.close();
    }
  }
  const online = (p: Peer): void => {
    p.faults.offline = false;
  };
  const rejection = async (p: Promise<unknown>): Promise<SyncError> => {
    const e = await p.then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SyncError);
    return e as SyncError;
  };

  test('two offline inserts with the same auto id keep both rows (or report)', async () => {
    await withServer(async (server, open) => {
      // The second client gives a colliding insert a fresh id once it knows of the collision.
      let renumber = false;
      const transform = (ms: Mutation[]): MutationResult[] =>
        ms.map((m) => (renumber && m.op === 'insert' && m.table === 'ip' ? { sql: 'INSERT INTO ip(tag, b) VALUES (?, ?)', args: [m.after.tag ?? null, m.after.b ?? null] } : 'keep'));
      const a = await open();
      const b = await open({ transform });
      await a.db.run("INSERT INTO ip(tag, b) VALUES ('a', 1)");
      await b.db.run("INSERT INTO ip(tag, b) VALUES ('b', 2)");
      expect(await firstValue(a.db, 'SELECT id FROM ip')).toBe(await firstValue(b.db, 'SELECT id FROM ip'));
      online(a);
      online(b);
      await a.db.sync();
      const e = await rejection(b.db.push());
      expect(e.code).toBe('REJECTED');
      expect(e.table).toBe('ip');
      expect(e.message).toMatch(/insert collision: table ip already has a row with id = 1 on the server/);
      // Reported, not lost: the status names it, the change keeps its values, the table shows them.
      const status = await b.db.syncStatus();
      expect(status?.rejectedChanges).toEqual([{ changeId: e.changeId, reason: expect.stringMatching(/^insert collision: table ip .*id = 1/) }]);
      const [pending] = await b.db.pendingChanges();
      expect(pending?.mutations).toEqual([{ changeId: e.changeId, table: 'ip', op: 'insert', before: {}, after: { id: 1, tag: 'b', b: 2 } }]);
      expect(await b.db.query('SELECT id, tag, b FROM ip')).toEqual([{ id: 1, tag: 'b', b: 2 }]);
      expect(JSON.parse((await serverRows(server, 'SELECT id, tag FROM ip ORDER BY id'))[0]!)).toEqual([['1', 'a']]);
      // The application renumbers and retries: both rows are kept.
      renumber = true;
      await b.db.retryRejectedChange(e.changeId!);
      await b.db.sync();
      await a.db.sync();
      expect(JSON.parse((await serverRows(server, 'SELECT id, tag FROM ip ORDER BY id'))[0]!)).toEqual([['1', 'a'], ['2', 'b']]);
      for (const p of [a, b]) expect(await p.db.query('SELECT id, tag FROM ip ORDER BY id')).toEqual([{ id: 1, tag: 'a' }, { id: 2, tag: 'b' }]);
    });
  });

  test('no-PK table rows from two clients both survive', async () => {
    await withServer(async (server, open) => {
      const a = await open();
      const b = await open();
      await a.db.exec("INSERT INTO np(tag, b) VALUES ('a1', 1); INSERT INTO np(tag, b) VALUES ('a2', 2);");
      // B's rows collide with A's rowids; B then changes and deletes its own rows, so the
      // re-key must carry those changes to the new rowids.
      await b.db.exec("INSERT INTO np(tag, b) VALUES ('b1', 1); INSERT INTO np(tag, b) VALUES ('b2', 2); INSERT INTO np(tag, b) VALUES ('b3', 3);");
      await b.db.run("UPDATE np SET b = 20 WHERE tag = 'b2'");
      await b.db.run("DELETE FROM np WHERE tag = 'b3'");
      online(a);
      online(b);
      await a.db.sync();
      expect(await b.db.push()).toBe(5);
      // Until the pull, B sees its rows at their new rowids: above every rowid the server, the
      // local table and B's pending changes use (B's 1 to 3).
      expect(await b.db.query('SELECT rowid, tag, b FROM np ORDER BY rowid')).toEqual([
        { rowid: 4, tag: 'b1', b: 1 },
        { rowid: 5, tag: 'b2', b: 20 },
      ]);
      await b.db.pull();
      await a.db.pull();
      const expected = [
        { rowid: 1, tag: 'a1', b: 1 },
        { rowid: 2, tag: 'a2', b: 2 },
        { rowid: 4, tag: 'b1', b: 1 },
        { rowid: 5, tag: 'b2', b: 20 },
      ];
      expect(JSON.parse((await serverRows(server, 'SELECT rowid, tag, b FROM np ORDER BY rowid'))[0]!)).toEqual(expected.map((r) => [String(r.rowid), r.tag, String(r.b)]));
      for (const p of [a, b]) {
        expect(await p.db.query('SELECT rowid, tag, b FROM np ORDER BY rowid')).toEqual(expected);
        expect((await p.db.syncStatus())?.pendingChanges).toBe(0);
      }
    });
  });

  test('a no-PK insert that collides after a pull (the rebase replaced the row locally) is re-keyed too', async () => {
    await withServer(async (server, open) => {
      const a = await open();
      const b = await open();
      await a.db.run("INSERT INTO np(tag, b) VALUES ('a', 1)");
      await b.db.run("INSERT INTO np(tag, b) VALUES ('b', 1)");
      online(a);
      online(b);
      await a.db.sync();
      await b.db.pull();
      await b.db.sync();
      await a.db.pull();
      const rows = JSON.parse((await serverRows(server, 'SELECT rowid, tag FROM np ORDER BY rowid'))[0]!);
      expect(rows).toEqual([['1', 'a'], ['2', 'b']]);
      for (const p of [a, b]) expect(await p.db.query('SELECT rowid, tag FROM np ORDER BY rowid')).toEqual([{ rowid: 1, tag: 'a' }, { rowid: 2, tag: 'b' }]);
    });
  });

  test('a later change to a row whose insert collided waits with it, and never lands on the other row', async () => {
    await withServer(async (server, open) => {
      const a = await open();
      const b = await open();
      await a.db.run("INSERT INTO tp(k, tag, b) VALUES ('x', 'a', 1)");
      await b.db.run("INSERT INTO tp(k, tag, b) VALUES ('x', 'b', 1)");
      await b.db.run("UPDATE tp SET b = 2 WHERE k = 'x'");
      await b.db.run("INSERT INTO tp(k, tag, b) VALUES ('y', 'b', 3)");
      online(a);
      online(b);
      await a.db.sync();
      const e = await rejection(b.db.push());
      expect(e.message).toMatch(/insert collision: table tp already has a row with k = 'x'/);
      expect(JSON.parse((await serverRows(server, 'SELECT k, tag, b FROM tp ORDER BY k'))[0]!)).toEqual([
        ['x', 'a', '1'],
        ['y', 'b', '3'],
      ]);
      // The insert of y was pushed; the update of x is refused as waiting for the insert.
      const pending = await b.db.pendingChanges();
      expect(pending.map((p) => [p.mutations[0]?.op, p.rejected])).toEqual([
        ['insert', expect.stringMatching(/^insert collision: /)],
        ['update', expect.stringMatching(`^waits for change ${pending[0]!.changeId},`)],
        ['insert', null],
      ]);
      // Dropping the two gives the server's row back to B at the next pull.
      for (const p of pending.slice(0, 2)) await b.db.dropPendingChange(p.changeId);
      await a.db.run("INSERT INTO tp(k, tag, b) VALUES ('z', 'a', 4)");
      await a.db.sync();
      await b.db.sync();
      expect(await b.db.query('SELECT k, tag, b FROM tp ORDER BY k')).toEqual([
        { k: 'x', tag: 'a', b: 1 },
        { k: 'y', tag: 'b', b: 3 },
        { k: 'z', tag: 'a', b: 4 },
      ]);
    });
  });

  test('deleting a row and inserting another with the same key is no collision', async () => {
    await withServer(async (server, open) => {
      const a = await open();
      online(a);
      await a.db.run("INSERT INTO ip(id, tag, b) VALUES (1, 'old', 1)");
      await a.db.exec("INSERT INTO cp(x, y, tag, b) VALUES (1, 'a', 'old', 1); INSERT INTO np(tag, b) VALUES ('old', 1);");
      await a.db.sync();
      await a.db.run('DELETE FROM ip WHERE id = 1');
      await a.db.run("INSERT INTO ip(id, tag, b) VALUES (1, 'new', 2)");
      await a.db.run("DELETE FROM cp WHERE x = 1 AND y = 'a'");
      await a.db.run("INSERT INTO cp(x, y, tag, b) VALUES (1, 'a', 'new', 2)");
      await a.db.run("DELETE FROM np WHERE tag = 'old'");
      await a.db.run("INSERT INTO np(tag, b) VALUES ('new', 2)");
      expect(await firstValue(a.db, "SELECT rowid FROM np WHERE tag = 'new'")).toBe(1);
      expect(await a.db.push()).toBe(6);
      expect(await serverRows(server, 'SELECT id, tag FROM ip', 'SELECT x, y, tag FROM cp', 'SELECT rowid, tag FROM np')).toEqual(['[["1","new"]]', '[["1","a","new"]]', '[["1","new"]]']);
    });
  });

  test('an insert whose push answer was lost is not a collision when pushed again', async () => {
    await withServer(async (server, open) => {
      const a = await open();
      await a.db.exec("INSERT INTO ip(tag, b) VALUES ('a', 1); INSERT INTO np(tag, b) VALUES ('a', 1); INSERT INTO tp(k, tag, b) VALUES ('k', 'a', 1);");
      a.faults.offline = false;
      a.faults.lossRate = 1;
      await rejection(a.db.push());
      a.faults.lossRate = 0;
      await a.db.sync();
      expect((await a.db.syncStatus())?.rejectedChanges).toEqual([]);
      expect(await serverRows(server, 'SELECT id, tag FROM ip', 'SELECT rowid, tag FROM np', 'SELECT k, tag FROM tp')).toEqual(['[["1","a"]]', '[["1","a"]]', '[["k","a"]]']);
      expect((await a.db.syncStatus())?.pendingChanges).toBe(0);
    });
  });

  test('a table in sync.upsertTables keeps last push wins', async () => {
    await withServer(async (server, open) => {
      const a = await open({ upsertTables: ['tp'] });
      const b = await open({ upsertTables: ['tp'] });
      await a.db.run("INSERT INTO tp(k, tag, b) VALUES ('theme', 'a', 'dark')");
      await b.db.run("INSERT INTO tp(k, tag, b) VALUES ('theme', 'b', 'light')");
      online(a);
      online(b);
      await a.db.sync();
      await b.db.sync();
      await a.db.sync();
      expect(await serverRows(server, 'SELECT k, tag, b FROM tp')).toEqual(['[["theme","b","light"]]']);
      for (const p of [a, b]) expect(await p.db.query('SELECT k, tag, b FROM tp')).toEqual([{ k: 'theme', tag: 'b', b: 'light' }]);
    });
  });
}
