/** Query history per database, kept in IndexedDB with idb-keyval (newest first, deduplicated). */
import { get, set } from 'idb-keyval';

const LIMIT = 200;
const key = (db: string): string => `outpost-playground:history:${db}`;

export async function loadHistory(db: string): Promise<string[]> {
  return ((await get<string[]>(key(db))) ?? []).slice(0, LIMIT);
}

export async function addToHistory(db: string, sql: string): Promise<string[]> {
  const trimmed = sql.trim();
  const list = (await loadHistory(db)).filter((s) => s !== trimmed);
  list.unshift(trimmed);
  await set(key(db), list.slice(0, LIMIT));
  return list;
}
