/**
 * The pull answer reader (protocol/pull-updates.ts `PullStreamReader`) fed the same answer cut
 * into pieces anywhere: inside a length prefix, inside a page, at a message boundary, one byte
 * at a time. It must give the same header and pages as reading the answer whole.
 */
import protobuf from 'protobufjs/light.js';
import { describe, expect, test } from 'vitest';
import { PAGE_BYTES, PullStreamReader, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import { int, rng, testSeed } from '../support/generate.js';

/** An answer of `pages` pages; page n's bytes all come from `random`, and its first 4 bytes say n. */
function answer(random: () => number, pages: number): { bytes: Uint8Array; images: Uint8Array[] } {
  const images: Uint8Array[] = [];
  const parts: Uint8Array[] = [encodePullHeader({ serverRevision: 'gen.1', dbSize: pages, applyMode: 0 })];
  for (let n = 0; n < pages; n++) {
    const page = new Uint8Array(PAGE_BYTES);
    for (let i = 0; i < PAGE_BYTES; i += 97) page[i] = int(random, 0, 255);
    new DataView(page.buffer).setUint32(0, n);
    images.push(page);
    parts.push(encodePage(n, page));
  }
  return { bytes: Buffer.concat(parts), images };
}

/** `bytes` read in pieces that end at `cuts` (ascending offsets). */
function readInPieces(bytes: Uint8Array, cuts: number[]): { pageIds: number[]; pages: Uint8Array[]; revision: string } {
  const reader = new PullStreamReader();
  const pageIds: number[] = [];
  const pages: Uint8Array[] = [];
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    // Each piece is a buffer of its own, as a network read gives it.
    for (const p of reader.push(bytes.slice(from, to))) {
      pageIds.push(p.pageId);
      // Kept as views: a page must stay valid after later pieces arrive.
      pages.push(p.page);
    }
    from = to;
  }
  return { pageIds, pages, revision: reader.finish().serverRevision };
}

describe('PullStreamReader, an answer cut into pieces', () => {
  test('random cuts give the same pages as the whole answer (seeded)', () => {
    const seed = testSeed();
    console.log(`pull-stream-reader seed ${seed}`);
    const random = rng(seed);
    for (let round = 0; round < 40; round++) {
      const { bytes, images } = answer(random, int(random, 1, 12));
      const cuts = new Set<number>();
      const count = int(random, 0, 30);
      for (let i = 0; i < count; i++) cuts.add(int(random, 0, bytes.length));
      const read = readInPieces(bytes, [...cuts].sort((a, b) => a - b));
      expect(read.revision, `seed ${seed} round ${round}`).toBe('gen.1');
      expect(read.pageIds, `seed ${seed} round ${round}`).toEqual(images.map((_, n) => n));
      for (let n = 0; n < images.length; n++) expect(Buffer.from(read.pages[n]!).equals(images[n]!), `seed ${seed} round ${round} page ${n}`).toBe(true);
    }
  });

  test('one byte at a time', () => {
    const { bytes, images } = answer(rng(7), 3);
    const read = readInPieces(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1));
    expect(read.pageIds).toEqual([0, 1, 2]);
    for (let n = 0; n < 3; n++) expect(Buffer.from(read.pages[n]!).equals(images[n]!)).toBe(true);
  });

  test('an answer that ends inside a message is refused', () => {
    const { bytes } = answer(rng(8), 2);
    const reader = new PullStreamReader();
    reader.push(bytes.slice(0, bytes.length - 10));
    expect(() => reader.finish()).toThrow(/ended inside a message/);
  });

  test('a page message in any layout protobuf allows reads as protobufjs reads it (seeded)', () => {
    const seed = testSeed();
    const random = rng(seed);
    const PageData = protobuf.Root.fromJSON({ nested: { PageData: { fields: { pageId: { type: 'uint64', id: 1 }, encodedPage: { type: 'bytes', id: 2 } } } } }).lookupType('PageData');
    const varint = (n: number, extraBytes = 0): number[] => {
      const out: number[] = [];
      for (; n >= 0x80 || extraBytes > 0; n = Math.floor(n / 128)) {
        if (n < 0x80) extraBytes--;
        out.push((n % 128) | 0x80);
      }
      out.push(n);
      return out;
    };
    for (let round = 0; round < 200; round++) {
      const pageId = [0, int(random, 1, 300), int(random, 0, 2 ** 31), Math.floor(random() * Number.MAX_SAFE_INTEGER)][int(random, 0, 3)]!;
      const page = new Uint8Array(PAGE_BYTES).map(() => int(random, 0, 255));
      // Fields: the id (left out, once, or twice with the last one winning), the page, unknown fields, in any order, varints padded at random.
      // Padding only up to the reader's 8-byte varints (longer ones it refuses, by design).
      const id = (n: number): number[] => [0x08, ...varint(n, n < 2 ** 31 && int(random, 0, 1) ? int(random, 1, 2) : 0)];
      const fields: number[][] = [[0x12, ...varint(PAGE_BYTES, int(random, 0, 1) ? 0 : int(random, 1, 2)), ...page]];
      if (pageId !== 0 || int(random, 0, 1)) fields.push(id(pageId));
      if (int(random, 0, 3) === 0) fields.unshift(id(int(random, 0, 1000)));
      if (int(random, 0, 2) === 0) fields.splice(int(random, 0, fields.length), 0, [0x18, ...varint(int(random, 0, 2 ** 20))]);
      if (int(random, 0, 3) === 0) fields.reverse();
      const body = Uint8Array.from(fields.flat());
      const expected = PageData.toObject(PageData.decode(body), { longs: Number }) as { pageId?: number; encodedPage: Uint8Array };
      const reader = new PullStreamReader();
      const pages = reader.push(Buffer.concat([encodePullHeader({ serverRevision: 'gen.1', dbSize: 1, applyMode: 0 }), Uint8Array.from(varint(body.length)), body]));
      expect(pages.map((p) => p.pageId), `seed ${seed} round ${round}`).toEqual([expected.pageId ?? 0]);
      expect(Buffer.from(pages[0]!.page).equals(Buffer.from(expected.encodedPage)), `seed ${seed} round ${round}`).toBe(true);
    }
  });
});
