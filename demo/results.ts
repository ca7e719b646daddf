/**
 * The results pane: the shell's output blocks as DOM. A result is shown in the output mode
 * (`.mode`): a virtual grid, JSON, CSV, or one `column = value` line per cell.
 */
import type { SqlValue } from 'outpost';
import { toCsv } from './csv.js';
import { formatValue, renderGrid } from './grid.js';
import type { Block, OutputMode } from './shell.js';

/** Replaces what `container` shows with `blocks`. */
export function renderBlocks(container: HTMLElement, blocks: Block[], mode: OutputMode): void {
  container.replaceChildren(...blocks.map((block) => renderBlock(block, mode)));
}

/** An error as a block, keeping its code (SQLite's or Outpost's) when it has one. */
export function errorBlock(e: unknown): Block {
  const err = e as Error & { code?: string };
  return { kind: 'error', message: err.message, ...(err.code ? { code: err.code } : {}) };
}

function head(label: string, detail: string): HTMLElement {
  const h = document.createElement('div');
  h.className = 'block-head';
  const code = document.createElement('code');
  code.textContent = label;
  const span = document.createElement('span');
  span.textContent = detail;
  h.append(code, span);
  return h;
}

function pre(text: string): HTMLElement {
  const p = document.createElement('pre');
  p.textContent = text;
  return p;
}

function jsonValue(v: SqlValue): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return formatValue(v);
  return v;
}

function renderBlock(block: Block, mode: OutputMode): HTMLElement {
  const el = document.createElement('article');
  el.className = 'block';
  if (block.kind === 'error') {
    el.classList.add('error');
    el.setAttribute('role', 'alert');
    el.append(head(block.sql ?? 'error', block.code ?? 'error'), pre(block.message));
    return el;
  }
  if (block.kind === 'text') {
    el.append(pre(block.text));
    return el;
  }
  const r = block.result;
  const detail =
    r.columns.length > 0
      ? `${r.rows.length} row${r.rows.length === 1 ? '' : 's'} · ${r.timeMs.toFixed(1)} ms`
      : `${r.changes} row${r.changes === 1 ? '' : 's'} changed · ${r.timeMs.toFixed(1)} ms`;
  el.append(head(r.sql, detail));
  if (r.columns.length === 0) return el;
  switch (mode) {
    case 'table':
      el.append(renderGrid(r.columns, r.rows));
      break;
    case 'json':
      el.append(pre(JSON.stringify(r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, jsonValue(row[i]!)]))), null, 2)));
      break;
    case 'csv':
      el.append(pre(toCsv(r.columns, r.rows)));
      break;
    case 'line': {
      const width = Math.max(...r.columns.map((c) => c.length));
      el.append(pre(r.rows.map((row) => r.columns.map((c, i) => `${c.padStart(width)} = ${formatValue(row[i]!)}`).join('\n')).join('\n\n')));
      break;
    }
  }
  return el;
}
