/**
 * `invariant(condition, message)`: asserts what the sync design promises (see engine.ts's
 * header). A failure means a bug or a file changed behind Outpost's back, never a condition
 * to handle: it throws at once, before the broken state is written anywhere.
 */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(`sync invariant violated: ${message}`);
}
