/**
 * Pure: what a `CREATE VIRTUAL TABLE` statement says about where the table's data lives, read
 * as SQLite reads it (comments skipped, names unquoted, module names and FTS5 option names in
 * any case). Sync needs it to tell the one kind of virtual table whose shadow tables hold only
 * derived data, an FTS5 table with external content (`content='docs'`), from every other kind,
 * whose shadow tables hold the only copy of its rows (change-log.ts refuses their writes).
 *
 * The outside adversary found that a regular expression on the raw text was not enough: a
 * contentless FTS5 table (`content=''`), a module name in quotes (`USING "fts5"`) or after a
 * comment (`USING/**\/rtree`) were taken for derived data, so their writes committed, never
 * synced and were lost at the next pull. Whatever this cannot read is treated as holding data.
 */

/** The statement's text with its comments replaced by a space; quoted text is kept as it is. */
function withoutComments(sql: string): string {
  let out = '';
  for (let i = 0; i < sql.length; ) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"' || ch === '`' || ch === '[') {
      const closer = ch === '[' ? ']' : ch;
      let end = sql.indexOf(closer, i + 1);
      // A doubled quote inside a quoted string or name stands for the quote itself.
      while (end >= 0 && closer !== ']' && sql[end + 1] === closer) end = sql.indexOf(closer, end + 2);
      const stop = end < 0 ? sql.length : end + 1;
      out += sql.slice(i, stop);
      i = stop;
    } else if (sql.startsWith('--', i) || sql.startsWith('/*', i)) {
      const closer = ch === '-' ? '\n' : '*/';
      const end = sql.indexOf(closer, i + 2);
      i = end < 0 ? sql.length : end + closer.length;
      out += ' ';
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

/** A name or value without its quotes (any of SQLite's four), doubled quotes made single. */
export function unquote(token: string): string {
  const t = token.trim();
  const first = t[0];
  if (t.length >= 2 && (first === "'" || first === '"' || first === '`') && t.endsWith(first)) return t.slice(1, -1).replaceAll(first + first, first);
  if (t.length >= 2 && first === '[' && t.endsWith(']')) return t.slice(1, -1);
  return t;
}

/** The arguments between the module's parentheses, split at commas outside quotes and parentheses. */
function splitArguments(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"' || ch === '`' || ch === '[') {
      const closer = ch === '[' ? ']' : ch;
      let end = text.indexOf(closer, i + 1);
      while (end >= 0 && closer !== ']' && text[end + 1] === closer) end = text.indexOf(closer, end + 2);
      i = end < 0 ? text.length : end;
    } else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  args.push(text.slice(start).trim());
  return args.filter((a) => a.length > 0);
}

const NAME = String.raw`(?:"(?:[^"]|"")*"|\x60(?:[^\x60]|\x60\x60)*\x60|\[[^\]]*\]|'(?:[^']|'')*'|[\w$]+)`;
const HEAD = new RegExp(String.raw`^\s*CREATE\s+VIRTUAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?${NAME}(?:\s*\.\s*${NAME})?\s+USING\s+(${NAME})\s*(?:\(([\s\S]*)\))?\s*;?\s*$`, 'i');

/** The module (lower case) and arguments of a CREATE VIRTUAL TABLE statement; null when it does not read as one. */
export function virtualTableModule(sql: string): { module: string; args: string[] } | null {
  const head = HEAD.exec(withoutComments(sql));
  if (!head) return null;
  return { module: unquote(head[1]!).toLowerCase(), args: splitArguments(head[2] ?? '') };
}

/**
 * Whether the shadow tables of the virtual table `sql` creates hold only data derived from
 * ordinary tables: an FTS5 table whose `content` option names a table (external content). Its
 * index is rebuilt wherever its content rows are applied, by the triggers that keep it current.
 */
export function shadowDataIsDerived(sql: string): boolean {
  const parsed = virtualTableModule(sql);
  if (!parsed || parsed.module !== 'fts5') return false;
  let content: string | null = null;
  for (const arg of parsed.args) {
    const option = /^([\w$]+)\s*=\s*([\s\S]*)$/.exec(arg);
    if (option && option[1]!.toLowerCase() === 'content') content = unquote(option[2]!);
  }
  return content !== null && content !== '';
}
