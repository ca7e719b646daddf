/**
 * Who may write which sync client's row of `turso_sync_last_change_id`. That row is a client's
 * acknowledgement: the push protocol skips every change at or below it. A token that could
 * raise or delete another client's row could make the server swallow that client's writes.
 *
 * The rule: a client id belongs to the subject (the token's `sub` claim) of the first token that
 * writes its row. Afterwards only tokens with that subject (or an admin token) may insert,
 * update or delete that row; any other write to it fails with an error naming the client id.
 * Tokens without a subject write unowned rows only, so a deployment that wants the protection
 * gives each user's tokens a `sub` (an identity provider does; `outpost token --sub NAME`).
 *
 * Enforcement: TEMP triggers on the server's connection (tenants cannot create, see or drop
 * TEMP objects: sandbox.ts) call `outpost_may_write_client(client_id)` before every write to
 * the table. Ownership is kept beside the database in `<name>.db-owners` (JSON, replaced
 * atomically by rename), not inside it, since clients pull the database's every page.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Connection } from '../engine/connection.js';
import { TURSO_SYNC_TABLE } from '../protocol/turso-tables.js';
import { syncDirectory } from './revlog.js';

/** Who is writing: a token's subject, `admin` for admin tokens and the server, null for neither. */
export type Writer = { subject: string | null; admin: boolean };

const CHECK_FUNCTION = 'outpost_may_write_client';

export class ClientOwners {
  /** Read from the file at the first check: most opens (a push, a pull) never need it. */
  private ownersRead: Record<string, string> | null = null;
  private installed = false;
  /** The commit count (`RevisionLog.seq`) at the last look for the table: none since, no new look. */
  private lookedAtSeq = -1;
  /** The writer of the request being executed; set around each pipeline. */
  writer: Writer = { subject: null, admin: true };

  /** With `durable` (the server's `durability: 'full'`), a new binding is on the device before the push that made it is acknowledged. */
  constructor(
    private readonly file: string,
    private readonly durable = false,
  ) {}

  private get owners(): Record<string, string> {
    if (this.ownersRead) return this.ownersRead;
    try {
      this.ownersRead = JSON.parse(fs.readFileSync(this.file, 'utf8')) as Record<string, string>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.ownersRead = {};
    }
    return this.ownersRead;
  }

  /** Registers the check function on a freshly opened connection. */
  register(conn: Connection): void {
    conn.createFunction(CHECK_FUNCTION, 1, (clientId) => {
      this.check(String(clientId));
      return 1;
    });
  }

  /**
   * Installs the triggers once the protocol's table exists, and gives the rows that were
   * written before (by the request that created the table) to their writer. `seq` counts the
   * database's commits: the table can only appear with one, so a request that committed
   * nothing costs no query here. Nor does one whose commits left page 1 alone
   * (`wrotePage1Since(lookedAtSeq)` false): a new table changes the schema, and every schema
   * change rewrites the schema cookie in page 1's header.
   */
  afterRequest(conn: Connection, execTrusted: (sql: string) => void, seq: number, wrotePage1Since: (seq: number) => boolean = () => true): void {
    if (this.installed || seq === this.lookedAtSeq) return;
    if (this.lookedAtSeq >= 0 && !wrotePage1Since(this.lookedAtSeq)) {
      this.lookedAtSeq = seq;
      return;
    }
    // SQLite's own lookup first (any case, no statement to compile: a database's first request
    // after each open asks); only a name it finds is checked exactly.
    if (!conn.hasTable(TURSO_SYNC_TABLE) || Number(conn.value(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '${TURSO_SYNC_TABLE}'`)) === 0) {
      this.lookedAtSeq = seq;
      return;
    }
    for (const row of conn.execute(`SELECT client_id FROM ${TURSO_SYNC_TABLE}`, undefined).rows) this.check(String(row[0]));
    execTrusted(
      [
        `CREATE TEMP TRIGGER IF NOT EXISTS outpost_owner_insert BEFORE INSERT ON main.${TURSO_SYNC_TABLE} BEGIN SELECT ${CHECK_FUNCTION}(NEW.client_id); END`,
        `CREATE TEMP TRIGGER IF NOT EXISTS outpost_owner_update BEFORE UPDATE ON main.${TURSO_SYNC_TABLE} BEGIN SELECT ${CHECK_FUNCTION}(OLD.client_id); SELECT ${CHECK_FUNCTION}(NEW.client_id); END`,
        `CREATE TEMP TRIGGER IF NOT EXISTS outpost_owner_delete BEFORE DELETE ON main.${TURSO_SYNC_TABLE} BEGIN SELECT ${CHECK_FUNCTION}(OLD.client_id); END`,
      ].join('; '),
    );
    this.installed = true;
  }

  /** Throws unless the current writer may write `clientId`'s row; binds an unowned id to it. */
  private check(clientId: string): void {
    const { subject, admin } = this.writer;
    const owner = this.owners[clientId];
    if (owner === undefined) {
      if (subject !== null) {
        this.owners[clientId] = subject;
        this.save();
      }
      return;
    }
    if (admin || owner === subject) return;
    throw new Error(`sync client ${clientId} belongs to another token's subject: this token may not write its acknowledgement`);
  }

  private save(): void {
    const temp = `${this.file}.tmp`;
    const fd = fs.openSync(temp, 'w');
    try {
      fs.writeFileSync(fd, JSON.stringify(this.owners));
      if (this.durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    if (this.durable) syncDirectory(path.dirname(this.file));
  }
}
