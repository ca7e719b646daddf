/**
 * A value as SQLite stores it: its storage class and its exact content. JS values lose both on
 * the way (a REAL 3.0 reads as the number 3, which binds back as INTEGER; an empty BLOB and
 * text that is not UTF-8 have no faithful JS form), so whatever must carry a value unchanged
 * from one database to another (a changeset decoded for push, a Hrana argument bound on the
 * server) uses this instead. Text is kept as its bytes, exactly as the database holds them
 * (UTF-8 databases only, which is all Outpost opens), valid UTF-8 or not.
 */
import type { SqlValue } from '../types.js';

export type StoredValue =
  | { type: 'null' }
  | { type: 'integer'; value: bigint }
  | { type: 'real'; value: number }
  | { type: 'text'; bytes: Uint8Array }
  | { type: 'blob'; bytes: Uint8Array };

export type StorageClass = StoredValue['type'];

const STORAGE_CLASSES: ReadonlySet<string> = new Set<StorageClass>(['null', 'integer', 'real', 'text', 'blob']);

export const NULL_VALUE: StoredValue = Object.freeze({ type: 'null' });

/**
 * Whether a bound parameter is a `StoredValue` rather than a plain JS value: an object that is
 * neither bytes nor an ArrayBuffer and names a storage class.
 */
export function isStoredValue(v: unknown): v is StoredValue {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && !(v instanceof ArrayBuffer) && STORAGE_CLASSES.has((v as { type?: unknown }).type as string);
}

const utf8 = new TextEncoder();
/** Strict: text that is not UTF-8 must be told apart, never repaired. Keeps a leading BOM. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lossyUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** Text as stored: its UTF-8 bytes. */
export function textValue(text: string): StoredValue {
  return { type: 'text', bytes: utf8.encode(text) };
}

/** The string a text value holds, or null when its bytes are not valid UTF-8. */
export function textOf(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The value as the engine returns values to JS (what `query` would give): integers as numbers
 * when safe and bigints otherwise, text decoded (invalid UTF-8 replaced by U+FFFD: a JS string
 * cannot hold it). Loses the storage class of whole REALs; for display and transforms only.
 */
export function toSqlValue(v: StoredValue): SqlValue {
  switch (v.type) {
    case 'null':
      return null;
    case 'integer':
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v.value) : v.value;
    case 'real':
      return v.value;
    case 'text':
      return lossyUtf8.decode(v.bytes);
    case 'blob':
      return v.bytes;
  }
}
