/**
 * The playground's interpreter: SQL statements and sqlite3-shell dot-commands, run against an
 * Outpost `Database`. It returns output blocks and knows nothing of the DOM; `results.ts`
 * renders them, and `main.ts` provides the host (files, downloads, switching databases
 * through the session).
 *
 * Input is read line by line: a line that starts with `.` when no SQL statement is open is a
 * command; everything else is SQL, run with `execMany` (one result per statement; the first
 * failing statement ends the run and reports SQLite's code and message).
 */
import type { Database, SqlValue, StatementResult } from 'outpost';
import { parseCsv, toCsv } from './csv.js';
import { quoteIdent, splitArgs, sqlLiteral } from './sql-text.js';

export type OutputMode = 'table' | 'json' | 'csv' | 'line';

export type Block =
  | { kind: 'result'; result: StatementResult }
  | { kind: 'text'; text: string; title?: string }
  | { kind: 'error'; message: string; code?: string; sql?: string };

export interface ShellHost {
  db(): Database;
  dbName(): string;
  storage(): string;
  openDatabase(name: string): Promise<void>;
  listDatabases(): Promise<string[]>;
  /** A file the user dropped under that name, else one they pick now; null when cancelled. */
  pickFile(name: string | undefined, accept: string): Promise<File | null>;
  download(fileName: string, data: Blob): void;
  syncState(): string;
  mode: OutputMode;
  lastResult: StatementResult | null;
}

export const HELP = `.databases              List the databases in this browser (OPFS)
.dump                   Print the whole database as SQL
.export --csv [TABLE]   Download TABLE (or the last result) as CSV
.help                   This list
.import --csv [--skip N] FILE TABLE
                        Import a CSV file (dropped on the page or picked) into TABLE;
                        its header row names the columns
.indexes [TABLE]        List indexes
.load                   Loadable extensions (not available in this build)
.mode table|json|csv|line
                        How results are shown
.open NAME              Open (or create) the database NAME
.read [FILE]            Run a .sql file (dropped on the page or picked)
.schema [TABLE]         Show CREATE statements
.show                   Current settings
.tables                 List tables and views`;

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** Splits input into SQL chunks and command lines, in order. */
export function segments(input: string): { kind: 'sql' | 'command'; text: string }[] {
  const out: { kind: 'sql' | 'command'; text: string }[] = [];
  let sql = '';
  const flush = (): void => {
    if (sql.trim()) out.push({ kind: 'sql', text: sql });
    sql = '';
  };
  for (const line of input.split('\n')) {
    const trimmed = line.trim();
    const statementOpen = sql.trim() !== '' && !sql.trimEnd().endsWith(';');
    if (trimmed.startsWith('.') && !statementOpen) {
      flush();
      out.push({ kind: 'command', text: trimmed });
    } else sql += `${line}\n`;
  }
  flush();
  return out;
}

export async function runInput(input: string, host: ShellHost): Promise<Block[]> {
  const blocks: Block[] = [];
  for (const seg of segments(input)) {
    if (seg.kind === 'sql') {
      const results = await host.db().execMany(seg.text);
      let failed = false;
      for (const r of results) {
        if (r.error) {
          blocks.push({ kind: 'error', message: r.error.message, code: r.error.code, sql: r.sql });
          failed = true;
        } else {
          blocks.push({ kind: 'result', result: r });
          if (r.columns.length > 0) host.lastResult = r;
        }
      }
      if (failed) break;
    } else {
      try {
        blocks.push(...(await runCommand(seg.text, host)));
      } catch (e) {
        const err = e as Error & { code?: string };
        blocks.push({ kind: 'error', message: err.message, ...(err.code ? { code: err.code } : {}), sql: seg.text });
        break;
      }
    }
  }
  return blocks;
}

/** The first column of every row of one query. */
async function column<T extends SqlValue>(db: Database, sql: string, params: SqlValue[] = []): Promise<T[]> {
  const rows = await db.query<Record<string, SqlValue>>(sql, params);
  return rows.map((row) => Object.values(row)[0] as T);
}

/** A CSV field as the value to store: numbers as numbers, everything else as text. */
function csvValue(v: string): SqlValue {
  if (!NUMBER.test(v)) return v;
  if (/^-?\d+$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : BigInt(v);
  }
  return Number(v);
}

async function runCommand(line: string, host: ShellHost): Promise<Block[]> {
  const [command = '', ...args] = splitArgs(line);
  const db = host.db();
  switch (command) {
    case '.help':
      return [{ kind: 'text', text: HELP }];
    case '.tables': {
      const names = await column<string>(db, "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name");
      return [{ kind: 'text', text: names.length ? names.join('\n') : '(no tables)' }];
    }
    case '.schema': {
      const table = args[0] ?? null;
      const sqls = await column<string>(
        db,
        "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND (? IS NULL OR tbl_name = ?) ORDER BY tbl_name, type DESC, name",
        [table, table],
      );
      return [{ kind: 'text', text: sqls.length ? sqls.map((s) => `${s};`).join('\n') : table ? `(no table ${table})` : '(empty database)' }];
    }
    case '.indexes':
    case '.indices': {
      const table = args[0] ?? null;
      const names = await column<string>(db, "SELECT name FROM sqlite_schema WHERE type = 'index' AND (? IS NULL OR tbl_name = ?) ORDER BY name", [table, table]);
      return [{ kind: 'text', text: names.length ? names.join('\n') : '(no indexes)' }];
    }
    case '.dump':
      return [{ kind: 'text', text: await dump(db) }];
    case '.mode': {
      const mode = args[0];
      if (mode !== 'table' && mode !== 'json' && mode !== 'csv' && mode !== 'line') {
        return [{ kind: 'text', text: `current mode: ${host.mode}\nusage: .mode table|json|csv|line` }];
      }
      host.mode = mode;
      return [{ kind: 'text', text: `mode: ${mode}` }];
    }
    case '.open': {
      const name = args[0];
      if (!name) return [{ kind: 'error', message: 'usage: .open NAME' }];
      await host.openDatabase(name);
      return [{ kind: 'text', text: `opened ${name}` }];
    }
    case '.databases': {
      const names = await host.listDatabases();
      const current = host.dbName();
      if (!names.includes(current)) names.push(current);
      return [{ kind: 'text', text: names.sort().map((n) => `${n === current ? '* ' : '  '}${n}`).join('\n') }];
    }
    case '.show': {
      const [journal] = await column<string>(db, 'PRAGMA journal_mode');
      const [sync] = await column<number>(db, 'PRAGMA synchronous');
      const [pageSize] = await column<number>(db, 'PRAGMA page_size');
      const [pages] = await column<number>(db, 'PRAGMA page_count');
      const durability = sync === 2 ? 'full (synchronous=FULL)' : sync === 1 ? 'normal (synchronous=NORMAL)' : `synchronous=${sync}`;
      return [
        {
          kind: 'text',
          text: [
            `database: ${host.dbName()}`,
            `storage: ${host.storage()}`,
            `journal mode: ${journal}`,
            `durability: ${durability}`,
            `page size: ${pageSize} (${pages} pages)`,
            `mode: ${host.mode}`,
            `sync: ${host.syncState()}`,
          ].join('\n'),
        },
      ];
    }
    case '.import':
      return importCsv(args, host);
    case '.export': {
      if (args[0] !== '--csv') return [{ kind: 'error', message: 'usage: .export --csv [TABLE]' }];
      const table = args[1];
      let result: StatementResult | null = host.lastResult;
      if (table) {
        const [r] = await db.execMany(`SELECT * FROM ${quoteIdent(table)}`);
        if (!r || r.error) throw Object.assign(new Error(r?.error?.message ?? `no table ${table}`), { code: r?.error?.code });
        result = r;
      }
      if (!result) return [{ kind: 'error', message: 'nothing to export: run a query first, or name a table' }];
      const fileName = `${table ?? 'result'}.csv`;
      host.download(fileName, new Blob([toCsv(result.columns, result.rows)], { type: 'text/csv' }));
      return [{ kind: 'text', text: `exported ${result.rows.length} rows to ${fileName}` }];
    }
    case '.read': {
      const file = await host.pickFile(args[0], '.sql,text/plain');
      if (!file) return [{ kind: 'text', text: 'no file chosen' }];
      const blocks = await runInput(await file.text(), host);
      return [{ kind: 'text', text: `read ${file.name}` }, ...blocks];
    }
    case '.load':
      return [
        {
          kind: 'error',
          message:
            'loadable extensions are not available in this build: SQLite WASM cannot load native code. Built in: FTS5, R*Tree, JSON, the session extension, dbstat and sqlite_dbpage.',
        },
      ];
    default:
      return [{ kind: 'error', message: `unknown command ${command}; .help lists the commands` }];
  }
}

async function importCsv(args: string[], host: ShellHost): Promise<Block[]> {
  const usage = 'usage: .import --csv [--skip N] FILE TABLE';
  let skip = 0;
  const rest: string[] = [];
  let csv = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--csv') csv = true;
    else if (args[i] === '--skip') skip = Number(args[++i]);
    else rest.push(args[i]!);
  }
  if (!csv || rest.length !== 2 || !Number.isInteger(skip) || skip < 0) return [{ kind: 'error', message: usage }];
  const [fileName, table] = rest as [string, string];
  const file = await host.pickFile(fileName, '.csv,text/csv');
  if (!file) return [{ kind: 'text', text: 'no file chosen' }];
  const text = await file.text();
  const rows = parseCsv(text.split(/\r?\n/).slice(skip).join('\n'));
  const header = rows.shift();
  if (!header || header.length === 0 || header.every((h) => h === '')) return [{ kind: 'error', message: `${file.name} has no header row` }];
  const db = host.db();
  const exists = (await column<string>(db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?", [table])).length > 0;
  const columns = header.map((h, i) => h.trim() || `column${i + 1}`);
  const placeholders = columns.map(() => '?').join(', ');
  const insert = `INSERT INTO ${quoteIdent(table)} (${columns.map(quoteIdent).join(', ')}) VALUES (${placeholders})`;
  await db.transaction(async (tx) => {
    // Columns without a declared type keep numbers as numbers and text as text.
    if (!exists) await tx.exec(`CREATE TABLE ${quoteIdent(table)} (${columns.map(quoteIdent).join(', ')})`);
    for (const [n, row] of rows.entries()) {
      if (row.length === 1 && row[0] === '') continue;
      if (row.length !== columns.length) {
        throw new Error(`${file.name} line ${n + 2 + skip}: ${row.length} fields, the header has ${columns.length}`);
      }
      await tx.run(insert, row.map(csvValue));
    }
  });
  return [{ kind: 'text', text: `imported ${rows.length} rows into ${table}` }];
}

/** The whole database as SQL, like the sqlite3 shell's `.dump`. */
export async function dump(db: Database): Promise<string> {
  const out = ['PRAGMA foreign_keys=OFF;', 'BEGIN TRANSACTION;'];
  const [objects] = await db.execMany(
    "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, name",
  );
  for (const [type, name, , sql] of objects?.rows ?? []) {
    out.push(`${String(sql)};`);
    if (type === 'table' && !String(sql).toUpperCase().startsWith('CREATE VIRTUAL')) {
      const [rows] = await db.execMany(`SELECT * FROM ${quoteIdent(String(name))}`);
      for (const row of rows?.rows ?? []) out.push(`INSERT INTO ${quoteIdent(String(name))} VALUES(${row.map(sqlLiteral).join(',')});`);
    }
  }
  out.push('COMMIT;');
  return out.join('\n');
}
