/**
 * Random identifiers that travel on the wire: the random part of a client's id (the
 * `client_id` of its pushes) and the server's generation (the first part of its revisions).
 */

/** `n` random bytes as lowercase hex. */
export function randomHex(n: number): string {
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}
