/**
 * Values through push and pull in both directions with Turso's own client (@tursodatabase/sync)
 * as the other peer, against the Outpost server. values.test.ts runs two Outpost clients; the
 * differential fuzzer lets Turso's client take part only with short, moderate doubles and no odd
 * text. This generates the values it leaves out: whole REALs, -0.0, the largest and smallest
 * doubles, 2^63-1 and -2^63, integers past 2^53, empty blobs and blobs of zero bytes, NUL in
 * text, text that is not UTF-8, text up to 200 KB; as values, in each type affinity, and as keys.
 *
 * Outpost -> Turso: an Outpost client writes, pushes; Turso's client pulls. Turso -> Outpost:
 * Turso's client writes the same kinds, pushes; an Outpost client pulls. In each direction the
 * receiver must hold exactly what the sender holds (storage class, bytes, and REALs as exact
 * numbers), or the push must be refused and reported, never stored altered. What Turso's client
 * itself cannot carry (it sends ±Infinity as JSON null) must not wedge the server or the other
 * clients: such a push fails as a whole, and the Outpost side keeps syncing.
 *
 * Each run prints its seed; OUTPOST_SEED=<seed> replays it, OUTPOST_TURSO_VALUE_ROUNDS sets the
 * rounds (default 1).
 */
import { join } from 'node:path';
import { connect } from '@tursodatabase/sync';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { startServer, tempDir } from '../support/server.js';

const ROUNDS = Number(process.env.OUTPOST_TURSO_VALUE_ROUNDS ?? 1);
type Official = Awaited<ReturnType<typeof connect>>;

/**
 * What Turso's engine stores differently from SQLite, whoever pushes it (not a transport's
 * doing, so left out of what Turso's client writes): a double written to a TEXT or NUMERIC
 * column (Turso renders it as text with other digits, "4.919230137020350e-152" where SQLite
 * writes "4.9192301370203487e-152", and its client pushes the double, which the server renders
 * the SQLite way), and -0.0 in a column with REAL, INTEGER or NUMERIC affinity (SQLite stores it
 * as the integer 0 and reads 0.0; Turso keeps the sign).
 */
const ENGINE_RENDERED = { doubles: ['x', 'n'], negativeZero: ['r', 'i', 'n'] };

/** A random SQL expression of an exactly known storage class; `odd` adds what Turso's client may not carry. */
function valueExpr(random: Random, odd: { invalidUtf8: boolean; infinities: boolean }, column = '', turso = false): string {
  for (;;) {
    const e = anyValueExpr(random, odd);
    if (!turso) return e;
    if (ENGINE_RENDERED.negativeZero.includes(column) && e === '-0.0') continue;
    if (ENGINE_RENDERED.doubles.includes(column) && /^[-\d.e+]+$/i.test(e) && !/^-?\d+$/.test(e)) continue;
    return e;
  }
}

function anyValueExpr(random: Random, odd: { invalidUtf8: boolean; infinities: boolean }): string {
  switch (int(random, 0, 9)) {
    case 0:
      return pick(random, ['NULL', "x''", "x'00'", "x'0000000000'", 'zeroblob(17)', "x'00ff00'"]);
    case 1:
      return `${int(random, -100_000, 100_000)}.0`;
    case 2:
      return pick(random, ['-0.0', '0.0', '1.7976931348623157e308', '-1.7976931348623157e308', '2.2250738585072014e-308', '4.9406564584124654e-324', '1e21', '-1e22', '0.1', '123456789012345678.0', '9007199254740993.0', '3.0', '-3.0', ...(odd.infinities ? ['9e999', '-9e999'] : [])]);
    case 3:
      return pick(random, ['9223372036854775807', '-9223372036854775808', '9223372036854775806', '-9223372036854775807', '9007199254740993', '-9007199254740993', '4294967296', '0', '-1']);
    case 4:
      return pick(random, ["''", "'plain'", "'ünïcödé 日本語'", "'emoji 🎉'", "char(0)", "'a' || char(0) || 'b'", "char(65533)", "char(55357) || 'x'"]);
    case 5:
      return pick(random, ["CAST(x'00' AS TEXT)", "CAST(x'' AS TEXT)", ...(odd.invalidUtf8 ? ["CAST(x'ff' AS TEXT)", "CAST(x'c3' AS TEXT)", "CAST(x'eda080' AS TEXT)", "CAST(x'80414243' AS TEXT)"] : [])]);
    case 6:
      return `'${pick(random, ['x', 'é', '🎉', 'ab'])}' || hex(zeroblob(${pick(random, [100, 5000, 40_000, 100_000])}))`;
    case 7:
      return `x'${Array.from({ length: int(random, 1, 64) }, () => pick(random, ['00', '00', 'ff', '7f', '80', 'c3', '0a'])).join('')}'`;
    case 8:
      return `${(random() - 0.5) * 10 ** int(random, -300, 300)}`;
    default:
      return `${int(random, -(2 ** 31), 2 ** 31)} * 4294967296 + ${int(random, 0, 2 ** 31)}`;
  }
}

interface Cell {
  type: string;
  /** Bytes for text and blobs (hex), the integer in decimal, the double's exact bits for REALs. */
  bytes: string;
}

const COLUMNS = ['v', 'r', 'i', 'x', 'n', 'b'];

/** Each row's cells; REALs are compared by their bits (so -0.0 and 0.0 differ), read through `CAST(v AS TEXT)`-free SQL both engines have. */
function snapshotSql(table: string): string {
  const parts = ['id', ...COLUMNS].flatMap((c) => [`typeof(${c})`, `CASE WHEN typeof(${c}) IN ('text', 'blob') THEN hex(${c}) WHEN typeof(${c}) = 'integer' THEN CAST(${c} AS TEXT) END`, `CASE WHEN typeof(${c}) = 'real' THEN ${c} END`]);
  return `SELECT ${parts.join(', ')} FROM ${table} ORDER BY id`;
}

function cells(rows: unknown[][]): Cell[][] {
  return rows.map((row) => {
    const out: Cell[] = [];
    for (let i = 0; i < row.length; i += 3) {
      const type = String(row[i]);
      const real = row[i + 2];
      const bytes = type === 'real' ? realBits(real) : String(row[i + 1] ?? '');
      out.push({ type, bytes });
    }
    return out;
  });
}

function realBits(x: unknown): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Number(x));
  return Array.from(new Uint8Array(view.buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-turso-values-');
const opened: Database[] = [];
const officials: Official[] = [];

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
}, 60_000);
afterAll(async () => {
  for (const db of opened) if (!db.closed) await db.close();
  for (const o of officials) await o.close().catch(() => {});
  await server.close();
});

async function outpostRows(db: Database, table: string): Promise<Cell[][]> {
  return cells((await db.query<Record<string, unknown>>(snapshotSql(table))).map((r) => Object.values(r)));
}

async function officialRows(o: Official, table: string): Promise<Cell[][]> {
  const stmt = await o.prepare(snapshotSql(table));
  return cells(((await stmt.raw().all()) as unknown[][]).map((r) => r.map((v) => (typeof v === 'bigint' ? v.toString() : v))));
}

test('generated values keep their class and bytes between Outpost and Turso clients, both ways', async () => {
  const seed = testSeed();
  console.log(`turso client values: seed ${seed}, ${ROUNDS} rounds (replay with OUTPOST_SEED=${seed})`);
  const random = rng(seed);
  const name = `tv-${seed}`;
  const url = `${base}/db/${name}`;
  const t = 'vals';
  const a = await open(join(dir, `a-${seed}.db`), { sync: { url } });
  opened.push(a);
  await a.exec(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, v, r REAL, i INTEGER, x TEXT, n NUMERIC, b BLOB)`);
  await a.push();
  const o = await connect({ path: join(dir, `t-${seed}.db`), url, clientName: `turso-values-${seed}` });
  officials.push(o);
  await o.pull();
  let nextId = 1;
  let values = 0;
  const written = new Map<number, string>();
  const insert = (odd: { invalidUtf8: boolean; infinities: boolean }, turso = false): string => {
    const id = nextId++;
    const exprs = COLUMNS.map((column) => valueExpr(random, odd, column, turso));
    written.set(id, exprs.join(', '));
    values += exprs.length;
    return `INSERT INTO ${t}(id, ${COLUMNS.join(', ')}) VALUES (${id}, ${exprs.join(', ')})`;
  };
  const compare = (want: Cell[][], got: Cell[][], what: string): void => {
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      const id = Number(want[i]?.[0]?.bytes ?? got[i]?.[0]?.bytes);
      expect(got[i], `seed ${seed} ${what}: row id ${id}, written as (${written.get(id) ?? '?'})`).toEqual(want[i]);
    }
  };

  for (let round = 0; round < ROUNDS; round++) {
    // Outpost -> Turso's client: every kind, odd text and infinities included (Outpost's client
    // pushes row values exactly; Turso's client pulls pages).
    const statements = Array.from({ length: 40 }, () => insert({ invalidUtf8: true, infinities: true }));
    for (let i = 0; i < 6; i++) statements.push(`UPDATE ${t} SET ${pick(random, COLUMNS)} = ${valueExpr(random, { invalidUtf8: true, infinities: true })} WHERE id = ${int(random, 1, nextId - 1)}`);
    for (let i = 0; i < statements.length; ) {
      const size = int(random, 1, 10);
      await a.batch(statements.slice(i, i + size));
      i += size;
    }
    await a.push();
    await o.pull();
    compare(await outpostRows(a, t), await officialRows(o, t), `round ${round}, Outpost -> Turso`);

    // Turso's client -> Outpost: the kinds its client can carry in its JSON (no ±Infinity).
    for (let i = 0; i < 30; i++) await o.exec(insert({ invalidUtf8: true, infinities: false }, true));
    for (let i = 0; i < 6; i++) {
      const column = pick(random, COLUMNS);
      await o.exec(`UPDATE ${t} SET ${column} = ${valueExpr(random, { invalidUtf8: true, infinities: false }, column, true)} WHERE id = ${int(random, 1, nextId - 1)}`);
    }
    const before = await officialRows(o, t);
    let refused: unknown = null;
    await o.push().catch((e: unknown) => (refused = e));
    await a.pull();
    const landed = await outpostRows(a, t);
    if (refused === null) compare(before, landed, `round ${round}, Turso -> Outpost`);
    else {
      // Refused: nothing of it may have landed altered; what landed is a prefix of whole rows.
      console.log(`seed ${seed} round ${round}: Turso's client push refused: ${String(refused)}`);
      for (const row of landed) {
        const same = before.find((r) => r[0]?.bytes === row[0]?.bytes);
        expect(row, `seed ${seed} round ${round}: row ${row[0]?.bytes} landed altered after a refused push`).toEqual(same);
      }
    }
    expect(await a.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  }
  console.log(`turso client values: ${values} values in ${ROUNDS} rounds`);
}, 300_000);
