/**
 * Each database's share of the server's time. The server runs every tenant's SQL on one thread,
 * so a statement that runs for its whole time limit stalls every other tenant meanwhile; a
 * tenant sending such statements one after another would keep the server to itself. The share
 * bounds that: the time a database's statements run, and the time its pull answers take to build
 * (HostedDatabase.pull), is charged to it, the charge drains at
 * `shareOfServer` of wall-clock time (0.25: a database may use a quarter of the server's time
 * over the long run), and while it is above `burstMs` the database's pipelines are refused
 * with 429 BUSY and a Retry-After of the time it takes to drain. A burst (one statement at its
 * limit, a big push) goes through at once; only sustained use waits.
 *
 * Pure: the clock is passed in, so the rule has table tests (test/server/time-share.test.ts).
 */
import { HttpError } from './http.js';

export interface TimeShareOptions {
  /** The long-run fraction of wall-clock time one database's statements may use (0 < x <= 1). */
  shareOfServer: number;
  /** How much unpaid time a database may run up before its requests wait. */
  burstMs: number;
}

export class TimeShare {
  private debtMs = 0;
  private atMs = 0;

  constructor(private readonly options: TimeShareOptions) {
    if (!(options.shareOfServer > 0 && options.shareOfServer <= 1)) throw new RangeError('shareOfServer must be in (0, 1]');
    if (!(options.burstMs > 0)) throw new RangeError('burstMs must be positive');
  }

  /** Charges `spentMs` of statement time, spent up to `nowMs`. */
  charge(spentMs: number, nowMs: number): void {
    this.drain(nowMs);
    this.debtMs += Math.max(0, spentMs);
  }

  /** How long until this database may run statements again: 0 when it may now. */
  waitMs(nowMs: number): number {
    this.drain(nowMs);
    const over = this.debtMs - this.options.burstMs;
    return over > 0 ? Math.ceil(over / this.options.shareOfServer) : 0;
  }

  /** Throws 429 BUSY, with the wait in its message, when the database has used its share. */
  check(database: string, nowMs: number): void {
    const waitMs = this.waitMs(nowMs);
    if (waitMs === 0) return;
    throw new HttpError(
      429,
      `database "${database}" has used its share of the server's time (statements that run long, one after another); retry in ${Math.ceil(waitMs / 1000)} s`,
      'BUSY',
      { 'retry-after': String(Math.ceil(waitMs / 1000)) },
    );
  }

  private drain(nowMs: number): void {
    const elapsedMs = Math.max(0, nowMs - this.atMs);
    this.atMs = Math.max(this.atMs, nowMs);
    this.debtMs = Math.max(0, this.debtMs - elapsedMs * this.options.shareOfServer);
  }
}
