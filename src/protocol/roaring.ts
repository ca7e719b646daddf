/**
 * RoaringBitmap's portable serialization (the format of the Java, C and Rust libraries), for
 * the pull-updates page selector: sets of zero-based page ids.
 *
 * Format (little endian): a cookie; 12346 is followed by the container count (no run
 * containers), 12347 carries count-1 in its high 16 bits and is followed by a bitmap of which
 * containers are runs. Then per container its key (high 16 bits) and cardinality-1, then (with
 * 12346, or with 12347 and at least 4 containers) a 4-byte offset per container, then the
 * containers: arrays of u16 (cardinality <= 4096), bitmaps of 8192 bytes, or runs
 * (count, then start and length-1 pairs). Encoding writes arrays and bitmaps; decoding accepts
 * all three.
 */
import { ProtocolError } from '../errors.js';

const COOKIE_NO_RUNS = 12346;
const COOKIE_RUNS = 12347;
const ARRAY_MAX = 4096;

export function encodeRoaring(values: Iterable<number>): Uint8Array {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  const containers = new Map<number, number[]>();
  for (const v of sorted) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`not a u32: ${v}`);
    const key = Math.floor(v / 65536);
    let low = containers.get(key);
    if (!low) containers.set(key, (low = []));
    low.push(v & 0xffff);
  }
  const keys = [...containers.keys()];
  const sizes = keys.map((k) => (containers.get(k)!.length > ARRAY_MAX ? 8192 : containers.get(k)!.length * 2));
  const headerBytes = 8 + keys.length * 4 + keys.length * 4;
  const out = new Uint8Array(headerBytes + sizes.reduce((a, b) => a + b, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, COOKIE_NO_RUNS, true);
  view.setUint32(4, keys.length, true);
  let offset = headerBytes;
  keys.forEach((key, i) => {
    const low = containers.get(key)!;
    view.setUint16(8 + i * 4, key, true);
    view.setUint16(8 + i * 4 + 2, low.length - 1, true);
    view.setUint32(8 + keys.length * 4 + i * 4, offset, true);
    if (low.length > ARRAY_MAX) {
      for (const v of low) out[offset + (v >> 3)]! |= 1 << (v & 7);
    } else {
      low.forEach((v, j) => view.setUint16(offset + j * 2, v, true));
    }
    offset += sizes[i]!;
  });
  return out;
}

/** Decodes a serialized bitmap into its sorted values; at most `maxValues` of them. */
export function decodeRoaring(bytes: Uint8Array, maxValues = 1 << 24): number[] {
  const fail = (why: string): never => {
    throw new ProtocolError(`invalid page selector bitmap: ${why}`);
  };
  if (bytes.length < 4) fail('too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number): void => {
    if (at + n > bytes.length) fail('truncated');
  };
  const cookie = view.getUint32(0, true);
  let count: number;
  let pos: number;
  let runFlags: Uint8Array | null = null;
  let hasOffsets: boolean;
  if ((cookie & 0xffff) === COOKIE_RUNS) {
    count = (cookie >>> 16) + 1;
    const flagBytes = Math.ceil(count / 8);
    need(4, flagBytes);
    runFlags = bytes.subarray(4, 4 + flagBytes);
    pos = 4 + flagBytes;
    hasOffsets = count >= 4;
  } else if (cookie === COOKIE_NO_RUNS) {
    need(4, 4);
    count = view.getUint32(4, true);
    pos = 8;
    hasOffsets = true;
  } else {
    return fail(`unknown cookie ${cookie}`);
  }
  if (count > 65536) fail(`${count} containers`);
  need(pos, count * 4);
  const keys: number[] = [];
  const cards: number[] = [];
  for (let i = 0; i < count; i++) {
    keys.push(view.getUint16(pos + i * 4, true));
    cards.push(view.getUint16(pos + i * 4 + 2, true) + 1);
  }
  pos += count * 4;
  if (hasOffsets) pos += count * 4;
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    const base = keys[i]! * 65536;
    const isRun = runFlags !== null && (runFlags[i >> 3]! & (1 << (i & 7))) !== 0;
    if (isRun) {
      need(pos, 2);
      const runs = view.getUint16(pos, true);
      pos += 2;
      need(pos, runs * 4);
      for (let r = 0; r < runs; r++) {
        const start = view.getUint16(pos + r * 4, true);
        const len = view.getUint16(pos + r * 4 + 2, true) + 1;
        if (start + len > 65536) fail('run past the container');
        if (values.length + len > maxValues) fail(`more than ${maxValues} values`);
        for (let v = 0; v < len; v++) values.push(base + start + v);
      }
      pos += runs * 4;
    } else if (cards[i]! > ARRAY_MAX) {
      need(pos, 8192);
      for (let b = 0; b < 8192; b++) {
        const byte = bytes[pos + b]!;
        if (byte === 0) continue;
        for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) values.push(base + b * 8 + bit);
      }
      if (values.length > maxValues) fail(`more than ${maxValues} values`);
      pos += 8192;
    } else {
      need(pos, cards[i]! * 2);
      if (values.length + cards[i]! > maxValues) fail(`more than ${maxValues} values`);
      for (let j = 0; j < cards[i]!; j++) values.push(base + view.getUint16(pos + j * 2, true));
      pos += cards[i]! * 2;
    }
  }
  return values;
}
