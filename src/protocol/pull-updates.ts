/**
 * The `pull-updates` wire format of Turso's sync protocol, shared by Outpost's sync client and
 * server (the protocol as `turso --sync-server` and the official client speak it; ARCHITECTURE.md
 * says how Outpost uses it). No I/O: encoders and decoders only.
 *
 * The request is one `PullUpdatesReqProtoBody` (protobuf). The response is a stream of
 * length-delimited protobuf messages: one `PullUpdatesRespProtoBody` header, then `PageData`
 * messages. Page ids on the wire are zero-based; pages are `PAGE_BYTES` long, raw (Outpost
 * neither asks for nor sends zstd pages).
 *
 * Decoding never trusts its input: every decoder throws `ProtocolError` with a message that
 * says what was wrong (truncated stream, wrong page size, an invalid count).
 */
import protobuf from 'protobufjs/light.js';
import { ProtocolError } from '../errors.js';

/** The protocol's page size. */
export const PAGE_BYTES = 4096;

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

export const ENCODING_RAW = 0;
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
  /** Database size in pages after the update (the wire's `db_size`). */
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

/**
 * Decodes a pull-updates request by hand (the server reads one per pull, a long poll's every
 * return included; protobufjs's decode and `toObject` with defaults cost more than the pull of
 * an unchanged database). Proto3 rules: a missing field has its default, the last occurrence
 * of a field wins, unknown fields are skipped; a field of the wrong wire type, a truncated
 * field or varint, and a wire type protobuf does not have are refused (ProtocolError).
 */
export function decodePullRequest(bytes: Uint8Array): PullRequest {
  const request: PullRequest = { encoding: 0, serverRevision: '', clientRevision: '', longPollTimeoutMs: 0, serverPagesSelector: new Uint8Array(0), streamKind: 0 };
  const cursor = { at: 0 };
  while (cursor.at < bytes.length) {
    const tag = readRequestVarint(bytes, cursor);
    const field = tag >>> 3;
    const wireType = tag & 7;
    const expected = REQUEST_WIRE_TYPES[field];
    if (expected !== undefined && expected !== wireType) throw new ProtocolError(`malformed pull-updates request: field ${field} has wire type ${wireType}, expected ${expected}`);
    if (wireType === 0) {
      const value = readRequestVarint(bytes, cursor);
      if (field === 1) request.encoding = value | 0;
      else if (field === 4) request.longPollTimeoutMs = value >>> 0;
      else if (field === 8) request.streamKind = value | 0;
    } else if (wireType === 2) {
      const length = readRequestVarint(bytes, cursor) >>> 0;
      if (length > bytes.length - cursor.at) throw new ProtocolError('malformed pull-updates request: a field runs past its end');
      const value = bytes.subarray(cursor.at, cursor.at + length);
      cursor.at += length;
      if (field === 2) request.serverRevision = utf8.decode(value);
      else if (field === 3) request.clientRevision = utf8.decode(value);
      else if (field === 5) request.serverPagesSelector = value.slice();
    } else if (wireType === 1 || wireType === 5) {
      cursor.at += wireType === 1 ? 8 : 4;
      if (cursor.at > bytes.length) throw new ProtocolError('malformed pull-updates request: a field runs past its end');
    } else {
      throw new ProtocolError(`malformed pull-updates request: wire type ${wireType}`);
    }
  }
  return request;
}

/** The wire type of each field a request may carry (0: varint, 2: length-delimited). */
const REQUEST_WIRE_TYPES: Readonly<Record<number, number>> = { 1: 0, 2: 2, 3: 2, 4: 0, 5: 2, 6: 2, 7: 2, 8: 0 };

const utf8 = new TextDecoder();

/** A varint of a request: its low 32 bits (as protobuf reads int32 and uint32 fields); at most 10 bytes. */
function readRequestVarint(bytes: Uint8Array, cursor: { at: number }): number {
  let value = 0;
  for (let i = 0; i < 10; i++) {
    if (cursor.at >= bytes.length) throw new ProtocolError('malformed pull-updates request: truncated varint');
    const b = bytes[cursor.at++]!;
    // Bits past the 32nd fall off, as protobuf's 32-bit fields drop them.
    if (i < 5) value = (value | ((b & 0x7f) << (7 * i))) >>> 0;
    if (b < 0x80) return value;
  }
  throw new ProtocolError('malformed pull-updates request: a varint is too long');
}

/** How many bytes `value` (a non-negative safe integer) takes as a varint. */
function varintBytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/** Writes `value` (a non-negative safe integer) as a varint at `at`; returns the offset after it. */
function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

const utf8Encoder = new TextEncoder();

/**
 * Encodes the header of a pull-updates response, length-delimited, by hand: the bytes
 * protobufjs wrote for it, without its message objects, once per pull. Fields go by number
 * (server_revision, db_size, an empty raw_encoding, apply_mode, protocol); as protobufjs did,
 * a field at its default (empty text, 0) is left out.
 */
export function encodePullHeader(h: { serverRevision: string; dbSize: number; applyMode: number }): Uint8Array {
  const revision = utf8Encoder.encode(h.serverRevision);
  const revisionBytes = revision.length > 0 ? 1 + varintBytes(revision.length) + revision.length : 0;
  const body = revisionBytes + fieldBytes(h.dbSize) + 2 + fieldBytes(h.applyMode) + 2;
  const out = new Uint8Array(varintBytes(body) + body);
  let at = writeVarint(out, 0, body);
  if (revision.length > 0) {
    out[at++] = (1 << 3) | 2;
    at = writeVarint(out, at, revision.length);
    out.set(revision, at);
    at += revision.length;
  }
  at = writeField(out, at, 2, h.dbSize);
  out[at++] = (3 << 3) | 2;
  out[at++] = 0;
  at = writeField(out, at, 6, h.applyMode);
  out[at++] = 8 << 3;
  out[at++] = PROTOCOL_PAGES;
  return out;
}

/** Encodes one `PageData` message, length-delimited, by hand (the bytes protobufjs wrote): one copy of the page. */
export function encodePage(pageId: number, page: Uint8Array): Uint8Array {
  const pageBytes = page.length > 0 ? 1 + varintBytes(page.length) + page.length : 0;
  const body = fieldBytes(pageId) + pageBytes;
  const out = new Uint8Array(varintBytes(body) + body);
  let at = writeField(out, writeVarint(out, 0, body), 1, pageId);
  if (page.length > 0) {
    out[at++] = (2 << 3) | 2;
    at = writeVarint(out, at, page.length);
    out.set(page, at);
  }
  return out;
}

/** The bytes of varint field (a one-byte tag) holding `value`; none for 0, which protobuf leaves out. */
function fieldBytes(value: number): number {
  return value === 0 ? 0 : 1 + varintBytes(value);
}

/** Writes varint field `field` holding `value` (nothing for 0); returns the offset after it. */
function writeField(out: Uint8Array, at: number, field: number, value: number): number {
  if (value === 0) return at;
  out[at++] = field << 3;
  return writeVarint(out, at, value);
}

/**
 * Reads a length-delimited pull-updates response incrementally: feed it bytes as they arrive,
 * take messages as they complete. `finish()` throws if the stream ended mid-message.
 */
export class PullStreamReader {
  private buffer: Uint8Array = new Uint8Array(0);
  private offset = 0;
  header: PullHeader | null = null;

  push(chunk: Uint8Array): PageData[] {
    const pages: PageData[] = [];
    let piece = chunk;
    if (this.offset < this.buffer.length) {
      // A message was cut by the piece boundary (most pieces cut one): only that message is
      // joined, from the tail left over and the head of this piece; the rest of the piece is
      // read in place. Joining the whole piece copied almost every byte of a bootstrap again.
      const rest = this.buffer.subarray(this.offset);
      const needed = bytesToComplete(rest, chunk);
      const joined = new Uint8Array(rest.length + (needed ?? chunk.length));
      joined.set(rest);
      joined.set(chunk.subarray(0, needed ?? chunk.length), rest.length);
      this.buffer = joined;
      this.offset = 0;
      // Still incomplete: the whole piece is part of one long message.
      if (needed === null) return pages;
      this.takeMessages(pages);
      piece = chunk.subarray(needed);
    }
    // Nothing left over: the piece is read in place (its pages are views into it).
    this.buffer = piece;
    this.offset = 0;
    this.takeMessages(pages);
    return pages;
  }

  private takeMessages(pages: PageData[]): void {
    for (;;) {
      const message = this.nextMessage();
      if (!message) break;
      if (!this.header) this.header = decodeHeader(message);
      else pages.push(decodePage(message));
    }
  }

  finish(): PullHeader {
    if (this.offset !== this.buffer.length) {
      throw new ProtocolError(`pull-updates stream ended inside a message (${this.buffer.length - this.offset} stray bytes)`);
    }
    if (!this.header) throw new ProtocolError('pull-updates response had no header');
    return this.header;
  }

  private nextMessage(): Uint8Array | null {
    const buffer = this.buffer;
    const prefix = readLengthPrefix(buffer, this.offset);
    if (!prefix) return null;
    const at = this.offset + prefix.prefixBytes;
    if (at + prefix.length > buffer.length) return null;
    this.offset = at + prefix.length;
    return buffer.subarray(at, at + prefix.length);
  }
}

/**
 * How many bytes of `next` complete the message whose start is `rest` (a message's length
 * prefix may itself be cut), or null when all of `next` is not enough.
 */
function bytesToComplete(rest: Uint8Array, next: Uint8Array): number | null {
  // The prefix's first bytes, joined: readLengthPrefix never reads more than 6 of them.
  const head = new Uint8Array(Math.min(PREFIX_BYTES_READ_MAX, rest.length + next.length));
  head.set(rest.subarray(0, head.length));
  if (rest.length < head.length) head.set(next.subarray(0, head.length - rest.length), rest.length);
  const prefix = readLengthPrefix(head, 0);
  if (!prefix) return null;
  const total = prefix.prefixBytes + prefix.length;
  return total <= rest.length + next.length ? total - rest.length : null;
}

/** The most bytes readLengthPrefix reads: the sixth continues past 35 bits and is refused. */
const PREFIX_BYTES_READ_MAX = 6;

/**
 * A message's varint length prefix at `bytes[at]`; null when `bytes` ends inside it. Refuses a
 * prefix that is too long and a message over 16 MiB. It reads the buffer in place, not through
 * a callback per byte; a prefix cut between two pieces is read from a copy of its first bytes.
 */
function readLengthPrefix(bytes: Uint8Array, at: number): { length: number; prefixBytes: number } | null {
  let length = 0;
  let shift = 0;
  for (let i = 0; ; ) {
    if (at + i >= bytes.length) return null;
    const b = bytes[at + i++]!;
    length += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) {
      if (length > 16 * 1024 * 1024) throw new ProtocolError(`pull-updates message of ${length} bytes is too large`);
      return { length, prefixBytes: i };
    }
    shift += 7;
    if (shift > 35) throw new ProtocolError('pull-updates stream has an invalid length prefix');
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

/** The bytes that start a page field of `PAGE_BYTES` (field 2, wire type 2, length 4096 as a varint). */
const PAGE_FIELD_START = [0x12, 0x80, 0x20] as const;

/**
 * Decodes one `PageData` message: it is the bulk of every pull (one per page). The layout every
 * server writes (encodePage's: the page id as field 1, left out when 0, then the page as field
 * 2) is read straight; any other is left to `decodePageFields`, which gives the same result for
 * this layout, so the shortcut changes no answer, only its cost.
 */
function decodePage(bytes: Uint8Array): PageData {
  let at = 0;
  let pageId = 0;
  if (bytes[0] === 0x08) {
    at = 1;
    for (let shift = 0; ; shift += 7) {
      // Longer than readVarint takes, or cut: the general decoder says what is wrong.
      if (shift >= 56 || at >= bytes.length) return decodePageFields(bytes);
      const b = bytes[at++]!;
      pageId += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
  }
  const [f0, f1, f2] = PAGE_FIELD_START;
  if (at + 3 + PAGE_BYTES === bytes.length && bytes[at] === f0 && bytes[at + 1] === f1 && bytes[at + 2] === f2 && Number.isSafeInteger(pageId)) {
    return { pageId, page: bytes.subarray(at + 3) };
  }
  return decodePageFields(bytes);
}

/**
 * Decodes one `PageData` message by hand, field by field (protobufjs's generic decode and
 * `toObject` cost more than the bytes themselves). The page is a view into `bytes`, not a copy.
 * Unknown fields are skipped, as protobuf requires.
 */
function decodePageFields(bytes: Uint8Array): PageData {
  const cursor = { at: 0 };
  let pageId = 0;
  let page: Uint8Array | null = null;
  while (cursor.at < bytes.length) {
    const tag = readVarint(bytes, cursor);
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      const value = readVarint(bytes, cursor);
      if (field === 1) pageId = value;
    } else if (wireType === 2) {
      const length = readVarint(bytes, cursor);
      if (cursor.at + length > bytes.length) throw new ProtocolError('malformed page message: a field runs past its end');
      if (field === 2) page = bytes.subarray(cursor.at, cursor.at + length);
      cursor.at += length;
    } else if (wireType === 1 || wireType === 5) {
      cursor.at += wireType === 1 ? 8 : 4;
    } else {
      throw new ProtocolError(`malformed page message: wire type ${wireType}`);
    }
  }
  if (cursor.at !== bytes.length) throw new ProtocolError('malformed page message: a field runs past its end');
  if (!Number.isSafeInteger(pageId)) throw new ProtocolError(`page_id is not a valid count: ${pageId}`);
  const length = page?.length ?? 0;
  if (!page || length !== PAGE_BYTES) throw new ProtocolError(`page ${pageId} has ${length} bytes, expected ${PAGE_BYTES}`);
  return { pageId, page };
}

/** A base-128 varint at `cursor.at` (advanced past it), as a number; longer than 8 bytes is refused. */
function readVarint(bytes: Uint8Array, cursor: { at: number }): number {
  let value = 0;
  for (let shift = 0; shift < 56; shift += 7) {
    if (cursor.at >= bytes.length) throw new ProtocolError('malformed page message: truncated varint');
    const b = bytes[cursor.at++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return value;
  }
  throw new ProtocolError('malformed page message: a varint is too long');
}
