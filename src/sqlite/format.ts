/**
 * SQLite's on-disk formats, as far as Outpost reads them underneath SQLite
 * (https://www.sqlite.org/fileformat2.html). All integers are big-endian.
 *
 * Database file: a 100-byte header on page 1.
 *   offset  0  16 bytes  "SQLite format 3\0"
 *   offset 16  u16       page size in bytes (1 means 65536)
 *   offset 18  u8        file format write version (1 rollback journal, 2 WAL)
 *   offset 19  u8        file format read version  (1 rollback journal, 2 WAL)
 *   offset 24  u32       file change counter
 *   offset 28  u32       database size in pages
 *   offset 92  u32       the change counter the size is valid for
 *
 * WAL file: a 32-byte header, then frames of a 24-byte frame header and one page each.
 *   WAL header    offset 0 u32 magic | 4 u32 format version | 8 u32 page size |
 *                 12 u32 checkpoint sequence | 16 salt-1 | 20 salt-2 | 24 checksum-1 | 28 checksum-2
 *   frame header  offset 0 u32 page number (1-based) |
 *                 4 u32 database size in pages after the commit (0 unless a commit frame) |
 *                 8 salt-1 | 12 salt-2 | 16 checksum-1 | 20 checksum-2
 *
 * Outpost's databases all use `PAGE_BYTES` pages: the engine sets it on every new database and
 * the sync protocol's pages have that size.
 *
 * Contract / may import: nothing internal. Functions here only read bytes; they never throw
 * for bad input but report it, so that each caller picks its own error.
 */

/** The page size of every Outpost database (the WASM build's default would be 8192). */
export const PAGE_BYTES = 4096;

export const DB_HEADER_BYTES = 100;
export const DB_HEADER_MAGIC = 'SQLite format 3\u0000';
export const DB_HEADER_PAGE_SIZE_OFFSET = 16;
export const DB_HEADER_WRITE_VERSION_OFFSET = 18;
export const DB_HEADER_READ_VERSION_OFFSET = 19;
export const DB_HEADER_PAGE_COUNT_OFFSET = 28;
/** The file change counter, and the change counter the page count is valid for: SQLite trusts the page count only while the two are equal. */
export const DB_HEADER_CHANGE_COUNTER_OFFSET = 24;
export const DB_HEADER_VALID_FOR_OFFSET = 92;
/** The file format version bytes (18, 19) of a database in rollback-journal mode. */
export const FILE_FORMAT_ROLLBACK = 1;
/** The file format version bytes (18, 19) of a database in WAL mode. */
export const FILE_FORMAT_WAL = 2;

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
export const WAL_FRAME_PAGE_NUMBER_OFFSET = 0;
export const WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET = 4;

const textDecoder = new TextDecoder();

/** Reads the big-endian u32 at `at`. */
export function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/**
 * Checks the header of a database image (a file to import): the magic, a power-of-two page size
 * from 512 to 65536, and a length that is a whole number of pages. Returns the page size, or
 * why the bytes are not a database.
 */
export function validateHeader(bytes: Uint8Array): { pageSize: number } | { invalid: string } {
  const magic = textDecoder.decode(bytes.subarray(0, DB_HEADER_MAGIC.length));
  if (bytes.length < DB_HEADER_BYTES || magic !== DB_HEADER_MAGIC) {
    return { invalid: 'the file does not start with the SQLite header' };
  }
  const raw = (bytes[DB_HEADER_PAGE_SIZE_OFFSET]! << 8) | bytes[DB_HEADER_PAGE_SIZE_OFFSET + 1]!;
  const pageSize = raw === 1 ? 65536 : raw;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    return { invalid: `invalid page size ${raw}` };
  }
  if (bytes.length % pageSize !== 0) {
    return { invalid: `${bytes.length} bytes is not a whole number of ${pageSize}-byte pages (truncated?)` };
  }
  return { pageSize };
}

/** Marks a database image as a rollback-journal file, so it opens without looking for a WAL. */
export function markRollbackMode(image: Uint8Array): void {
  if (image.length < DB_HEADER_BYTES) return;
  image[DB_HEADER_WRITE_VERSION_OFFSET] = FILE_FORMAT_ROLLBACK;
  image[DB_HEADER_READ_VERSION_OFFSET] = FILE_FORMAT_ROLLBACK;
}

/** Bytes of one WAL frame (header and page). */
export function walFrameBytes(pageBytes = PAGE_BYTES): number {
  return WAL_FRAME_HEADER_BYTES + pageBytes;
}

/** Whether a write of `length` bytes at `offset` of a WAL is exactly a frame header. */
export function isWalFrameHeaderWrite(offset: number, length: number, pageBytes = PAGE_BYTES): boolean {
  return length === WAL_FRAME_HEADER_BYTES && (offset - WAL_HEADER_BYTES) % walFrameBytes(pageBytes) === 0;
}

/** Anything that reads bytes at an offset (a storage backend; structural, to stay import-free). */
export interface ByteReader {
  read(dst: Uint8Array, offset: number): number;
  size(): number;
}

/**
 * The page number of each whole frame in a WAL file, in file order (a page appears once per
 * frame that holds it). A partly written last frame is left out. Frames are not checked
 * against the header's salts: callers read a WAL that SQLite wrote and has not reset.
 */
export function* walFramePageNumbers(wal: ByteReader, pageBytes = PAGE_BYTES): Generator<number> {
  const header = new Uint8Array(WAL_FRAME_HEADER_BYTES);
  const frameBytes = walFrameBytes(pageBytes);
  const end = wal.size();
  for (let at = WAL_HEADER_BYTES; at + frameBytes <= end; at += frameBytes) {
    wal.read(header, at);
    yield readUint32(header, WAL_FRAME_PAGE_NUMBER_OFFSET);
  }
}
