/**
 * A result grid that renders only the rows in view, so a result of a million rows scrolls
 * without freezing the page. Rows have a fixed height; column widths come from the header and
 * the first rows. ARIA: role=table with aria-rowcount, so screen readers know the full size.
 */
import type { SqlValue } from 'outpost';

const ROW_HEIGHT_PX = 26;
const OVERSCAN_ROWS = 10;
const MAX_VISIBLE_HEIGHT_PX = 360;

export function formatValue(v: SqlValue): string {
  if (v === null) return 'NULL';
  if (v instanceof Uint8Array) {
    const hex = [...v.subarray(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
    return `x'${hex}${v.length > 16 ? '…' : ''}' (${v.length} bytes)`;
  }
  return String(v);
}

export function renderGrid(columns: string[], rows: SqlValue[][]): HTMLElement {
  const widths = columns.map((c, i) => {
    let w = c.length;
    for (let r = 0; r < Math.min(rows.length, 100); r++) w = Math.max(w, formatValue(rows[r]![i]!).length);
    return Math.min(Math.max(w, 4), 48);
  });
  const template = widths.map((w) => `minmax(${w * 0.6 + 1.2}em, max-content)`).join(' ');

  const scroller = document.createElement('div');
  scroller.className = 'grid-scroll';
  scroller.setAttribute('role', 'table');
  scroller.setAttribute('aria-rowcount', String(rows.length + 1));
  scroller.setAttribute('aria-colcount', String(columns.length));
  scroller.tabIndex = 0;
  scroller.style.maxHeight = `${MAX_VISIBLE_HEIGHT_PX + ROW_HEIGHT_PX}px`;

  const header = document.createElement('div');
  header.className = 'grid-row grid-header';
  header.setAttribute('role', 'row');
  header.style.gridTemplateColumns = template;
  for (const c of columns) {
    const cell = document.createElement('div');
    cell.setAttribute('role', 'columnheader');
    cell.textContent = c;
    header.append(cell);
  }
  const body = document.createElement('div');
  body.className = 'grid-body';
  body.style.height = `${rows.length * ROW_HEIGHT_PX}px`;
  scroller.append(header, body);

  let first = -1;
  let last = -1;
  const draw = (): void => {
    const top = Math.max(0, scroller.scrollTop - ROW_HEIGHT_PX);
    const from = Math.max(0, Math.floor(top / ROW_HEIGHT_PX) - OVERSCAN_ROWS);
    const to = Math.min(rows.length, Math.ceil((top + scroller.clientHeight + ROW_HEIGHT_PX) / ROW_HEIGHT_PX) + OVERSCAN_ROWS);
    if (from === first && to === last) return;
    first = from;
    last = to;
    const fragment = document.createDocumentFragment();
    for (let r = from; r < to; r++) {
      const row = document.createElement('div');
      row.className = 'grid-row';
      row.setAttribute('role', 'row');
      row.setAttribute('aria-rowindex', String(r + 2));
      row.style.gridTemplateColumns = template;
      row.style.transform = `translateY(${r * ROW_HEIGHT_PX}px)`;
      for (const v of rows[r]!) {
        const cell = document.createElement('div');
        cell.setAttribute('role', 'cell');
        cell.textContent = formatValue(v);
        if (v === null) cell.className = 'null';
        else if (typeof v === 'number' || typeof v === 'bigint') cell.className = 'num';
        row.append(cell);
      }
      fragment.append(row);
    }
    body.replaceChildren(fragment);
  };
  scroller.addEventListener('scroll', () => requestAnimationFrame(draw), { passive: true });
  // Draw once attached, when clientHeight is known.
  requestAnimationFrame(draw);
  queueMicrotask(draw);
  return scroller;
}
