/**
 * The playground page: wires the session (the open database), the editor, the results pane,
 * the schema and sync panels and the files around the interpreter in `shell.ts`. Each of
 * those lives in its own module; this one only connects them to each other and to the page.
 */
import { $ } from './dom.js';
import { Editor } from './editor.js';
import { DroppedFiles, acceptDrops, download, isDatabaseFile, pickFile } from './files.js';
import { addToHistory, loadHistory } from './history.js';
import { errorBlock, renderBlocks } from './results.js';
import { PersistentStorage, startServiceWorker } from './pwa.js';
import { SchemaPanel } from './schema-panel.js';
import { Session, isDatabaseName } from './session.js';
import { type Block, type OutputMode, type ShellHost, runInput } from './shell.js';
import { SyncPanel } from './sync-panel.js';

const WELCOME = `-- Welcome to Outpost: SQLite in your browser, stored in OPFS (WAL mode).
-- Run with Ctrl+Enter (or Cmd+Enter). Type .help for the dot-commands.
CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT DEFAULT CURRENT_TIMESTAMP);
INSERT INTO notes(body) VALUES ('hello from Outpost');
SELECT * FROM notes ORDER BY id DESC LIMIT 20;`;

/** The local sync server `npm run demo` started (empty when the page is served otherwise). */
const LOCAL_SERVER = (import.meta as unknown as { env: Record<string, string | undefined> }).env.VITE_OUTPOST_SYNC_SERVER ?? '';

const show = (blocks: Block[]): void => renderBlocks($('results'), blocks, host.mode);
const editor = new Editor($('editor'), $<HTMLSelectElement>('history'), () => void runEditor());
const schema = new SchemaPanel($('schema-tree'), (completion) => editor.setSchema(completion));
const refreshSchema = async (): Promise<void> => schema.refresh(await session.database());
/** Stops listening to the previous database's changes. */
let stopWatchingChanges: () => void = () => undefined;
const session: Session = new Session({
  async opened(db) {
    $('db-name').textContent = session.name;
    sync.watch(db);
    stopWatchingChanges();
    stopWatchingChanges = db.onChange([], () => void refreshView());
    $('db-storage').textContent = session.storage === 'opfs' ? 'OPFS · WAL' : 'memory';
    editor.setHistory(await loadHistory(session.name));
    await schema.refresh(db);
  },
  notice: (message, code) => show([{ kind: 'error', message, ...(code ? { code } : {}) }]),
});
const sync = new SyncPanel(session, `${LOCAL_SERVER || 'http://127.0.0.1:8080'}/db/playground`, refreshSchema);
const dropped = new DroppedFiles();
const persistence = new PersistentStorage($('db-persist'));

const host: ShellHost = {
  db: () => session.db,
  dbName: () => session.name,
  storage: () => session.describeStorage(),
  openDatabase: (name) => session.switchTo(name),
  listDatabases: () => session.list(),
  pickFile: async (name, accept) => (name ? dropped.get(name) : undefined) ?? pickFile($<HTMLInputElement>('file-input'), accept),
  download,
  syncState: () => sync.summary(),
  mode: 'table',
  lastResult: null,
};

/** The last input run, when it only reads: run again when another tab or the server changes the data. */
let readOnlyInput: string | null = null;
let refreshing: Promise<void> | null = null;
let refreshAgain = false;

/** Whether `text` surely changes nothing (no dot-command, no statement that writes or ends a transaction). */
function onlyReads(text: string): boolean {
  return !/^\s*\./m.test(text) && !/\b(insert|update|delete|replace|create|drop|alter|begin|commit|end|rollback|savepoint|release|vacuum|attach|detach|reindex|analyze|pragma)\b/i.test(text);
}

/**
 * Another tab, live sync or this page committed: the schema, the status and a read-only
 * result are brought up to date (one refresh at a time; changes meanwhile run one more).
 */
async function refreshView(): Promise<void> {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        await refreshSchema();
        await sync.refresh();
        if (readOnlyInput !== null) show(await runInput(readOnlyInput, host));
      } catch {
        // The next change or run shows the state; a refresh has nothing to report.
      }
    } while (refreshAgain);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** Runs the selection (or everything); pressed before the database is open, waits for it. */
async function runEditor(): Promise<void> {
  const text = editor.text();
  if (!text.trim()) return;
  readOnlyInput = onlyReads(text) ? text : null;
  $('status').textContent = 'running…';
  let started = performance.now();
  let blocks: Block[];
  try {
    await session.database();
    started = performance.now();
    blocks = await runInput(text, host);
  } catch (e) {
    blocks = [errorBlock(e)];
  }
  $('status').textContent = `done in ${(performance.now() - started).toFixed(1)} ms`;
  $<HTMLSelectElement>('mode').value = host.mode;
  show(blocks);
  editor.setHistory(await addToHistory(session.name, text));
  await refreshSchema();
  await sync.refresh();
  await persistence.afterRun(await session.database()).catch(() => undefined);
}

/** Opens a .db file as a new database (validated first) or loads a .sql file into the editor. */
async function openFile(file: File): Promise<void> {
  if (/\.(sql|txt)$/i.test(file.name)) {
    editor.setText(await file.text());
    return show([{ kind: 'text', text: `loaded ${file.name} into the editor; press Ctrl+Enter to run it` }]);
  }
  try {
    const name = await session.openFile(file);
    await refreshSchema();
    show([{ kind: 'text', text: `opened ${file.name} as database ${name}` }]);
  } catch (e) {
    show([errorBlock(e)]);
  }
}

async function share(): Promise<void> {
  const url = `${location.origin}${location.pathname}#sql=${encodeURIComponent(editor.allText())}`;
  history.replaceState(null, '', url);
  try {
    await navigator.clipboard.writeText(url);
    $('status').textContent = 'link copied';
  } catch {
    $('status').textContent = 'link is in the address bar';
  }
}

$('run').addEventListener('click', () => void runEditor());
$('mode').addEventListener('change', (e) => {
  host.mode = (e.target as HTMLSelectElement).value as OutputMode;
});
$('download-db').addEventListener('click', async () => {
  const bytes = await (await session.database()).export();
  download(`${session.name}.db`, new Blob([bytes as BlobPart], { type: 'application/vnd.sqlite3' }));
});
$('open-file').addEventListener('click', async () => {
  const file = await pickFile($<HTMLInputElement>('file-input'), '.db,.sqlite,.sqlite3,.sql');
  if (file) await openFile(file);
});
$('share').addEventListener('click', () => void share());
acceptDrops($('drop-hint'), async (files) => {
  const notes: Block[] = [];
  for (const file of files) {
    if (isDatabaseFile(file)) await openFile(file);
    else notes.push(dropped.keep(file));
  }
  if (notes.length) show(notes);
});

// A shared link fills the editor (it never runs on its own), before the database is open, so
// that nothing typed meanwhile is overwritten.
editor.setText(new URLSearchParams(location.hash.slice(1)).get('sql') ?? WELCOME);
editor.focus();
void persistence.show();
void startServiceWorker();
const requested = new URLSearchParams(location.search).get('db');
session.open(isDatabaseName(requested) ? requested : 'playground').then(
  () => {
    document.body.dataset.ready = 'true';
  },
  (e: unknown) => {
    show([{ kind: 'error', message: `could not start: ${(e as Error).message}` }]);
    document.body.dataset.ready = 'error';
  },
);
