/**
 * The node:http sender (src/node/http-send.ts) answers every generated case as `fetch` does:
 * a raw TCP server plays a seeded pull-updates answer, length-delimited or chunked, written in
 * random pieces, and then either whole, cut at a random byte (headers included), stalled past
 * `timeoutMs` at a random byte, stalled until the transport is aborted, with a 200 and garbage
 * for a body, or with garbage instead of HTTP. Each case runs through `pull` or `pullStream`
 * with both senders (or first redirected, 307 or 308, to another path); the outcome (the pages, or the SyncError's code) must be the expected one
 * and the same for both, and the request counts must match (a cut before any answer is resent),
 * but for a redirect, which Node 20's fetch fails (below).
 */
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { APPLY_INCREMENTAL, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import { HttpTransport } from '../../src/sync/transport.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { SENDERS } from '../support/senders.js';

type Fate = 'whole' | 'redirect' | 'cut' | 'stall' | 'abort' | 'garbage-body' | 'not-http';
interface Case {
  fate: Fate;
  chunked: boolean;
  /** The answer's bytes, as written. */
  bytes: Buffer;
  /** Where a cut or stall falls. */
  at: number;
  /** The piece sizes it is written in. */
  pieces: number[];
  pages: Uint8Array[];
  stream: boolean;
}

const seed = testSeed();
const CASES = 60;
const TIMEOUT_MS = 400;
let server: net.Server;
let url = '';
let current: Case | null = null;
let requests = 0;
/** Called when the server stalls an answer (the abort case aborts then). */
let onStall: () => void = () => {};
const sockets = new Set<net.Socket>();

function makeCase(random: () => number): Case {
  const fate = pick(random, ['whole', 'whole', 'redirect', 'cut', 'cut', 'stall', 'abort', 'garbage-body', 'not-http'] as const);
  const chunked = random() < 0.5;
  const pages = Array.from({ length: int(random, 1, 5) }, () => Uint8Array.from({ length: 4096 }, () => int(random, 0, 255)));
  let body = Buffer.concat([encodePullHeader({ serverRevision: 'g.1', dbSize: pages.length, applyMode: APPLY_INCREMENTAL }), ...pages.map((p, i) => encodePage(i + 1, p))]);
  if (fate === 'garbage-body') body = Buffer.from(Uint8Array.from({ length: int(random, 1, 3000) }, () => int(random, 0, 255)));
  let bytes: Buffer;
  if (fate === 'not-http') bytes = Buffer.from(Uint8Array.from({ length: int(random, 1, 400) }, () => int(random, 0, 255)));
  else {
    const head = `HTTP/1.1 200 OK\r\ncontent-type: application/protobuf\r\n${chunked ? 'transfer-encoding: chunked' : `content-length: ${body.length}`}\r\n\r\n`;
    const framed: Buffer[] = [];
    if (chunked) {
      for (let i = 0; i < body.length; ) {
        const n = Math.min(body.length - i, int(random, 1, 9000));
        framed.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(i, i + n), Buffer.from('\r\n'));
        i += n;
      }
      framed.push(Buffer.from('0\r\n\r\n'));
    } else framed.push(body);
    bytes = Buffer.concat([Buffer.from(head), ...framed]);
  }
  const pieces: number[] = [];
  for (let left = bytes.length; left > 0; ) {
    const n = Math.min(left, int(random, 1, 20000));
    pieces.push(n);
    left -= n;
  }
  return { fate, chunked, bytes, at: int(random, 0, bytes.length - 1), pieces, pages, stream: random() < 0.5 };
}

/** Plays the current case on one connection, once the request (headers and body) arrived. */
function serve(socket: net.Socket): void {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => {});
  let got = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    for (;;) {
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(got.subarray(0, end).toString())?.[1] ?? 0);
      if (got.length < end + 4 + length) return;
      const path = got.subarray(0, end).toString().split(' ')[1] ?? '';
      got = got.subarray(end + 4 + length);
      requests++;
      // A redirect case answers 307 or 308 on the first URL, and the whole answer on the second.
      if (current!.fate === 'redirect' && path.startsWith('/db/x/')) {
        socket.write(`HTTP/1.1 ${current!.chunked ? 307 : 308} Redirect\r\nlocation: /db/y/pull-updates\r\ncontent-length: 0\r\n\r\n`);
      } else void play(socket, current!);
    }
  });
}

async function play(socket: net.Socket, c: Case): Promise<void> {
  // The transport this request came from (a later case's must not be aborted by this one).
  const stalled = onStall;
  const stop = c.fate === 'cut' || c.fate === 'stall' || c.fate === 'abort' ? c.at : c.bytes.length;
  let sent = 0;
  for (const n of c.pieces) {
    if (sent >= stop || socket.destroyed) break;
    const piece = c.bytes.subarray(sent, Math.min(sent + n, stop));
    socket.write(piece);
    sent += piece.length;
    await new Promise((r) => setImmediate(r));
  }
  if (c.fate === 'cut' || c.fate === 'not-http') socket.destroy();
  else if (c.fate === 'stall' || c.fate === 'abort') stalled();
}

beforeAll(async () => {
  console.log(`http senders seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  server = net.createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/db/x`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

/** What one sender made of the current case: the pages' bytes, or the error's code; and how many requests the server saw. */
async function outcome(send: (typeof SENDERS)[number]['send'], c: Case): Promise<{ result: string; requests: number }> {
  const transport = new HttpTransport({ url, timeoutMs: c.fate === 'abort' ? 30_000 : TIMEOUT_MS, send });
  onStall = c.fate === 'abort' ? () => transport.abort(false) : () => {};
  const before = requests;
  let result: string;
  try {
    const pages: Uint8Array[] = [];
    if (c.stream) await transport.pullStream({ clientRevision: 'g.0' }, (page) => pages.push(page.page.slice()));
    else pages.push(...(await transport.pull({ clientRevision: 'g.0' })).pages.map((p) => p.page.slice()));
    result = Buffer.concat(pages).equals(Buffer.concat(c.pages)) ? 'ok' : 'wrong pages';
  } catch (e) {
    result = e instanceof SyncError ? e.code : `not a SyncError: ${String(e)}`;
  }
  // Connections the case left open (a stall) are the server's to end.
  for (const s of sockets) if (c.fate === 'stall' || c.fate === 'abort') s.destroy();
  return { result, requests: requests - before };
}

const EXPECTED: Record<Fate, string[]> = {
  whole: ['ok'],
  redirect: ['ok'],
  cut: ['NETWORK'],
  stall: ['TIMEOUT'],
  abort: ['NETWORK'],
  'garbage-body': ['PROTOCOL'],
  'not-http': ['NETWORK'],
};

test(`generated answers, whole, cut, stalled, aborted or garbage: node:http's outcome is fetch's (${CASES} cases)`, { timeout: 120_000 }, async () => {
  const random = rng(seed);
  const tally: Record<string, number> = {};
  for (let i = 0; i < CASES; i++) {
    const c = makeCase(random);
    current = c;
    const results = [];
    for (const s of SENDERS) results.push({ name: s.name, ...(await outcome(s.send, c)) });
    const label = `seed ${seed} case ${i}: ${c.fate}, ${c.chunked ? 'chunked' : 'length'}, ${c.stream ? 'pullStream' : 'pull'}, at ${c.at}/${c.bytes.length}: ${JSON.stringify(results)}`;
    // Node 20's fetch (undici) cannot follow a redirect of a POST with a Uint8Array body ("Cannot
    // perform ArrayBuffer.prototype.slice on a detached ArrayBuffer"): NETWORK. Browsers follow it, and so does node:http.
    for (const r of results) expect(c.fate === 'redirect' && r.name === 'fetch' ? ['ok', 'NETWORK'] : EXPECTED[c.fate], label).toContain(r.result);
    if (results[0]!.result === results[1]!.result) expect(results[1]!.requests, label).toBe(results[0]!.requests);
    const key = `${c.fate}: ${results.map((r) => `${r.name} ${r.result} x${r.requests}`).join(', ')}`;
    tally[key] = (tally[key] ?? 0) + 1;
  }
  console.log(`http senders seed ${seed}: ${JSON.stringify(tally)}`);
});
