/**
 * Bytes of the WASM heap, read through the memory's current buffer on every call.
 *
 * Why not the build's `wasm.heap8u()`: it reads `memory.buffer` too, then compares sizes and,
 * when the memory has grown, rebuilds ten typed views. V8 optimizes it as a function of its own
 * (everything calls it), and the first growth takes a branch its optimized code has never seen,
 * which throws that code away; until V8 optimizes it again, each of its callers runs it in the
 * interpreter. A cached view of our own has the same flaw: its "the memory grew" branch has no
 * type feedback (V8 allocates feedback only after a function's first few calls), so growth
 * deoptimizes each function that inlined it. The classic suite's c11 grows the memory, and
 * c12's 2,300 VFS writes then ran `heapWrappers()` in the interpreter (`--trace-deopt`).
 *
 * `heapBytes` has no branch: it makes a view over `memory.buffer` as it is now, so growth
 * changes nothing the optimized code relies on. It also costs less than `heap8u().subarray()`
 * (one view made instead of one looked up and one made). A range outside the memory throws a
 * RangeError instead of being clamped to a shorter view.
 *
 * Do not keep a view across a call into WASM: a call may grow the memory, which detaches the
 * old buffer (every view of it reads as empty).
 *
 * Contract / may import: nothing internal.
 */

/** Bytes [p, p + n) of the WASM heap. */
export function heapBytes(memory: WebAssembly.Memory, p: number, n: number): Uint8Array {
  return new Uint8Array(memory.buffer, p, n);
}
