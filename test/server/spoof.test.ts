/**
 * Client-id spoofing and cross-database writes, from outside: a sync client (alice, token
 * subject `alice`) syncs a database while an attacker with a valid write token of its own
 * (bob, subject `bob`) replays alice's recorded push requests, forges pushes under alice's
 * client id with change ids ahead of hers, deletes or raises her acknowledgement, and pushes
 * under an id of its own with her change ids; carol, whose token is for another database, sends
 * alice's requests to alice's database, and bob sends them to carol's. Seeded steps; after every
 * attack alice writes and syncs. It must hold: the server's acknowledgement of alice's client is
 * always what alice pushed, none of her pushes fails or is swallowed (each insert applied
 * exactly once: a TEMP trigger counts), cross-database requests are refused with 403, and
 * replica and server end with the same rows.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { UPSERT_TURSO_SYNC, isSyncPush } from '../../src/protocol/turso-tables.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { SECRET, batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const seed = testSeed();
const STEPS = 60;
let server: OutpostServer;
let base = '';
const dir = tempDir('outpost-spoof-');

beforeAll(async () => {
  console.log(`spoof seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  ({ server, url: base } = await startServer({}));
});
afterAll(async () => {
  await server?.close();
});

type Attack = 'replay' | 'forge-ahead' | 'delete-ack' | 'raise-ack' | 'own-id' | 'cross-db-token' | 'token-for-other-db';
const ATTACKS: readonly Attack[] = ['replay', 'forge-ahead', 'delete-ack', 'raise-ack', 'own-id', 'cross-db-token', 'token-for-other-db'];

/** A Hrana batch whose steps run in order, each only after the one before succeeded. */
function chained(...stmts: { sql: string; args?: unknown[] }[]): unknown {
  return {
    baton: null,
    requests: [
      {
        type: 'batch',
        batch: {
          steps: stmts.map((s, i) => ({
            stmt: { sql: s.sql, args: s.args ?? [], want_rows: false },
            ...(i > 0 ? { condition: { type: 'ok', step: i - 1 } } : {}),
          })),
        },
      },
      { type: 'execute', stmt: { sql: 'ROLLBACK', want_rows: false } },
    ],
  };
}

const text = (value: string): { type: 'text'; value: string } => ({ type: 'text', value });
const integer = (value: number): { type: 'integer'; value: string } => ({ type: 'integer', value: String(value) });

test('a token cannot push as another client or to another database', async () => {
  const random = rng(seed);
  const a = `spoofa${seed}`;
  const b = `spoofb${seed}`;
  const alice = await mintToken(SECRET, { db: a, role: 'write', subject: 'alice' });
  const bob = await mintToken(SECRET, { db: a, role: 'write', subject: 'bob' });
  const carol = await mintToken(SECRET, { db: b, role: 'write', subject: 'carol' });
  const admin = await mintToken(SECRET, { db: '*', role: 'admin' });
  const at = (name: string): string => `${base}/db/${name}`;
  await rawPipeline(at(a), batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE audit(n INTEGER PRIMARY KEY, id INTEGER)'), admin);
  await rawPipeline(at(b), batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'), admin);
  await server.execTrusted(a, 'CREATE TEMP TRIGGER t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(id) VALUES (new.id); END');
  const query = async (name: string, sql: string): Promise<string[][]> => {
    const { json } = await rawPipeline(at(name), batch(sql), admin);
    const r = json.results[0].response.result;
    if (r.step_errors[0]) throw new Error(r.step_errors[0].message);
    return r.step_results[0].rows.map((row: { value?: string }[]) => row.map((v) => v.value ?? null));
  };

  // Alice's pushes as they went over the wire.
  const pushes: unknown[] = [];
  const recording: typeof fetch = async (input, init) => {
    if (String(input).endsWith('/v2/pipeline') && init?.body !== undefined) {
      const raw = typeof init.body === 'string' ? init.body : new TextDecoder().decode(init.body as Uint8Array);
      const body = JSON.parse(raw) as unknown;
      if (isSyncPush(body)) pushes.push(body);
    }
    return fetch(input, init);
  };
  const db = await open(join(dir, 'alice.db'), { sync: { url: at(a), authToken: alice, clientName: 'alice', retries: 0, fetch: recording } });
  const counts: Record<string, number> = {};
  try {
    await db.pull();
    let id = 1;
    let forged = 100_000;
    const write = async (): Promise<void> => {
      for (let i = int(random, 1, 2); i > 0; i--) await db.run('INSERT INTO t VALUES (?, ?)', [id++, `alice ${i}`]);
      await db.sync();
    };
    await write();
    const clientId = (await db.syncStatus())!.clientId;
    const aliceAck = async (): Promise<number> => Number((await query(a, `SELECT change_id FROM turso_sync_last_change_id WHERE client_id = '${clientId}'`))[0]?.[0] ?? 0);

    for (let step = 0; step < STEPS; step++) {
      const attack = pick(random, ATTACKS);
      const what = `seed ${seed} step ${step} (${attack})`;
      const ack = await aliceAck();
      const rowsBefore = await query(a, 'SELECT count(*) FROM t');
      const recorded = pushes.length > 0 ? pick(random, pushes) : chained({ sql: 'SELECT 1' });
      let status = 0;
      let failed = false;
      const send = async (name: string, body: unknown, token: string): Promise<void> => {
        const res = await rawPipeline(at(name), body, token);
        status = res.status;
        const answer = JSON.stringify(res.json);
        failed = res.status !== 200 || answer.includes('"type":"error"') || /"step_errors":\[[^\]]*"message"/.test(answer);
      };
      switch (attack) {
        case 'replay':
          await send(a, recorded, bob);
          break;
        case 'forge-ahead':
          await send(
            a,
            chained(
              { sql: 'BEGIN IMMEDIATE' },
              { sql: 'INSERT INTO t VALUES (?, ?)', args: [integer(forged++), text('forged')] },
              { sql: UPSERT_TURSO_SYNC, args: [text(clientId), integer(1), integer(ack + int(random, 1, 1000))] },
              { sql: 'COMMIT' },
            ),
            bob,
          );
          break;
        case 'delete-ack':
          await send(a, chained({ sql: `DELETE FROM turso_sync_last_change_id WHERE client_id = ?`, args: [text(clientId)] }), bob);
          break;
        case 'raise-ack':
          await send(a, chained({ sql: `UPDATE turso_sync_last_change_id SET change_id = change_id + 1000 WHERE client_id LIKE ?`, args: [text(`${clientId.slice(0, 8)}%`)] }), bob);
          break;
        case 'own-id': {
          // Alice's recorded push with another client id in every argument that carried hers.
          const own = JSON.parse(JSON.stringify(recorded).replaceAll(clientId, `bob-${seed}-${step}`)) as unknown;
          await send(a, own, bob);
          break;
        }
        case 'cross-db-token':
          await send(a, recorded, carol);
          break;
        case 'token-for-other-db':
          await send(b, recorded, bob);
          break;
      }
      counts[attack] = (counts[attack] ?? 0) + 1;
      if (attack === 'cross-db-token' || attack === 'token-for-other-db') {
        expect(status, what).toBe(403);
        expect(await query(a, 'SELECT count(*) FROM t'), what).toEqual(rowsBefore);
      }
      if (attack === 'forge-ahead' || attack === 'delete-ack' || attack === 'raise-ack') expect(failed, `${what}: refused`).toBe(true);
      expect(await aliceAck(), `${what}: alice's acknowledgement`).toBe(ack);
      if (attack === 'token-for-other-db') expect(await query(b, 'SELECT count(*) FROM t'), what).toEqual([['0']]);
      await write().catch((e: Error) => {
        throw new Error(`${what}: alice's next sync failed: ${e.message}`);
      });
    }
    expect((await db.syncStatus())?.pendingChanges).toBe(0);
    const mine = await query(a, 'SELECT id, count(*) FROM audit WHERE id < 100000 GROUP BY id ORDER BY id');
    expect(mine, 'each of alice\'s inserts applied exactly once').toEqual(Array.from({ length: id - 1 }, (_, k) => [String(k + 1), '1']));
    const local = (await db.query<{ id: number; v: string }>('SELECT id, v FROM t ORDER BY id')).map((r) => [String(r.id), r.v]);
    expect(local).toEqual(await query(a, 'SELECT id, v FROM t ORDER BY id'));
  } finally {
    await db.close();
  }
  console.log(`spoof: ${STEPS} attacks ${JSON.stringify(counts)}, ${pushes.length} recorded pushes`);
}, 300_000);
