/**
 * The revision log of one hosted database: which pages each committed transaction wrote.
 *
 * A revision is `<generation>.<seq>`: `seq` counts committed write transactions, and the
 * generation is a random id that changes whenever the log cannot be trusted to list every
 * page written since an earlier seq (after an unclean shutdown, or a log that fails its
 * checks). A client whose revision has another generation, or is older than the log's history
 * (`minSeq`: where its generation started, or where a log from before page-writes.ts kept its
 * records from), gets the whole database with `ReplaceBase`. In memory the log keeps which
 * commit last wrote each page (page-writes.ts), which answers a revision of any age; the file
 * rewrites itself as one record per such commit once it has grown (`rewriteBytesAt`).
 *
 * Why a log beside the database and not the WAL: the server checkpoints (a WAL that only grows
 * would not do for thousands of databases), and a checkpoint must never break a pull.
 *
 * File `<db>-revlog`, little endian:
 *   header: "OPRL" | u32 version (1) | 32 ASCII bytes generation
 *   records: u8 kind | f64 seq | u32 dbSizePages | u32 pageCount | u32 page[pageCount] | u32 checksum
 *   kind 1 = commit, kind 2 = clean close (only ever the last record), kind 3 = boot (the
 *   machine's boot id as 4 page words; written at each open, seq and size as the log stands).
 * A commit record is appended (by the WAL observer, synchronously) before the commit frame
 * reaches the WAL, so a process crash cannot leave a commit without its record; a record
 * without a commit only makes a later pull send pages that did not change, which is harmless.
 * Power loss could reorder the two writes, which is why an unclean open starts a new
 * generation.
 *
 * A crash of the server process alone loses nothing the process wrote (the OS keeps it), so the
 * log still lists every commit, and an unclean log whose last boot record names the machine's
 * boot now (Linux: /proc/sys/kernel/random/boot_id) is trusted like a clean one: the same
 * generation, its seq and records, cut after its last whole record. Clients keep pulling
 * incrementally after a kill or a crash; only a new boot (the power went, the OS crashed) or
 * a system without a boot id starts a new generation. (Turso's client cannot apply the
 * ReplaceBase answer of a new generation at all.) A log this process closed itself is trusted
 * unclean whatever the boot id (a running process has seen no power loss since).
 *
 * A clean-close marker vouches for data: a log that reads clean after a power loss keeps its
 * generation, so every commit it lists must be on the device. So the marker is written only
 * after the commits are durable:
 * - under `durable` (the server's 'full': every commit is fsynced before it is acknowledged),
 *   at `close`, and fsynced off the event loop (libuv's thread pool; `markersFlushed` waits);
 * - under 'normal' (commits are not flushed, nor is anything at close), never at `close`: an
 *   evicted database's log is left unclean, and its reopen by the same process writes nothing
 *   and fsyncs nothing. `RevisionLog.seal` appends the marker once the caller has fsynced the
 *   database's files (seal.ts: the server's cache seals a database closed for 60 s, and every
 *   database when the server stops). A power loss therefore starts a new generation for the
 *   databases open or closed less than 60 s before it (Turso's client cannot follow those;
 *   ours downloads them whole), and for no others.
 * Written at close under 'normal' (as before the seal), a marker could reach the device while
 * the last commit's WAL frame did not: the log read clean past the database, and a client that
 * had pulled that commit kept its pages while the next commit reused its seq
 * (test/server/revlog-seal.test.ts).
 *
 * So after any crash the log must read as unclean, or a new commit would reuse a seq that a
 * client already holds with other pages (its next pull would miss pages, and its replica
 * would be corrupt). The one write whose loss could hide a crash, cutting off the clean-close
 * marker when the log is reopened, is on the device before the first commit record after the
 * reopen, under either durability: until a commit, no revision past the marker's has been
 * handed out, so a lost cut is harmless; after one, a lost cut would let the next process
 * reuse that commit's seq (under 'normal' too, where the commit itself may be lost: its
 * revision reached clients all the same). The reopen starts that fsync off the event loop
 * (libuv's thread pool), and writers wait for it (`commitsReady`), so the event loop serves
 * other databases meanwhile and concurrent fsyncs share the file system's journal commits;
 * a commit that comes before it is done (one that did not wait) fsyncs synchronously. A
 * database only read after a reopen waits for nothing. A log left unclean by another process
 * of this boot is flushed the same way before its first commit: that process may have died
 * with its cut still unflushed (the cut then hides a marker the device still holds). Only a
 * log this process closed, with no cut of its own in doubt, is reopened without an fsync.
 * Commit records need no fsync of their own: losing some only makes the log unclean, which
 * starts a new generation. A rewritten log is fsynced before it is renamed into place, and
 * under `durable` the rename with its directory (under 'normal' the seal fsyncs the folder).
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { fnv1a } from '../protocol/checksum.js';
import { randomHex } from '../protocol/ids.js';
import { PageWrites } from './page-writes.js';

const MAGIC = 0x4c52504f; // "OPRL"
const VERSION = 1;
const HEADER_BYTES = 4 + 4 + 32;
const KIND_COMMIT = 1;
const KIND_CLEAN = 2;
const KIND_BOOT = 3;
/**
 * The log rewrites itself once its file holds this many bytes, or twice what a rewrite could
 * write (`rewriteBytesAt`), whichever is more. A rewrite writes one record per seq that is still
 * some page's last write (page-writes.ts), each page in one of them, so the file stays within a
 * bound that follows the database's pages, however many commits it took or pages each wrote.
 */
const REWRITE_BYTES_MIN = 64 * 1024;
/** A record without its page numbers: kind, seq, size, count, checksum. */
const RECORD_BYTES = 1 + 8 + 4 + 4 + 4;

/** The size at which a log whose highest page written is `pages` rewrites itself. */
export function rewriteBytesAt(pages: number): number {
  // At most one record and one page number per page, two empty records and a boot record.
  const rewriteMax = HEADER_BYTES + pages * (RECORD_BYTES + 4) + 3 * (RECORD_BYTES + 16);
  return Math.max(REWRITE_BYTES_MIN, 2 * rewriteMax);
}

interface Record {
  seq: number;
  pages: Uint32Array;
}

/**
 * The file system calls the log makes (`node:fs` by default). A power-loss simulation passes
 * its own, which keeps what a device would after losing power (test/support/power-loss-disk.ts).
 */
export interface LogFiles {
  /**
   * Opens an existing file for reading and appending, without creating it, and reads it whole
   * through that descriptor (one open where a read then an open for appending took two); null
   * when it does not exist.
   */
  openExisting(path: string): { fd: number; bytes: Uint8Array } | null;
  /** 'a' appends (created when missing), 'w' creates or empties, 'r' opens a folder to fsync it. */
  openSync(path: string, flags: 'a' | 'w' | 'r'): number;
  writeSync(fd: number, bytes: Uint8Array): number;
  ftruncateSync(fd: number, length: number): void;
  fsyncSync(fd: number): void;
  /** fsync off the event loop; the fd stays open until it settles. */
  fsync(fd: number): Promise<void>;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  /** The machine's boot id, 32 hex digits (dashes allowed); null when the system has none. */
  bootId(): string | null;
}

let nodeBootId: string | null | undefined;

/** `node:fs`, and Linux's boot id. */
export const NODE_FILES: LogFiles = {
  openExisting: (path) => {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_APPEND);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      const bytes = Buffer.allocUnsafe(fs.fstatSync(fd).size);
      let got = 0;
      for (let n = -1; got < bytes.length && n !== 0; got += n) n = fs.readSync(fd, bytes, got, bytes.length - got, got);
      return { fd, bytes: bytes.subarray(0, got) };
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  },
  openSync: (path, flags) => fs.openSync(path, flags),
  writeSync: (fd, bytes) => fs.writeSync(fd, bytes),
  ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  fsync: (fd) => new Promise((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve()))),
  closeSync: (fd) => fs.closeSync(fd),
  renameSync: (from, to) => fs.renameSync(from, to),
  bootId: () => {
    if (nodeBootId === undefined) {
      try {
        nodeBootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      } catch {
        nodeBootId = null;
      }
    }
    return nodeBootId;
  },
};

/**
 * Logs this process closed unclean and has not sealed since, by the file calls that reach them
 * (one map per simulated process in tests), with whether a cut of theirs may not be on the
 * device. Such a log is trusted on reopen whatever the boot id says: a process still running
 * has seen no power loss since it wrote the log.
 */
const closedUnsealed = new WeakMap<LogFiles, Map<string, boolean>>();
/** The fsyncs of clean-close markers `close` started (under `durable`), until they settle. */
const markersUnderWay = new Set<Promise<void>>();

export class RevisionLog {
  private fd = -1;
  /** Which commit last wrote each page (since the log's history starts, `minSeq`). */
  private writes = new PageWrites();
  /** The file's size in bytes as this log wrote it (`rewriteBytesAt`). */
  private fileBytes = 0;
  private pending = new Set<number>();
  /** The cut of a clean reopen's marker may not be on the device yet (see the header). */
  private cutUnsynced = false;
  /** The cut's fsync under way off the event loop; settles (never rejects) when it is over. */
  private cutSyncing: Promise<void> | null = null;
  /** The fd `cutSyncing` fsyncs, and whether it was closed meanwhile (it is closed once that settles). */
  private syncingFd = -1;
  private closeAfterSync = false;
  /** The machine's boot id as a boot record holds it; null when there is none. */
  private readonly boot: Uint32Array | null;
  generation: string;
  seq = 0;
  /** The oldest seq a client may hold and still get an incremental pull. */
  minSeq = 0;
  /**
   * The database's size in pages as the last commit frame seen gave it; null until a commit
   * since this open, or after `forgetSize` (a commit whose frames were seen may have failed).
   * Read by a pull instead of asking SQLite (`PRAGMA page_count` cost a read transaction).
   */
  dbPages: number | null = null;

  /**
   * Opens (or starts) the log at `path`. With `durable` (the server's `durability: 'full'`),
   * the writes that must survive a power loss are fsynced (see the header) through `files`.
   */
  constructor(
    readonly path: string,
    private readonly durable = false,
    private readonly files: LogFiles = NODE_FILES,
  ) {
    const existing = this.files.openExisting(path);
    const parsed = existing ? RevisionLog.parse(existing.bytes) : null;
    const boot = bootWords(this.files.bootId());
    this.boot = boot;
    const sameBoot = (words: Uint32Array | null): boolean => boot !== null && words !== null && boot.every((w, i) => w === words[i]);
    const closedHere = closedUnsealed.get(this.files)?.get(path);
    closedUnsealed.get(this.files)?.delete(path);
    if (existing && parsed && (parsed.clean || sameBoot(parsed.boot) || (closedHere !== undefined && !parsed.marker))) {
      this.generation = parsed.generation;
      for (const r of parsed.records) this.writes.record(r.seq, r.pages);
      this.fileBytes = parsed.cleanAt;
      this.seq = parsed.seq;
      this.minSeq = parsed.minSeq;
      // Cut the clean-close marker off, so that a crash from now on is noticed. Opened for
      // appending: every record goes at the end (opened 'r+', the first record after a clean
      // reopen overwrote the header, and the next open started a new generation).
      this.fd = existing.fd;
      try {
        // A log this boot left unclean (an eviction's) usually has nothing to cut and names this
        // boot already: its reopen writes nothing.
        if (parsed.cleanAt !== existing.bytes.length) this.files.ftruncateSync(this.fd, parsed.cleanAt);
        if (boot !== null && !sameBoot(parsed.boot)) this.append(KIND_BOOT, this.seq, 0, boot);
      } catch (e) {
        this.files.closeSync(this.fd);
        throw e;
      }
      // Lost in a power loss, the cut of a clean-close marker would leave a crashed log looking
      // clean: it reaches the device before the first commit record (`onWalFrame`). A log left
      // unclean by another process of this boot may hide such a cut too (that process may have
      // died before its fsync): it is flushed the same way. Only a log this process closed,
      // with no cut of its own in doubt, needs nothing (see the header).
      if (parsed.marker || closedHere !== false) this.syncCut();
    } else {
      if (existing) this.files.closeSync(existing.fd);
      this.generation = randomHex(16);
      this.seq = 0;
      this.minSeq = 0;
      this.replaceFile();
    }
  }

  get revision(): string {
    return `${this.generation}.${this.seq}`;
  }

  /**
   * Null when a commit may be recorded at once; otherwise the fsync of a clean reopen's cut,
   * still under way, which a request that may commit awaits first (a commit that does not
   * wait fsyncs on the event loop instead: `onWalFrame`).
   */
  commitsReady(): Promise<void> | null {
    return this.cutUnsynced ? this.cutSyncing : null;
  }

  private syncCut(): void {
    this.cutUnsynced = true;
    const fd = this.fd;
    this.syncingFd = fd;
    this.cutSyncing = this.files.fsync(fd).then(
      () => {
        if (this.fd === fd) this.cutUnsynced = false;
      },
      // Left unsynced: the first commit fsyncs on the event loop, and fails if that fails too.
      () => {},
    );
    void this.cutSyncing.then(() => {
      this.cutSyncing = null;
      if (this.closeAfterSync) this.files.closeSync(fd);
    });
  }

  /** Closes `fd`, or lets the fsync under way on it close it (a closed fd's number may be reused under that fsync). */
  private closeFd(fd: number): void {
    if (this.cutSyncing !== null && fd === this.syncingFd) this.closeAfterSync = true;
    else this.files.closeSync(fd);
  }

  /** Called for every WAL frame header: collects pages until the commit frame. */
  onWalFrame(pageNumber: number, dbSizeAfterCommit: number): void {
    this.pending.add(pageNumber);
    if (dbSizeAfterCommit === 0) return;
    const pages = Uint32Array.from([...this.pending].sort((a, b) => a - b));
    this.pending.clear();
    this.dbPages = dbSizeAfterCommit;
    this.seq++;
    if (this.cutUnsynced) {
      this.files.fsyncSync(this.fd);
      this.cutUnsynced = false;
    }
    this.append(KIND_COMMIT, this.seq, dbSizeAfterCommit, pages);
    this.writes.record(this.seq, pages);
    if (this.fileBytes >= rewriteBytesAt(this.writes.highestPage)) this.replaceFile();
  }

  /** Forgets the size: the next pull asks SQLite (after a request that failed, whose commit frame may not have committed). */
  forgetSize(): void {
    this.dbPages = null;
  }

  /** Whether a commit after `seq` wrote page `pageNumber` (true when it cannot tell: `seq` is older than the log's history). */
  wrotePageSince(seq: number, pageNumber: number): boolean {
    return seq < this.minSeq || this.writes.wroteSince(seq, pageNumber);
  }

  /**
   * Parses a revision the client holds. Returns the pages (1-based) changed after it, or null
   * when it cannot be served incrementally (unknown generation, too old, or from the future).
   */
  pagesSince(revision: string): Set<number> | null {
    const dot = revision.lastIndexOf('.');
    if (dot < 0) return null;
    const generation = revision.slice(0, dot);
    const seq = Number(revision.slice(dot + 1));
    if (generation !== this.generation || !Number.isSafeInteger(seq) || seq < this.minSeq || seq > this.seq) return null;
    return this.writes.since(seq);
  }

  /**
   * Closes the log. With `durable` (every commit is on the device already) it is marked clean
   * first, and the marker is fsynced off the event loop: the promise settles (never rejects)
   * once the fsync is over and the fd closed; a marker the power takes only makes the log
   * unclean. Without, the log is left unclean, since its commits may not be on the device: it
   * is trusted by the process that closed it and on the same boot, and `seal` marks it once the
   * caller has made its database's files durable.
   */
  close(): Promise<void> | null {
    if (!this.durable) {
      let paths = closedUnsealed.get(this.files);
      if (!paths) closedUnsealed.set(this.files, (paths = new Map()));
      paths.set(this.path, this.cutUnsynced);
      this.closeFd(this.fd);
      return null;
    }
    this.append(KIND_CLEAN, this.seq, 0, new Uint32Array(0));
    const fd = this.fd;
    // The fd closes after any fsync already under way on it (the cut's), then after this one.
    const cutOnFd = this.cutSyncing !== null && fd === this.syncingFd;
    const before = cutOnFd ? this.cutSyncing! : Promise.resolve();
    // This close, not the cut's fsync, closes the fd (a rewritten log's old fd keeps its own close).
    if (cutOnFd) this.closeAfterSync = false;
    const flushed = before
      .then(() => this.files.fsync(fd))
      .catch(() => {})
      .then(() => this.files.closeSync(fd));
    markersUnderWay.add(flushed);
    void flushed.then(() => markersUnderWay.delete(flushed));
    return flushed;
  }

  /** Settles once every clean-close marker `close` wrote so far is fsynced (a graceful stop under `durable` waits for it). */
  static async markersFlushed(): Promise<void> {
    await Promise.all([...markersUnderWay]);
  }

  /**
   * Marks a closed log clean and fsyncs it off the event loop (the seal): the caller vouches
   * that every commit it lists is on the device (the database's files were fsynced since its
   * last commit) and that this process closed it. The marker is appended before this returns
   * its promise, so a reopen that follows reads the log clean. A log already clean is only
   * fsynced; a missing one is left alone.
   */
  static seal(path: string, files: LogFiles = NODE_FILES): Promise<void> {
    let existing: { fd: number; bytes: Uint8Array } | null;
    try {
      existing = files.openExisting(path);
    } catch (e) {
      return Promise.reject(e);
    }
    if (existing === null) return Promise.resolve();
    const { fd, bytes } = existing;
    const parsed = RevisionLog.parse(bytes);
    if (parsed === null) {
      files.closeSync(fd);
      return Promise.resolve();
    }
    closedUnsealed.get(files)?.delete(path);
    try {
      if (!parsed.clean) {
        if (parsed.cleanAt !== bytes.length) files.ftruncateSync(fd, parsed.cleanAt);
        files.writeSync(fd, record(KIND_CLEAN, parsed.seq, 0, new Uint32Array(0)));
      }
    } catch (e) {
      files.closeSync(fd);
      return Promise.reject(e);
    }
    return files.fsync(fd).finally(() => files.closeSync(fd));
  }

  private append(kind: number, seq: number, dbSize: number, pages: Uint32Array): void {
    const bytes = record(kind, seq, dbSize, pages);
    this.files.writeSync(this.fd, bytes);
    this.fileBytes += bytes.length;
  }

  /**
   * Rewrites the log into a new file and goes on in it. A failure before the rename (no file
   * or no room for the new one) leaves the log as it was, in its old file and descriptor: the
   * next commit tries again. (It closed the old descriptor first, once: when opening the new
   * file failed, the log went on writing to a closed descriptor number that the next file
   * opened, a database's, had taken.)
   */
  private replaceFile(): void {
    const { fd, bytes } = this.rewrite();
    const old = this.fd;
    this.fd = fd;
    this.fileBytes = bytes;
    if (old !== -1) this.closeFd(old);
    if (this.durable) syncDirectory(dirname(this.path), this.files);
  }

  /** Writes the header and the records `replaceFile` needs to a new file, fsyncs it and renames it over the log; its descriptor and size. */
  private rewrite(): { fd: number; bytes: number } {
    const tmp = `${this.path}.tmp`;
    const fd = this.files.openSync(tmp, 'w');
    let bytes = 0;
    const write = (chunk: Uint8Array): void => {
      this.files.writeSync(fd, chunk);
      bytes += chunk.length;
    };
    try {
      const header = new Uint8Array(HEADER_BYTES);
      const view = new DataView(header.buffer);
      view.setUint32(0, MAGIC, true);
      view.setUint32(4, VERSION, true);
      header.set(new TextEncoder().encode(this.generation), 8);
      write(header);
      // Where its history starts (an empty first commit record: `parse`), then one record per
      // seq that is still some page's last write, then the seq the log stands at, if no page's.
      const groups = this.writes.groups();
      write(record(KIND_COMMIT, this.minSeq, 0, new Uint32Array(0)));
      for (const g of groups) write(record(KIND_COMMIT, g.seq, 0, g.pages));
      if ((groups[groups.length - 1]?.seq ?? this.minSeq) !== this.seq) write(record(KIND_COMMIT, this.seq, 0, new Uint32Array(0)));
      if (this.boot !== null) write(record(KIND_BOOT, this.seq, 0, this.boot));
      this.files.fsyncSync(fd);
      this.files.renameSync(tmp, this.path);
    } catch (e) {
      this.files.closeSync(fd);
      throw e;
    }
    return { fd, bytes };
  }

  /**
   * `marker`: it stopped at a clean-close marker (`clean` when nothing follows it), which
   * `cleanAt` is the offset of. `minSeq`: where the history starts, from the first commit
   * record: the seq before it, or its own seq when it lists no pages (a rewritten log starts
   * with one); the log's seq when there is none.
   */
  private static parse(bytes: Uint8Array): { generation: string; records: Record[]; seq: number; minSeq: number; clean: boolean; marker: boolean; cleanAt: number; boot: Uint32Array | null } | null {
    if (bytes.length < HEADER_BYTES) return null;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== VERSION) return null;
    const generation = new TextDecoder().decode(bytes.subarray(8, 40));
    const records: Record[] = [];
    let at = HEADER_BYTES;
    let seq = 0;
    let minSeq: number | undefined;
    let clean = false;
    let boot: Uint32Array | null = null;
    while (at < bytes.length) {
      if (at + 17 > bytes.length) return { generation, records, seq, minSeq: minSeq ?? seq, clean: false, marker: false, cleanAt: at, boot };
      const count = view.getUint32(at + 13, true);
      const end = at + 17 + count * 4;
      if (end + 4 > bytes.length) return { generation, records, seq, minSeq: minSeq ?? seq, clean: false, marker: false, cleanAt: at, boot };
      if (fnv1a(bytes.subarray(at, end)) !== view.getUint32(end, true)) return { generation, records, seq, minSeq: minSeq ?? seq, clean: false, marker: false, cleanAt: at, boot };
      const kind = view.getUint8(at);
      const recordSeq = view.getFloat64(at + 1, true);
      if (kind === KIND_CLEAN) {
        clean = end + 4 === bytes.length;
        return { generation, records, seq, minSeq: minSeq ?? seq, clean, marker: true, cleanAt: at, boot };
      }
      const pages = new Uint32Array(count);
      for (let i = 0; i < count; i++) pages[i] = view.getUint32(at + 17 + i * 4, true);
      at = end + 4;
      if (kind === KIND_BOOT) {
        boot = pages;
        continue;
      }
      minSeq ??= count > 0 ? recordSeq - 1 : recordSeq;
      if (count > 0) records.push({ seq: recordSeq, pages });
      seq = recordSeq;
    }
    return { generation, records, seq, minSeq: minSeq ?? seq, clean, marker: false, cleanAt: at, boot };
  }
}

/** One record's bytes, its checksum last. */
function record(kind: number, seq: number, dbSize: number, pages: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(1 + 8 + 4 + 4 + pages.length * 4 + 4);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, kind);
  view.setFloat64(1, seq, true);
  view.setUint32(9, dbSize, true);
  view.setUint32(13, pages.length, true);
  pages.forEach((p, i) => view.setUint32(17 + i * 4, p, true));
  const bodyBytes = bytes.length - 4;
  view.setUint32(bodyBytes, fnv1a(bytes.subarray(0, bodyBytes)), true);
  return bytes;
}

/** A boot id as the 4 words a boot record holds; null when there is none or it is not 128 bits of hex. */
function bootWords(id: string | null): Uint32Array | null {
  // The id is the same at every open of a process: its words are worked out once (at 10,000
  // databases most requests reopen a log, and the regex and parses were 1% of the server's time).
  if (lastBoot?.id === id) return lastBoot.words;
  const hex = id?.replace(/-/g, '') ?? '';
  const words = /^[0-9a-f]{32}$/i.test(hex) ? Uint32Array.from([0, 1, 2, 3], (i) => Number.parseInt(hex.slice(i * 8, i * 8 + 8), 16)) : null;
  lastBoot = { id, words };
  return words;
}

/** The last boot id `bootWords` read and its words (never written to: logs only read them). */
let lastBoot: { id: string | null; words: Uint32Array | null } | null = null;

/** Makes a rename or a new file in `dir` durable: the directory's own entry list is fsynced. */
export function syncDirectory(dir: string, files: Pick<LogFiles, 'openSync' | 'fsyncSync' | 'closeSync'> = NODE_FILES): void {
  const fd = files.openSync(dir, 'r');
  try {
    files.fsyncSync(fd);
  } finally {
    files.closeSync(fd);
  }
}
