/**
 * How many Hrana streams (interactive transactions held across requests, hosted-database.ts)
 * may be open, for how long, and how the server's slots are shared between token holders.
 * Types and defaults only; hosted-database.ts re-exports them.
 *
 * May import: nothing.
 */
export interface StreamLimits {
  /** How long a stream may stay idle before its transaction is rolled back. */
  idleMs: number;
  /** How long a stream may stay open in all, busy or not, before its transaction is rolled back (default `STREAM_LIFETIME_MS`): the longest any request waits for a stream. */
  lifetimeMs?: number;
  /** Open streams in the whole server, and how many may be. */
  slots: StreamSlots;
}

/**
 * The server's stream slots. Besides the total, each holder (a token's subject; for a token
 * without one, the databases it names; for the admin or an unauthenticated server, the
 * database) may hold at most `perHolderMax` at once, so one tenant renewing streams on many
 * databases cannot take every slot and block streams server-wide.
 *
 * Tokens without a subject cannot be told apart: many of them, each naming another database,
 * would each be a holder of its own and could fill every slot. So all their streams together
 * may take at most `withoutSubjectMax` (by default half the slots): the other half stays for
 * tokens with a subject (each within its share) and the admin.
 */
export interface StreamSlots {
  open: number;
  max: number;
  /** Default: the whole `max` (no share). */
  perHolderMax?: number;
  /** Open streams by holder; entries at 0 are removed. */
  byHolder?: Map<string, number>;
  /** Most streams all holders without a subject (`WITHOUT_SUBJECT`) may have open together; default the whole `max`. */
  withoutSubjectMax?: number;
  /** Streams open now of holders without a subject. */
  withoutSubjectOpen?: number;
}

/** How the holder of a token without a subject starts: `databases:` and the databases it names. */
export const WITHOUT_SUBJECT = 'databases:';

/**
 * The default stream lifetime, 30 s: far longer than an interactive transaction needs, long
 * enough for a streamed push of several 32 MiB requests on an ordinary link, and shorter than
 * the 60 s after which common proxies give up on a request, so a request waiting for a stream
 * still gets its answer.
 */
export const STREAM_LIFETIME_MS = 30_000;

/** The default share of the stream slots one holder may use (a token's subject: see `StreamSlots`). */
export const STREAMS_PER_HOLDER = 8;

/** The default: a stream idle for 10 s or open for 30 s is rolled back, at most 64 open in one server. */
export function defaultStreamLimits(): StreamLimits {
  return { idleMs: 10_000, lifetimeMs: STREAM_LIFETIME_MS, slots: { open: 0, max: 64, perHolderMax: STREAMS_PER_HOLDER } };
}
