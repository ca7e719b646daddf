/**
 * The schema sidebar: tables, views and indexes of the open database, each with its columns.
 * Reading the schema, building the tree and telling the editor what to complete are separate
 * steps; `refresh` runs all three.
 */
import type { Database } from 'outpost';
import type { CompletionSchema } from './editor.js';

export interface SchemaColumn {
  name: string;
  type: string | null;
  primaryKey: boolean;
}

export interface SchemaObject {
  name: string;
  type: string;
  /** The table an index or trigger belongs to (a table's own name otherwise). */
  table: string;
  columns: SchemaColumn[];
}

interface SchemaRow {
  type: string;
  name: string;
  tbl_name: string;
  col: string | null;
  coltype: string | null;
  pk: number | null;
}

/** Tables first, then views, then the rest; each with its columns in order. */
export async function readSchema(db: Database): Promise<SchemaObject[]> {
  const rows = await db.query<SchemaRow>(
    `SELECT m.type, m.name, m.tbl_name, p.name AS col, p.type AS coltype, p.pk
     FROM sqlite_schema AS m LEFT JOIN pragma_table_info(m.name) AS p
     WHERE m.name NOT LIKE 'sqlite_%'
     ORDER BY CASE m.type WHEN 'table' THEN 0 WHEN 'view' THEN 1 ELSE 2 END, m.name, p.cid`,
  );
  const objects = new Map<string, SchemaObject>();
  for (const row of rows) {
    const entry = objects.get(row.name) ?? { name: row.name, type: row.type, table: row.tbl_name, columns: [] };
    if (row.col !== null) entry.columns.push({ name: row.col, type: row.coltype, primaryKey: Boolean(row.pk) });
    objects.set(row.name, entry);
  }
  return [...objects.values()];
}

/** Tables and views with their columns, for the editor's completion. */
export function completionOf(objects: SchemaObject[]): CompletionSchema {
  const completion: CompletionSchema = {};
  for (const o of objects) {
    if (o.type !== 'index' && o.columns.length > 0) completion[o.name] = o.columns.map((c) => c.name);
  }
  return completion;
}

/** Replaces `tree`'s content with one expandable item per object. */
export function renderSchemaTree(tree: HTMLElement, objects: SchemaObject[]): void {
  tree.replaceChildren();
  if (objects.length === 0) tree.append(Object.assign(document.createElement('p'), { textContent: 'No tables yet.' }));
  for (const o of objects) {
    const details = document.createElement('details');
    details.setAttribute('role', 'treeitem');
    // A small schema starts expanded; a large one would push everything off screen.
    details.open = o.type === 'table' && objects.length < 12;
    const summary = document.createElement('summary');
    summary.textContent = o.name;
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = o.type === 'index' ? `index on ${o.table}` : o.type;
    summary.append(kind);
    details.append(summary);
    if (o.columns.length > 0) {
      const ul = document.createElement('ul');
      ul.setAttribute('role', 'group');
      for (const c of o.columns) {
        const li = document.createElement('li');
        li.textContent = `${c.name}${c.type ? ` ${c.type}` : ''}`;
        if (c.primaryKey) li.className = 'pk';
        ul.append(li);
      }
      details.append(ul);
    }
    tree.append(details);
  }
}

export class SchemaPanel {
  /**
   * @param tree the sidebar's tree element
   * @param onSchema told the tables and columns after each refresh (the editor's completion)
   */
  constructor(
    private readonly tree: HTMLElement,
    private readonly onSchema: (schema: CompletionSchema) => void,
  ) {}

  /** Reads the schema of `db` and shows it. */
  async refresh(db: Database): Promise<void> {
    const objects = await readSchema(db);
    renderSchemaTree(this.tree, objects);
    this.onSchema(completionOf(objects));
  }
}
