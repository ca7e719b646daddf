/**
 * Applying a downloaded pull to the local database: steps a–f of engine.ts's header, the
 * revert that step b and recovery share, the replay that step f and recovery share, and the
 * recovery of an apply a crash interrupted. Each state update is flushed before the next step
 * starts, so the phase on disk always says what to finish.
 */
import type { Connection } from '../engine/connection.js';
import { applyingEffects } from '../engine/effects.js';
import { OutpostError, SyncError } from '../errors.js';
import { PAGE_BYTES } from '../protocol/pull-updates.js';
import { DB_HEADER_CHANGE_COUNTER_OFFSET, DB_HEADER_PAGE_COUNT_OFFSET, DB_HEADER_VALID_FOR_OFFSET, readUint32, validateHeader } from '../sqlite/format.js';
import { SELECT_TURSO_SYNC, TURSO_SYNC_TABLE } from '../protocol/turso-tables.js';
import type { ChangeRecord } from './change-log.js';
import { invariant } from './invariant.js';
import type { LocalDatabase } from './local.js';
import type { PulledUpdate } from './pull.js';
import { type RevertPlan, recoveryPlan, revertPlan } from './recovery.js';
import { type ReplayRefusal, replayRecord } from './replay.js';
import { tableExists } from './schema.js';
import { applyOrder } from './staging.js';
import { pushedUpTo, rotateClientId } from './state-file.js';

/**
 * Applies a downloaded update (steps a–f). Must run outside any transaction. Returns the
 * pending records that replay refused and that were not refused before (for the caller to
 * report); they stay pending, marked rejected.
 */
export function applyPull(local: LocalDatabase, update: PulledUpdate): ReplayRefused[] {
  checkUpdate(update, local.state.value.syncedDbPages);
  // Live queries: the apply's own statements are not reported; the tables owning the pulled
  // pages afterwards (or whose schema entry changed) are, once, when it is done.
  // The report reads every page through `dbstat`: with the cache bounded too (see APPLY_CACHE_KIB).
  const { conn } = local;
  const cacheSize = Number(conn.value('PRAGMA cache_size'));
  try {
    return conn.replacingPages(
      () => {
        const refused = applySteps(local, update);
        boundCache(conn, cacheSize);
        return refused;
      },
      () => [...update.pages.keys()],
    );
  } finally {
    restoreCache(conn, cacheSize);
  }
}

/**
 * Refuses (PROTOCOL), before anything changes, an update that could only leave a replica no
 * SQLite can open, with its pending changes stuck behind it: a first page that is not a SQLite
 * header of 4 KiB pages, or whose page count (when SQLite trusts it: the valid-for number equals
 * the change counter) is not the update's; or a change of the database's size without the
 * first page, where SQLite keeps that size. (An update to no pages at all, a server never
 * written to, has no first page.) What the other pages hold cannot be checked so cheaply.
 */
function checkUpdate(update: PulledUpdate, syncedDbPages: number): void {
  const page1 = update.pages.get(1);
  const refuse = (why: string): never => {
    throw new SyncError(`the server's update is not applied: ${why}; the replica stays as it was`, 'PROTOCOL');
  };
  if (page1 === undefined) {
    if (update.dbPages !== syncedDbPages && update.dbPages !== 0) refuse(`it changes the database from ${syncedDbPages} to ${update.dbPages} pages without the first page, which holds that size`);
    return;
  }
  const header = validateHeader(page1);
  if (page1.length !== PAGE_BYTES || 'invalid' in header || header.pageSize !== PAGE_BYTES) refuse('its first page is not the header of a SQLite database of 4 KiB pages');
  const pages = readUint32(page1, DB_HEADER_PAGE_COUNT_OFFSET);
  if (readUint32(page1, DB_HEADER_VALID_FOR_OFFSET) === readUint32(page1, DB_HEADER_CHANGE_COUNTER_OFFSET) && pages !== update.dbPages) refuse(`its first page says ${pages} pages, the update ${update.dbPages}`);
}

/**
 * The page cache an apply runs with (KiB, SQLite's own default). Step c writes every pulled
 * page once and the report of what changed (`dbstat`) reads every page of the database once:
 * with the build's 16 MiB cache, each filled it, which grew the WASM heap by 12 MiB in a 100 MB
 * pull, memory a WASM heap never gives back. A smaller cache only spills step c's dirty pages
 * to the WAL sooner, as every page past the cache's size was anyway.
 */
export const APPLY_CACHE_KIB = 2048;

/** Lowers the page cache to `APPLY_CACHE_KIB` when `cacheSize` (PRAGMA cache_size: pages, or -KiB) is larger. */
function boundCache(conn: Connection, cacheSize: number): void {
  const kib = cacheSize < 0 ? -cacheSize : (cacheSize * PAGE_BYTES) / 1024;
  if (kib > APPLY_CACHE_KIB) conn.exec(`PRAGMA cache_size=-${APPLY_CACHE_KIB}`);
}

/** Puts the page cache back to `cacheSize`; on a connection that failed under the apply, the apply's own error says why. */
function restoreCache(conn: Connection, cacheSize: number): void {
  try {
    conn.exec(`PRAGMA cache_size=${cacheSize}`);
  } catch {
    // The apply's error (rethrown by the caller) is the one to report.
  }
}

function applySteps(local: LocalDatabase, update: PulledUpdate): ReplayRefused[] {
  const { conn, state } = local;
  if (conn.inTransaction) throw new OutpostError('cannot apply a pull inside a transaction', 'INVALID_ARGUMENT');
  // a. save pending changes
  const pending = local.changes.readAll();
  // With nothing pending, recovery reads no replay file (replayEntries 0): skip its flush.
  if (pending.length > 0) local.replay.write(pending);
  state.update({ phase: 'applying', replayEntries: pending.length });
  // b. back to the synced image
  revert(local, revertPlan(state.value, walBytes(conn)));
  reserveMainFile(conn, update.dbPages);
  // c. the new pages, atomically
  writePages(conn, update);
  // d. the new revision
  const watermarkBytes = walBytes(conn);
  invariant(watermarkBytes >= state.value.walWatermarkBytes, 'step c only appends to the WAL');
  const page1 = update.pages.get(1);
  state.update({
    revision: update.revision,
    syncedDbPages: update.dbPages,
    walWatermarkBytes: watermarkBytes,
    revertEntries: 0,
    phase: 'replaying',
    pageOne: page1 ? toBase64(page1) : null,
  });
  local.revert.clear();
  // e. fold the synced frames into the main file, then put the server's page 1 back
  foldSyncedFrames(local, watermarkBytes, page1);
  // f. replay what the server does not have yet
  const refused = replay(local, pending);
  const newlyRefused = refused.filter((r) => !local.rejected.has(r.id));
  local.rejected.record(refusalMarks(refused), { phase: 'idle', replayEntries: 0, lastPullAt: Date.now(), pageOne: null });
  return newlyRefused;
}

/** Step e: checkpoint the synced frames into the main file, then restore the server's page 1. */
function foldSyncedFrames(local: LocalDatabase, watermarkBytes: number, page1: Uint8Array | undefined): void {
  const { conn, state } = local;
  conn.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  // Recovery reads a WAL shorter than the watermark as "this checkpoint ran" (recovery.ts).
  invariant(watermarkBytes === 0 || walBytes(conn) < watermarkBytes, 'the checkpoint of step e truncates the WAL');
  state.update({ walWatermarkBytes: 0 });
  restorePageOne(conn, page1);
}

/** Finishes an apply a crash interrupted (see recovery.ts). Call once after opening. */
export function recover(local: LocalDatabase): void {
  const { state } = local;
  const plan = recoveryPlan(state.value, walBytes(local.conn));
  if (plan.action === 'none') return;
  const records = plan.replayFrom === 'file' ? local.replay.read(state.value.replayEntries) : [];
  revert(local, plan.revert);
  const pageOne = state.value.pageOne;
  if (state.value.phase === 'replaying' && pageOne) {
    // The crash came after step d: the main file (and the synced frames kept in the WAL) hold
    // the new image with SQLite's own stamp in page 1. Finish step e, as the apply would have.
    foldSyncedFrames(local, state.value.walWatermarkBytes, fromBase64(pageOne));
  }
  const refused = replay(local, records);
  local.rejected.record(refusalMarks(refused), { phase: plan.nextPhase, replayEntries: 0, pageOne: null });
}

/** The WAL's length, every buffered write included. */
function walBytes(conn: Connection): number {
  return conn.rawFiles().wal.size();
}

/** Back to the synced image: pre-images written back, main truncated, local WAL frames dropped. */
function revert(local: LocalDatabase, plan: RevertPlan): void {
  const { conn, state } = local;
  const synced = state.value;
  invariant(local.revert.count === synced.revertEntries, `the revert file has ${local.revert.count} entries, the sync state ${synced.revertEntries}`);
  if (alreadySynced(local, plan)) {
    // The files are the synced image already (no local write since the last apply, the usual
    // case for a live replica that only reads): closing and reopening SQLite and flushing
    // would change nothing, and cost a live pull most of its apply time.
    if (synced.walWatermarkBytes !== plan.keepWalBytes || synced.revertEntries !== 0) state.update({ walWatermarkBytes: plan.keepWalBytes, revertEntries: 0 });
    return;
  }
  conn.withDatabaseClosed(({ db, wal }) => {
    // Closing SQLite does not checkpoint a synced database, so the WAL is as the plan saw it.
    invariant(wal.size() >= plan.keepWalBytes, 'a revert keeps only WAL bytes that exist');
    if (plan.restoreMainFile) {
      for (const { pageNumber, page } of local.revert.pages()) {
        // A local checkpoint saves pre-images of synced pages only (local-checkpoint.ts).
        invariant(pageNumber >= 1 && pageNumber <= synced.syncedDbPages, `pre-image of page ${pageNumber} past the synced size ${synced.syncedDbPages}`);
        db.write(page, (pageNumber - 1) * PAGE_BYTES);
      }
      db.truncate(synced.syncedDbPages * PAGE_BYTES);
      db.flush();
    }
    wal.truncate(plan.keepWalBytes);
    wal.flush();
  });
  state.update({ walWatermarkBytes: plan.keepWalBytes, revertEntries: 0 });
  local.revert.clear();
}

/** Whether reverting by `plan` would leave every file as it is: no pre-image, no WAL bytes to drop, the main file at the synced size. */
function alreadySynced(local: LocalDatabase, plan: RevertPlan): boolean {
  if (local.revert.count > 0) return false;
  const { db, wal } = local.conn.rawFiles();
  if (wal.size() !== plan.keepWalBytes) return false;
  return !plan.restoreMainFile || db.size() === local.state.value.syncedDbPages * PAGE_BYTES;
}

/**
 * Grows the main file to the pulled image's size before step c, so that step e's checkpoint
 * only overwrites bytes the file holds: on a full disk (or at an OPFS quota) the apply then fails
 * in step c, whose transaction rolls back, and never in step e, after which the connection
 * would hold the new image without the replayed pending changes. The grown tail is zeros past
 * every image the WAL describes (SQLite takes the size from the WAL's commit frame while it
 * holds frames), and step e's checkpoint truncates the file to the image's size. Growing a file
 * under an open SQLite is what SQLite's own size hint does.
 */
function reserveMainFile(conn: Connection, dbPages: number): void {
  const { db } = conn.rawFiles();
  if (db.size() < dbPages * PAGE_BYTES) db.truncate(dbPages * PAGE_BYTES);
}

/**
 * Step c: the pulled pages in one transaction through `sqlite_dbpage` (atomic via the WAL),
 * read one at a time from where the download put them, into one scratch page (binding copies
 * it into the WASM heap), with the page cache bounded (`APPLY_CACHE_KIB`) for the transaction.
 */
function writePages(conn: Connection, update: PulledUpdate): void {
  const before = conn.pageCount();
  const cacheSize = Number(conn.value('PRAGMA cache_size'));
  const scratch = new Uint8Array(PAGE_BYTES);
  conn.withoutCapture(() => {
    boundCache(conn, cacheSize);
    conn.exec('BEGIN IMMEDIATE');
    try {
      // A server that was never written to (a new `turso --sync-server`) has no pages at all; a
      // SQLite file keeps at least page 1, and sqlite_dbpage refuses to truncate below it.
      if (before > Math.max(1, update.dbPages)) conn.run('INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, NULL)', [Math.max(1, update.dbPages) + 1]);
      for (const pgno of applyOrder(update.pages.keys(), update.dbPages)) {
        const page = update.pages.get(pgno, scratch);
        invariant(page !== undefined, `pulled page ${pgno} is where the download put it`);
        conn.run('INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, ?)', [pgno, page]);
      }
      conn.exec('COMMIT');
    } catch (e) {
      conn.rollbackQuietly();
      throw e;
    } finally {
      restoreCache(conn, cacheSize);
    }
  });
}

/**
 * The end of step e: reopens the connection, so that it sees the new schema, and puts the
 * server's page 1 back. SQLite stamped its own change counter and version into page 1's header
 * when it committed the page; the server's bytes make the file the server's image byte for
 * byte (the main file alone is the image now).
 */
function restorePageOne(conn: Connection, page1: Uint8Array | undefined): void {
  conn.withDatabaseClosed(({ db }) => {
    if (page1) {
      db.write(page1, 0);
      db.flush();
    }
  });
}

/** A pending record that replay refused: it stays in the change log, marked rejected. */
export interface ReplayRefused extends ReplayRefusal {
  id: number;
}

/**
 * Replays the change records the pulled image does not cover, keeping their ids (step f).
 * Returns the records it refused (replay.ts); the rejection log then marks them, in the state
 * update that ends the apply, so a crash before that replays and refuses them again.
 */
function replay(local: LocalDatabase, records: ChangeRecord[]): ReplayRefused[] {
  const { conn, state } = local;
  records.forEach((r, i) => invariant(i === 0 || r.id > records[i - 1]!.id, `change ids strictly increase (${r.id} after ${records[i - 1]?.id})`));
  let acked = acknowledgedLocally(conn, state.value.clientId);
  if (acked > pushedUpTo(state.value)) {
    // Acknowledged past anything this replica sent under its id: a copy pushes under it (see push.ts).
    rotateClientId(state, state.value.home ?? '');
    acked = 0;
  }
  const inherited = state.value.inherited;
  const covered = inherited ? Math.min(inherited.upTo, acknowledgedLocally(conn, inherited.clientId)) : 0;
  const keep = records.filter((r) => (r.id > acked && r.id > covered) || local.rejected.has(r.id));
  if (inherited && !keep.some((r) => r.id <= inherited.upTo)) state.update({ inherited: null });
  const maxId = records.reduce((a, r) => Math.max(a, r.id), 0);
  // Marks of records the pulled image covers (or that are gone) go with them.
  const kept = new Set(keep.map((r) => r.id));
  const gone = new Map(local.rejected.all().flatMap((m) => (kept.has(m.changeId) ? [] : [[m.changeId, null] as const])));
  const floor = Math.max(state.value.changeIdFloor, acked, maxId);
  // Nothing to write when no mark goes and the floor stays: one flush less for a replica that only reads.
  local.rejected.record(gone, floor !== state.value.changeIdFloor ? { changeIdFloor: floor } : {});
  if (keep.length === 0) return [];
  const refused: ReplayRefused[] = [];
  // A record holds what its triggers did: replaying it must not fire them again (effects.ts).
  applyingEffects(conn, () => conn.withoutCapture(() => {
    conn.exec('BEGIN IMMEDIATE');
    try {
      for (const r of keep) {
        const outcome = replayRecord(conn, r);
        if ('refused' in outcome) refused.push({ id: r.id, ...outcome.refused });
        local.changes.restore('applied' in outcome ? outcome.applied : r);
      }
      conn.exec('COMMIT');
    } catch (e) {
      conn.rollbackQuietly();
      throw e;
    }
  }));
  return refused;
}

/** The rejection marks of replay's refusals. */
function refusalMarks(refused: readonly ReplayRefused[]): Map<number, string> {
  return new Map(refused.map((r) => [r.id, `cannot be applied here: ${r.reason}`]));
}

/** This client's acknowledged change id in the local (pulled) image. */
function acknowledgedLocally(conn: Connection, clientId: string): number {
  if (!tableExists(conn, TURSO_SYNC_TABLE)) return 0;
  const row = conn.execute(SELECT_TURSO_SYNC, [clientId]).rows[0];
  return row ? Number(row[1] ?? 0) : 0;
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
