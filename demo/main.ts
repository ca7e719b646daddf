/**
 * The playground page: CodeMirror editor, result blocks, schema sidebar, files, history and
 * share links, around the interpreter in `shell.ts`.
 */
import { autocompletion } from '@codemirror/autocomplete';
import { defaultKeymap, history as editHistory, historyKeymap } from '@codemirror/commands';
import { SQLite, sql } from '@codemirror/lang-sql';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, placeholder } from '@codemirror/view';
import { type Database, OutpostError, type SqlValue, type SyncStatus, listDatabases, open } from 'outpost';
import { toCsv } from './csv.js';
import { formatValue, renderGrid } from './grid.js';
import { addToHistory, loadHistory } from './history.js';
import { type Block, type OutputMode, type ShellHost, runInput } from './shell.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const WELCOME = `-- Welcome to Outpost: SQLite in your browser, stored in OPFS (WAL mode).
-- Run with Ctrl+Enter (or Cmd+Enter). Type .help for the dot-commands.
CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT DEFAULT CURRENT_TIMESTAMP);
INSERT INTO notes(body) VALUES ('hello from Outpost');
SELECT * FROM notes ORDER BY id DESC LIMIT 20;`;

let db: Database;
let dbName = 'playground';
/** The remote database URL when this page syncs; null when it does not. */
let syncUrl: string | null = null;
let autoSync: ReturnType<typeof setInterval> | null = null;
let lastStatus: SyncStatus | null = null;
/** The local sync server `npm run demo` started (empty when the page is served otherwise). */
const LOCAL_SERVER = (import.meta as unknown as { env: Record<string, string | undefined> }).env.VITE_OUTPOST_SYNC_SERVER ?? '';
let storage: 'opfs' | 'memory' = 'opfs';
let historyList: string[] = [];
let historyIndex = -1;
const droppedFiles = new Map<string, File>();

const host: ShellHost = {
  db: () => db,
  dbName: () => dbName,
  storage: () => (storage === 'opfs' ? `OPFS (/outpost/${dbName}), WAL` : 'memory (not persisted)'),
  openDatabase: async (name) => switchDatabase(name),
  listDatabases: async () => (storage === 'opfs' ? listDatabases() : [dbName]),
  pickFile: async (name, accept) => {
    if (name) {
      const dropped = droppedFiles.get(name);
      if (dropped) return dropped;
    }
    return pickFile(accept);
  },
  download,
  syncState: () => syncSummary(),
  mode: 'table',
  lastResult: null,
};

// ---- editor -------------------------------------------------------------------------------

const schemaCompartment = new Compartment();
const editor = new EditorView({
  parent: $('editor'),
  state: EditorState.create({
    doc: '',
    extensions: [
      lineNumbers(),
      editHistory(),
      placeholder('SQL, or a dot-command such as .help'),
      schemaCompartment.of(sql({ dialect: SQLite, upperCaseKeywords: true })),
      autocompletion(),
      Prec.highest(
        keymap.of([
          { key: 'Mod-Enter', run: () => (void runEditor(), true) },
          { key: 'ArrowUp', run: (view) => recallHistory(view, +1) },
          { key: 'ArrowDown', run: (view) => recallHistory(view, -1) },
        ]),
      ),
      keymap.of([...defaultKeymap, ...historyKeymap]),
      EditorView.contentAttributes.of({ 'aria-label': 'SQL editor', id: 'editor-content' }),
    ],
  }),
});

/** ArrowUp on the first line (ArrowDown on the last) walks the query history. */
function recallHistory(view: EditorView, step: number): boolean {
  const { state } = view;
  const sel = state.selection.main;
  if (!sel.empty || historyList.length === 0) return false;
  const line = state.doc.lineAt(sel.head).number;
  if (step > 0 && line !== 1) return false;
  if (step < 0 && line !== state.doc.lines) return false;
  const next = historyIndex + step;
  if (next < -1 || next >= historyList.length) return false;
  historyIndex = next;
  const text = next === -1 ? '' : historyList[next]!;
  view.dispatch({ changes: { from: 0, to: state.doc.length, insert: text }, selection: { anchor: text.length } });
  return true;
}

function setEditorText(text: string): void {
  editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text }, selection: { anchor: text.length } });
}

// ---- running -----------------------------------------------------------------------------

async function runEditor(): Promise<void> {
  const sel = editor.state.selection.main;
  const text = sel.empty ? editor.state.doc.toString() : editor.state.sliceDoc(sel.from, sel.to);
  if (!text.trim()) return;
  const status = $('status');
  status.textContent = 'running…';
  const started = performance.now();
  let blocks: Block[];
  try {
    blocks = await runInput(text, host);
  } catch (e) {
    const err = e as Error & { code?: string };
    blocks = [{ kind: 'error', message: err.message, ...(err.code ? { code: err.code } : {}) }];
  }
  status.textContent = `done in ${(performance.now() - started).toFixed(1)} ms`;
  ($('mode') as HTMLSelectElement).value = host.mode;
  renderBlocks(blocks);
  historyList = await addToHistory(dbName, text);
  historyIndex = -1;
  renderHistory();
  await refreshSchema();
  await refreshSyncStatus();
}

function renderBlocks(blocks: Block[]): void {
  const results = $('results');
  results.replaceChildren(...blocks.map(renderBlock));
}

function head(label: string, detail: string): HTMLElement {
  const h = document.createElement('div');
  h.className = 'block-head';
  const code = document.createElement('code');
  code.textContent = label;
  const span = document.createElement('span');
  span.textContent = detail;
  h.append(code, span);
  return h;
}

function pre(text: string): HTMLElement {
  const p = document.createElement('pre');
  p.textContent = text;
  return p;
}

function jsonValue(v: SqlValue): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return formatValue(v);
  return v;
}

function renderBlock(block: Block): HTMLElement {
  const el = document.createElement('article');
  el.className = 'block';
  if (block.kind === 'error') {
    el.classList.add('error');
    el.setAttribute('role', 'alert');
    el.append(head(block.sql ?? 'error', block.code ?? 'error'), pre(block.message));
    return el;
  }
  if (block.kind === 'text') {
    el.append(pre(block.text));
    return el;
  }
  const r = block.result;
  const detail =
    r.columns.length > 0
      ? `${r.rows.length} row${r.rows.length === 1 ? '' : 's'} · ${r.timeMs.toFixed(1)} ms`
      : `${r.changes} row${r.changes === 1 ? '' : 's'} changed · ${r.timeMs.toFixed(1)} ms`;
  el.append(head(r.sql, detail));
  if (r.columns.length === 0) return el;
  switch (host.mode) {
    case 'table':
      el.append(renderGrid(r.columns, r.rows));
      break;
    case 'json':
      el.append(pre(JSON.stringify(r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, jsonValue(row[i]!)]))), null, 2)));
      break;
    case 'csv':
      el.append(pre(toCsv(r.columns, r.rows)));
      break;
    case 'line': {
      const width = Math.max(...r.columns.map((c) => c.length));
      el.append(pre(r.rows.map((row) => r.columns.map((c, i) => `${c.padStart(width)} = ${formatValue(row[i]!)}`).join('\n')).join('\n\n')));
      break;
    }
  }
  return el;
}

// ---- schema -----------------------------------------------------------------------------

interface SchemaRow {
  type: string;
  name: string;
  tbl_name: string;
  col: string | null;
  coltype: string | null;
  pk: number | null;
}

async function refreshSchema(): Promise<void> {
  const rows = await db.query<SchemaRow>(
    `SELECT m.type, m.name, m.tbl_name, p.name AS col, p.type AS coltype, p.pk
     FROM sqlite_schema AS m LEFT JOIN pragma_table_info(m.name) AS p
     WHERE m.name NOT LIKE 'sqlite_%'
     ORDER BY CASE m.type WHEN 'table' THEN 0 WHEN 'view' THEN 1 ELSE 2 END, m.name, p.cid`,
  );
  const objects = new Map<string, { type: string; table: string; columns: SchemaRow[] }>();
  for (const row of rows) {
    const entry = objects.get(row.name) ?? { type: row.type, table: row.tbl_name, columns: [] };
    if (row.col !== null) entry.columns.push(row);
    objects.set(row.name, entry);
  }
  const tree = $('schema-tree');
  tree.replaceChildren();
  if (objects.size === 0) tree.append(Object.assign(document.createElement('p'), { textContent: 'No tables yet.' }));
  const completion: Record<string, string[]> = {};
  for (const [name, o] of objects) {
    const details = document.createElement('details');
    details.setAttribute('role', 'treeitem');
    details.open = o.type === 'table' && objects.size < 12;
    const summary = document.createElement('summary');
    summary.textContent = name;
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = o.type === 'index' ? `index on ${o.table}` : o.type;
    summary.append(kind);
    details.append(summary);
    if (o.columns.length > 0) {
      const ul = document.createElement('ul');
      ul.setAttribute('role', 'group');
      for (const c of o.columns) {
        const li = document.createElement('li');
        li.textContent = `${c.col}${c.coltype ? ` ${c.coltype}` : ''}`;
        if (c.pk) li.className = 'pk';
        ul.append(li);
      }
      details.append(ul);
      if (o.type !== 'index') completion[name] = o.columns.map((c) => c.col!);
    }
    tree.append(details);
  }
  editor.dispatch({ effects: schemaCompartment.reconfigure(sql({ dialect: SQLite, upperCaseKeywords: true, schema: completion })) });
}

function renderHistory(): void {
  const select = $('history') as HTMLSelectElement;
  select.replaceChildren(new Option('—', ''));
  for (const [i, q] of historyList.entries()) {
    const label = q.replace(/\s+/g, ' ');
    select.append(new Option(label.length > 60 ? `${label.slice(0, 60)}…` : label, String(i)));
  }
}

// ---- databases and files ----------------------------------------------------------------

async function openDatabase(name: string): Promise<void> {
  try {
    db = await open(name, { storage, ...(syncUrl ? { sync: { url: syncUrl } } : {}) });
  } catch (e) {
    if (e instanceof OutpostError && e.code === 'OPFS_UNAVAILABLE') {
      storage = 'memory';
      db = await open(name, { storage });
      renderBlocks([{ kind: 'error', message: `${e.message}. This session uses a memory database instead.`, code: e.code }]);
    } else throw e;
  }
  dbName = name;
  $('db-name').textContent = name;
  db.onSyncStatus(renderSyncStatus);
  void refreshSyncStatus();
  $('db-storage').textContent = storage === 'opfs' ? 'OPFS · WAL' : 'memory';
  historyList = await loadHistory(name);
  historyIndex = -1;
  renderHistory();
  await refreshSchema();
}

async function switchDatabase(name: string): Promise<void> {
  const previous = db;
  await previous.close();
  try {
    await openDatabase(name);
  } catch (e) {
    await openDatabase(dbName);
    throw e;
  }
}

function download(fileName: string, data: Blob): void {
  const url = URL.createObjectURL(data);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function pickFile(accept: string): Promise<File | null> {
  const input = $('file-input') as HTMLInputElement;
  input.accept = accept;
  input.value = '';
  return new Promise((resolve) => {
    input.onchange = () => resolve(input.files?.[0] ?? null);
    input.oncancel = () => resolve(null);
    input.click();
  });
}

function databaseNameFor(fileName: string): string {
  const base = fileName.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '');
  return (base || 'imported').slice(0, 100);
}

/** Opens a .db file as a new database (validated by import) or loads a .sql file into the editor. */
async function openFile(file: File): Promise<void> {
  if (/\.(sql|txt)$/i.test(file.name)) {
    setEditorText(await file.text());
    renderBlocks([{ kind: 'text', text: `loaded ${file.name} into the editor; press Ctrl+Enter to run it` }]);
    return;
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const name = databaseNameFor(file.name);
  const target = await open(`import-check-${Date.now()}`, { storage: 'memory' });
  try {
    // Validate before touching anything: import() refuses a file that is not SQLite.
    await target.import(bytes);
  } catch (e) {
    renderBlocks([{ kind: 'error', message: `${file.name} cannot be opened: ${(e as Error).message}`, code: (e as OutpostError).code }]);
    return;
  } finally {
    await target.close();
  }
  await switchDatabase(name);
  await db.import(bytes);
  await refreshSchema();
  renderBlocks([{ kind: 'text', text: `opened ${file.name} as database ${name}` }]);
}

async function handleDrop(files: FileList): Promise<void> {
  const notes: Block[] = [];
  for (const file of files) {
    if (/\.(db|sqlite|sqlite3)$/i.test(file.name)) {
      await openFile(file);
      continue;
    }
    droppedFiles.set(file.name, file);
    notes.push({
      kind: 'text',
      text: /\.csv$/i.test(file.name)
        ? `dropped ${file.name}: import it with .import --csv ${file.name} TABLE`
        : `dropped ${file.name}: run it with .read ${file.name}`,
    });
  }
  if (notes.length) renderBlocks(notes);
}

// ---- sync panel --------------------------------------------------------------------------

function syncSummary(): string {
  if (!syncUrl) return 'not configured';
  const s = lastStatus;
  return `${syncUrl} (revision ${s?.revision ?? 'none'}, ${s?.pendingChanges ?? 0} pending${s?.lastError ? `, last error: ${s.lastError.message}` : ''})`;
}

function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleTimeString() : 'never';
}

function renderSyncStatus(status: SyncStatus | null): void {
  lastStatus = status;
  const list = $('sync-status');
  list.replaceChildren();
  const connected = status !== null;
  for (const id of ['sync-push', 'sync-pull', 'sync-auto']) ($(id) as HTMLButtonElement | HTMLInputElement).disabled = !connected;
  $('sync-connect').textContent = connected ? 'Disconnect' : 'Connect';
  if (!status) {
    list.append(Object.assign(document.createElement('dd'), { textContent: 'Not connected: this database is local only.' }));
    return;
  }
  const rows: [string, string][] = [
    ['revision', status.revision ?? '—'],
    ['pending', String(status.pendingChanges)],
    ['last pull', when(status.lastPullAt)],
    ['last push', when(status.lastPushAt)],
    ['sent / received', `${(status.bytesSent / 1024).toFixed(1)} / ${(status.bytesReceived / 1024).toFixed(1)} KiB`],
  ];
  for (const [k, v] of rows) list.append(Object.assign(document.createElement('dt'), { textContent: k }), Object.assign(document.createElement('dd'), { textContent: v, id: `sync-${k.replace(/\W+/g, '-')}` }));
  $('sync-error').textContent = status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : '';
}

async function refreshSyncStatus(): Promise<void> {
  renderSyncStatus(await db.syncStatus());
}

async function syncAction(action: () => Promise<unknown>): Promise<void> {
  $('sync-error').textContent = '';
  try {
    await action();
    await refreshSchema();
  } catch (e) {
    const hint = /never synced/.test((e as Error).message) ? ' Use .open NEWNAME for a fresh database, then Connect.' : '';
    $('sync-error').textContent = `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}${hint}`;
  }
  await refreshSyncStatus();
}

$('sync-connect').addEventListener('click', () =>
  void syncAction(async () => {
    const wanted = syncUrl ? null : ($('sync-url') as HTMLInputElement).value.trim();
    const previous = syncUrl;
    syncUrl = wanted || null;
    try {
      await switchDatabase(dbName);
    } catch (e) {
      syncUrl = previous;
      await openDatabase(dbName).catch(() => undefined);
      throw e;
    }
    if (!syncUrl && autoSync) {
      clearInterval(autoSync);
      autoSync = null;
      ($('sync-auto') as HTMLInputElement).checked = false;
    }
  }),
);
$('sync-push').addEventListener('click', () => void syncAction(() => db.push()));
$('sync-pull').addEventListener('click', () => void syncAction(() => db.pull()));
$('sync-auto').addEventListener('change', (e) => {
  if (autoSync) clearInterval(autoSync);
  autoSync = (e.target as HTMLInputElement).checked ? setInterval(() => void syncAction(() => db.sync()), 5000) : null;
});

// ---- wiring ------------------------------------------------------------------------------

$('run').addEventListener('click', () => void runEditor());
$('mode').addEventListener('change', (e) => {
  host.mode = (e.target as HTMLSelectElement).value as OutputMode;
});
$('history').addEventListener('change', (e) => {
  const i = Number((e.target as HTMLSelectElement).value);
  if (Number.isInteger(i) && historyList[i] !== undefined) setEditorText(historyList[i]!);
  editor.focus();
});
$('download-db').addEventListener('click', async () => {
  const bytes = await db.export();
  download(`${dbName}.db`, new Blob([bytes as BlobPart], { type: 'application/vnd.sqlite3' }));
});
$('open-file').addEventListener('click', async () => {
  const file = await pickFile('.db,.sqlite,.sqlite3,.sql');
  if (file) await openFile(file);
});
$('share').addEventListener('click', async () => {
  const text = editor.state.doc.toString();
  const url = `${location.origin}${location.pathname}#sql=${encodeURIComponent(text)}`;
  history.replaceState(null, '', url);
  try {
    await navigator.clipboard.writeText(url);
    $('status').textContent = 'link copied';
  } catch {
    $('status').textContent = 'link is in the address bar';
  }
});

const hint = $('drop-hint');
window.addEventListener('dragover', (e) => {
  e.preventDefault();
  hint.hidden = false;
});
window.addEventListener('dragleave', (e) => {
  if (e.relatedTarget === null) hint.hidden = true;
});
window.addEventListener('drop', (e) => {
  e.preventDefault();
  hint.hidden = true;
  if (e.dataTransfer?.files.length) void handleDrop(e.dataTransfer.files);
});

async function start(): Promise<void> {
  const shared = new URLSearchParams(location.hash.slice(1)).get('sql');
  const requested = new URLSearchParams(location.search).get('db');
  ($('sync-url') as HTMLInputElement).value = LOCAL_SERVER ? `${LOCAL_SERVER}/db/playground` : 'http://127.0.0.1:8080/db/playground';
  await openDatabase(requested && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(requested) ? requested : 'playground');
  // A shared link fills the editor; it never runs on its own.
  setEditorText(shared ?? WELCOME);
  editor.focus();
  document.body.dataset.ready = 'true';
}

start().catch((e: unknown) => {
  renderBlocks([{ kind: 'error', message: `could not start: ${(e as Error).message}` }]);
  document.body.dataset.ready = 'error';
});
