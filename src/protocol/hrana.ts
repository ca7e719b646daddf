/**
 * Hrana over HTTP (`v2/pipeline`), the JSON half of Turso's sync protocol: the request and
 * response types, and the codecs of values (the sync client sends them, the server reads them
 * back). No I/O.
 *
 * Decoding never trusts its input: `fromHranaValue` and `fromBase64` throw `ProtocolError` with
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
