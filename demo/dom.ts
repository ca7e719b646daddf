/** The playground's one DOM lookup: an element of `index.html` by id, which must exist. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  // The caller names the element type its id has in index.html.
  return el as T;
}
