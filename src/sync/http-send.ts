/**
 * How the HTTP sync transport (transport.ts) sends one request: `HttpSend`, one POST with its
 * headers, body and abort signal, answering with an `HttpAnswer` once the status and headers
 * arrived. The default goes through a `fetch` (the global one, or `sync.fetch`): `fetchSend`.
 * Node's entry passes its own over node:http (node/http-send.ts), which reads a long answer for
 * about half the CPU of undici's WHATWG streams; the browser build never loads it.
 *
 * A sender's contract: it rejects only before any answer, with the underlying error as the
 * rejection's `cause` (its `code` says whether the connection died, transport.ts
 * `deadConnection`); once the signal aborts, both the request and a body being read end. The
 * body's `read` rejects when the body breaks off (cut, reset, aborted), and resolves `null`
 * only after the whole body arrived.
 */

/** One request as the transport sends it (always a POST). */
export interface HttpRequest {
  headers: Record<string, string>;
  body: Uint8Array;
  signal: AbortSignal;
}

/** An answer whose status and headers arrived; its body is read with `read` or `bytes`. */
export interface HttpAnswer {
  readonly status: number;
  /** A header's value, or null when absent. */
  header(name: string): string | null;
  /** The next piece of the body, or null at its end. */
  read(): Promise<Uint8Array | null>;
  /** The whole (rest of the) body. */
  bytes(): Promise<Uint8Array>;
  /** The rest of the body is not wanted (a no-op once it was read whole). */
  cancel(): void;
}

export type HttpSend = (url: string, request: HttpRequest) => Promise<HttpAnswer>;

/** Requests through `fetch()` (looked up at each request: the global one by default). */
export function fetchSend(getFetch: () => typeof fetch): HttpSend {
  return async (url, request) => {
    const res = await getFetch()(url, { method: 'POST', headers: request.headers, body: request.body as BodyInit, signal: request.signal });
    let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
    let whole = false;
    return {
      status: res.status,
      header: (name) => res.headers.get(name),
      async read() {
        if (!res.body) {
          // A Response built without a stream (a test's, a proxy's): its body in one piece.
          if (whole) return null;
          whole = true;
          return new Uint8Array(await res.arrayBuffer());
        }
        reader ??= res.body.getReader();
        const { done, value } = await reader.read();
        return done ? null : value;
      },
      bytes: async () => new Uint8Array(await res.arrayBuffer()),
      cancel() {
        (reader ? reader.cancel() : res.body?.cancel())?.catch(() => {});
      },
    };
  };
}
