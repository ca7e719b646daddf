/**
 * The load generator's hand-written HTTP client (bench/raw-http.ts) must not make the server
 * bench easier: the server must receive exactly the bytes `node:http` sends for the same POST,
 * and the client must read every answer whole however the socket splits it (a length or
 * chunks). Both are checked against a plain TCP server that records what arrives.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RawHttpClient } from '../../bench/raw-http.js';
import { int, rng, testSeed } from '../support/generate.js';

const seed = testSeed();
console.log(`raw-http seed ${seed} (replay with OUTPOST_SEED=${seed})`);

/** Cuts whole requests (head, then `content-length` bytes) from one socket's stream. */
function requestsOf(socket: net.Socket, onRequest: (request: Buffer) => void): void {
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    for (;;) {
      const headEnd = data.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(data.toString('latin1', 0, headEnd))?.[1] ?? 0);
      const end = headEnd + 4 + length;
      if (data.length < end) return;
      onRequest(data.subarray(0, end));
      data = data.subarray(end);
    }
  });
}

/** Writes `bytes` in pieces of random sizes, one piece per turn of the event loop. */
async function writeInPieces(socket: net.Socket, bytes: Buffer, random: () => number): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + int(random, 0, Math.min(64, bytes.length - at - 1));
    socket.write(bytes.subarray(at, at + n));
    at += n;
    await new Promise((r) => setImmediate(r));
  }
}

describe('the load generator HTTP client', () => {
  const received: Buffer[] = [];
  let answer: (random: () => number) => Buffer = () => Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
  let random = rng(seed);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    requestsOf(socket, (request) => {
      received.push(request);
      const bytes = answer(random);
      // An answer that says it closes the connection is followed by the close (as turso's are).
      void writeInPieces(socket, bytes, random).then(() => {
        if (bytes.includes('\r\nConnection: close\r\n')) socket.end();
      });
    });
  });
  let port = 0;

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test(`sends node:http's bytes for the same POST (40 generated requests, seed ${seed})`, async () => {
    random = rng(seed);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const client = new RawHttpClient('127.0.0.1', port);
    try {
      for (let i = 0; i < 40; i++) {
        const path = `/db/d${int(random, 0, 100_000)}/${random() < 0.5 ? 'v2/pipeline' : 'pull-updates'}`;
        const body = random() < 0.5 ? JSON.stringify({ v: `é ${'x'.repeat(int(random, 0, 3000))} ✓` }) : Buffer.from(Array.from({ length: int(random, 0, 300) }, () => int(random, 0, 255)));
        const token = random() < 0.7 ? `tok.${int(random, 0, 1e9)}` : null;
        const headers: http.OutgoingHttpHeaders = { 'content-length': Buffer.byteLength(body) };
        if (token) headers.authorization = `Bearer ${token}`;
        await new Promise<void>((resolve, reject) => {
          const req = http.request(`http://127.0.0.1:${port}${path}`, { method: 'POST', agent, headers }, (res) => res.resume().on('end', resolve));
          req.on('error', reject);
          req.end(body);
        });
        await client.send(client.encode(path, body, token));
        expect(received.length).toBe(2 * (i + 1));
        expect(received[2 * i + 1]!.toString('latin1')).toBe(received[2 * i]!.toString('latin1'));
      }
    } finally {
      agent.destroy();
      client.destroy();
    }
  });

  test(`reads answers whole however they are split, by length or in chunks, some closing the connection (60 generated answers, seed ${seed})`, async () => {
    random = rng(seed + 1);
    const client = new RawHttpClient('127.0.0.1', port);
    let body = Buffer.alloc(0);
    answer = (r) => {
      // Some bodies end like a chunked body's last chunk ("0\r\n"), to mislead a reader that looks only at the tail.
      body = Buffer.concat([Buffer.from(Array.from({ length: int(r, 0, 500) }, () => int(r, 0, 255))), Buffer.from(r() < 0.3 ? '0\r\n' : '')]);
      // Some close the connection after the answer, and the next request must take a new one.
      const close = r() < 0.3 ? 'Connection: close\r\n' : '';
      if (r() < 0.5) return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${close}\r\n`), body]);
      const parts: Buffer[] = [Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n${close}\r\n`)];
      for (let at = 0; at < body.length; ) {
        const n = 1 + int(r, 0, Math.min(100, body.length - at - 1));
        parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(at, at + n), Buffer.from('\r\n'));
        at += n;
      }
      parts.push(Buffer.from('0\r\n\r\n'));
      return Buffer.concat(parts);
    };
    try {
      for (let i = 0; i < 60; i++) {
        const got = await client.send(client.encode('/db/a/pull-updates', 'x', null));
        expect(got.status).toBe(200);
        expect(got.body.equals(body)).toBe(true);
      }
    } finally {
      client.destroy();
    }
  });
});
