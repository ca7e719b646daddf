/**
 * The SQL editor: CodeMirror with SQLite highlighting and completion, Ctrl/Cmd+Enter to run,
 * and the query history of the open database (ArrowUp on the first line and ArrowDown on the
 * last walk it; the History menu picks from it).
 */
import { autocompletion } from '@codemirror/autocomplete';
import { defaultKeymap, history as editHistory, historyKeymap } from '@codemirror/commands';
import { SQLite, sql } from '@codemirror/lang-sql';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, placeholder } from '@codemirror/view';

/** Table name -> column names, for completion. */
export type CompletionSchema = Record<string, string[]>;

export class Editor {
  private readonly view: EditorView;
  private readonly schemaCompartment = new Compartment();
  /** Earlier queries of the open database, newest first. */
  private history: string[] = [];
  /** Which history entry the editor shows; -1 when it shows the user's own text. */
  private historyIndex = -1;

  /**
   * @param parent where CodeMirror goes
   * @param historyMenu the History `<select>`
   * @param onRun called on Ctrl/Cmd+Enter
   */
  constructor(
    parent: HTMLElement,
    private readonly historyMenu: HTMLSelectElement,
    onRun: () => void,
  ) {
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: '',
        extensions: [
          lineNumbers(),
          editHistory(),
          placeholder('SQL, or a dot-command such as .help'),
          this.schemaCompartment.of(sql({ dialect: SQLite, upperCaseKeywords: true })),
          autocompletion(),
          Prec.highest(
            keymap.of([
              { key: 'Mod-Enter', run: () => (onRun(), true) },
              { key: 'ArrowUp', run: (view) => this.recall(view, +1) },
              { key: 'ArrowDown', run: (view) => this.recall(view, -1) },
            ]),
          ),
          keymap.of([...defaultKeymap, ...historyKeymap]),
          EditorView.contentAttributes.of({ 'aria-label': 'SQL editor', id: 'editor-content' }),
        ],
      }),
    });
    historyMenu.addEventListener('change', () => {
      const entry = this.history[Number(historyMenu.value)];
      if (entry !== undefined) this.setText(entry);
      this.focus();
    });
  }

  /** The selection, or everything when nothing is selected. */
  text(): string {
    const { state } = this.view;
    const sel = state.selection.main;
    return sel.empty ? state.doc.toString() : state.sliceDoc(sel.from, sel.to);
  }

  /** The whole text, whatever is selected. */
  allText(): string {
    return this.view.state.doc.toString();
  }

  setText(text: string): void {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text }, selection: { anchor: text.length } });
  }

  focus(): void {
    this.view.focus();
  }

  /** Completion from now on offers these tables and columns. */
  setSchema(schema: CompletionSchema): void {
    this.view.dispatch({ effects: this.schemaCompartment.reconfigure(sql({ dialect: SQLite, upperCaseKeywords: true, schema })) });
  }

  /** Shows another history (newest first), and starts recalling from its newest entry. */
  setHistory(entries: string[]): void {
    this.history = entries;
    this.historyIndex = -1;
    this.historyMenu.replaceChildren(new Option('—', ''));
    for (const [i, q] of entries.entries()) {
      const label = q.replace(/\s+/g, ' ');
      this.historyMenu.append(new Option(label.length > 60 ? `${label.slice(0, 60)}…` : label, String(i)));
    }
  }

  /** ArrowUp on the first line (ArrowDown on the last) walks the query history. */
  private recall(view: EditorView, step: number): boolean {
    const { state } = view;
    const sel = state.selection.main;
    if (!sel.empty || this.history.length === 0) return false;
    const line = state.doc.lineAt(sel.head).number;
    if (step > 0 && line !== 1) return false;
    if (step < 0 && line !== state.doc.lines) return false;
    const next = this.historyIndex + step;
    if (next < -1 || next >= this.history.length) return false;
    this.historyIndex = next;
    const text = next === -1 ? '' : this.history[next]!;
    view.dispatch({ changes: { from: 0, to: state.doc.length, insert: text }, selection: { anchor: text.length } });
    return true;
  }
}
