/**
 * The sync sidebar: connect the open database to a server database URL (or disconnect), the
 * sync status, and a progress bar while a bootstrap or pull downloads. A connected database
 * syncs live (the session opens it with `live: true`); Push and Pull sync at once. Connecting
 * reopens the database through the session, which keeps the previous URL when the new one fails.
 */
import type { Database, SyncProgress, SyncStatus } from 'outpost';
import { $ } from './dom.js';
import type { Session } from './session.js';

function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleTimeString() : 'never';
}

export class SyncPanel {
  private lastStatus: SyncStatus | null = null;
  private unsubscribe: () => void = () => undefined;

  /**
   * @param defaultUrl what the URL field starts with
   * @param onDataChanged called after a push, pull or connect (a pull may change the schema)
   */
  constructor(
    private readonly session: Session,
    defaultUrl: string,
    private readonly onDataChanged: () => Promise<void>,
  ) {
    $<HTMLInputElement>('sync-url').value = defaultUrl;
    $('sync-connect').addEventListener('click', () => void this.action(() => this.toggleConnection()));
    $('sync-push').addEventListener('click', () => void this.action(async () => (await session.database()).push()));
    $('sync-pull').addEventListener('click', () => void this.action(async () => (await session.database()).pull()));
  }

  /** Shows `db`'s sync status from now on. */
  watch(db: Database): void {
    this.unsubscribe();
    const stopStatus = db.onSyncStatus((status) => this.render(status));
    const stopProgress = db.onSyncProgress((progress) => this.progress(progress));
    this.unsubscribe = () => {
      stopStatus();
      stopProgress();
    };
    this.progress({ phase: 'idle', pagesDone: 0, pagesTotal: 0, bytes: 0 });
    void this.refresh();
  }

  /** The bar: shown while pages download or apply, hidden when idle. */
  private progress(p: SyncProgress): void {
    const bar = $<HTMLProgressElement>('sync-progress');
    bar.hidden = p.phase === 'idle' || p.phase === 'push';
    bar.max = Math.max(1, p.pagesTotal);
    bar.value = p.pagesDone;
    bar.title = `${p.phase}: ${p.pagesDone} of ${p.pagesTotal} pages, ${(p.bytes / 1024).toFixed(0)} KiB`;
  }

  /** Reads the status again (after statements that may have added pending changes). */
  async refresh(): Promise<void> {
    this.render(await (await this.session.database()).syncStatus());
  }

  /** One line for `.show`. */
  summary(): string {
    const url = this.session.syncUrl;
    if (!url) return 'not configured';
    const s = this.lastStatus;
    return `${url} (revision ${s?.revision ?? 'none'}, ${s?.pendingChanges ?? 0} pending${s?.lastError ? `, last error: ${s.lastError.message}` : ''})`;
  }

  /** Connect with the URL in the field, or disconnect when connected. */
  private async toggleConnection(): Promise<void> {
    await this.session.connectSync(this.session.syncUrl ? null : $<HTMLInputElement>('sync-url').value.trim() || null);
  }

  /** Runs a sync action, shows its error (with a hint for the common one), then the status. */
  private async action(run: () => Promise<unknown>): Promise<void> {
    $('sync-error').textContent = '';
    try {
      await run();
      await this.onDataChanged();
    } catch (e) {
      const hint = /never synced/.test((e as Error).message) ? ' Use .open NEWNAME for a fresh database, then Connect.' : '';
      $('sync-error').textContent = `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}${hint}`;
    }
    await this.refresh();
    // How many actions have ended: tests wait for it to move instead of polling the status.
    $('sync-status').dataset.actionsDone = String(Number($('sync-status').dataset.actionsDone ?? 0) + 1);
  }

  private render(status: SyncStatus | null): void {
    this.lastStatus = status;
    const list = $('sync-status');
    list.replaceChildren();
    const connected = status !== null;
    for (const id of ['sync-push', 'sync-pull']) $<HTMLButtonElement>(id).disabled = !connected;
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
    for (const [k, v] of rows) {
      list.append(Object.assign(document.createElement('dt'), { textContent: k }), Object.assign(document.createElement('dd'), { textContent: v, id: `sync-${k.replace(/\W+/g, '-')}` }));
    }
    $('sync-error').textContent = status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : '';
  }
}
