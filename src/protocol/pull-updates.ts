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
const PageDataType = root.lookupType('PageData');

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
  private buffer: Uint8Array = new Uint8Array(0);
  private offset = 0;
  header: PullHeader | null = null;
  /** The `i`th byte not read yet. */
  private readonly unreadByte = (i: number): number => this.buffer[this.offset + i]!;

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
    const prefix = readLengthPrefix(buffer.length - this.offset, this.unreadByte);
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
  const prefix = readLengthPrefix(rest.length + next.length, (i) => (i < rest.length ? rest[i]! : next[i - rest.length]!));
  if (!prefix) return null;
  const total = prefix.prefixBytes + prefix.length;
  return total <= rest.length + next.length ? total - rest.length : null;
}

/**
 * A message's varint length prefix, read from `available` bytes through `byteAt`; null when
 * they end inside it. Refuses a prefix that is too long and a message over 16 MiB.
 */
function readLengthPrefix(available: number, byteAt: (i: number) => number): { length: number; prefixBytes: number } | null {
  let length = 0;
  let shift = 0;
  for (let i = 0; ; ) {
    if (i >= available) return null;
    const b = byteAt(i++);
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

/**
 * Decodes one `PageData` message by hand: it is the bulk of every pull (one per page), and
 * protobufjs's generic decode and `toObject` cost more than the bytes themselves. The page is a
 * view into `bytes`, not a copy. Unknown fields are skipped, as protobuf requires.
 */
function decodePage(bytes: Uint8Array): PageData {
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
