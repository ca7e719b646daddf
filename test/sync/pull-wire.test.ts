/**
 * The server's hand-written pull-updates codec (protocol/pull-updates.ts: `decodePullRequest`,
 * `encodePullHeader`, `encodePage`) against protobufjs reading the same schema, on seeded
 * generated messages: the bytes written must be protobufjs's, and a request must decode to
 * what protobufjs decodes, unknown fields and repeated fields included. Malformed requests
 * must fail with ProtocolError, never decode to something.
 */
import protobuf from 'protobufjs/light.js';
import { describe, expect, test } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { PAGE_BYTES, decodePullRequest, encodePage, encodePullHeader, encodePullRequest } from '../../src/protocol/pull-updates.js';
import { int, rng, testSeed } from '../support/generate.js';

/** The schema as the codec had it with protobufjs, the reference here. */
const root = protobuf.Root.fromJSON({
  nested: {
    Req: {
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
    Raw: { fields: {} },
    Header: {
      fields: {
        serverRevision: { type: 'string', id: 1 },
        dbSize: { type: 'uint64', id: 2 },
        rawEncoding: { type: 'Raw', id: 3 },
        applyMode: { type: 'int32', id: 6 },
        protocol: { type: 'int32', id: 8 },
      },
    },
    PageData: { fields: { pageId: { type: 'uint64', id: 1 }, encodedPage: { type: 'bytes', id: 2 } } },
  },
});
const Req = root.lookupType('Req');
const Header = root.lookupType('Header');
const PageData = root.lookupType('PageData');

const seed = testSeed();
console.log(`pull-wire seed ${seed} (replay with OUTPOST_SEED=${seed})`);
const CASES = 300;

function text(random: () => number): string {
  const chars = 'abcdef0123456789.-_é漢';
  return Array.from({ length: int(random, 0, 40) }, () => chars[int(random, 0, chars.length - 1)]).join('');
}

function bytes(random: () => number, max: number): Uint8Array {
  return Uint8Array.from({ length: int(random, 0, max) }, () => int(random, 0, 255));
}

/** A request as a client might send it: some fields set, some not, negative int32s now and then. */
function request(random: () => number): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (random() < 0.7) fields.encoding = random() < 0.1 ? -int(random, 1, 5) : int(random, 0, 2);
  if (random() < 0.5) fields.serverRevision = text(random);
  if (random() < 0.8) fields.clientRevision = text(random);
  if (random() < 0.7) fields.longPollTimeoutMs = random() < 0.2 ? 2 ** 32 - 1 : int(random, 0, 120_000);
  if (random() < 0.3) fields.serverPagesSelector = bytes(random, 64);
  if (random() < 0.2) fields.clientPages = bytes(random, 32);
  if (random() < 0.2) fields.serverQuerySelector = text(random);
  if (random() < 0.5) fields.streamKind = int(random, 0, 3);
  return fields;
}

/** What the server decoded with protobufjs (its former decodePullRequest). */
function referenceDecode(wire: Uint8Array): unknown {
  const m = Req.toObject(Req.decode(wire), { defaults: true, longs: Number, bytes: Uint8Array }) as Record<string, unknown>;
  return {
    encoding: Number(m.encoding),
    serverRevision: String(m.serverRevision ?? ''),
    clientRevision: String(m.clientRevision ?? ''),
    longPollTimeoutMs: Number(m.longPollTimeoutMs),
    serverPagesSelector: Uint8Array.from((m.serverPagesSelector as Uint8Array | undefined) ?? []),
    streamKind: Number(m.streamKind ?? 0),
  };
}

const normalise = (r: ReturnType<typeof decodePullRequest>): unknown => ({ ...r, serverPagesSelector: Uint8Array.from(r.serverPagesSelector) });

describe('pull-updates wire codec', () => {
  test(`decodes every generated request as protobufjs does (${CASES} cases, seed ${seed})`, () => {
    const random = rng(seed);
    for (let i = 0; i < CASES; i++) {
      const fields = request(random);
      let wire = Req.encode(Req.create(fields)).finish();
      // Now and then a field twice (the last wins) or an unknown field (skipped).
      if (random() < 0.2) wire = Buffer.concat([wire, Req.encode(Req.create(request(random))).finish()]);
      if (random() < 0.2) wire = Buffer.concat([wire, Uint8Array.of((12 << 3) | 0, 0x96, 0x01, (13 << 3) | 2, 2, 7, 7, (14 << 3) | 5, 1, 2, 3, 4)]);
      expect(normalise(decodePullRequest(wire)), `case ${i}`).toEqual(referenceDecode(wire));
    }
  });

  test('decodes what the sync client encodes', () => {
    const wire = encodePullRequest({ clientRevision: 'abc.7', longPollTimeoutMs: 2000 });
    expect(decodePullRequest(wire)).toMatchObject({ clientRevision: 'abc.7', serverRevision: '', longPollTimeoutMs: 2000, encoding: 0, streamKind: 0 });
  });

  test(`encodes headers and pages as protobufjs does (${CASES} cases, seed ${seed})`, () => {
    const random = rng(seed + 1);
    for (let i = 0; i < CASES; i++) {
      const h = { serverRevision: text(random), dbSize: random() < 0.2 ? int(random, 0, 2 ** 40) : int(random, 0, 70_000), applyMode: int(random, 0, 1) };
      const expected = Header.encodeDelimited(Header.create({ serverRevision: h.serverRevision, dbSize: h.dbSize, rawEncoding: {}, applyMode: h.applyMode, protocol: 1 })).finish();
      expect(Buffer.from(encodePullHeader(h)).equals(Buffer.from(expected)), `header case ${i}`).toBe(true);
      const pageId = random() < 0.2 ? int(random, 0, 2 ** 32) : int(random, 0, 300);
      const page = random() < 0.5 ? bytes(random, 16) : new Uint8Array(PAGE_BYTES).fill(int(random, 0, 255));
      const expectedPage = PageData.encodeDelimited(PageData.create({ pageId, encodedPage: page })).finish();
      expect(Buffer.from(encodePage(pageId, page)).equals(Buffer.from(expectedPage)), `page case ${i}`).toBe(true);
    }
  });

  test(`refuses truncated requests with ProtocolError (${CASES} cases, seed ${seed})`, () => {
    const random = rng(seed + 2);
    for (let i = 0; i < CASES; i++) {
      const wire = Req.encode(Req.create({ ...request(random), clientRevision: `rev.${i}`, serverPagesSelector: bytes(random, 8) })).finish();
      const cut = wire.subarray(0, int(random, 1, wire.length - 1));
      // A cut at a field boundary is a valid shorter request; anywhere else it must be refused.
      let reference: unknown = null;
      try {
        reference = referenceDecode(cut);
      } catch {
        reference = null;
      }
      if (reference === null) expect(() => decodePullRequest(cut), `case ${i}`).toThrow(ProtocolError);
    }
  });

  test('refuses a field of the wrong wire type and a wire type protobuf does not have', () => {
    // client_revision (3) sent as a varint; then wire type 7.
    expect(() => decodePullRequest(Uint8Array.of((3 << 3) | 0, 1))).toThrow(ProtocolError);
    expect(() => decodePullRequest(Uint8Array.of((9 << 3) | 7, 1))).toThrow(ProtocolError);
    // A varint longer than 10 bytes.
    expect(() => decodePullRequest(Uint8Array.of(1 << 3, ...Array<number>(11).fill(0xff), 1))).toThrow(ProtocolError);
  });
});
