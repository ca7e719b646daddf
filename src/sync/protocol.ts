/**
 * The wire protocol of Turso's sync engine, shared by Outpost's sync client and server.
 * See ../shared/design/sync-protocol.md for the protocol, and ARCHITECTURE.md for how Outpost
 * uses it.
 *
 * - `pull-updates`: request `PullUpdatesReqProtoBody` (protobuf); response a stream of
 *   length-delimited protobuf messages, one `PullUpdatesRespProtoBody` header then
 *   `PageData` messages. Page ids are zero-based; pages are 4096 bytes.
 * - `v2/pipeline`: Hrana over HTTP, JSON (types below).
 *
 * Decoding never trusts its input: every decoder throws `ProtocolError` with a message that
 * says what was wrong (truncated stream, wrong page size, bad JSON shape).
 */
import protobuf from 'protobufjs/light.js';

export const PAGE_SIZE = 4096;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const root = protobuf.Root.fromJSON({
  nested: {
    PullUpdatesReqProtoBody: {
      fields: {
        encoding: { type: 'int32', id: 1 },
        serverRevision: { type: 'string', id: 2 },
        clientRevision: { type: 'string', id: 3 },
        longPollTimeoutMs: { type: 'uint32', id: 4 },
        serverPagesSelector: { type: 'bytes', id: 5 },
        clientPages: { type: 'bytes', id: 6 },
        serverQuerySelector: { type: 'string', id: 7 },
        streamKind: { type: 'int32', id: 8 },
      },
    },
    PageSetRawEncodingProto: { fields: {} },
    PageSetZstdEncodingProto: {
      fields: { level: { type: 'int32', id: 1 }, pagesDict: { rule: 'repeated', type: 'uint32', id: 2 } },
    },
    PullUpdatesRespProtoBody: {
      oneofs: {},
      fields: {
        serverRevision: { type: 'string', id: 1 },
        dbSize: { type: 'uint64', id: 2 },
        rawEncoding: { type: 'PageSetRawEncodingProto', id: 3 },
        zstdEncoding: { type: 'PageSetZstdEncodingProto', id: 4 },
        streamKind: { type: 'int32', id: 5 },
        applyMode: { type: 'int32', id: 6 },
        protocol: { type: 'int32', id: 8 },
      },
    },
    PageData: {
      fields: { pageId: { type: 'uint64', id: 1 }, encodedPage: { type: 'bytes', id: 2 } },
    },
  },
});

const PullRequestType = root.lookupType('PullUpdatesReqProtoBody');
const PullHeaderType = root.lookupType('PullUpdatesRespProtoBody');
const PageDataType = root.lookupType('PageData');

export const ENCODING_RAW = 0;
export const ENCODING_ZSTD = 1;
export const APPLY_INCREMENTAL = 0;
export const APPLY_REPLACE_BASE = 1;
export const PROTOCOL_PAGES = 1;

export interface PullRequest {
  encoding: number;
  serverRevision: string;
  clientRevision: string;
  longPollTimeoutMs: number;
  serverPagesSelector: Uint8Array;
  streamKind: number;
}

export interface PullHeader {
  serverRevision: string;
  /** Database size in pages after the update. */
  dbSize: number;
  applyMode: number;
  encoding: 'raw' | 'zstd' | 'none';
}

export interface PageData {
  /** Zero-based. */
  pageId: number;
  page: Uint8Array;
}

function toNumber(v: unknown, what: string): number {
  // protobufjs gives uint64 as a Long-like object or a number, depending on the value.
  const n = typeof v === 'number' ? v : v && typeof v === 'object' && 'toNumber' in v ? (v as { toNumber(): number }).toNumber() : Number(v ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new ProtocolError(`${what} is not a valid count: ${String(v)}`);
  return n;
}

export function encodePullRequest(req: Partial<PullRequest>): Uint8Array {
  return PullRequestType.encode(PullRequestType.create(req)).finish();
}

export function decodePullRequest(bytes: Uint8Array): PullRequest {
  let m: Record<string, unknown>;
  try {
    m = PullRequestType.toObject(PullRequestType.decode(bytes), { defaults: true, longs: Number, bytes: Uint8Array }) as Record<string, unknown>;
  } catch (e) {
    throw new ProtocolError(`malformed pull-updates request: ${(e as Error).message}`);
  }
  return {
    encoding: Number(m.encoding),
    serverRevision: String(m.serverRevision ?? ''),
    clientRevision: String(m.clientRevision ?? ''),
    longPollTimeoutMs: toNumber(m.longPollTimeoutMs, 'long_poll_timeout_ms'),
    serverPagesSelector: (m.serverPagesSelector as Uint8Array | undefined) ?? new Uint8Array(0),
    streamKind: Number(m.streamKind ?? 0),
  };
}

/** Encodes the header and pages of a pull-updates response, each length-delimited. */
export function encodePullHeader(h: { serverRevision: string; dbSize: number; applyMode: number }): Uint8Array {
  return PullHeaderType.encodeDelimited(
    PullHeaderType.create({
      serverRevision: h.serverRevision,
      dbSize: h.dbSize,
      rawEncoding: {},
      applyMode: h.applyMode,
      protocol: PROTOCOL_PAGES,
    }),
  ).finish();
}

export function encodePage(pageId: number, page: Uint8Array): Uint8Array {
  return PageDataType.encodeDelimited(PageDataType.create({ pageId, encodedPage: page })).finish();
}

/**
 * Reads a length-delimited pull-updates response incrementally: feed it bytes as they arrive,
 * take messages as they complete. `finish()` throws if the stream ended mid-message.
 */
export class PullStreamReader {
  private buffer = new Uint8Array(0);
  private offset = 0;
  header: PullHeader | null = null;

  push(chunk: Uint8Array): PageData[] {
    const rest = this.buffer.subarray(this.offset);
    const joined = new Uint8Array(rest.length + chunk.length);
    joined.set(rest);
    joined.set(chunk, rest.length);
    this.buffer = joined;
    this.offset = 0;
    const pages: PageData[] = [];
    for (;;) {
      const message = this.nextMessage();
      if (!message) break;
      if (!this.header) this.header = decodeHeader(message);
      else pages.push(decodePage(message));
    }
    return pages;
  }

  finish(): PullHeader {
    if (this.offset !== this.buffer.length) {
      throw new ProtocolError(`pull-updates stream ended inside a message (${this.buffer.length - this.offset} stray bytes)`);
    }
    if (!this.header) throw new ProtocolError('pull-updates response had no header');
    return this.header;
  }

  private nextMessage(): Uint8Array | null {
    let length = 0;
    let shift = 0;
    let at = this.offset;
    for (;;) {
      if (at >= this.buffer.length) return null;
      const b = this.buffer[at++]!;
      length += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      shift += 7;
      if (shift > 35) throw new ProtocolError('pull-updates stream has an invalid length prefix');
    }
    if (length > 16 * 1024 * 1024) throw new ProtocolError(`pull-updates message of ${length} bytes is too large`);
    if (at + length > this.buffer.length) return null;
    this.offset = at + length;
    return this.buffer.subarray(at, at + length);
  }
}

function decodeHeader(bytes: Uint8Array): PullHeader {
  let m: Record<string, unknown>;
  try {
    m = PullHeaderType.toObject(PullHeaderType.decode(bytes), { defaults: false, longs: Number }) as Record<string, unknown>;
  } catch (e) {
    throw new ProtocolError(`malformed pull-updates header: ${(e as Error).message}`);
  }
  return {
    serverRevision: String(m.serverRevision ?? ''),
    dbSize: toNumber(m.dbSize ?? 0, 'db_size'),
    applyMode: Number(m.applyMode ?? 0),
    encoding: m.zstdEncoding ? 'zstd' : m.rawEncoding ? 'raw' : 'none',
  };
}

function decodePage(bytes: Uint8Array): PageData {
  let m: Record<string, unknown>;
  try {
    m = PageDataType.toObject(PageDataType.decode(bytes), { defaults: true, longs: Number, bytes: Uint8Array }) as Record<string, unknown>;
  } catch (e) {
    throw new ProtocolError(`malformed page message: ${(e as Error).message}`);
  }
  const page = m.encodedPage as Uint8Array;
  const pageId = toNumber(m.pageId, 'page_id');
  if (page.length !== PAGE_SIZE) throw new ProtocolError(`page ${pageId} has ${page.length} bytes, expected ${PAGE_SIZE}`);
  return { pageId, page };
}

// ---- Hrana over HTTP (v2/pipeline) ------------------------------------------------------

export type HranaValue =
  | { type: 'null' }
  | { type: 'integer'; value: string }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; base64: string };

export interface HranaStmt {
  sql?: string | null;
  sql_id?: number | null;
  args?: HranaValue[];
  named_args?: { name: string; value: HranaValue }[];
  want_rows?: boolean | null;
  replication_index?: string | null;
}

export type HranaCondition =
  | { type: 'ok'; step: number }
  | { type: 'error'; step: number }
  | { type: 'not'; cond: HranaCondition }
  | { type: 'and'; conds: HranaCondition[] }
  | { type: 'or'; conds: HranaCondition[] }
  | { type: 'is_autocommit' };

export interface HranaBatchStep {
  condition?: HranaCondition | null;
  stmt: HranaStmt;
}

export type HranaRequest = { type: 'execute'; stmt: HranaStmt } | { type: 'batch'; batch: { steps: HranaBatchStep[] } } | { type: 'close' };

export interface PipelineRequest {
  baton: string | null;
  requests: HranaRequest[];
}

export interface HranaError {
  message: string;
  code: string;
}

export interface HranaStmtResult {
  cols: { name: string | null; decltype: string | null }[];
  rows: HranaValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
  replication_index: string | null;
  rows_read: number;
  rows_written: number;
  query_duration_ms: number;
}

export type HranaResponse =
  | { type: 'execute'; result: HranaStmtResult }
  | { type: 'batch'; result: { step_results: (HranaStmtResult | null)[]; step_errors: (HranaError | null)[]; replication_index: null } }
  | { type: 'close' };

export type HranaStreamResult = { type: 'ok'; response: HranaResponse } | { type: 'error'; error: HranaError };

export interface PipelineResponse {
  baton: string | null;
  base_url: string | null;
  results: HranaStreamResult[];
}

/** Base64 without relying on Node's Buffer (the client runs in workers too). */
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(text: string): Uint8Array {
  let raw: string;
  try {
    raw = atob(text.replace(/=+$/, ''));
  } catch {
    throw new ProtocolError('invalid base64 in a blob value');
  }
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** A JS value (as Outpost's engine returns them) as a Hrana value. */
export function toHranaValue(v: unknown): HranaValue {
  if (v === null || v === undefined) return { type: 'null' };
  if (typeof v === 'bigint') return { type: 'integer', value: v.toString() };
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'integer', value: String(v) } : { type: 'float', value: v };
  if (typeof v === 'string') return { type: 'text', value: v };
  if (v instanceof Uint8Array) return { type: 'blob', base64: toBase64(v) };
  throw new ProtocolError(`cannot send a value of type ${typeof v}`);
}

/** A Hrana value as a JS value for binding (integers beyond 2^53 as bigint). */
export function fromHranaValue(v: unknown): null | number | bigint | string | Uint8Array {
  if (!v || typeof v !== 'object' || typeof (v as { type?: unknown }).type !== 'string') {
    throw new ProtocolError(`invalid value ${JSON.stringify(v)}`);
  }
  const value = v as { type: string; value?: unknown; base64?: unknown };
  switch (value.type) {
    case 'null':
      return null;
    case 'integer': {
      if (typeof value.value !== 'string' && typeof value.value !== 'number') throw new ProtocolError('integer value must be a string');
      const text = String(value.value);
      if (!/^-?\d+$/.test(text)) throw new ProtocolError(`invalid integer ${text}`);
      const big = BigInt(text);
      if (big < -(2n ** 63n) || big >= 2n ** 63n) throw new ProtocolError(`integer ${text} is out of range`);
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    case 'float':
      if (typeof value.value !== 'number') throw new ProtocolError('float value must be a number');
      return value.value;
    case 'text':
      if (typeof value.value !== 'string') throw new ProtocolError('text value must be a string');
      return value.value;
    case 'blob':
      if (typeof value.base64 !== 'string') throw new ProtocolError('blob value must have base64');
      return fromBase64(value.base64);
    default:
      throw new ProtocolError(`unknown value type ${value.type}`);
  }
}
