/**
 * The 16 tests of SQLite's old speed comparison (sqlite.org/speed.html), written once against
 * a small adapter so every configuration runs the same SQL: Outpost's engine, stock SQLite WASM
 * on `:memory:` and on `opfs-sahpool`, Turso's WASM engine, and on Node better-sqlite3.
 *
 * Each run starts from an empty database and runs the tests in order (later tests use the
 * tables earlier ones built). Statements are prepared once per run where the adapter allows.
 */

export type BenchValue = number | string | null;

/** A database as the classic tests need it. Methods may be synchronous or return promises. */
export interface ClassicAdapter {
  exec(sql: string): void | Promise<void>;
  /** A statement run many times with different parameters. */
  prepare(sql: string): { run(params: BenchValue[]): unknown };
  /**
   * Runs `fn` in one transaction. Without it the tests send BEGIN and COMMIT through `exec`;
   * the public API's adapter gives `db.transaction`, as its users write it.
   */
  transaction?(fn: (tx: ClassicAdapter) => Promise<void>): Promise<void>;
}

export interface ClassicTest {
  id: string;
  title: string;
}

export const CLASSIC_TESTS: ClassicTest[] = [
  { id: 'c01', title: '1000 INSERTs (autocommit)' },
  { id: 'c02', title: '25000 INSERTs in a transaction' },
  { id: 'c03', title: '25000 INSERTs into an indexed table' },
  { id: 'c04', title: '100 SELECTs without an index' },
  { id: 'c05', title: '100 SELECTs on a string comparison' },
  { id: 'c06', title: 'Creating an index' },
  { id: 'c07', title: '5000 SELECTs with an index' },
  { id: 'c08', title: '1000 UPDATEs without an index' },
  { id: 'c09', title: '25000 UPDATEs with an index' },
  { id: 'c10', title: '25000 text UPDATEs with an index' },
  { id: 'c11', title: 'INSERTs from a SELECT' },
  { id: 'c12', title: 'DELETE without an index' },
  { id: 'c13', title: 'DELETE with an index' },
  { id: 'c14', title: 'A big INSERT after a big DELETE' },
  { id: 'c15', title: 'A big DELETE and many small INSERTs' },
  { id: 'c16', title: 'DROP TABLE' },
];

const ONES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
const TENS = ['', 'ten', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];

/** 123456 -> "one hundred twenty three thousand four hundred fifty six", as the original. */
export function numberName(n: number): string {
  if (n >= 1000) return `${numberName(Math.floor(n / 1000))} thousand${n % 1000 ? ` ${numberName(n % 1000)}` : ''}`;
  if (n >= 100) return `${ONES[Math.floor(n / 100)]} hundred${n % 100 ? ` ${numberName(n % 100)}` : ''}`;
  if (n >= 20) return `${TENS[Math.floor(n / 10)]}${n % 10 ? ` ${ONES[n % 10]}` : ''}`;
  return ONES[n]!;
}

/** A deterministic pseudo-random sequence, so every configuration writes the same rows. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

async function settle(v: unknown): Promise<void> {
  if (v instanceof Promise) await v;
}

/** Runs the tests in order; returns each test's milliseconds. `only` limits which are timed and run (setup still runs). */
export async function runClassic(
  db: ClassicAdapter,
  scale = 1,
  only?: ReadonlySet<string>,
  /** Called around each test, untimed (the bench's `--profile` starts and stops a profile here). */
  around?: (id: string, phase: 'start' | 'end') => Promise<void>,
): Promise<Record<string, number>> {
  const times: Record<string, number> = {};
  const rand = lcg(42);
  const n = (k: number): number => Math.max(1, Math.round(k * scale));
  const step = async (id: string, body: () => Promise<void>): Promise<void> => {
    await around?.(id, 'start');
    const t0 = performance.now();
    await body();
    if (!only || only.has(id)) times[id] = performance.now() - t0;
    await around?.(id, 'end');
  };
  const exec = (sql: string): Promise<void> => settle(db.exec(sql));
  const inTransaction = async (fn: (tx: ClassicAdapter) => Promise<void>): Promise<void> => {
    if (db.transaction) return db.transaction(fn);
    await exec('BEGIN');
    await fn(db);
    await exec('COMMIT');
  };

  await exec('CREATE TABLE t1(a INTEGER, b INTEGER, c VARCHAR(100))');
  await exec('CREATE TABLE t2(a INTEGER, b INTEGER, c VARCHAR(100))');
  await exec('CREATE TABLE t3(a INTEGER, b INTEGER, c VARCHAR(100))');
  await exec('CREATE INDEX i3 ON t3(c)');

  await step('c01', async () => {
    const ins = db.prepare('INSERT INTO t1 VALUES(?, ?, ?)');
    for (let i = 1; i <= n(1000); i++) {
      const r = rand() % 100000;
      await settle(ins.run([i, r, numberName(r)]));
    }
  });
  await step('c02', async () => {
    await inTransaction(async (tx) => {
      const ins = tx.prepare('INSERT INTO t2 VALUES(?, ?, ?)');
      for (let i = 1; i <= n(25000); i++) {
        const r = rand() % 500000;
        await settle(ins.run([i, r, numberName(r)]));
      }
    });
  });
  await step('c03', async () => {
    await inTransaction(async (tx) => {
      const ins = tx.prepare('INSERT INTO t3 VALUES(?, ?, ?)');
      for (let i = 1; i <= n(25000); i++) {
        const r = rand() % 500000;
        await settle(ins.run([i, r, numberName(r)]));
      }
    });
  });
  await step('c04', async () => {
    await inTransaction(async (tx) => {
      const sel = tx.prepare('SELECT count(*), avg(b) FROM t2 WHERE b >= ? AND b < ?');
      for (let i = 0; i < n(100); i++) await settle(sel.run([i * 100, i * 100 + 1000]));
    });
  });
  await step('c05', async () => {
    await inTransaction(async (tx) => {
      const sel = tx.prepare('SELECT count(*), avg(b) FROM t2 WHERE c LIKE ?');
      for (let i = 1; i <= n(100); i++) await settle(sel.run([`%${numberName(i)}%`]));
    });
  });
  await step('c06', async () => {
    await exec('CREATE INDEX i2a ON t2(a)');
    await exec('CREATE INDEX i2b ON t2(b)');
  });
  await step('c07', async () => {
    const sel = db.prepare('SELECT count(*), avg(b) FROM t2 WHERE b >= ? AND b < ?');
    for (let i = 0; i < n(5000); i++) await settle(sel.run([i * 100, i * 100 + 100]));
  });
  await step('c08', async () => {
    await inTransaction(async (tx) => {
      const upd = tx.prepare('UPDATE t1 SET b = b * 2 WHERE a >= ? AND a < ?');
      for (let i = 0; i < n(1000); i++) await settle(upd.run([i * 10, i * 10 + 10]));
    });
  });
  await step('c09', async () => {
    await inTransaction(async (tx) => {
      const upd = tx.prepare('UPDATE t2 SET b = ? WHERE a = ?');
      for (let i = 1; i <= n(25000); i++) await settle(upd.run([rand() % 500000, i]));
    });
  });
  await step('c10', async () => {
    await inTransaction(async (tx) => {
      const upd = tx.prepare('UPDATE t2 SET c = ? WHERE a = ?');
      for (let i = 1; i <= n(25000); i++) await settle(upd.run([numberName(rand() % 500000), i]));
    });
  });
  await step('c11', async () => {
    await inTransaction(async (tx) => {
      await settle(tx.exec('INSERT INTO t1 SELECT b, a, c FROM t2'));
      await settle(tx.exec('INSERT INTO t2 SELECT b, a, c FROM t1'));
    });
  });
  await step('c12', async () => exec("DELETE FROM t2 WHERE c LIKE '%fifty%'"));
  await step('c13', async () => exec('DELETE FROM t2 WHERE a > 10 AND a < 20000'));
  await step('c14', async () => exec('INSERT INTO t2 SELECT * FROM t1'));
  await step('c15', async () => {
    await inTransaction(async (tx) => {
      await settle(tx.exec('DELETE FROM t1'));
      const ins = tx.prepare('INSERT INTO t1 VALUES(?, ?, ?)');
      for (let i = 1; i <= n(12000); i++) {
        const r = rand() % 100000;
        await settle(ins.run([i, r, numberName(r)]));
      }
    });
  });
  await step('c16', async () => {
    await exec('DROP TABLE t1');
    await exec('DROP TABLE t2');
    await exec('DROP TABLE t3');
  });
  return times;
}
