/**
 * Hrana over HTTP (`v2/pipeline`, and `v3/pipeline` with the same JSON), the JSON half of Turso's sync protocol: the request and
 * response types, and the codecs of values (the sync client sends them, the server reads them
 * back). No I/O.
 *
 * Decoding never trusts its input: `decodeHranaValue` and `fromBase64` throw `ProtocolError` with
 * a message that says what was wrong.
 */
import { ProtocolError } from '../errors.js';

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

export type HranaRequest =
  | { type: 'execute'; stmt: HranaStmt }
  | { type: 'batch'; batch: { steps: HranaBatchStep[] } }
  | { type: 'sequence'; sql?: string | null; sql_id?: number | null }
  | { type: 'describe'; sql?: string | null; sql_id?: number | null }
  | { type: 'store_sql'; sql_id: number; sql: string }
  | { type: 'close_sql'; sql_id: number }
  | { type: 'get_autocommit' }
  | { type: 'close' };

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

/** What `describe` reports about a statement without running it. */
export interface HranaDescribeResult {
  params: { name: string | null }[];
  cols: { name: string; decltype: string | null }[];
  is_explain: boolean;
  is_readonly: boolean;
}

export type HranaResponse =
  | { type: 'execute'; result: HranaStmtResult }
  | { type: 'batch'; result: { step_results: (HranaStmtResult | null)[]; step_errors: (HranaError | null)[]; replication_index: null } }
  | { type: 'sequence' }
  | { type: 'describe'; result: HranaDescribeResult }
  | { type: 'store_sql' }
  | { type: 'close_sql' }
  | { type: 'get_autocommit'; is_autocommit: boolean }
  | { type: 'close' };

export type HranaStreamResult = { type: 'ok'; response: HranaResponse } | { type: 'error'; error: HranaError };

export interface PipelineResponse {
  baton: string | null;
  base_url: string | null;
  results: HranaStreamResult[];
}

/**
 * Node's Buffer when the code runs in Node (the server), found without importing it: the
 * client runs in browsers and workers too. Node's `btoa`/`atob` are implemented one character
 * at a time: `btoa` took 15 s for a 30 MB blob, a stall of the whole server for one read.
 */
type NodeBuffer = {
  from(data: ArrayBufferLike, byteOffset: number, length: number): { toString(encoding: 'base64'): string };
  from(data: string, encoding: 'base64'): Uint8Array;
};
const nodeBuffer = (globalThis as { Buffer?: NodeBuffer }).Buffer;

/** Base64 of `bytes` (with padding). */
export function toBase64(bytes: Uint8Array): string {
  if (nodeBuffer) return nodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * Base64 text, padded or not, as bytes; anything else is a ProtocolError (as `atob` refuses
 * it). With Node's Buffer, which skips characters it does not know, a bad character shows as
 * fewer bytes than the text's length promises (a scan with a regular expression cost more than
 * the decoding).
 */
export function fromBase64(text: string): Uint8Array {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 61 /* '=' */) end--;
  const unpadded = end === text.length ? text : text.slice(0, end);
  if (unpadded.length % 4 === 1) throw new ProtocolError('invalid base64 in a blob value');
  if (nodeBuffer) {
    // A copy: a small Buffer is a view into a pool shared with other Buffers.
    const out = new Uint8Array(nodeBuffer.from(unpadded, 'base64'));
    if (out.length !== Math.floor((unpadded.length * 3) / 4) || unpadded.includes('-') || unpadded.includes('_')) throw new ProtocolError('invalid base64 in a blob value');
    return out;
  }
  let raw: string;
  try {
    raw = atob(unpadded);
  } catch {
    throw new ProtocolError('invalid base64 in a blob value');
  }
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/**
 * A JS value (as Outpost's engine returns them) as a Hrana value. A number is an integer only
 * when it is a safe integer (1e21 is a float: as an integer it would be sent as "1e+21");
 * infinities cannot be sent at all, since JSON has no form for them (they would arrive as
 * null): a caller that must send one writes it into the SQL text instead.
 */
export function toHranaValue(v: unknown): HranaValue {
  if (v === null || v === undefined) return { type: 'null' };
  if (typeof v === 'bigint') return { type: 'integer', value: v.toString() };
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ProtocolError(`cannot send ${v} as a Hrana value (JSON has no form for it)`);
    return Number.isSafeInteger(v) ? { type: 'integer', value: String(v) } : { type: 'float', value: v };
  }
  if (typeof v === 'string') return { type: 'text', value: v };
  if (v instanceof Uint8Array) return { type: 'blob', base64: toBase64(v) };
  throw new ProtocolError(`cannot send a value of type ${typeof v}`);
}

/** A REAL as a Hrana float, whole or not; infinities cannot be sent (see `toHranaValue`). */
export function toHranaFloat(v: number): HranaValue {
  if (!Number.isFinite(v)) throw new ProtocolError(`cannot send ${v} as a Hrana value (JSON has no form for it)`);
  return { type: 'float', value: v };
}

/** A Hrana value as read off the wire, checked: integers as bigint, blobs as bytes. */
export type DecodedHranaValue =
  | { type: 'null' }
  | { type: 'integer'; value: bigint }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; bytes: Uint8Array };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Reads one Hrana value exactly: the type it names is the type it has (a float that happens to
 * be whole stays a float), integers are strings of digits within 64 bits (a JSON number is
 * accepted when it is a safe integer), floats are finite JSON numbers, blobs are base64.
 * Anything else is a `ProtocolError` saying what was wrong.
 */
export function decodeHranaValue(v: unknown): DecodedHranaValue {
  if (!v || typeof v !== 'object' || typeof (v as { type?: unknown }).type !== 'string') {
    throw new ProtocolError(`invalid value ${preview(v)}`);
  }
  const value = v as { type: string; value?: unknown; base64?: unknown };
  switch (value.type) {
    case 'null':
      return { type: 'null' };
    case 'integer': {
      const x = value.value;
      if (typeof x === 'number') {
        if (!Number.isSafeInteger(x)) throw new ProtocolError(`integer ${x} must be sent as a string of digits`);
        return { type: 'integer', value: BigInt(x) };
      }
      if (typeof x !== 'string' || !/^-?\d{1,20}$/.test(x)) throw new ProtocolError(`invalid integer ${preview(x)}`);
      const big = BigInt(x);
      if (big < INT64_MIN || big > INT64_MAX) throw new ProtocolError(`integer ${x} is out of range`);
      return { type: 'integer', value: big };
    }
    case 'float':
      if (typeof value.value !== 'number' || !Number.isFinite(value.value)) throw new ProtocolError(`float value must be a finite number, not ${preview(value.value)}`);
      return { type: 'float', value: value.value };
    case 'text':
      if (typeof value.value !== 'string') throw new ProtocolError('text value must be a string');
      return { type: 'text', value: value.value };
    case 'blob':
      if (typeof value.base64 !== 'string' || !BASE64.test(value.base64)) throw new ProtocolError('blob value must have base64');
      return { type: 'blob', bytes: fromBase64(value.base64) };
    default:
      throw new ProtocolError(`unknown value type ${preview(value.type)}`);
  }
}

/** A short rendering of a bad input for an error message. */
function preview(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}
