/** The checksum of Outpost's own record formats (the sync state file, the server's revision log). */

/** FNV-1a over bytes: enough to tell a torn record from a whole one (not a cryptographic hash). */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h;
}
