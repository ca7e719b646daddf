/**
 * Change capture: every committed local write transaction leaves exactly one change record,
 * written inside that same transaction, so the record and the commit are atomic by
 * construction. A rolled-back transaction leaves none.
 *
 * Mechanism: SQLite's session extension, attached to every table (rowid tables included,
 * through SQLITE_SESSION_OBJCONFIG_ROWID; Outpost's own `_outpost_*` tables, Turso's
 * `turso_sync_*` table and `sqlite_*` tables filtered out). The session records the original
 * values of each touched row and, when asked for a changeset, compares them with the rows as
 * they are now, so work undone by ROLLBACK or ROLLBACK TO leaves nothing behind. The engine
 * calls `flush()` at every commit point (before COMMIT/END, before the RELEASE that ends a
 * transaction, and around autocommit writes, which it wraps in BEGIN/COMMIT), and the record
 * goes into `_outpost_changes(id, ddl, changeset)`. DDL is not seen by sessions: the engine
 * notes each CREATE/DROP/ALTER statement's text, and the record keeps them in order, applied
 * before its row changes on replay and push.
 *
 * Change ids only grow: a new id is one more than the larger of the table's largest id and the
 * floor the sync layer keeps (ids it has seen acknowledged or dropped), so an id is never
 * reused after acknowledged records are deleted.
 */
import {
  SQLITE_CHANGESET_CONFLICT as CHANGESET_CONFLICT,
  SQLITE_CHANGESET_DATA as CHANGESET_DATA,
  SQLITE_CHANGESET_OMIT as CHANGESET_OMIT,
  SQLITE_CHANGESET_REPLACE as CHANGESET_REPLACE,
  SQLITE_DELETE,
  SQLITE_INSERT,
  SQLITE_OK,
  SQLITE_ROW,
  SQLITE_SESSION_OBJCONFIG_ROWID as SESSION_OBJCONFIG_ROWID,
  SQLITE_UPDATE,
} from '../sqlite/constants.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';
import type { SqlValue } from '../types.js';

export const CHANGES_TABLE = '_outpost_changes';

/** Tables whose changes are never captured or pushed. */
export function isInternalTable(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith('_outpost_') || lower.startsWith('turso_sync_') || lower.startsWith('sqlite_');
}

export interface ChangeRecord {
  id: number;
  /** DDL statements of the transaction, in order. */
  ddl: string[];
  /** The session changeset of its row changes (empty when it changed no rows). */
  changeset: Uint8Array;
}

/** Writes a change record (creating the table when missing); used by capture and by replay. */
export function writeChangeRecord(host: Pick<CaptureHost, 'run'>, record: ChangeRecord): void {
  host.run(`CREATE TABLE IF NOT EXISTS ${CHANGES_TABLE}(id INTEGER PRIMARY KEY, ddl TEXT, changeset BLOB NOT NULL)`);
  host.run(`INSERT INTO ${CHANGES_TABLE}(id, ddl, changeset) VALUES (?, ?, ?)`, [record.id, record.ddl.length ? JSON.stringify(record.ddl) : null, record.changeset]);
}

export interface RowChange {
  table: string;
  op: 'insert' | 'update' | 'delete';
  /** Per column: part of the primary key (for rowid tables, column 0 is the rowid). */
  pk: boolean[];
  /** Old values (update and delete); `undefined` where the changeset has none. */
  before: (SqlValue | undefined)[];
  /** New values (insert and update); `undefined` for columns an update did not change. */
  after: (SqlValue | undefined)[];
}

/** Runs SQL on the connection; provided by the engine so capture stays free of statement logic. */
export interface CaptureHost {
  run(sql: string, params?: SqlValue[]): void;
  value(sql: string): SqlValue;
}

export class ChangeCapture {
  private session = 0;
  private ddl: string[] = [];
  /** While positive, nothing is recorded (replay and sync bookkeeping). */
  suspended = 0;

  constructor(
    private readonly sqlite3: Sqlite3Runtime,
    private readonly db: number,
    private readonly host: CaptureHost,
    private readonly idFloor: () => number,
  ) {
    this.start();
  }

  private start(): void {
    const { capi, wasm } = this.sqlite3;
    const pp = wasm.alloc(wasm.ptr.size);
    try {
      const rc = capi.sqlite3session_create(this.db, 'main', pp);
      if (rc !== SQLITE_OK) throw new Error(`sqlite3session_create failed (${rc})`);
      this.session = wasm.peekPtr(pp);
    } finally {
      wasm.dealloc(pp);
    }
    const pInt = wasm.alloc(4);
    try {
      wasm.poke32(pInt, 1);
      capi.sqlite3session_object_config(this.session, SESSION_OBJCONFIG_ROWID, pInt);
    } finally {
      wasm.dealloc(pInt);
    }
    capi.sqlite3session_table_filter(this.session, (_ctx: number, table: string) => (isInternalTable(table) ? 0 : 1), 0);
    const rc = capi.sqlite3session_attach(this.session, 0);
    if (rc !== SQLITE_OK) throw new Error(`sqlite3session_attach failed (${rc})`);
  }

  /** Forgets everything recorded so far (after a commit point or a full rollback). */
  reset(): void {
    this.sqlite3.capi.sqlite3session_delete(this.session);
    this.session = 0;
    this.ddl = [];
    this.start();
  }

  noteDdl(sql: string): void {
    if (this.suspended === 0) this.ddl.push(sql);
  }

  /** Writes the open transaction's change record, if it changed anything. Call inside the transaction. */
  flush(): void {
    if (this.suspended > 0) return;
    const changeset = this.changeset();
    const ddl = this.ddl;
    if (changeset.length > 0 || ddl.length > 0) {
      this.suspended++;
      try {
        const exists = Number(this.host.value(`SELECT count(*) FROM sqlite_schema WHERE name = '${CHANGES_TABLE}'`)) > 0;
        const max = exists ? Number(this.host.value(`SELECT coalesce(max(id), 0) FROM ${CHANGES_TABLE}`)) : 0;
        writeChangeRecord(this.host, { id: Math.max(max, this.idFloor()) + 1, ddl, changeset });
      } finally {
        this.suspended--;
      }
    }
    this.reset();
  }

  private changeset(): Uint8Array {
    const { capi, wasm } = this.sqlite3;
    const pN = wasm.alloc(4);
    const pBuf = wasm.alloc(wasm.ptr.size);
    try {
      const rc = capi.sqlite3session_changeset(this.session, pN, pBuf);
      if (rc !== SQLITE_OK) throw new Error(`sqlite3session_changeset failed (${rc}); a table's schema may have changed under the session`);
      const n = wasm.peek32(pN);
      const p = wasm.peekPtr(pBuf);
      const out = n > 0 ? wasm.heap8u().slice(p, p + n) : new Uint8Array(0);
      if (p) capi.sqlite3_free(p);
      return out;
    } finally {
      wasm.dealloc(pN);
      wasm.dealloc(pBuf);
    }
  }

  dispose(): void {
    if (this.session) this.sqlite3.capi.sqlite3session_delete(this.session);
    this.session = 0;
  }
}

/** Decodes a changeset into row changes, in changeset order. */
export function decodeChangeset(sqlite3: Sqlite3Runtime, changeset: Uint8Array): RowChange[] {
  if (changeset.length === 0) return [];
  const { capi, wasm } = sqlite3;
  const out: RowChange[] = [];
  const pData = wasm.allocFromTypedArray(changeset);
  const pIter = wasm.alloc(wasm.ptr.size);
  const pTab = wasm.alloc(wasm.ptr.size);
  const pN = wasm.alloc(4);
  const pOp = wasm.alloc(4);
  const pIndirect = wasm.alloc(4);
  const pPk = wasm.alloc(wasm.ptr.size);
  const pVal = wasm.alloc(wasm.ptr.size);
  try {
    let rc = capi.sqlite3changeset_start(pIter, changeset.length, pData);
    if (rc !== SQLITE_OK) throw new Error(`invalid changeset (${rc})`);
    const it = wasm.peekPtr(pIter);
    try {
      while ((rc = capi.sqlite3changeset_next(it)) === SQLITE_ROW) {
        capi.sqlite3changeset_op(it, pTab, pN, pOp, pIndirect);
        const table = wasm.cstrToJs(wasm.peekPtr(pTab));
        const n = wasm.peek32(pN);
        const opCode = wasm.peek32(pOp);
        capi.sqlite3changeset_pk(it, pPk, pN);
        const pkPtr = wasm.peekPtr(pPk);
        const pk = [...wasm.heap8u().subarray(pkPtr, pkPtr + n)].map((b) => b !== 0);
        const op = opCode === SQLITE_INSERT ? 'insert' : opCode === SQLITE_DELETE ? 'delete' : opCode === SQLITE_UPDATE ? 'update' : null;
        if (!op) throw new Error(`unknown changeset operation ${opCode}`);
        const before: (SqlValue | undefined)[] = [];
        const after: (SqlValue | undefined)[] = [];
        for (let i = 0; i < n; i++) {
          if (op !== 'insert') {
            capi.sqlite3changeset_old(it, i, pVal);
            const v = wasm.peekPtr(pVal);
            before.push(v ? (capi.sqlite3_value_to_js(v) as SqlValue) : undefined);
          }
          if (op !== 'delete') {
            capi.sqlite3changeset_new(it, i, pVal);
            const v = wasm.peekPtr(pVal);
            after.push(v ? (capi.sqlite3_value_to_js(v) as SqlValue) : undefined);
          }
        }
        out.push({ table, op, pk, before, after });
      }
    } finally {
      capi.sqlite3changeset_finalize(it);
    }
  } finally {
    for (const p of [pData, pIter, pTab, pN, pOp, pIndirect, pPk, pVal]) wasm.dealloc(p);
  }
  return out;
}

/**
 * Applies a changeset to the connection (replaying a local change on top of newly pulled
 * data). Conflicts resolve the way pushes do on the server: the local change wins per row and
 * changed column (REPLACE) when the row exists; a change to a row that no longer exists, or
 * that breaks a constraint, is left out (OMIT), as the server would leave it out too.
 */
export function applyChangeset(sqlite3: Sqlite3Runtime, db: number, changeset: Uint8Array): void {
  if (changeset.length === 0) return;
  const { capi, wasm } = sqlite3;
  const p = wasm.allocFromTypedArray(changeset);
  try {
    const rc = capi.sqlite3changeset_apply(db, changeset.length, p, 0, (_ctx: number, conflict: number) =>
      conflict === CHANGESET_DATA || conflict === CHANGESET_CONFLICT ? CHANGESET_REPLACE : CHANGESET_OMIT,
    0);
    if (rc !== SQLITE_OK) throw new Error(`applying a local change failed (${capi.sqlite3_js_rc_str(rc) ?? rc}): ${capi.sqlite3_errmsg(db)}`);
  } finally {
    wasm.dealloc(p);
  }
}
