/**
 * The playground's session: the one open database, its name, its storage and its sync URL.
 * Every other module reaches the database through it.
 *
 * Opening is asynchronous (a worker starts and loads SQLite), but the page is usable at once:
 * `database()` resolves to the open database, waiting for an open or a switch in progress, so
 * a statement run in the first second waits for the database and then runs. Switches run one
 * after another; a switch that fails reopens the previous database (with its sync URL) and
 * then reports the failure, so the session always ends with a database open.
 */
import { type Database, OutpostError, listDatabases, open } from 'outpost';
import { DATABASE_NAME_PATTERN } from '../src/options.js';

export type Storage = 'opfs' | 'memory';

export interface SessionEvents {
  /** A database was opened: the first one, a switch, or a reopen with another sync URL. */
  opened(db: Database): Promise<void> | void;
  /** Something the user should know that is not an error of theirs (OPFS missing). */
  notice(message: string, code?: string): void;
}


/** True when `name` is a valid database name. */
export function isDatabaseName(name: string | null): name is string {
  return name !== null && DATABASE_NAME_PATTERN.test(name);
}

/** A database name made from a file name: `My Data (2).sqlite` becomes `My_Data__2_`. */
export function databaseNameFor(fileName: string): string {
  const base = fileName.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '');
  return (base || 'imported').slice(0, 100);
}

export class Session {
  private currentName = 'playground';
  private currentStorage: Storage = 'opfs';
  private currentSyncUrl: string | null = null;
  private opened: Database | null = null;
  /** The database once the open or switch in progress has finished. */
  private current: Promise<Database>;
  private startFirstOpen: (opening: Promise<Database>) => void = () => undefined;

  constructor(private readonly events: SessionEvents) {
    // Callers may wait before open() is called: they wait for the first open.
    this.current = handled(
      new Promise((resolve) => {
        this.startFirstOpen = resolve;
      }),
    );
  }

  get name(): string {
    return this.currentName;
  }

  get storage(): Storage {
    return this.currentStorage;
  }

  /** The remote database URL when this database syncs; null when it does not. */
  get syncUrl(): string | null {
    return this.currentSyncUrl;
  }

  /** The open database, for code that runs only once it is open (the shell's host). */
  get db(): Database {
    if (!this.opened) throw new Error('the database is not open yet');
    return this.opened;
  }

  /** The open database, after the open or switch in progress. */
  database(): Promise<Database> {
    return this.current;
  }

  /** Opens the first database, syncing with the URL it was last connected to. Call once. */
  async open(name: string): Promise<void> {
    const opening = this.load(name, rememberedSyncUrl(name));
    // Resolves `current` (and whoever already waits on it) with this open's outcome.
    this.startFirstOpen(opening);
    await this.events.opened(await opening);
  }

  /** Closes this database and opens `name` (created when missing), with the same sync URL. */
  switchTo(name: string): Promise<void> {
    return this.replace(() => ({ name, syncUrl: this.currentSyncUrl }));
  }

  /** Reopens this database syncing with `url`, or with no sync when null. */
  connectSync(url: string | null): Promise<void> {
    return this.replace(() => ({ name: this.currentName, syncUrl: url }));
  }

  /**
   * Opens a SQLite file as the database named after it. A file that is not SQLite is refused
   * before anything changes. Returns the database's name.
   */
  async openFile(file: File): Promise<string> {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const name = databaseNameFor(file.name);
    const check = await open(`import-check-${Date.now()}`, { storage: 'memory' });
    try {
      // Validate before touching anything: import() refuses a file that is not SQLite.
      await check.import(bytes);
    } catch (e) {
      throw Object.assign(new Error(`${file.name} cannot be opened: ${(e as Error).message}`), { code: (e as OutpostError).code });
    } finally {
      await check.close();
    }
    await this.switchTo(name);
    await (await this.current).import(bytes);
    return name;
  }

  /** The databases stored in this browser (only this one when it lives in memory). */
  async list(): Promise<string[]> {
    return this.currentStorage === 'opfs' ? listDatabases() : [this.currentName];
  }

  /** Where the database lives, for `.show`. */
  describeStorage(): string {
    return this.currentStorage === 'opfs' ? `OPFS (/outpost/${this.currentName}), WAL` : 'memory (not persisted)';
  }

  /** Runs after whatever open or switch is in progress; on failure reopens what was open. */
  private async replace(target: () => { name: string; syncUrl: string | null }): Promise<void> {
    const attempt = this.current.then(async (previous) => {
      const { name, syncUrl } = target();
      const fallback = { name: this.currentName, syncUrl: this.currentSyncUrl };
      await previous.close();
      try {
        return { db: await this.load(name, syncUrl), failure: null };
      } catch (error) {
        return { db: await this.load(fallback.name, fallback.syncUrl), failure: { error } };
      }
    });
    this.current = handled(attempt.then(({ db }) => db));
    const { db, failure } = await attempt;
    await this.events.opened(db);
    if (failure) throw failure.error;
  }

  /** Opens `name`; where OPFS is missing, falls back to memory for the rest of the session. */
  private async load(name: string, syncUrl: string | null): Promise<Database> {
    let db: Database;
    try {
      // Live sync; backgroundPush: offline pushes go to the service worker's queue (demo/sw.ts).
      db = await open(name, { storage: this.currentStorage, ...(syncUrl ? { sync: { url: syncUrl, live: true, backgroundPush: true } } : {}) });
    } catch (e) {
      if (!(e instanceof OutpostError && e.code === 'OPFS_UNAVAILABLE')) throw e;
      this.currentStorage = 'memory';
      db = await open(name, { storage: 'memory' });
      this.events.notice(`${e.message}. This session uses a memory database instead.`, e.code);
    }
    this.opened = db;
    this.currentName = name;
    this.currentSyncUrl = syncUrl;
    rememberSyncUrl(name, syncUrl);
    return db;
  }
}

const SYNC_URL_KEY = 'outpost-playground:sync-url:';

/** The sync URL `name` was last opened with, so that a reload (online or not) syncs as before. */
function rememberedSyncUrl(name: string): string | null {
  try {
    return localStorage.getItem(SYNC_URL_KEY + name);
  } catch {
    return null;
  }
}

function rememberSyncUrl(name: string, url: string | null): void {
  try {
    if (url) localStorage.setItem(SYNC_URL_KEY + name, url);
    else localStorage.removeItem(SYNC_URL_KEY + name);
  } catch {
    // Storage blocked: the next visit starts unsynced.
  }
}

/**
 * Marks a promise as handled and returns it: a failed open is reported to whoever waits for
 * the database, and must not also surface as an unhandled rejection when nobody does.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
