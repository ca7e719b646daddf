/**
 * A TCP proxy in front of a server that can cut the byte stream at an exact offset, as a proxy
 * that drops a connection, a server killed in the middle of a request, or one that dies while
 * it streams an answer would: `cutAt('down', n)` lets the first `n` bytes the server sends
 * (counted over every connection from then on) through and then ends the connection, by a
 * reset or a plain close (the client sees a truncated body); `cutAt('up', n)` does the same to
 * what the client sends. One cut per arming; later connections pass untouched.
 */
import { type AddressInfo, type Server, type Socket, createServer, connect } from 'node:net';

export type Direction = 'up' | 'down';
export type CutKind = 'reset' | 'close';

export class CuttingProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private armed: { direction: Direction; left: number; kind: CutKind } | null = null;
  /** Bytes that went through each way since the proxy started. */
  readonly bytes = { up: 0, down: 0 };
  cuts = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  /** Starts listening; resolves with the proxy's base URL. */
  async listen(): Promise<string> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  cutAt(direction: Direction, bytes: number, kind: CutKind): void {
    this.armed = { direction, left: bytes, kind };
  }

  disarm(): void {
    this.armed = null;
  }

  get isArmed(): boolean {
    return this.armed !== null;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const end = (kind: CutKind): void => {
      for (const s of [client, upstream]) {
        if (kind === 'reset') s.resetAndDestroy();
        else s.end(() => s.destroy());
      }
    };
    const relay = (from: Socket, to: Socket, direction: Direction): void => {
      from.on('data', (chunk: Buffer) => {
        const cut = this.armed?.direction === direction ? this.armed : null;
        if (cut && chunk.length >= cut.left) {
          const kept = chunk.subarray(0, cut.left);
          this.armed = null;
          this.cuts++;
          this.bytes[direction] += kept.length;
          if (kept.length > 0) to.write(kept);
          end(cut.kind);
          return;
        }
        if (cut) cut.left -= chunk.length;
        this.bytes[direction] += chunk.length;
        to.write(chunk);
      });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    };
    relay(client, upstream, 'up');
    relay(upstream, client, 'down');
  }
}
