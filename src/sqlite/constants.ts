/**
 * SQLite's numeric constants, from sqlite3.h (and sqlite3session.h): the only copy in Outpost.
 *
 * The WASM build exposes most of these on `capi` too, but only once the module has loaded, and
 * not all of them (`SQLITE_SESSION_OBJCONFIG_ROWID` is missing). Plain constants can be used
 * anywhere, in hot paths and in code that never loads SQLite. The names are sqlite3.h's.
 *
 * Contract / may import: nothing internal (this is the bottom of the `sqlite/` layer).
 */

// ---- result codes -------------------------------------------------------------------------

export const SQLITE_OK = 0;
export const SQLITE_ERROR = 1;
export const SQLITE_INTERNAL = 2;
export const SQLITE_PERM = 3;
export const SQLITE_ABORT = 4;
export const SQLITE_BUSY = 5;
export const SQLITE_LOCKED = 6;
export const SQLITE_NOMEM = 7;
export const SQLITE_READONLY = 8;
export const SQLITE_INTERRUPT = 9;
export const SQLITE_IOERR = 10;
export const SQLITE_CORRUPT = 11;
export const SQLITE_NOTFOUND = 12;
export const SQLITE_FULL = 13;
export const SQLITE_CANTOPEN = 14;
export const SQLITE_PROTOCOL = 15;
export const SQLITE_EMPTY = 16;
export const SQLITE_SCHEMA = 17;
export const SQLITE_TOOBIG = 18;
export const SQLITE_CONSTRAINT = 19;
export const SQLITE_MISMATCH = 20;
export const SQLITE_MISUSE = 21;
export const SQLITE_NOLFS = 22;
export const SQLITE_AUTH = 23;
export const SQLITE_FORMAT = 24;
export const SQLITE_RANGE = 25;
export const SQLITE_NOTADB = 26;
export const SQLITE_NOTICE = 27;
export const SQLITE_WARNING = 28;
export const SQLITE_ROW = 100;
export const SQLITE_DONE = 101;

/** Extended I/O error codes: the VFS returns the most specific one (`SQLITE_IOERR | n << 8`). */
export const SQLITE_IOERR_READ = 266;
export const SQLITE_IOERR_SHORT_READ = 522;
export const SQLITE_IOERR_WRITE = 778;
export const SQLITE_IOERR_FSYNC = 1034;
export const SQLITE_IOERR_TRUNCATE = 1546;
export const SQLITE_IOERR_FSTAT = 1802;
export const SQLITE_IOERR_DELETE = 2570;
export const SQLITE_IOERR_ACCESS = 3338;
export const SQLITE_IOERR_CLOSE = 4106;

// ---- column types ---------------------------------------------------------------------------

export const SQLITE_INTEGER = 1;
export const SQLITE_FLOAT = 2;
export const SQLITE_TEXT = 3;
export const SQLITE_BLOB = 4;
export const SQLITE_NULL = 5;

// ---- sqlite3_open_v2 flags, and the file kinds xOpen is told ---------------------------------

export const SQLITE_OPEN_READONLY = 0x1;
export const SQLITE_OPEN_READWRITE = 0x2;
export const SQLITE_OPEN_CREATE = 0x4;
export const SQLITE_OPEN_DELETEONCLOSE = 0x8;
export const SQLITE_OPEN_EXCLUSIVE = 0x10;
export const SQLITE_OPEN_MAIN_DB = 0x100;
export const SQLITE_OPEN_TEMP_DB = 0x200;
export const SQLITE_OPEN_TRANSIENT_DB = 0x400;
export const SQLITE_OPEN_MAIN_JOURNAL = 0x800;
export const SQLITE_OPEN_TEMP_JOURNAL = 0x1000;
export const SQLITE_OPEN_SUBJOURNAL = 0x2000;
export const SQLITE_OPEN_SUPER_JOURNAL = 0x4000;
export const SQLITE_OPEN_WAL = 0x80000;
export const SQLITE_OPEN_EXRESCODE = 0x2000000;

// ---- VFS: file controls and device characteristics -------------------------------------------

export const SQLITE_FCNTL_PRAGMA = 14;
export const SQLITE_FCNTL_COMMIT_PHASETWO = 22;

export const SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN = 0x800;
export const SQLITE_IOCAP_POWERSAFE_OVERWRITE = 0x1000;

// ---- statements, connections, serialization ---------------------------------------------------

export const SQLITE_PREPARE_PERSISTENT = 0x1;
/** Text encoding of a function's arguments (`sqlite3_create_function`). */
export const SQLITE_UTF8 = 1;
/** Main-schema triggers on or off (TEMP triggers fire either way, since SQLite 3.35). */
export const SQLITE_DBCONFIG_LOOKASIDE = 1001;
export const SQLITE_DBCONFIG_ENABLE_TRIGGER = 1003;
export const SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE = 1006;
export const SQLITE_DBCONFIG_DEFENSIVE = 1010;
export const SQLITE_DBCONFIG_TRUSTED_SCHEMA = 1017;
/** `sqlite3_limit` categories. */
export const SQLITE_LIMIT_LENGTH = 0;
export const SQLITE_LIMIT_SQL_LENGTH = 1;
export const SQLITE_DESERIALIZE_FREEONCLOSE = 1;
export const SQLITE_DESERIALIZE_RESIZEABLE = 2;

// ---- authorizer action codes (also the changeset operation codes INSERT/DELETE/UPDATE) --------

export const SQLITE_CREATE_INDEX = 1;
export const SQLITE_CREATE_TABLE = 2;
export const SQLITE_CREATE_TEMP_INDEX = 3;
export const SQLITE_CREATE_TEMP_TABLE = 4;
export const SQLITE_CREATE_TEMP_TRIGGER = 5;
export const SQLITE_CREATE_TEMP_VIEW = 6;
export const SQLITE_CREATE_TRIGGER = 7;
export const SQLITE_CREATE_VIEW = 8;
export const SQLITE_DELETE = 9;
export const SQLITE_DROP_INDEX = 10;
export const SQLITE_DROP_TABLE = 11;
export const SQLITE_DROP_TEMP_INDEX = 12;
export const SQLITE_DROP_TEMP_TABLE = 13;
export const SQLITE_DROP_TEMP_TRIGGER = 14;
export const SQLITE_DROP_TEMP_VIEW = 15;
export const SQLITE_DROP_TRIGGER = 16;
export const SQLITE_DROP_VIEW = 17;
export const SQLITE_INSERT = 18;
export const SQLITE_PRAGMA = 19;
export const SQLITE_READ = 20;
export const SQLITE_SELECT = 21;
export const SQLITE_TRANSACTION = 22;
export const SQLITE_UPDATE = 23;
export const SQLITE_ATTACH = 24;
export const SQLITE_DETACH = 25;
export const SQLITE_ALTER_TABLE = 26;
export const SQLITE_REINDEX = 27;
export const SQLITE_ANALYZE = 28;
export const SQLITE_CREATE_VTABLE = 29;
export const SQLITE_DROP_VTABLE = 30;
export const SQLITE_FUNCTION = 31;
export const SQLITE_SAVEPOINT = 32;
export const SQLITE_RECURSIVE = 33;

/** What an authorizer answers besides SQLITE_OK. */
export const SQLITE_DENY = 1;
export const SQLITE_IGNORE = 2;

// ---- session extension and changesets ----------------------------------------------------------

export const SQLITE_SESSION_OBJCONFIG_ROWID = 2;

/** Conflict kinds passed to a changeset conflict handler. */
export const SQLITE_CHANGESET_DATA = 1;
export const SQLITE_CHANGESET_NOTFOUND = 2;
export const SQLITE_CHANGESET_CONFLICT = 3;
export const SQLITE_CHANGESET_CONSTRAINT = 4;
export const SQLITE_CHANGESET_FOREIGN_KEY = 5;

/** What a changeset conflict handler answers. */
export const SQLITE_CHANGESET_OMIT = 0;
export const SQLITE_CHANGESET_REPLACE = 1;
export const SQLITE_CHANGESET_ABORT = 2;
