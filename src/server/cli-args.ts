/** Parsers of the command line's values, kept apart from `cli.ts` (which runs on import) so tests can call them. */

/**
 * A byte count: a whole number, optionally with a unit (k/KB/KiB, M/MB/MiB, G/GB/GiB, all
 * powers of 1024). Anything else is an error: a limit that silently parsed as nothing would
 * remove the limit.
 */
export function parseBytes(flag: string, text: string): number {
  const m = /^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$/i.exec(text);
  if (!m) throw new Error(`--${flag} takes a size such as 1048576, 512KiB or 32MB, not ${JSON.stringify(text)}`);
  const unit = m[2]!.toLowerCase()[0] ?? '';
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const bytes = Number(m[1]) * scale;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`--${flag} must be a positive size, not ${JSON.stringify(text)}`);
  return bytes;
}

/** A positive whole number (a count or milliseconds); anything else is an error. */
export function parseCount(flag: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) <= 0) throw new Error(`--${flag} takes a positive whole number, not ${JSON.stringify(text)}`);
  return Number(text);
}


/** A fraction in (0, 1] such as 0.25; anything else is an error. */
export function parseFraction(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\s*(0?\.\d+|1(\.0*)?)\s*$/.test(text) || !(n > 0 && n <= 1)) throw new Error(`--${flag} takes a fraction in (0, 1] such as 0.25, not ${JSON.stringify(text)}`);
  return n;
}
