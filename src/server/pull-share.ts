/**
 * Identical whole pulls share one answer. Ten clients bootstrapping the same 100 MB database at
 * the same revision used to build ten answers, each reading, encoding and spooling every page.
 * Now the first whole pull (`HostedDatabase.wholePullKey`: the database, its revision, the
 * apply mode, the page size and encoding) whose answer is large enough to go to a spool file
 * (pull-spool.ts, over 1 MiB) leaves that file here, and later pulls with the same key stream
 * from it: no build, no charge to the database's time share, no wait for its turn. A pull that
 * arrives while the answer is being built waits in the database's turn queue behind the build,
 * and finds the answer when its turn comes.
 *
 * Bounds:
 * - Disk: the kept answers hold at most `budgetBytes` together. Keeping a new one drops the least
 *   recently used first; one larger than the budget is not kept (it is sent from its own spool,
 *   as before). A dropped answer's file closes when its last reader is done.
 * - Time: an answer that nobody reads is dropped after `keepMs` (the server's body time limit),
 *   so an answer its clients never read does not hold disk for long either.
 * - Memory: none per reader beyond a read buffer. Readers stream the shared file with
 *   backpressure; a client that reads nothing holds a reference, not a descriptor, until the
 *   body time limit cuts it off.
 * - Revision: the key holds the revision, so an answer is served only for its own revision. A
 *   database's kept answers are dropped at its next commit (`dropDatabase`, told by the revision
 *   log as the commit is recorded), which makes them all stale: no build runs during a commit (a
 *   pull holds the database's turn), so every kept answer is of an older revision. Readers
 *   under way finish theirs (they asked before the commit).
 *
 * Crash and restart: spool files are unlinked as soon as they are created, and the index of kept
 * answers lives in memory only. A new process starts with none, so nothing on disk can be served
 * for the wrong revision. A file left behind by a process that died between creating and
 * unlinking it is removed when a server starts (`removeStaleSpools`).
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { PullRequest } from '../protocol/pull-updates.js';
import type { HostedDatabase } from './hosted-database.js';
import { PullSpool } from './pull-spool.js';

/** The default disk budget for kept answers: 1 GiB, ten bootstraps of a 100 MB database. */
export const PULL_SPOOL_BYTES = 1024 * 1024 * 1024;

/** A pull's answer, ready to send: its own spool, or a reader of a kept one. */
export interface PullAnswer {
  /** Sends the answer and lets go of it (also when the client goes away or reads nothing for `idleMs`). */
  send(res: http.ServerResponse, type: string, idleMs: number): Promise<void>;
}

/** Told when a pull is answered from a kept answer, when an answer is kept, and when one is dropped (for metrics). */
export interface SharedPullEvents {
  hit?: () => void;
  kept?: () => void;
  dropped?: () => void;
}

/** One kept answer: an unlinked file, shared by its readers. */
interface Kept {
  key: string;
  database: string;
  fd: number;
  bytes: number;
  readers: number;
  /** No longer found by new pulls; its file closes when its last reader is done. */
  dropped: boolean;
  /** Drops it once nobody has read it for `keepMs`. */
  idle: ReturnType<typeof setTimeout> | null;
}

export class SharedPulls {
  /** By key, least recently used first. */
  private readonly kept = new Map<string, Kept>();
  private keptBytes = 0;
  /** Bytes of dropped answers that readers still hold open. */
  private draining = 0;

  constructor(
    private readonly tempDir: string,
    private readonly budgetBytes: number,
    private readonly keepMs: number,
    private readonly events: SharedPullEvents = {},
  ) {
    removeStaleSpools(tempDir);
  }

  /** Answers kept now, and the bytes on disk (those of dropped answers still being read included). */
  get usage(): { answers: number; bytes: number } {
    return { answers: this.kept.size, bytes: this.keptBytes + this.draining };
  }

  /**
   * The answer to `request`: a kept answer with the same key when there is one, or else built in
   * the database's turn (`HostedDatabase.pull`, in slices, stopped when `signal` aborts) and kept
   * for the next identical pull when it is whole and spooled to a file.
   */
  async answer(db: HostedDatabase, request: PullRequest, signal: Pick<AbortSignal, 'throwIfAborted'>): Promise<PullAnswer> {
    const key = this.budgetBytes > 0 ? db.wholePullKey(request) : null;
    const early = this.lookup(key);
    if (early) return early;
    const spool = new PullSpool(this.tempDir);
    try {
      return await db.inTurn(null, async () => {
        db.lastUsedMs = Date.now();
        // The same answer may have been built while this pull waited for its turn.
        const late = key === null ? null : this.lookup(db.wholePullKey(request));
        if (late) return late;
        const built = await db.pull(request, spool.write, signal);
        return this.keep(db, built.key, spool) ?? spool;
      });
    } catch (e) {
      spool.discard();
      throw e;
    }
  }

  /** Drops every kept answer of `database` (a commit made them stale); readers finish what they read. */
  dropDatabase(database: string): void {
    if (this.kept.size === 0) return;
    for (const k of [...this.kept.values()]) if (k.database === database) this.drop(k);
  }

  /** Drops every kept answer (the server is closing); readers finish what they read. */
  close(): void {
    for (const k of [...this.kept.values()]) this.drop(k);
  }

  private lookup(key: string | null): PullAnswer | null {
    if (key === null) return null;
    const k = this.kept.get(key);
    if (!k) return null;
    this.kept.delete(key);
    this.kept.set(key, k);
    this.events.hit?.();
    return this.reader(k);
  }

  /** Keeps a just-built whole answer (called in the database's turn: nothing committed since its build). */
  private keep(db: HostedDatabase, key: string | null, spool: PullSpool): PullAnswer | null {
    if (key === null) return null;
    const file = spool.takeFile(this.budgetBytes);
    if (!file) return null;
    const same = this.kept.get(key);
    if (same) this.drop(same);
    for (const k of this.kept.values()) {
      if (this.keptBytes + file.bytes <= this.budgetBytes) break;
      this.drop(k);
    }
    const k: Kept = { key, database: db.name, fd: file.fd, bytes: file.bytes, readers: 0, dropped: false, idle: null };
    this.kept.set(key, k);
    this.keptBytes += k.bytes;
    this.events.kept?.();
    return this.reader(k);
  }

  private drop(k: Kept): void {
    if (k.dropped) return;
    k.dropped = true;
    this.kept.delete(k.key);
    this.keptBytes -= k.bytes;
    if (k.idle) clearTimeout(k.idle);
    k.idle = null;
    this.events.dropped?.();
    if (k.readers === 0) fs.closeSync(k.fd);
    else this.draining += k.bytes;
  }

  private reader(k: Kept): PullAnswer {
    k.readers++;
    if (k.idle) clearTimeout(k.idle);
    k.idle = null;
    return { send: (res, type, idleMs) => this.send(k, res, type, idleMs) };
  }

  private send(k: Kept, res: http.ServerResponse, type: string, idleMs: number): Promise<void> {
    // CORS headers were set on `res` before the route ran (http.ts setCorsHeaders).
    res.setTimeout(idleMs, () => res.destroy());
    res.writeHead(200, { 'content-type': type, 'content-length': k.bytes });
    const stream = new SpoolReader(k.fd, k.bytes);
    return new Promise((resolve) => {
      // 'close' comes after any read in flight is done, so the file may close then.
      stream.once('close', () => {
        this.release(k);
        resolve();
      });
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      // A client gone before its answer was ready would never close its answer again.
      if (res.destroyed) stream.destroy();
      else stream.pipe(res);
    });
  }

  private release(k: Kept): void {
    k.readers--;
    if (k.readers > 0) return;
    if (k.dropped) {
      this.draining -= k.bytes;
      fs.closeSync(k.fd);
      return;
    }
    k.idle = setTimeout(() => this.drop(k), this.keepMs);
    k.idle.unref();
  }
}

/**
 * Reads `bytes` from the start of a shared file at explicit positions, so that any number of
 * readers share one descriptor. It never closes the descriptor (its owner does), and it is not
 * destroyed while a read is in flight, so the descriptor is never closed under a read.
 */
class SpoolReader extends Readable {
  private at = 0;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly fd: number,
    private readonly bytes: number,
  ) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _read(size: number): void {
    const wanted = Math.min(size, this.bytes - this.at);
    if (wanted <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(wanted);
    this.reading = new Promise((done) => {
      fs.read(this.fd, buffer, 0, wanted, this.at, (error, read) => {
        this.reading = null;
        done();
        if (this.destroyed) return;
        if (error) this.destroy(error);
        else if (read === 0) this.destroy(new Error('the pull spool file ended before its answer did'));
        else {
          this.at += read;
          this.push(read < wanted ? buffer.subarray(0, read) : buffer);
        }
      });
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.reading) void this.reading.then(() => callback(error));
    else callback(error);
  }
}

/**
 * Removes spool files left by processes that are gone (pull-spool.ts names them
 * `pull-<pid>-<random>`). Only a process that died between creating a file and unlinking it
 * leaves one, and no index names it, so it could never be served: this only gives the disk back.
 */
export function removeStaleSpools(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = /^pull-([0-9]+)-/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || alive(Number(pid))) continue;
    try {
      fs.unlinkSync(path.join(dir, name));
    } catch {
      // Another server removed it first.
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
