/**
 * The load generator's HTTP client (server-load.ts, server-cpu.ts): POSTs over kept-alive
 * loopback sockets, written and read by hand. The load generator shares the machine's two cores
 * with the server, so its CPU per request bounds the throughput the bench can show: through
 * `node:http`'s agent (a ClientRequest, an IncomingMessage, their streams and events per request)
 * it cost about half of the server's CPU per push; this does the same exchange with one socket
 * write and a small parser.
 *
 * The server sees the same bytes as from `node:http`: request line, `content-length`,
 * `authorization` when a token is given, `Host`, `Connection: keep-alive`, in that order, then
 * the body (test/server/raw-http.test.ts compares the two on the wire). One request at a time
 * per socket, no pipelining; a socket the server closed is dropped from the pool, and a request
 * that finds its socket closed before any answer fails (as with the agent). Answers may carry
 * `content-length` or `transfer-encoding: chunked` (streamed pull answers).
 */
import * as net from 'node:net';

export interface RawAnswer {
  status: number;
  body: Buffer;
}

interface Waiter {
  resolve(answer: RawAnswer): void;
  reject(error: Error): void;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/** One kept-alive socket and the parse state of the answer it is reading. */
class Connection {
  private readonly socket: net.Socket;
  private waiter: Waiter | null = null;
  /** The answer's bytes so far. */
  private chunks: Buffer[] = [];
  private received = 0;
  /** The answer's whole length once its head is read; -1 for a chunked body, 0 before its head. */
  private expected = 0;
  closed = false;

  constructor(
    port: number,
    host: string,
    private readonly onClose: (c: Connection) => void,
  ) {
    this.socket = net.connect(port, host);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    const close = (error?: Error): void => {
      if (this.closed) return;
      this.closed = true;
      onClose(this);
      const waiter = this.waiter;
      this.waiter = null;
      waiter?.reject(error ?? new Error('socket closed before the answer'));
    };
    this.socket.on('error', close);
    this.socket.on('close', () => close());
  }

  send(request: Buffer, waiter: Waiter): void {
    this.waiter = waiter;
    this.socket.ref();
    this.socket.write(request);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    // Parse only once the answer can be whole: its length reached, or a chunked body's last chunk seen.
    if (this.expected === 0) {
      const head = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
      const headEnd = head.indexOf(HEAD_END);
      if (headEnd < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(head.toString('latin1', 0, headEnd));
      this.expected = length ? headEnd + 4 + Number(length[1]) : -1;
    }
    if (this.expected > 0 ? this.received < this.expected : !endsChunkedBody(this.chunks)) return;
    const data = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
    const parsed = parseAnswer(data);
    // A chunk's data may itself end like the last chunk: then more is still to come.
    if (parsed === null) {
      this.chunks = [data];
      return;
    }
    this.chunks = [];
    this.received = 0;
    this.expected = 0;
    const waiter = this.waiter;
    this.waiter = null;
    this.socket.unref();
    // Marked closed now, not at the socket's close event (a turn later): the pool would
    // otherwise hand this socket to the next request (turso closes after every answer).
    if (parsed.close) {
      this.closed = true;
      this.onClose(this);
      this.destroy();
    }
    if (!waiter) return;
    if (parsed.rest > 0) waiter.reject(new Error('bytes after the answer'));
    else waiter.resolve({ status: parsed.status, body: parsed.body });
  }
}

/** Whether the bytes so far end with a chunked body's last chunk (no trailers: the server sends none). */
function endsChunkedBody(chunks: Buffer[]): boolean {
  const end = '0\r\n\r\n';
  let i = end.length;
  for (let c = chunks.length - 1; c >= 0 && i > 0; c--) {
    const chunk = chunks[c]!;
    for (let j = chunk.length - 1; j >= 0 && i > 0; j--) if (chunk[j] !== end.charCodeAt(--i)) return false;
  }
  return i === 0;
}

/** A whole answer: status, body, whether the server closes the socket after it, and bytes left over; null when a chunked body is not whole yet. */
function parseAnswer(data: Buffer): { status: number; body: Buffer; close: boolean; rest: number } | null {
  const headEnd = data.indexOf(HEAD_END);
  const head = data.toString('latin1', 0, headEnd).toLowerCase();
  const status = Number(head.slice(9, 12));
  const close = head.includes('\r\nconnection: close');
  const start = headEnd + 4;
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length) {
    const end = start + Number(length[1]);
    return { status, body: data.subarray(start, end), close, rest: data.length - end };
  }
  if (!head.includes('\r\ntransfer-encoding: chunked')) throw new Error(`an answer without a length: ${head}`);
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return null;
    const size = parseInt(data.toString('latin1', at, lineEnd), 16);
    const end = lineEnd + 2 + size + 2;
    if (data.length < end) return null;
    if (size === 0) return { status, body: Buffer.concat(parts), close, rest: data.length - end };
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = end;
  }
}

/** Kept-alive sockets to one server, one request at a time each. */
export class RawHttpClient {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly hostHeader: string;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.hostHeader = `\r\nHost: ${host}:${port}\r\nConnection: keep-alive\r\n\r\n`;
  }

  /** The whole request, as `node:http` would write it: encode once, send many times. */
  encode(path: string, body: Buffer | string, token: string | null): Buffer {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    const auth = token ? `\r\nauthorization: Bearer ${token}` : '';
    return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\ncontent-length: ${bytes.length}${auth}${this.hostHeader}`, 'latin1'), bytes]);
  }

  /** Sends an encoded request on an idle socket (or a new one); its status and body. */
  send(request: Buffer): Promise<RawAnswer> {
    let connection = this.idle.pop();
    while (connection?.closed) connection = this.idle.pop();
    if (!connection) {
      connection = new Connection(this.port, this.host, (c) => this.all.delete(c));
      this.all.add(connection);
    }
    const used = connection;
    return new Promise<RawAnswer>((resolve, reject) => {
      used.send(request, {
        resolve: (answer) => {
          if (!used.closed) this.idle.push(used);
          resolve(answer);
        },
        reject,
      });
    });
  }

  /** Closes every socket. */
  destroy(): void {
    for (const c of this.all) c.destroy();
    this.all.clear();
    this.idle.length = 0;
  }
}

/** One client per server (`http://host:port`), made on first use. */
export class RawHttpClients {
  private readonly clients = new Map<string, RawHttpClient>();

  /** The client for `url`'s origin, and the path to request. */
  route(url: string): { client: RawHttpClient; path: string } {
    const parsed = new URL(url);
    let client = this.clients.get(parsed.host);
    if (!client) {
      client = new RawHttpClient(parsed.hostname, Number(parsed.port || 80));
      this.clients.set(parsed.host, client);
    }
    return { client, path: parsed.pathname + parsed.search };
  }

  destroy(): void {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}
