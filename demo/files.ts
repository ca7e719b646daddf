/**
 * Files in and out of the page: downloads, the file picker, and files dropped on the page
 * (kept by name, so `.read NAME` and `.import --csv NAME TABLE` find them without a picker).
 */
import type { Block } from './shell.js';

/** Saves `data` as a download named `fileName`. */
export function download(fileName: string, data: Blob): void {
  const url = URL.createObjectURL(data);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Asks for one file through `input`; null when the user cancels. */
export function pickFile(input: HTMLInputElement, accept: string): Promise<File | null> {
  input.accept = accept;
  input.value = '';
  return new Promise((resolve) => {
    input.onchange = () => resolve(input.files?.[0] ?? null);
    input.oncancel = () => resolve(null);
    input.click();
  });
}

/** True for a file that opens as a database rather than being kept for a command. */
export function isDatabaseFile(file: File): boolean {
  return /\.(db|sqlite|sqlite3)$/i.test(file.name);
}

/** Files dropped on the page, by name. */
export class DroppedFiles {
  private readonly files = new Map<string, File>();

  get(name: string): File | undefined {
    return this.files.get(name);
  }

  /** Keeps `file`; the returned note says which command uses it. */
  keep(file: File): Block {
    this.files.set(file.name, file);
    return {
      kind: 'text',
      text: /\.csv$/i.test(file.name) ? `dropped ${file.name}: import it with .import --csv ${file.name} TABLE` : `dropped ${file.name}: run it with .read ${file.name}`,
    };
  }
}

/** Shows `hint` while files are dragged over the window, and hands dropped files to `onDrop`. */
export function acceptDrops(hint: HTMLElement, onDrop: (files: FileList) => void): void {
  window.addEventListener('dragover', (e) => {
    e.preventDefault();
    hint.hidden = false;
  });
  window.addEventListener('dragleave', (e) => {
    if (e.relatedTarget === null) hint.hidden = true;
  });
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    hint.hidden = true;
    if (e.dataTransfer?.files.length) onDrop(e.dataTransfer.files);
  });
}
