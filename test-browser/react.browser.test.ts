/**
 * outpost/react: `useQuery` rendered with react-dom into a div. Waits on the DOM changing
 * (MutationObserver), never on time.
 */
import { createElement } from 'react';
import { flushSync } from 'react-dom';
import { type Root, createRoot } from 'react-dom/client';
import { afterEach, expect, inject, test } from 'vitest';
import { type Database, open } from '../src/index.js';
import { OutpostProvider, type QueryState, useDatabase, useQuery, useSyncStatus } from '../src/react/index.js';

const roots: { root: Root; div: HTMLElement }[] = [];
const databases: Database[] = [];

afterEach(async () => {
  for (const { root, div } of roots.splice(0)) {
    root.unmount();
    div.remove();
  }
  for (const db of databases.splice(0)) await db.close().catch(() => {});
});

async function database(): Promise<Database> {
  const db = await open(`react-${crypto.randomUUID()}`, { storage: 'memory' });
  databases.push(db);
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  return db;
}

function render(element: ReturnType<typeof createElement>): HTMLElement {
  const div = document.createElement('div');
  document.body.append(div);
  const root = createRoot(div);
  roots.push({ root, div });
  flushSync(() => root.render(element));
  return div;
}

/** Settles when the div's text satisfies `match` (now or after a later render). */
function text(div: HTMLElement, match: (t: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const check = (): boolean => {
      const t = div.textContent ?? '';
      if (!match(t)) return false;
      observer.disconnect();
      resolve(t);
      return true;
    };
    const observer = new MutationObserver(() => void check());
    observer.observe(div, { childList: true, subtree: true, characterData: true });
    check();
  });
}

const show = (s: QueryState<{ v: string }>): string =>
  s.loading ? 'loading' : s.error ? `error: ${String(s.error)}` : (s.rows ?? []).map((r) => r.v).join(',') || 'empty';

function Values(props: { db: Database | null; sql?: string; params?: unknown[] }): ReturnType<typeof createElement> {
  const state = useQuery<{ v: string }>(props.db, props.sql ?? 'SELECT v FROM t ORDER BY id', props.params as never);
  return createElement('p', null, show(state));
}

test('useQuery is loading, then shows the rows, then the rows after a write', async () => {
  const db = await database();
  await db.run("INSERT INTO t(v) VALUES ('a')");
  const div = render(createElement(Values, { db }));
  expect(div.textContent).toBe('loading');
  await text(div, (t) => t === 'a');
  await db.run("INSERT INTO t(v) VALUES ('b')");
  await text(div, (t) => t === 'a,b');
});

test('useQuery shows the error of a failing query', async () => {
  const db = await database();
  const div = render(createElement(Values, { db, sql: 'SELECT v FROM missing' }));
  expect(await text(div, (t) => t.startsWith('error'))).toMatch(/no such table: missing/);
});

test('useQuery restarts when the values of its params change, not when the same values are passed anew', async () => {
  const db = await database();
  await db.exec("INSERT INTO t(v) VALUES ('a'), ('b')");
  const sql = 'SELECT v FROM t WHERE v = ?';
  const div = render(createElement(Values, { db, sql, params: ['a'] }));
  await text(div, (t) => t === 'a');
  const root = roots[0]!.root;
  // The same value in a new array keeps the result (no loading in between).
  flushSync(() => root.render(createElement(Values, { db, sql, params: ['a'] })));
  expect(div.textContent).toBe('a');
  flushSync(() => root.render(createElement(Values, { db, sql, params: ['b'] })));
  await text(div, (t) => t === 'b');
});

test('OutpostProvider passes the database to useDatabase', async () => {
  const db = await database();
  await db.run("INSERT INTO t(v) VALUES ('p')");
  const FromContext = (): ReturnType<typeof createElement> => createElement(Values, { db: useDatabase() });
  const div = render(createElement(OutpostProvider, { db }, createElement(FromContext)));
  await text(div, (t) => t === 'p');
});

test('useQuery waits while the database is still null', async () => {
  const div = render(createElement(Values, { db: null }));
  expect(div.textContent).toBe('loading');
});

function Status(props: { db: Database | null }): ReturnType<typeof createElement> {
  const status = useSyncStatus(props.db);
  return createElement('p', null, status ? `pending ${status.pendingChanges} of ${status.url}` : 'none');
}

/** A database syncing with the Outpost server of the browser project (global-setup.ts). */
async function synced(): Promise<Database> {
  const db = await open(`react-sync-${crypto.randomUUID()}`, { sync: { url: `${inject('outpostServerUrl')}/db/react-${crypto.randomUUID()}` } });
  databases.push(db);
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  return db;
}

test('useSyncStatus shows the status, and the status after a sync', async () => {
  const db = await synced();
  await db.run("INSERT INTO t(v) VALUES ('a')");
  const div = render(createElement(Status, { db }));
  await text(div, (t) => /^pending [1-9]/.test(t));
  // A push and the pull that brings its acknowledgement back.
  await db.sync();
  await text(div, (t) => t.startsWith('pending 0 of '));
});

test("useSyncStatus shows none, not the last database's status, once its database is null or has no sync", async () => {
  const db = await synced();
  const div = render(createElement(Status, { db }));
  await text(div, (t) => t.startsWith('pending'));
  const root = roots[0]!.root;
  flushSync(() => root.render(createElement(Status, { db: null })));
  expect(div.textContent).toBe('none');
  flushSync(() => root.render(createElement(Status, { db })));
  await text(div, (t) => t.startsWith('pending'));
  const plain = await database();
  flushSync(() => root.render(createElement(Status, { db: plain })));
  expect(div.textContent).toBe('none');
});
