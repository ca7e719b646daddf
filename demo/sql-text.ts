/** SQL text helpers shared by the playground's dot-commands. */

/** Quotes an identifier for SQL ("a""b"). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A value as an SQL literal, for `.dump`. */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : value > 0 ? '1e999' : value < 0 ? '-1e999' : 'NULL';
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return `X'${[...value].map((b) => b.toString(16).padStart(2, '0')).join('')}'`;
  return `'${String(value).replace(/'/g, "''")}'`;
}

/** Splits a command line into words; "double" or 'single' quotes group words. */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}
